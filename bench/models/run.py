#!/usr/bin/env python3
"""Per-model throughput: a population of every stdlib neuron model in snnc and in NEST.

usage: bench/models/run.py [--neurons 100000] [--duration-ms 1000] [--models a,b] [--no-nest]
                           [--snnc PATH] [--out FILE]

With --models, the models run in the order given. The results file is rewritten after every
model, so an interrupted run keeps the rows it finished; each row notes the load average when
its model started (the machine is shared: a load above the number of cores means the times
include waiting for one).

For each model, N unconnected neurons with the model's defaults (NEST's, where the model is a
NEST one) are driven by a DC current I_e, the same in both simulators, chosen so that every
neuron fires regularly (the amplitude of the NEST validation protocol, tests/nest/); the
Poisson source fires at 10 Hz. Both run for the given duration at dt = 0.1 ms with nothing
recorded but the spike count, both on one thread (`snnc run --threads 1`). snnc's time is the `run` figure of `snnc run` (the step loop;
compilation is listed apart); NEST's is the wall time of `nest.Simulate` alone, with one
thread (`local_num_threads = 1`), network construction excluded. The spike counts show that
both did the same work. Neuron updates per second = N · steps / time.

Standard library only (Python 3.8+); NEST runs in the peers' venv (PEERS_DIR, default
~/snn-peers) as a child process.
"""
import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PEERS = os.environ.get("PEERS_DIR", os.path.expanduser("~/snn-peers"))

# (snnc model, stdlib module, NEST model or None, I_e as written in both, NEST extra params)
# Izhikevich's I_e is in pA with C_m = 1 pF (NEST's convention: pA read as mV/ms).
MODELS = [
    ("iaf_psc_delta", "lif", "iaf_psc_delta", "400 pA", 400.0),
    ("iaf_psc_exp", "lif", "iaf_psc_exp", "400 pA", 400.0),
    ("iaf_psc_alpha", "lif", "iaf_psc_alpha", "400 pA", 400.0),
    ("iaf_cond_exp", "cond", "iaf_cond_exp", "400 pA", 400.0),
    ("iaf_cond_alpha", "cond", "iaf_cond_alpha", "400 pA", 400.0),
    ("aeif_cond_exp", "adex", "aeif_cond_exp", "1000 pA", 1000.0),
    ("aeif_cond_alpha", "adex", "aeif_cond_alpha", "1000 pA", 1000.0),
    ("ExpIF", "adex", None, "1000 pA", None),
    ("izhikevich", "izhikevich", "izhikevich", "10 pA", 10.0),
    ("hh_psc_alpha", "hh", "hh_psc_alpha", "1000 pA", 1000.0),
    ("Alif", "adaptive", None, "400 pA", None),
    ("EscapeLif", "stochastic", "gif_psc_exp", "200 pA", 200.0),
    ("PoissonSource", "poisson", "poisson_generator", None, None),
]

NEST_SCRIPT = r"""
import json, sys, time
import nest
nest.set_verbosity("M_ERROR")
model, n, duration, amplitude = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
nest.ResetKernel()
nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": 1, "rng_seed": 1})
if model == "poisson_generator":
    pg = nest.Create("poisson_generator", params={"rate": 10.0})
    pop = nest.Create("parrot_neuron", n)
    nest.Connect(pg, pop)
else:
    pop = nest.Create(model, n, params={"I_e": float(amplitude)})
sr = nest.Create("spike_recorder")
nest.Connect(pop, sr)
t0 = time.perf_counter()
nest.Simulate(duration)
elapsed = time.perf_counter() - t0
print("RESULT " + json.dumps({"seconds": elapsed, "spikes": int(sr.n_events)}))
"""


def sh(cmd, check=True):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        sys.exit(f"command failed ({r.returncode}): {' '.join(cmd)}\n{r.stdout}\n{r.stderr}")
    return r


def seconds(text):
    """'1.234 s' or '12.3 ms' to seconds."""
    value, unit = text.split()
    return float(value) * {"s": 1.0, "ms": 1e-3, "µs": 1e-6, "us": 1e-6}[unit]


def snnc_network(model, module, amplitude, n, duration_ms):
    if model == "PoissonSource":
        body = f"    N = PoissonSource[{n}] {{ rate = 10 Hz }}\n"
        module_path = "stdlib.inputs.poisson"
    else:
        body = f"    N = {model}[{n}] {{ I_e = {amplitude} }}\n"
        module_path = f"stdlib.neurons.{module}"
    return (
        f"import {module_path}\n\n"
        f"network Bench {{\n    dt = 0.1 ms\n    seed = 1\n{body}"
        f"    record spikes of N\n    run {duration_ms:g} ms\n}}\n"
    )


def run_snnc(snnc, path, out):
    r = sh([snnc, "run", path, "--threads", "1", "--out", out])
    text = r.stdout + r.stderr
    loop = re.search(r"run ([\d.]+ (?:s|ms))", text)
    compile_ = re.search(r"compile ([\d.]+ (?:s|ms))", text)
    spikes = re.search(r"^\s+N\s+\d+\s+(\d+)", text, re.M)
    if not (loop and spikes):
        sys.exit(f"cannot parse snnc's summary:\n{text}")
    return seconds(loop.group(1)), seconds(compile_.group(1)) if compile_ else None, int(spikes.group(1))


