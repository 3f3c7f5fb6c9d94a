#!/usr/bin/env python3
"""CUBA benchmark: snnc against Brian2 C++ standalone, measured in the same run.

usage: bench/run.py [--reps R] [--sizes 4000,100000] [--no-brian] [--snnc PATH] [--out FILE]

For each size N, the CUBA model of examples/cuba.snn is generated with 0.8 N excitatory and
0.2 N inhibitory neurons and p = 80 / N (so 4000 gives the file itself), and run for 1 s with
the release `snnc`. Brian2's CUBA (shared/peers/cuba_brian2.py) is built once per size with
cpp_standalone (its C++ build is not timed), then its binary is rerun, interleaved with snnc,
R times. Peak memory comes from /usr/bin/time -v. Times are the median of R repetitions
(minimum in brackets); on a shared machine compare ratios, not absolute numbers.

Standard library only (Python 3.8+).
"""
import argparse
import datetime
import os
import re
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.environ.get("PEERS_DIR", os.path.expanduser("~/snn-peers"))
PEER_SCRIPTS = os.environ.get("PEER_SCRIPTS", "/work/shared/peers")


def sh(cmd, cwd=None, check=True):
    r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def timed(cmd, cwd=None):
    """Runs cmd under /usr/bin/time -v; returns (stdout, wall seconds, peak RSS bytes)."""
    r = sh(["/usr/bin/time", "-v"] + cmd, cwd=cwd)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", r.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1)) * 1024
    return r.stdout, seconds, rss


def model_for(n, directory):
    """examples/cuba.snn scaled to n neurons with 80 inputs per neuron on average."""
    text = open(os.path.join(ROOT, "examples", "cuba.snn")).read()
    if n == 4000:
        return os.path.join(ROOT, "examples", "cuba.snn")
    ne, ni, p = int(0.8 * n), n - int(0.8 * n), 80.0 / n
    text = text.replace("LifExp[3200]", f"LifExp[{ne}]").replace("LifExp[800]", f"LifExp[{ni}]")
    text = text.replace("p = 0.02", f"p = {p:g}")
    path = os.path.join(directory, f"cuba_{n}.snn")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_snnc(snnc, model, out):
    stdout, wall, rss = timed([snnc, "run", model, "--out", out])
    m = re.search(r"JIT ([\d.]+) ms\), build ([\d.]+) ms, run ([\d.]+) s", stdout)
    front = re.search(r"front end ([\d.]+) ms", stdout)
    spikes = sum(int(x) for x in re.findall(r"^\s+\S+\s+\d+\s+(\d+)\s+[\d.]+ Hz", stdout, re.M))
    events = int(re.search(r"(\d+) synaptic events", stdout).group(1))
    syn = int(re.search(r"(\d+) synapses", stdout).group(1))
    return {
        "front_s": float(front.group(1)) / 1e3,
        "jit_s": float(m.group(1)) / 1e3,
        "build_s": float(m.group(2)) / 1e3,
        "loop_s": float(m.group(3)),
        "wall_s": wall,
        "rss": rss,
        "spikes": spikes,
        "events": events,
        "synapses": syn,
    }


def build_brian(n):
    python = os.path.join(PEERS, "venv", "bin", "python")
    r = sh([python, os.path.join(PEER_SCRIPTS, "cuba_brian2.py"), str(n), "1", "cpp_standalone"],
           cwd=tempfile.gettempdir())
    m = re.search(r"syn=(\d+) spikes=(\d+)", r.stdout)
    return {"synapses": int(m.group(1)), "spikes": int(m.group(2)), "dir": f"/tmp/brian_cuba_{n}"}


def run_brian(directory):
    _, wall, rss = timed(["./main"], cwd=directory)
    with open(os.path.join(directory, "results", "last_run_info.txt")) as f:
        loop = float(f.read().split()[0])
    return {"loop_s": loop, "wall_s": wall, "rss": rss}


