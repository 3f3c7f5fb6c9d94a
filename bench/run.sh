#!/usr/bin/env bash
# CUBA 4000 and 100,000 neurons, 1 s: snnc (release) against Brian2 cpp_standalone in the
# same run; writes bench/results.md. Arguments go to bench/run.py (e.g. --reps 3,
# --sizes 4000, --no-brian). Needs /usr/bin/time (apt-get install -y time) and, for Brian2,
# the peers' venv (PEERS_DIR, default ~/snn-peers; shared/peers/setup.sh installs it).
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --bin snnc
exec python3 bench/run.py "$@"
