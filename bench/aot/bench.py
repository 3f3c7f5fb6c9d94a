#!/usr/bin/env python3
"""snnc build on CUBA (and the other examples): compile times, deployed sizes, run times.

Usage: cargo build --release && python3 bench/aot/bench.py [--snnc target/release/snnc]
       [--duration 1s] [--threads 1] [--repeat 3]
Writes a Markdown table to stdout. Timings are wall clock, best of --repeat, measured in one
run on one machine: compare them with each other, not across machines. The machine's load is
printed with them (other processes skew every number).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def best_of(repeat, command):
    best = None
    output = None
    for _ in range(repeat):
        started = time.perf_counter()
        output = subprocess.run(command, capture_output=True, text=True)
        elapsed = time.perf_counter() - started
        if output.returncode != 0:
            sys.exit(f"{' '.join(map(str, command))} failed:\n{output.stderr}")
        best = elapsed if best is None else min(best, elapsed)
    return best, output


def run_seconds(summary):
    match = re.search(r"run ([0-9.]+) s on", summary)
    return float(match.group(1)) if match else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--snnc", default=str(ROOT / "target/release/snnc"))
    parser.add_argument("--duration", default="1s")
    parser.add_argument("--threads", default="1")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--examples", nargs="*", default=["cuba", "coba", "brunel"])
    args = parser.parse_args()
    snnc = args.snnc
    print(f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"{args.duration} simulated on {args.threads} thread(s), best of {args.repeat}\n")
    print("| example | build exe (s) | build lib (s) | build obj (s) | exe size (KiB) | "
          "exe stripped (KiB) | lib .so (KiB) | .so stripped (KiB) | lib .a model (KiB) | "
          "run: snnc run (s) | run: exe (s) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name in args.examples:
            model = ROOT / "examples" / f"{name}.snn"
            exe = tmp / name
            t_exe, _ = best_of(args.repeat, [snnc, "build", model, "-o", exe, "--quiet"])
            t_lib, _ = best_of(args.repeat,
                               [snnc, "build", model, "--emit", "lib", "-o", tmp / "lib" / name,
                                "--quiet"])
            t_obj, _ = best_of(args.repeat,
                               [snnc, "build", model, "--emit", "obj", "-o", tmp / f"{name}.o",
                                "--quiet"])
            flags = ["--duration", args.duration, "--threads", args.threads]
            _, jit = best_of(args.repeat, [snnc, "run", model, *flags, "--out", tmp / "jit"])
            _, aot = best_of(args.repeat, [exe, *flags, "--out", tmp / "aot"])
            kib = lambda p: p.stat().st_size / 1024
            shared = tmp / "lib" / f"lib{name}.so"
            subprocess.run(["strip", "-o", tmp / "exe.stripped", exe], check=True)
            subprocess.run(["strip", "-o", tmp / "so.stripped", shared], check=True)
            print(f"| {name} | {t_exe:.2f} | {t_lib:.2f} | {t_obj:.3f} | {kib(exe):.0f} | "
                  f"{kib(tmp / 'exe.stripped'):.0f} | {kib(shared):.0f} | "
                  f"{kib(tmp / 'so.stripped'):.0f} | "
                  f"{kib(tmp / 'lib' / f'lib{name}.a'):.0f} | {run_seconds(jit.stdout):.3f} | "
                  f"{run_seconds(aot.stdout):.3f} |")


if __name__ == "__main__":
    main()
