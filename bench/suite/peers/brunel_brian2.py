"""Brunel (2000) model A in Brian2, the network of examples/brunel.snn and
shared/peers/brunel_nest.py (NEST's brunel_delta_nest.py), for bench/suite.

usage: brunel_brian2.py SCALE G ETA DURATION_S TARGET(cpp_standalone|cython) [threads]

SCALE multiplies NE = 10000, NI = 2500; the in-degrees stay CE = 1000, CI = 250 (fixed
in-degree with autapses and multapses, as NEST's defaults). Delta-current LIF (NEST
iaf_psc_delta): tau_m 20 ms, t_ref 2 ms, E_L = V_reset = V(0) = 0, V_th 20 mV; J = 0.1 mV,
inhibitory -g J. Input arriving during the refractory period is discarded, as in NEST
(refractory_input = False). The external drive is CE Poisson inputs of rate
eta * V_th / (J CE tau_m) per neuron (PoissonInput: a binomial count per step).

Delay: Brian2, like snnc, tests thresholds before delivering the spikes of a step, NEST after;
NEST's 1.5 ms is therefore written 1.5 ms - dt = 1.4 ms (see examples/brunel.snn).

Prints one line: `brian2 brunel ... syn=S spikes=K ...` and the profiled code time.
"""
import sys
import time

import numpy as np
from brian2 import (NeuronGroup, PoissonInput, Synapses, SpikeMonitor, device, ms, mV,
                    prefs, run, second, seed, set_device)

scale, g, eta, dur = (float(a) for a in sys.argv[1:5])
target = sys.argv[5]
threads = int(sys.argv[6]) if len(sys.argv) > 6 else 0
directory = f"/tmp/brian_brunel_{scale:g}"
t0 = time.time()
if target == "cpp_standalone":
    set_device("cpp_standalone", directory=directory, build_on_run=False)
    if threads:
        prefs.devices.cpp_standalone.openmp_threads = threads
else:
    prefs.codegen.target = target
seed(1)
rng = np.random.default_rng(1)
NE, NI = int(10000 * scale), int(2500 * scale)
N = NE + NI
CE, CI = 1000, 250
tau_m, theta, J, t_ref = 20 * ms, 20 * mV, 0.1 * mV, 2 * ms
nu_ext = eta * theta / (J * CE * tau_m)
P = NeuronGroup(N, "dv/dt = -v / tau_m : volt (unless refractory)", threshold="v > theta",
                reset="v = 0*mV", refractory=t_ref, method="exact")
P.v = 0 * mV
drive = PoissonInput(P, "v", CE, nu_ext, weight="J * int(not_refractory)")
# Fixed in-degree: every neuron draws CE excitatory and CI inhibitory sources, with repeats.
pre_e = rng.integers(0, NE, size=N * CE)
post_e = np.repeat(np.arange(N), CE)
pre_i = rng.integers(0, NI, size=N * CI)
post_i = np.repeat(np.arange(N), CI)
Ce = Synapses(P, P, on_pre="v_post += J * int(not_refractory_post)", delay=1.4 * ms)
Ci = Synapses(P, P, on_pre="v_post += -g * J * int(not_refractory_post)", delay=1.4 * ms)
Ce.connect(i=pre_e, j=post_e)
Ci.connect(i=pre_i + NE, j=post_i)
M = SpikeMonitor(P)
t1 = time.time()
run(dur * second, report=None)
if target == "cpp_standalone":
    device.build(directory=directory, compile=True, run=True)
t2 = time.time()
print(f"brian2 {target} brunel NE={NE} NI={NI} g={g} eta={eta} syn={N * (CE + CI)} "
      f"spikes={M.num_spikes} rate={M.num_spikes / N / dur:.2f}Hz setup={t1 - t0:.2f}s "
      f"run+build={t2 - t1:.2f}s")
try:
    print("brian2 profiled code time:", device._last_run_time)
except Exception:
    pass
