#!/usr/bin/env bash
# Benchmark: `snnc check` of a generated ~2,000-line model (target: under 20 ms).
#
#   bench/check/run.sh [N]      N runs per file (default 20)
#
# Builds snnc in release mode, generates the model with gen_model.py, checks that it has no
# diagnostics, then times N runs of `snnc check` on it and on examples/cuba.snn, printing
# the minimum and median wall time (hyperfine when installed, else a Python timing loop).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
n=${1:-20}
cd "$root"
cargo build --release -p snnc --quiet
snnc="$root/target/release/snnc"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model="$work/generated.snn"
python3 bench/check/gen_model.py "$model"
echo "generated model: $(wc -l < "$model") lines, $(wc -c < "$model") bytes"
if ! "$snnc" check "$model"; then
    echo "the generated model does not check cleanly" >&2
    exit 1
fi
if [ -n "$("$snnc" check "$model" 2>&1)" ]; then
    echo "the generated model has diagnostics" >&2
    exit 1
fi
echo "machine: $(nproc) CPUs, $(lscpu 2>/dev/null | sed -n 's/^Model name:[[:space:]]*//p' | head -1)"

if [ -z "${NO_HYPERFINE:-}" ] && command -v hyperfine >/dev/null 2>&1; then
    hyperfine --warmup 3 --runs "$n" -N \
        "$snnc check $model" "$snnc check $root/examples/cuba.snn"
fi

python3 - "$n" "$snnc" "$model" "$root/examples/cuba.snn" <<'PY'
import resource, statistics, subprocess, sys, time
n, snnc, files = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
def cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime
for f in files:
    for _ in range(3):  # warm up the page cache
        subprocess.run([snnc, "check", f], check=True, capture_output=True)
    wall, cpus = [], []
    for _ in range(n):
        c0, t0 = cpu(), time.perf_counter()
        subprocess.run([snnc, "check", f], check=True, capture_output=True)
        wall.append((time.perf_counter() - t0) * 1000)
        cpus.append((cpu() - c0) * 1000)
    # CPU time (user + system of the child) is the fairer number on a busy machine.
    print(f"snnc check {f.rsplit('/', 1)[-1]}: wall min {min(wall):.2f} ms, "
          f"median {statistics.median(wall):.2f} ms; CPU min {min(cpus):.2f} ms, "
          f"median {statistics.median(cpus):.2f} ms ({n} runs)")
PY
