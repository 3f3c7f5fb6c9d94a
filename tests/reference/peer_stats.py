"""Spike statistics for the peer-simulator reference networks (facts reproduction).

The networks are copied line for line from /work/shared/peers/{cuba_brian2,coba_brian2,cuba_nest,
brunel_nest,stdp_brian2}.py; the only changes are (a) the random seed is an argument (the peers
scripts hard-code seed(1) / rng_seed=1) and (b) the spikes / final weights are kept so that CV of
ISIs, the synchrony index and the weight histogram can be computed. With seed 1 the spike counts
must equal the ones the peers scripts print (checked in README.md).

usage (run with the peers venv, ~/snn-peers/venv/bin/python, from a scratch directory):
    peer_stats.py cuba_brian2  N DURATION_S SEED
    peer_stats.py coba_brian2  N DURATION_S SEED
    peer_stats.py cuba_nest    N DURATION_S SEED
    peer_stats.py brunel_nest  SCALE G ETA DURATION_S SEED
    peer_stats.py stdp_brian2  N_INPUT DURATION_S SEED
Prints one JSON object per run on a line starting with "RESULT ".

Statistics (the definitions of brunel_nest.py, applied to every network):
  mean_rate_hz = spikes / n_neurons / duration (all spikes, transient included)
  cv_isi       = mean over neurons of std(ISI)/mean(ISI) (numpy std, ddof=0), using only spikes after
                 100 ms, over the first 2000 neuron ids (ascending) that spike after 100 ms, counting
                 only neurons with more than 2 ISIs (>= 4 spikes after 100 ms)
  sync_chi     = sqrt( Var_t[pop(t)] / (N^2 * mean_i Var_t[n_i(t)]) ), with pop(t) the population
                 spike count and n_i(t) the spike count of neuron i, in 1 ms bins from 100 ms to the
                 end; the mean over i runs over the first 1000 neuron ids that spike at all. This is
                 Golomb's chi (population-averaged activity variance over mean single-neuron variance),
                 square-rooted: ~0 for asynchronous firing (~1/sqrt(N)), 1 for full synchrony.
"""
import sys, time, json, os
import numpy as np


def spike_stats(times_ms, senders, N, dur_s):
    times = np.asarray(times_ms, float); senders = np.asarray(senders)
    rate = len(times) / N / dur_s
    mask = times > 100.0
    cvs = []
    for s in np.unique(senders[mask])[:2000]:
        isi = np.diff(np.sort(times[mask][senders[mask] == s]))
        if len(isi) > 2: cvs.append(isi.std() / isi.mean())
    bins = np.arange(100.0, dur_s * 1000.0 + 1, 1.0)
    pop = np.histogram(times[mask], bins)[0].astype(float)
    sample = np.unique(senders)[:1000]
    single = np.array([np.histogram(times[senders == s], bins)[0] for s in sample], float)
    chi = np.sqrt(pop.var() / max(1e-12, N * N * single.var(axis=1).mean())) if len(sample) else float("nan")
    return dict(spikes=int(len(times)), mean_rate_hz=float(rate),
                cv_isi=float(np.mean(cvs)) if cvs else None, cv_isi_n_neurons=len(cvs),
                synchrony=float(chi))


def cuba_brian2(N, dur, sd):
    from brian2 import (set_device, device, seed, ms, mV, second, NeuronGroup, Synapses,
                        SpikeMonitor, run)
    d = f'/tmp/ref_brian_cuba_{N}'
    t0 = time.time()
    set_device('cpp_standalone', directory=d, build_on_run=False)
    seed(sd)
    taum = 20*ms; taue = 5*ms; taui = 10*ms
    Vt = -50*mV; Vr = -60*mV; El = -49*mV
    eqs = '''
    dv/dt  = (ge+gi-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : volt
    dgi/dt = -gi/taui : volt
    '''
    P = NeuronGroup(N, eqs, threshold='v>Vt', reset='v = Vr', refractory=5*ms, method='exact')
    P.v = 'Vr + rand() * (Vt - Vr)'
    P.ge = 0*mV; P.gi = 0*mV
    p = 80.0 / N
    we = (60*0.27/10)*mV; wi = (-20*4.5/10)*mV
    Ce = Synapses(P, P, on_pre='ge += we'); Ci = Synapses(P, P, on_pre='gi += wi')
    Ne = int(0.8 * N)
    Ce.connect(f'i<{Ne}', p=p); Ci.connect(f'i>={Ne}', p=p)
    M = SpikeMonitor(P)
    t1 = time.time()
    run(dur * second, report=None)
    device.build(directory=d, compile=True, run=True)
    t2 = time.time()
    r = spike_stats(np.asarray(M.t / ms), np.asarray(M.i), N, dur)
    r.update(n_synapses=int(len(Ce) + len(Ci)), sim_time_s=float(device._last_run_time),
             total_time_s=t2 - t0)
    return r


