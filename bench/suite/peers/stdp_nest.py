"""Song, Miller & Abbott (2000) STDP in NEST, the network of examples/stdp_song.snn and
shared/peers/stdp_brian2.py (Brian2's examples/synapses/STDP.py), for bench/suite.

usage: stdp_nest.py N_INPUT DURATION_S [threads]

N_INPUT Poisson trains at 15 Hz (a poisson_generator feeding parrot neurons, since NEST
connects devices only through static synapses) onto one iaf_cond_exp neuron written as
Song's: tau_m = C_m / g_L = 10 ms (g_L = 10 nS, C_m = 100 pF, so a dimensionless Brian2
conductance ge is g_ex / 10 nS), E_L -74 mV, E_ex 0 mV, V_th -54 mV, V_reset -60 mV,
tau_syn_ex 5 ms, no refractory period (t_ref 0), V(0) = 0 mV as in Brian2.

Plasticity: stdp_synapse with mu_plus = mu_minus = 0 (additive): potentiation
w += lambda * Wmax * K_plus, depression w -= alpha * lambda * Wmax * K_minus, where the traces
K jump by 1 and decay with tau_plus = tau_minus = 20 ms. Brian2's A_pre = dApre * K_plus with
dApre = 0.01 * gmax gives lambda = 0.01; dApost = -1.05 dApre gives alpha = 1.05; gmax = 0.01
becomes Wmax = 0.1 nS. Initial weights uniform in [0, Wmax]. Delay 0.1 ms (NEST's minimum).

Prints post_spikes, the fraction of weights near 0 and near Wmax, setup and run times.
"""
import sys
import time

import numpy as np

N = int(sys.argv[1])
dur = float(sys.argv[2])
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
import nest  # noqa: E402

nest.set_verbosity("M_ERROR")
t0 = time.time()
nest.ResetKernel()
nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": threads, "rng_seed": 1})
wmax = 0.1  # nS: gmax = 0.01 of g_L = 10 nS
post = nest.Create("iaf_cond_exp", 1, params=dict(
    C_m=100.0, g_L=10.0, E_L=-74.0, E_ex=0.0, V_th=-54.0, V_reset=-60.0, t_ref=0.0,
    tau_syn_ex=5.0, tau_minus=20.0, I_e=0.0, V_m=0.0))
source = nest.Create("poisson_generator", params={"rate": 15.0})
parrots = nest.Create("parrot_neuron", N)
nest.Connect(source, parrots, syn_spec={"delay": 0.1})
nest.Connect(parrots, post, "all_to_all", {
    "synapse_model": "stdp_synapse", "weight": nest.random.uniform(0.0, wmax), "delay": 0.1,
    "tau_plus": 20.0, "lambda": 0.01, "alpha": 1.05, "mu_plus": 0.0, "mu_minus": 0.0,
    "Wmax": wmax})
sr = nest.Create("spike_recorder")
nest.Connect(post, sr)
t1 = time.time()
nest.Simulate(dur * 1000.0)
t2 = time.time()
w = np.asarray(nest.GetConnections(parrots, post).get("weight")) / wmax
print(f"nest threads={threads} STDP inputs={N} post_spikes={sr.n_events} "
      f"frac_w>0.9={np.mean(w > 0.9):.3f} frac_w<0.1={np.mean(w < 0.1):.3f} "
      f"setup={t1 - t0:.3f}s run={t2 - t1:.3f}s")