def med(runs, key):
    values = [r[key] for r in runs]
    return statistics.median(values), min(values)


def fmt_t(pair):
    m, lo = pair
    if m < 1:
        return f"{m * 1e3:.1f} ms [{lo * 1e3:.1f}]"
    return f"{m:.3f} s [{lo:.3f}]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--sizes", default="4000,100000")
    ap.add_argument("--no-brian", action="store_true")
    ap.add_argument("--snnc", default=os.path.join(ROOT, "target", "release", "snnc"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "results.md"))
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="snnc-bench-")
    sizes = [int(s) for s in args.sizes.split(",")]

    rows = []
    for n in sizes:
        model = model_for(n, work)
        brian = None if args.no_brian else build_brian(n)
        reps = args.reps if n <= 10000 else max(1, args.reps // 2)
        ours, theirs = [], []
        for r in range(reps):
            ours.append(run_snnc(args.snnc, model, os.path.join(work, f"out_{n}")))
            if brian:
                theirs.append(run_brian(brian["dir"]))
            print(f"N={n} rep {r + 1}/{reps}: snnc loop {ours[-1]['loop_s']:.3f} s"
                  + (f", brian2 loop {theirs[-1]['loop_s']:.3f} s" if brian else ""),
                  file=sys.stderr)
        rows.append((n, ours, brian, theirs))

    lscpu = sh(["lscpu"], check=False).stdout
    model_name = re.search(r"Model name:\s*(.*)", lscpu)
    load = open("/proc/loadavg").read().split()[:3]
    lines = [
        "# CUBA: snnc vs Brian2 cpp_standalone",
        "",
        f"- date: {datetime.datetime.now().strftime('%Y-%m-%d %H:%M')}",
        f"- machine: {os.cpu_count()} CPUs, {model_name.group(1).strip() if model_name else '?'}"
        f"; load average at the end {' '.join(load)}",
        f"- command: `bench/run.sh` (reps {args.reps}; 100k and larger use half as many)",
        "- times: median of the repetitions [minimum]; snnc and Brian2 runs are interleaved.",
        "- snnc \"loop\" is the `run` figure of `snnc run` (the step loop plus writing the",
        "  outputs); Brian2's is its \"profiled code time\" (`last_run_info.txt`), its C++",
        "  build excluded. \"whole run\" is the wall time of the process (for snnc: source to",
        "  written spikes; for Brian2: the compiled binary only).",
        "",
        "| N | synapses | spikes snnc / Brian2 | snnc JIT | snnc build | snnc loop | Brian2 loop"
        " | loop ratio snnc/Brian2 | snnc whole run | Brian2 binary run | peak RSS snnc (B/syn)"
        " | peak RSS Brian2 | events/s | neuron updates/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n, ours, brian, theirs in rows:
        loop = med(ours, "loop_s")
        rss = statistics.median(r["rss"] for r in ours)
        syn = ours[0]["synapses"]
        steps = 10000
        b_loop = med(theirs, "loop_s") if theirs else None
        cells = [
            f"{n:,}",
            f"{syn:,}",
            f"{ours[0]['spikes']:,} / {brian['spikes']:,}" if brian else f"{ours[0]['spikes']:,} / –",
            fmt_t(med(ours, "jit_s")),
            fmt_t(med(ours, "build_s")),
            fmt_t(loop),
            fmt_t(b_loop) if b_loop else "–",
            f"{loop[0] / b_loop[0]:.2f}" if b_loop else "–",
            fmt_t(med(ours, "wall_s")),
            fmt_t(med(theirs, "wall_s")) if theirs else "–",
            f"{rss / 2**20:.1f} MiB ({rss / syn:.1f})",
            f"{statistics.median(r['rss'] for r in theirs) / 2**20:.1f} MiB" if theirs else "–",
            f"{ours[0]['events'] / loop[0]:.3g}",
            f"{n * steps / loop[0]:.3g}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    with open(args.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
