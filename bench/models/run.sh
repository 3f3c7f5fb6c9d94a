#!/usr/bin/env bash
# Every stdlib neuron model, 100,000 neurons for 1 s: snnc (release) against NEST 3.10 (one
# thread) in the same run; writes bench/models/results.md. Arguments go to run.py (e.g.
# --neurons 10000, --duration-ms 100, --models iaf_psc_exp,hh_psc_alpha, --no-nest).
# Needs the peers' venv for NEST (PEERS_DIR, default ~/snn-peers).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin snnc
exec python3 bench/models/run.py "$@"
