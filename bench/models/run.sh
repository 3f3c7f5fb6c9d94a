#!/usr/bin/env bash
# Every stdlib neuron model, 100,000 neurons for 1 s (the defaults): snnc (release, --threads 1)
# against NEST 3.10 (local_num_threads = 1) in the same run; writes bench/models/results.md,
# rewritten after each model. Arguments go to run.py (e.g. --neurons 10000, --duration-ms 100,
# --models iaf_psc_exp,hh_psc_alpha (run in that order), --no-nest, --out FILE). At full size
# the rkf45 models (aeif_cond_*, hh_psc_alpha) take about an hour each on a loaded machine.
# Needs the peers' venv for NEST (PEERS_DIR, default ~/snn-peers).
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --release --quiet --bin snnc
exec python3 bench/models/run.py "$@"