def coba_brian2(N, dur, sd):
    from brian2 import (set_device, device, seed, ms, mV, second, NeuronGroup, Synapses,
                        SpikeMonitor, run)
    d = f'/tmp/ref_brian_coba_{N}'
    t0 = time.time()
    set_device('cpp_standalone', directory=d, build_on_run=False)
    seed(sd)
    taum = 20*ms; taue = 5*ms; taui = 10*ms
    Vt = -50*mV; Vr = -60*mV; El = -60*mV; Ee = 0*mV; Ei = -80*mV
    eqs = '''
    dv/dt  = (ge*(Ee-v)+gi*(Ei-v)-(v-El))/taum : volt (unless refractory)
    dge/dt = -ge/taue : 1
    dgi/dt = -gi/taui : 1
    '''
    P = NeuronGroup(N, eqs, threshold='v>Vt', reset='v = Vr', refractory=5*ms, method='euler')
    P.v = 'Vr + rand() * (Vt - Vr)'
    P.ge = '(randn() * 1.5 + 4) * 10. / 3 * 0.1'
    P.gi = '(randn() * 12 + 20) * 10. / 3 * 0.1'
    p = 80.0 / N
    we = 6./10.; wi = 67./10.
    Ne = int(0.8 * N)
    Ce = Synapses(P, P, on_pre='ge += we'); Ci = Synapses(P, P, on_pre='gi += wi')
    Ce.connect(f'i<{Ne}', p=p); Ci.connect(f'i>={Ne}', p=p)
    M = SpikeMonitor(P)
    t1 = time.time()
    run(dur * second, report=None)
    device.build(directory=d, compile=True, run=True)
    t2 = time.time()
    r = spike_stats(np.asarray(M.t / ms), np.asarray(M.i), N, dur)
    r.update(n_synapses=int(len(Ce) + len(Ci)), sim_time_s=float(device._last_run_time),
             total_time_s=t2 - t0)
    return r


def cuba_nest(N, dur, sd):
    import nest
    nest.set_verbosity("M_ERROR")
    t0 = time.time()
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": 1, "rng_seed": sd})
    params = dict(C_m=20.0, tau_m=20.0, tau_syn_ex=5.0, tau_syn_in=10.0, t_ref=5.0,
                  E_L=-49.0, V_th=-50.0, V_reset=-60.0, I_e=0.0)
    P = nest.Create("iaf_psc_exp", N, params=params)
    P.V_m = nest.random.uniform(-60.0, -50.0)
    Ne = int(0.8 * N); p = 80.0 / N
    conn_e = conn_i = {"rule": "pairwise_bernoulli", "p": p, "allow_autapses": True}
    nest.Connect(P[:Ne], P, conn_e, {"weight": 1.62, "delay": 0.1})
    nest.Connect(P[Ne:], P, conn_i, {"weight": -9.0, "delay": 0.1})
    sr = nest.Create("spike_recorder"); nest.Connect(P, sr)
    t1 = time.time()
    nest.Simulate(dur * 1000.0)
    t2 = time.time()
    ev = sr.events
    r = spike_stats(ev["times"], ev["senders"], N, dur)
    r.update(n_synapses=int(nest.num_connections) - N, sim_time_s=t2 - t1, total_time_s=t2 - t0)
    return r


def brunel_nest(scale, g, eta, dur, sd):
    import nest
    nest.set_verbosity("M_ERROR")
    nest.ResetKernel()
    nest.SetKernelStatus({"resolution": 0.1, "local_num_threads": 1, "rng_seed": sd})
    NE, NI = int(10000 * scale), int(2500 * scale)
    CE, CI = 1000, 250
    tauMem, theta, J, delay = 20.0, 20.0, 0.1, 1.5
    nu_th = theta / (J * CE * tauMem); p_rate = 1000.0 * eta * nu_th * CE
    params = {"C_m": 1.0, "tau_m": tauMem, "t_ref": 2.0, "E_L": 0.0, "V_reset": 0.0, "V_m": 0.0, "V_th": theta}
    t0 = time.time()
    E = nest.Create("iaf_psc_delta", NE, params=params); I = nest.Create("iaf_psc_delta", NI, params=params)
    noise = nest.Create("poisson_generator", params={"rate": p_rate})
    sr = nest.Create("spike_recorder")
    nest.Connect(noise, E + I, syn_spec={"weight": J, "delay": delay})
    nest.Connect(E, E + I, {"rule": "fixed_indegree", "indegree": CE}, {"weight": J, "delay": delay})
    nest.Connect(I, E + I, {"rule": "fixed_indegree", "indegree": CI}, {"weight": -g * J, "delay": delay})
    nest.Connect(E + I, sr)
    t1 = time.time(); nest.Simulate(dur * 1000.0); t2 = time.time()
    ev = sr.events
    r = spike_stats(ev["times"], ev["senders"], NE + NI, dur)
    r.update(n_synapses=int((NE + NI) * (CE + CI)), p_rate_hz=p_rate,
             sim_time_s=t2 - t1, total_time_s=t2 - t0)
    return r


