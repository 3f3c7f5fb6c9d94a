"""Convert NEST reference traces (tests/reference/nest_traces/<model>.npz, written by
neuron_traces_nest.py) into plain .npy files that compiler/tests/nest.rs can read without a
zip reader.

usage: python tests/nest/convert.py   (from the repository root; needs numpy only)

For each model it writes, next to this script:
  <model>_V_m.npy       float64 (n,)  NEST's V_m in mV; sample k (0-based) is the state at
                        t = (k + 1) * dt, as NEST's multimeter labels it (t = 0.1 ... 499.0 ms)
  <model>_spikes.npy    float64 (m,)  NEST's spike times in ms
  <model>_spikes_in.npy float64 (3, 2) the input spikes for the .snn spike source:
                        rows (time in s, source index); sources 0 and 1 are the excitatory
                        spikes (20 and 50 ms), source 2 the inhibitory one (60 ms)
  <model>.json          the model's parameters as NEST reports them at the end of the run,
                        and the protocol (documentation; the tests do not read it)

V_m is kept as float64: 4990 samples are 40 KB per model (about 0.4 MB for all ten), well
under the size budget, and float32 (about 4e-6 mV resolution near -70 mV) would not resolve
the 1e-6 mV tolerance of the exact-integration models.
"""
import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(HERE, "..", "reference", "nest_traces")
MODELS = ["iaf_psc_delta", "iaf_psc_exp", "iaf_psc_alpha", "iaf_cond_exp", "iaf_cond_alpha",
          "aeif_cond_exp", "aeif_cond_alpha", "izhikevich", "hh_psc_alpha", "gif_psc_exp"]


def main():
    for model in MODELS:
        d = np.load(os.path.join(SRC, f"{model}.npz"))
        protocol = json.loads(str(d["protocol"]))
        params = json.loads(str(d["params"]))
        dt = protocol["dt_ms"]
        t = np.asarray(d["t"], dtype=np.float64)
        v = np.asarray(d["V_m"], dtype=np.float64)
        # The multimeter samples every step, starting at t = dt: sample k is at (k + 1) dt.
        expected = dt * np.arange(1, len(t) + 1)
        if not np.allclose(t, expected, rtol=0, atol=1e-9):
            sys.exit(f"{model}: unexpected sample times")
        np.save(os.path.join(HERE, f"{model}_V_m.npy"), v)
        np.save(os.path.join(HERE, f"{model}_spikes.npy"),
                np.asarray(d["spikes"], dtype=np.float64))
        rows = [(s / 1000.0, i) for i, s in enumerate(protocol["exc_spikes_ms"])]
        rows += [(s / 1000.0, len(rows) + i) for i, s in enumerate(protocol["inh_spikes_ms"])]
        np.save(os.path.join(HERE, f"{model}_spikes_in.npy"), np.asarray(rows, dtype=np.float64))
        with open(os.path.join(HERE, f"{model}.json"), "w") as f:
            json.dump({"model": model, "protocol": protocol, "final_params": params}, f,
                      indent=1, sort_keys=True)
            f.write("\n")
        print(f"{model}: {len(v)} samples, {len(d['spikes'])} spikes")


if __name__ == "__main__":
    main()
