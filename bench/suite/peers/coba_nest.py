"""COBA benchmark (Brette et al. 2007, benchmark 1) in NEST, the network of examples/coba.snn
and shared/peers/coba_brian2.py, for bench/suite.

usage: coba_nest.py N DURATION_S [threads] [bernoulli|indegree]

iaf_cond_exp with g_L = 10 nS and C_m = tau_m * g_L = 200 pF, so that Brian2's conductances in
units of the leak conductance become nS by a factor 10: jumps 6 nS (excitatory) and 67 nS
(inhibitory; NEST takes inhibitory conductance weights as negative numbers). E_L = V_reset =
-60 mV, V_th -50 mV, E_ex 0 mV, E_in -80 mV, tau_syn 5/10 ms, t_ref 5 ms; delay 0.1 ms (one
step, NEST's minimum; Brian2 and snnc deliver in the same step). Initial state as the Brian2
script: v uniform in [V_reset, V_th], g_ex ~ N(4, 1.5) * 10/3 nS, g_in ~ N(20, 12) * 10/3 nS.
NEST integrates with an adaptive Runge-Kutta-Fehlberg method (GSL), Brian2 with forward Euler.
'indegree' wires 64 E and 16 I inputs per neuron (fixed in-degree) instead of Bernoulli pairs,
which NEST builds in O(synapses) rather than O(N^2): use it for large N.
"""
import sys
import time

N = int(sys.argv[1])
dur = float(sys.argv[2])
threads = int(sys.argv[3]) if len(sys.argv) > 3 else 1
rule = sys.argv[4] if len(sys.argv) > 4 else "bernoulli"
import nest  # noqa: E402  (after argument parsing: importing NEST prints a banner)

nest.set_verbosity("M_ERROR")
t0 = time.time()
nest.ResetKernel()
nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": threads, "rng_seed": 1})
params = dict(C_m=200.0, g_L=10.0, E_L=-60.0, V_th=-50.0, V_reset=-60.0, t_ref=5.0,
              E_ex=0.0, E_in=-80.0, tau_syn_ex=5.0, tau_syn_in=10.0, I_e=0.0)
P = nest.Create("iaf_cond_exp", N, params=params)
P.V_m = nest.random.uniform(-60.0, -50.0)
P.g_ex = nest.random.normal(4.0 * 10 / 3, 1.5 * 10 / 3)
P.g_in = nest.random.normal(20.0 * 10 / 3, 12.0 * 10 / 3)
Ne = int(0.8 * N)
p = 80.0 / N
if rule == "indegree":
    conn_e = {"rule": "fixed_indegree", "indegree": 64}
    conn_i = {"rule": "fixed_indegree", "indegree": 16}
else:
    conn_e = conn_i = {"rule": "pairwise_bernoulli", "p": p, "allow_autapses": True}
nest.Connect(P[:Ne], P, conn_e, {"weight": 6.0, "delay": 0.1})
nest.Connect(P[Ne:], P, conn_i, {"weight": -67.0, "delay": 0.1})
sr = nest.Create("spike_recorder")
nest.Connect(P, sr)
t1 = time.time()
nest.Simulate(dur * 1000.0)
t2 = time.time()
n = sr.n_events
print(f"nest threads={threads} rule={rule} COBA N={N} syn={nest.num_connections} spikes={n} "
      f"rate={n / N / dur:.2f}Hz setup={t1 - t0:.3f}s run={t2 - t1:.3f}s")
