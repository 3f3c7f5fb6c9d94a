#!/usr/bin/env bash
# The benchmark suite: CUBA, COBA, Brunel and Song's STDP network, small and large, in snnc,
# Brian2 (cpp_standalone) and NEST, in one run; writes bench/suite/results.md (+ results.json).
#
#   bench/suite/run.sh [--quick] [--sizes small|large|all] [--threads LIST] [--reps N] [--snnc PATH]
#
# Other options (bench/suite/suite.py --help): --benchmarks cuba,coba,brunel,stdp, --peers
# brian2,nest, --backends jit,llvm, --timeout S, --note TEXT, --out FILE, --from-samples FILE
# (rebuild the table only).
# Builds the release snnc unless --snnc is given. Needs /usr/bin/time (apt-get install -y time)
# and, for the peers, their venv in PEERS_DIR (default ~/snn-peers; shared/peers/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
# `--backends jit,llvm` needs the LLVM backend in the binary (and llvm-14-dev to build it).
features=()
case " $* " in *llvm*) features=(--features snnc/llvm) ;; esac
case " $* " in
  *" --snnc "* | *" --snnc="* | *" --from-samples "* | *" --from-samples="*) ;;
  *) cargo build --release --quiet --bin snnc "${features[@]}" ;;
esac
exec python3 bench/suite/suite.py "$@"
