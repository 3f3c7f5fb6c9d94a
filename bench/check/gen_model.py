#!/usr/bin/env python3
"""Generates a realistic .snn model of about 2,000 lines for the `snnc check` benchmark.

Standard library only. The model has many neuron models (params, states, lets, ODEs, spike
conditions, resets with `if`, refractory periods, integration methods), synapse models
(static, trace-based plasticity with `pre`/`post`/`shared` variables, `on pre`/`on post`),
and one network with many populations, projections with every connectivity rule, inputs and
records. It checks with zero diagnostics.

    python3 gen_model.py [--lines N] [OUT]     (OUT defaults to stdout)
"""

import argparse
import sys

METHODS = ["euler", "rk4", "exp_euler"]


def neuron(k):
    method = METHODS[k % len(METHODS)]
    return f"""/// Generated neuron model {k}: adaptive leaky integrate-and-fire with conductances.
neuron Gen{k} {{
    param C_m: pF = {200 + k} pF
    param g_L: nS = {10 + k % 7} nS
    param E_L: mV = -{65 + k % 5} mV
    param V_th: mV = -50 mV
    param V_reset: mV = -{60 + k % 3} mV
    param E_ex: mV = 0 mV
    param E_in: mV = -80 mV
    param tau_ex: ms = {2 + k % 4} ms
    param tau_in: ms = {6 + k % 5} ms
    param tau_w: ms = {100 + 3 * k} ms
    param a: nS = {k % 4} nS
    param b: pA = {20 + k} pA
    param I_e: pA = 0 pA
    param t_ref: ms = 2 ms

    state V_m: mV = E_L
    state w: pA = 0 pA
    state g_ex: nS = 0 nS
    state g_in: nS = 0 nS

    let I_syn = g_ex * (V_m - E_ex) + g_in * (V_m - E_in)
    let I_leak = g_L * (V_m - E_L)

    dV_m/dt = (-I_leak - I_syn - w + I_e) / C_m  unless refractory
    dw/dt = (a * (V_m - E_L) - w) / tau_w
    dg_ex/dt = -g_ex / tau_ex
    dg_in/dt = -g_in / tau_in
    method = {method}

    spike when V_m >= V_th and w < 1000 pA
    reset {{
        V_m = V_reset
        if w > 500 pA {{ w += b / 2 }} else {{ w += b }}
    }}
    refractory t_ref
}}
"""


def synapse(k):
    if k % 2 == 0:
        return f"""/// Generated static synapse {k}.
synapse Syn{k} {{
    param w: [g] = 0
    target g
    on pre {{ g += w }}
}}
"""
    return f"""/// Generated trace-based plastic synapse {k}.
synapse Syn{k} {{
    state w: [g] = 0
    shared param w_max: [g]
    shared param dA_pre: [g]
    shared param dA_post: [g]
    shared param tau_pre: ms = {15 + k % 10} ms
    shared param tau_post: ms = {20 + k % 10} ms
    pre state A_pre: [g] = 0
    post state A_post: [g] = 0
    dA_pre/dt = -A_pre / tau_pre
    dA_post/dt = -A_post / tau_post
    target g
    on pre {{
        g += w
        A_pre += dA_pre
        w = clip(w + A_post, 0, w_max)
    }}
    on post {{
        A_post += dA_post
        w = clip(w + A_pre, 0, w_max)
    }}
}}
"""


RULES = [
    "connect bernoulli(p = 0.05)",
    "connect fixed_indegree(k = 20)",
    "connect fixed_outdegree(k = 10, multapses = false)",
    "connect fixed_total(n = 500)",
    "connect all_to_all(autapses = false)",
    "connect where abs(i - j) < 5",
]


def projection(k, src, dst, syn):
    sign = "-" if k % 4 == 3 else ""
    target = "g_in" if sign else "g_ex"
    rule = RULES[k % len(RULES)]
    if syn % 2 == 0:
        inits = f"w = {sign}0.{1 + k % 9} nS, target = {target}"
    else:
        inits = (f"w = {sign}0.{1 + k % 9} nS, w_max = {sign}2 nS, "
                 f"dA_pre = {sign}0.01 nS, dA_post = {sign}0.0105 nS, target = {target}")
    delay = f" delay {1 + k % 3} ms" if k % 2 else ""
    return f"    P{src} -> P{dst} : Syn{syn} {{ {inits} }} {rule}{delay}\n"


def generate(lines):
    # Proportions measured on the output: a neuron is 36 lines, a synapse 14 or 22, a
    # population 1, a projection 1.
    n_neurons = max(1, lines * 60 // 100 // 37)
    n_synapses = max(2, lines * 15 // 100 // 19)
    n_pops = max(2, lines * 5 // 100)
    n_projs = max(1, lines - n_neurons * 37 - n_synapses * 19 - n_pops - 3 * n_pops // 4 - 20)
    out = ["/// A generated model for the `snnc check` benchmark (bench/check/gen_model.py).\n\n"]
    for k in range(n_neurons):
        out.append(neuron(k))
        out.append("\n")
    for k in range(n_synapses):
        out.append(synapse(k))
        out.append("\n")
    out.append("network Generated {\n    dt = 0.1 ms\n    seed = 7\n\n")
    for p in range(n_pops):
        model = p % n_neurons
        out.append(f"    P{p} = Gen{model}[{100 + 10 * p}] {{ V_m = uniform(-70 mV, -55 mV), "
                   f"I_e = {p % 5} pA + i * 0.01 pA }}\n")
    out.append("\n")
    for k in range(n_projs):
        src = (k * 7) % n_pops
        dst = (k * 13 + 1) % n_pops
        out.append(projection(k, src, dst, k % n_synapses))
    out.append("\n")
    for p in range(0, n_pops, 4):
        out.append(f"    input P{p}.I_e = {10 + p % 20} pA * pulse(100 ms, 200 ms)\n")
    for p in range(n_pops // 2):
        out.append(f"    record spikes of P{p}\n")
    for p in range(0, n_pops, 4):
        out.append(f"    record V_m, w of P{p}[0..5] every 1 ms\n")
    out.append("    run 1 s\n}\n")
    return "".join(out)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2000, help="approximate line count")
    parser.add_argument("out", nargs="?", help="output file (default: stdout)")
    args = parser.parse_args()
    text = generate(args.lines)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
