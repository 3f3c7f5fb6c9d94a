#!/usr/bin/env python3
"""Plasticity benchmarks, ratios measured in one run.

usage: bench/stdp/run.py [--reps R] [--no-brian] [--snnc PATH] [--song-seconds S]

1. Song, Miller & Abbott (2000) STDP (examples/stdp_song.snn: 1000 Poisson inputs at 15 Hz
   onto one neuron, 100 s): snnc's simulation loop against Brian2 C++ standalone's "profiled
   code time" (shared/peers/stdp_brian2.py, unmodified, run interleaved with snnc). Target:
   snnc at most 0.5x Brian2.
2. CUBA 4000 with pair STDP (stdlib StdpAdditive) on the excitatory-to-excitatory projection
   against the static CUBA of the same size and structure (E -> E, E -> I, I -> E, I -> I as
   four projections in both, so connectivity is drawn identically), 1 s. Target: at most 3x.

Times are medians of R repetitions (minimum in brackets), snnc's "run" time (the step loop)
and the CPU time (user + system) of the whole process. On a shared machine compare ratios and
CPU times, not wall times. Standard library only (Python 3.8+).
"""
import argparse
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.environ.get("PEERS_DIR", os.path.expanduser("~/snn-peers"))
PEER_SCRIPTS = os.environ.get("PEER_SCRIPTS", "/work/shared/peers")


def run(cmd, cwd=None):
    """Runs cmd; returns (stdout, wall seconds, child CPU seconds)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return r.stdout, wall, cpu


def snnc_loop(snnc, model, out, extra=()):
    stdout, wall, cpu = run([snnc, "run", model, "--out", out, *extra])
    m = re.search(r"run ([\d.]+) s, real-time factor", stdout)
    return {"loop_s": float(m.group(1)), "wall_s": wall, "cpu_s": cpu, "stdout": stdout}


def cuba_variants(directory):
    """Static and E->E-STDP CUBA with the same four projections (identical connectivity)."""
    with open(os.path.join(ROOT, "examples", "cuba.snn")) as f:
        text = f.read()
    base = text.replace(
        "    E -> E, I : Static { w = 1.62 mV, target = ge } connect bernoulli(p = 0.02)\n"
        "    I -> E, I : Static { w = -9 mV, target = gi } connect bernoulli(p = 0.02)\n",
        "    E -> E : EE_SYNAPSE connect bernoulli(p = 0.02)\n"
        "    E -> I : Static { w = 1.62 mV, target = ge } connect bernoulli(p = 0.02)\n"
        "    I -> E : Static { w = -9 mV, target = gi } connect bernoulli(p = 0.02)\n"
        "    I -> I : Static { w = -9 mV, target = gi } connect bernoulli(p = 0.02)\n",
    ).replace("import stdlib.synapses.static\n", "import stdlib.synapses.static\nimport stdlib.synapses.stdp\n")
    assert "EE_SYNAPSE" in base, "examples/cuba.snn changed; update bench/stdp/run.py"
    static = base.replace("EE_SYNAPSE", "Static { w = 1.62 mV, target = ge }")
    plastic = base.replace(
        "EE_SYNAPSE",
        "StdpAdditive { w = 1.62 mV, w_max = 3.24 mV, dA_pre = 0.0162 mV, "
        "dA_post = -0.01701 mV, target = ge }",
    )
    paths = []
    for name, source in [("cuba_static.snn", static), ("cuba_stdp.snn", plastic)]:
        path = os.path.join(directory, name)
        with open(path, "w") as f:
            f.write(source)
        paths.append(path)
    return paths


def brian_song(seconds):
    """Builds and runs Brian2's Song STDP (the peers' script, unmodified); its loop time is
    the "profiled code time" it prints. The script builds in a fixed /tmp directory that other
    runs may share, so each repetition rebuilds (make is incremental) instead of rerunning a
    binary that might have been replaced meanwhile."""
    python = os.path.join(PEERS, "venv", "bin", "python")
    stdout, wall, cpu = run([python, os.path.join(PEER_SCRIPTS, "stdp_brian2.py"), "1000",
                             str(seconds), "cpp_standalone"], cwd=tempfile.gettempdir())
    loop = float(re.search(r"profiled code time: ([\d.]+)", stdout).group(1))
    return {"loop_s": loop, "wall_s": wall, "cpu_s": cpu, "line": stdout.strip().splitlines()[0]}


def summary(runs, key):
    values = [r[key] for r in runs]
    return f"{statistics.median(values):.3f} s [{min(values):.3f}]"


def med(runs, key):
    return statistics.median(r[key] for r in runs)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--no-brian", action="store_true")
    ap.add_argument("--snnc", default=os.path.join(ROOT, "target", "release", "snnc"))
    ap.add_argument("--song-seconds", type=int, default=100)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="snnc-bench-stdp-")
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; cores: {os.cpu_count()}")

    song = os.path.join(ROOT, "examples", "stdp_song.snn")
    extra = ("--duration", f"{args.song_seconds}s")
    snnc_runs, brian_runs = [], []
    for _ in range(args.reps):
        snnc_runs.append(snnc_loop(args.snnc, song, os.path.join(work, "song"), extra))
        if not args.no_brian:
            brian_runs.append(brian_song(args.song_seconds))
    if brian_runs:
        print(f"brian2: {brian_runs[0]['line']}")
    print(f"\nSong STDP, 1000 inputs, {args.song_seconds} s ({args.reps} reps, median [min]):")
    print(f"  snnc   loop {summary(snnc_runs, 'loop_s')}, process CPU {summary(snnc_runs, 'cpu_s')}")
    if brian_runs:
        print(f"  brian2 loop {summary(brian_runs, 'loop_s')} (its process CPU includes code"
              f" generation and the C++ build)")
        print(f"  ratio snnc/brian2 (loop): {med(snnc_runs, 'loop_s') / med(brian_runs, 'loop_s'):.2f}"
              " (target <= 0.5)")

    static, plastic = cuba_variants(work)
    s_runs, p_runs = [], []
    for _ in range(args.reps):
        s_runs.append(snnc_loop(args.snnc, static, os.path.join(work, "static")))
        p_runs.append(snnc_loop(args.snnc, plastic, os.path.join(work, "plastic")))
    print(f"\nCUBA 4000, 1 s ({args.reps} reps, median [min]):")
    print(f"  static          loop {summary(s_runs, 'loop_s')}, CPU {summary(s_runs, 'cpu_s')}")
    print(f"  STDP on E -> E  loop {summary(p_runs, 'loop_s')}, CPU {summary(p_runs, 'cpu_s')}")
    print(f"  ratio STDP/static (loop): {med(p_runs, 'loop_s') / med(s_runs, 'loop_s'):.2f} (target <= 3)")
    for name, r in [("static", s_runs[-1]), ("STDP", p_runs[-1])]:
        spikes = re.findall(r"^\s+(\S+)\s+\d+\s+(\d+)\s+([\d.]+) Hz", r["stdout"], re.M)
        print(f"  {name}: " + ", ".join(f"{p} {n} spikes ({hz} Hz)" for p, n, hz in spikes))
    load = os.getloadavg()
    print(f"\nload average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")


if __name__ == "__main__":
    main()
