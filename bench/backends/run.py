#!/usr/bin/env python3
"""Cranelift against LLVM on every example (issue #6's benchmark).

For each `examples/*.snn`, runs `snnc run --threads 1` with `--backend jit` (Cranelift) and
`--backend llvm`, interleaved, REPS times each, and reports the medians of the JIT compile
time and of the simulation loop, with the ratio LLVM / Cranelift. Both backends give the
same outputs bit for bit (compiler/tests/llvm_backend.rs), so only time differs. With
`--aot`, it also builds the CUBA example with `snnc build` as an executable and as a
library with each backend and reports their sizes and build times.

    cargo build --release --features snnc/llvm
    python3 bench/backends/run.py [--reps 5] [--duration 1s] [--aot] [--out bench/backends/results.md]

The summary line of `snnc run` is read with the benchmark suite's own parser
(bench/suite/suite.py), so both read the same numbers the same way.
"""
import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(HERE, "..", "suite"))
import suite  # noqa: E402  (the suite's parser and machine description)

BACKENDS = [("jit", "Cranelift"), ("llvm", "LLVM")]


def run_example(snnc, example, backend, duration, out):
    cmd = [snnc, "run", "--threads", "1", "--backend", backend, "--out", out, example]
    if duration:
        cmd[2:2] = ["--duration", duration]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip()[:400]}")
    return suite.parse_snnc(r.stdout)


def aot_sizes(snnc, example, backend, work):
    """Build times and sizes of the CUBA executable and library, or None without `snnc build`."""
    rows = {}
    for emit in ["exe", "lib"]:
        out = os.path.join(work, f"cuba-{backend}-{emit}")
        started = time.perf_counter()
        r = subprocess.run([snnc, "build", example, "-o", out, "--emit", emit,
                            "--backend", "cranelift" if backend == "jit" else backend],
                           capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if r.returncode != 0:
            rows[emit] = f"failed: {r.stderr.strip()[:200]}"
            continue
        files = [out] if os.path.isfile(out) else sorted(glob.glob(out + "*")) + sorted(
            glob.glob(os.path.join(out, "*")))
        sizes = ", ".join(f"{os.path.basename(f)} {os.path.getsize(f) / 1024:.0f} KiB"
                          for f in files if os.path.isfile(f))
        rows[emit] = f"{sizes} (built in {seconds:.2f} s)"
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--snnc", default=os.path.join(ROOT, "target", "release", "snnc"))
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--duration", default="", help="override every example's run length")
    ap.add_argument("--aot", action="store_true", help="also build CUBA with `snnc build`")
    ap.add_argument("--out", default=os.path.join(HERE, "results.md"))
    args = ap.parse_args()

    examples = sorted(glob.glob(os.path.join(ROOT, "examples", "*.snn")))
    load_before = suite.load()
    rows = []
    with tempfile.TemporaryDirectory() as work:
        for example in examples:
            name = os.path.basename(example)
            samples = {b: [] for b, _ in BACKENDS}
            for rep in range(args.reps):
                for backend, _ in BACKENDS:
                    out = os.path.join(work, f"{name}-{backend}")
                    samples[backend].append(run_example(args.snnc, example, backend,
                                                        args.duration, out))
            med = {b: {k: statistics.median(s[k] for s in samples[b])
                       for k in ("compile_s", "sim_s")} for b, _ in BACKENDS}
            rows.append((name, med))
            print(f"{name}: Cranelift compile {med['jit']['compile_s'] * 1e3:.1f} ms, run "
                  f"{med['jit']['sim_s']:.3f} s; LLVM compile {med['llvm']['compile_s'] * 1e3:.1f} ms, "
                  f"run {med['llvm']['sim_s']:.3f} s", flush=True)
        aot = {}
        if args.aot:
            cuba = os.path.join(ROOT, "examples", "cuba.snn")
            for backend, label in BACKENDS:
                aot[label] = aot_sizes(args.snnc, cuba, backend, work)

    m = suite.machine()
    lines = [
        "# Cranelift and LLVM on every example",
        "",
        f"Machine: {m['cpu_count']} cores, {m['cpu_model']}; load average {load_before} before, "
        f"{suite.load()} after. One thread, median of {args.reps} interleaved runs per backend"
        + (f", every example run for {args.duration}" if args.duration else ", each example's own run length")
        + ". Compile: front end + code generation of `snnc run`; run: the simulation loop.",
        "",
        "| example | Cranelift compile | LLVM compile | Cranelift run | LLVM run | LLVM / Cranelift run |",
        "|---|---|---|---|---|---|",
    ]
    for name, med in rows:
        j, l = med["jit"], med["llvm"]
        lines.append(f"| {name} | {j['compile_s'] * 1e3:.1f} ms | {l['compile_s'] * 1e3:.1f} ms | "
                     f"{j['sim_s']:.3f} s | {l['sim_s']:.3f} s | {l['sim_s'] / j['sim_s']:.2f} |")
    if aot:
        lines += ["", "Deployed CUBA (`snnc build examples/cuba.snn`):", "",
                  "| backend | executable | library |", "|---|---|---|"]
        for label, r in aot.items():
            lines.append(f"| {label} | {r.get('exe', '-')} | {r.get('lib', '-')} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
