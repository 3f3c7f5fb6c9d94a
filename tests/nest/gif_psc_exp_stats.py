"""Reference statistics of NEST's gif_psc_exp (escape noise) for compiler/tests/nest.rs.

Escape-noise spikes are random, so snnc's EscapeLif cannot match NEST trace by trace; this
script measures what must agree instead. For each DC amplitude (150 pA: V_m settles near
V_T_star and the hazard makes firing irregular; 200 pA, the trace protocol's: nearly regular),
it simulates SEEDS independent runs of NEURONS unconnected gif_psc_exp neurons with NEST's
defaults (dt = 0.1 ms, 500 ms, DC on from 100 to 400 ms through a connection with the default
delay of 1 ms, one thread) and writes per run, over all its neurons: the mean spike count, the
mean first-spike time, and the pooled interspike-interval mean and CV; plus the across-neuron
standard deviation of the count and of the first-spike time.

usage: ~/snn-peers/venv/bin/python tests/nest/gif_psc_exp_stats.py tests/nest/gif_psc_exp_stats.json
(NEST prints its banner on stdout, so the result goes to the file named.)
"""
import json
import sys

import nest
import numpy as np

nest.set_verbosity("M_ERROR")
SEEDS = 10
NEURONS = 200
AMPLITUDES = [150.0, 200.0]


def run(amplitude, seed):
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": 0.1, "rng_seed": seed, "local_num_threads": 1})
    n = nest.Create("gif_psc_exp", NEURONS)
    dc = nest.Create("dc_generator", params={"amplitude": amplitude, "start": 100.0, "stop": 400.0})
    sr = nest.Create("spike_recorder")
    nest.Connect(dc, n)
    nest.Connect(n, sr)
    nest.Simulate(500.0)
    ev = sr.events
    first_id = n.tolist()[0]
    trains = [[] for _ in range(NEURONS)]
    for sender, t in zip(ev["senders"], ev["times"]):
        trains[sender - first_id].append(t)
    counts = np.array([len(s) for s in trains], dtype=float)
    firsts = np.array([s[0] for s in trains if s])
    isis = np.concatenate([np.diff(np.sort(s)) for s in trains if len(s) > 1])
    return {
        "seed": seed,
        "mean_count": counts.mean(),
        "std_count": counts.std(ddof=1),
        "mean_first_ms": firsts.mean(),
        "std_first_ms": firsts.std(ddof=1),
        "isi_mean_ms": isis.mean(),
        "isi_cv": isis.std(ddof=1) / isis.mean(),
    }


out = {
    "model": "gif_psc_exp",
    "nest_version": nest.__version__,
    "neurons_per_run": NEURONS,
    "protocol": {"dt_ms": 0.1, "duration_ms": 500.0, "dc_on_ms": 100.0, "dc_off_ms": 400.0,
                 "dc_delay_ms": 1.0},
    "amplitudes": {},
}
for amp in AMPLITUDES:
    out["amplitudes"][f"{amp:g}"] = [run(amp, seed) for seed in range(1, SEEDS + 1)]
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