def run_nest(model, n, duration_ms, amplitude):
    python = os.path.join(PEERS, "venv", "bin", "python")
    r = sh([python, "-c", NEST_SCRIPT, model, str(n), str(duration_ms), str(amplitude or 0)])
    line = next(l for l in r.stdout.splitlines() if l.startswith("RESULT "))
    result = json.loads(line[len("RESULT "):])
    return result["seconds"], result["spikes"]


def fmt_time(s):
    return f"{s:.3f} s" if s >= 1 else f"{s * 1e3:.1f} ms"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--neurons", type=int, default=100_000)
    ap.add_argument("--duration-ms", type=float, default=1000.0)
    ap.add_argument("--models", default=None, help="comma-separated snnc model names")
    ap.add_argument("--no-nest", action="store_true")
    ap.add_argument("--snnc", default=os.path.join(ROOT, "target", "release", "snnc"))
    ap.add_argument("--out", default=os.path.join(ROOT, "bench", "models", "results.md"))
    args = ap.parse_args()
    chosen = args.models.split(",") if args.models else None
    known = {m[0]: m for m in MODELS}
    if chosen:
        unknown = [m for m in chosen if m not in known]
        if unknown:
            sys.exit(f"unknown models {unknown}; the models are {', '.join(known)}")
    order = [known[m] for m in chosen] if chosen else MODELS
    n, duration = args.neurons, args.duration_ms
    steps = round(duration / 0.1)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        for model, module, nest_model, amplitude, nest_amplitude in order:
            load_at_start = os.getloadavg()[0]
            path = os.path.join(tmp, f"{model}.snn")
            with open(path, "w") as f:
                f.write(snnc_network(model, module, amplitude, n, duration))
            t_snnc, t_compile, spikes_snnc = run_snnc(args.snnc, path, os.path.join(tmp, model))
            t_nest = spikes_nest = None
            if nest_model and not args.no_nest:
                t_nest, spikes_nest = run_nest(nest_model, n, duration, nest_amplitude)
            rows.append((model, nest_model, amplitude, t_compile, t_snnc, spikes_snnc, t_nest,
                         spikes_nest, load_at_start))
            print(f"{model}: snnc {fmt_time(t_snnc)} ({spikes_snnc} spikes)"
                  + (f", NEST {fmt_time(t_nest)} ({spikes_nest} spikes)" if t_nest else ""),
                  flush=True)
            write_results(args, rows, n, duration, steps, load_before)


def write_results(args, rows, n, duration, steps, load_before):
    load_after = os.getloadavg()
    cpu = "unknown CPU"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    lines = [
        "# Every stdlib neuron model: snnc vs NEST 3.10 (one thread)",
        "",
        f"- date: {datetime.datetime.now():%Y-%m-%d %H:%M}",
        f"- machine: {os.cpu_count()} CPUs, {cpu}; load average before "
        f"{' '.join(f'{x:.2f}' for x in load_before)}, after "
        f"{' '.join(f'{x:.2f}' for x in load_after)} (other jobs share this machine: a load "
        "above ~1 means the times include waiting for a core)",
        f"- command: `bench/models/run.sh {' '.join(sys.argv[1:])}`".rstrip() + "",
        f"- {n:,} unconnected neurons per model, {duration:g} ms at dt = 0.1 ms ({steps} steps), "
        "DC drive I_e as listed (Poisson: 10 Hz); one run each.",
        "- snnc: the `run` figure of `snnc run --threads 1` (step loop and writing the spikes; JIT compile "
        "apart); NEST: wall time of `nest.Simulate` with `local_num_threads = 1`.",
        "- updates/s = neurons · steps / time; ratio = snnc time / NEST time (below 1: snnc "
        "faster).",
        "",
        "| model | NEST model | I_e | load | spikes snnc / NEST | snnc compile | snnc run | NEST run "
        "| snnc updates/s | NEST updates/s | ratio snnc/NEST |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for model, nest_model, amplitude, t_compile, t_snnc, s_snnc, t_nest, s_nest, load in rows:
        ups = n * steps / t_snnc
        if t_nest:
            nest_cols = (f"{s_snnc:,} / {s_nest:,} | {fmt_time(t_compile) if t_compile else '?'} | "
                         f"{fmt_time(t_snnc)} | {fmt_time(t_nest)} | {ups:.3g} | "
                         f"{n * steps / t_nest:.3g} | {t_snnc / t_nest:.3f}")
        else:
            nest_cols = (f"{s_snnc:,} / — | {fmt_time(t_compile) if t_compile else '?'} | "
                         f"{fmt_time(t_snnc)} | — | {ups:.3g} | — | —")
        lines.append(f"| `{model}` | {('`' + nest_model + '`') if nest_model else '—'} | "
                     f"{amplitude or '—'} | {load:.1f} | {nest_cols} |")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
