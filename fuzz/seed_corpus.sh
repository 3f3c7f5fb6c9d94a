#!/bin/sh
# Copies every .snn file of examples/ and stdlib/ into the check target's corpus.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$here/corpus/check"
find "$here/../examples" "$here/../stdlib" -name '*.snn' | while read -r f; do
    cp "$f" "$here/corpus/check/$(echo "${f#"$here"/../}" | tr '/' '_')"
done
ls "$here/corpus/check"