def stdp_brian2(N, dur, sd):
    from brian2 import (set_device, device, seed, ms, mV, Hz, second, NeuronGroup, Synapses,
                        PoissonGroup, SpikeMonitor, run, clip)
    d = f'/tmp/ref_brian_stdp_{N}'
    t0 = time.time()
    set_device('cpp_standalone', directory=d, build_on_run=False)
    seed(sd)
    taum = 10*ms; taupre = 20*ms; taupost = taupre; Ee = 0*mV; vt = -54*mV; vr = -60*mV; El = -74*mV; taue = 5*ms
    F = 15*Hz; gmax = .01; dApre = .01; dApost = -dApre * taupre / taupost * 1.05
    dApost *= gmax; dApre *= gmax
    eqs_neurons = '''
    dv/dt = (ge * (Ee-v) + El - v) / taum : volt
    dge/dt = -ge / taue : 1
    '''
    poisson_input = PoissonGroup(N, rates=F)
    neurons = NeuronGroup(1, eqs_neurons, threshold='v>vt', reset='v = vr', method='euler')
    S = Synapses(poisson_input, neurons,
                 '''w : 1
                    dApre/dt = -Apre / taupre : 1 (event-driven)
                    dApost/dt = -Apost / taupost : 1 (event-driven)''',
                 on_pre='''ge += w
                        Apre += dApre
                        w = clip(w + Apost, 0, gmax)''',
                 on_post='''Apost += dApost
                         w = clip(w + Apre, 0, gmax)''')
    S.connect(); S.w = 'rand() * gmax'
    M = SpikeMonitor(neurons)
    Min = SpikeMonitor(poisson_input)  # extra monitor (does not consume random numbers)
    t1 = time.time()
    run(dur * second, report=None)
    device.build(directory=d, compile=True, run=True)
    t2 = time.time()
    w = np.asarray(S.w) / gmax
    post_t = np.asarray(M.t / second)
    hist = np.histogram(w, bins=20, range=(0.0, 1.0))[0]
    last10 = np.sum(post_t >= dur - 10.0) / 10.0 if dur >= 10 else None
    return dict(n_neurons=1, n_inputs=N, spikes=int(M.num_spikes), mean_rate_hz=M.num_spikes / dur,
                post_rate_last_10s_hz=last10, input_spikes=int(Min.num_spikes),
                input_rate_hz=Min.num_spikes / N / dur,
                frac_w_below_0p1_gmax=float(np.mean(w < 0.1)), frac_w_above_0p9_gmax=float(np.mean(w > 0.9)),
                mean_w_over_gmax=float(w.mean()), sd_w_over_gmax=float(w.std()),
                w_hist_20bins_0_to_gmax=[int(x) for x in hist],
                sim_time_s=float(device._last_run_time), total_time_s=t2 - t0)


if __name__ == "__main__":
    kind = sys.argv[1]; a = sys.argv[2:]
    if kind == "cuba_brian2": r = cuba_brian2(int(a[0]), float(a[1]), int(a[2])); n = int(a[0]); dur = float(a[1])
    elif kind == "coba_brian2": r = coba_brian2(int(a[0]), float(a[1]), int(a[2])); n = int(a[0]); dur = float(a[1])
    elif kind == "cuba_nest": r = cuba_nest(int(a[0]), float(a[1]), int(a[2])); n = int(a[0]); dur = float(a[1])
    elif kind == "brunel_nest":
        r = brunel_nest(float(a[0]), float(a[1]), float(a[2]), float(a[3]), int(a[4]))
        n = int(10000 * float(a[0])) + int(2500 * float(a[0])); dur = float(a[3])
    elif kind == "stdp_brian2": r = stdp_brian2(int(a[0]), float(a[1]), int(a[2])); n = 1; dur = float(a[1])
    else: raise SystemExit(__doc__)
    out = dict(kind=kind, args=a, seed=int(a[-1]), n_neurons=n, duration_s=dur)
    out.update(r)
    print("RESULT " + json.dumps(out))
