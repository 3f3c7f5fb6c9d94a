#!/usr/bin/env python3
"""The benchmark suite: snnc against Brian2 (C++ standalone) and NEST, measured in one run.

usage: bench/suite/suite.py [--quick] [--sizes small|large|all] [--threads LIST] [--reps N]
                            [--reps-large N] [--snnc PATH] [--benchmarks LIST] [--peers LIST]
                            [--out FILE] [--samples FILE] [--from-samples FILE] [--timeout S]
                            [--note TEXT]

Runs CUBA, COBA, Brunel (model A) and the Song STDP network (docs: bench/README.md), each at a
small and a large size (shared/design/benchmarks.md), in snnc and in each peer, interleaving
the repetitions (snnc at every thread count, then Brian2, then NEST, R times), and writes a
markdown table (bench/suite/results.md) plus the raw samples as JSON next to it, so that the
table can be rebuilt without running anything (`--from-samples`, what the unit test does).

What is measured, per simulator:
- snnc: its own summary of `snnc run` (compile = front end + JIT; build = instantiating the
  network; simulation = the step loop plus writing the outputs), spike and synaptic-event
  counts; the process under /usr/bin/time -v for peak RSS and wall time.
- Brian2 cpp_standalone: the peer script generates and compiles the C++ project once (its
  build directory removed first, so that the C++ build is cold); "compile" is the script's
  wall time less one run of the compiled binary. Each repetition reruns the binary:
  simulation = Brian2's profiled code time (results/last_run_info.txt); build = the
  binary's wall time less that (loading arrays, creating synapses, writing results).
- NEST: each repetition runs the whole script; build = its set-up (kernel reset, Create,
  Connect), simulation = nest.Simulate; no compile step (models are precompiled).
Peak RSS is the process's maximum resident set (so it includes Python for NEST).

Standard library only (Python 3.8+); the peers run in their own venv (PEERS_DIR, default
~/snn-peers; shared/peers/setup.sh installs it) and are reported "not installed" without it.
"""
import argparse
import datetime
import json
import os
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

SUITE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(SUITE))
PEERS_DIR = os.environ.get("PEERS_DIR", os.path.expanduser("~/snn-peers"))
PEER_SCRIPTS = os.environ.get("PEER_SCRIPTS", os.path.join(os.path.dirname(ROOT), "shared", "peers"))
if not os.path.isdir(PEER_SCRIPTS):
    PEER_SCRIPTS = "/work/shared/peers"
OWN_PEERS = os.path.join(SUITE, "peers")
DT = 1e-4  # seconds; every benchmark runs at dt = 0.1 ms

# --------------------------------------------------------------------------------------------
# The benchmarks. Each has a small and a large size; `quick` shortens the simulated time.
# --------------------------------------------------------------------------------------------


class Bench:
    """One network at one size: how to make the snnc model and how to call each peer."""

    def __init__(self, name, size, label, neurons, duration, example, substitutions,
                 brian2=None, nest=None):
        self.name = name            # "CUBA"
        self.size = size            # "small" | "large"
        self.label = label          # "4,000 neurons"
        self.neurons = neurons      # neurons updated per step (for updates/s)
        self.duration = duration    # simulated seconds
        self.example = example      # examples/<file>
        self.substitutions = substitutions  # [(old, new)] applied to the example's text
        self.brian2 = brian2        # (script path, args, build directory) or None
        self.nest = nest            # (script path, args) or None

    @property
    def key(self):
        return f"{self.name} {self.size}"


def cuba_like(name, example, size, n, duration, brian2_script, nest_script):
    ne, ni = int(0.8 * n), n - int(0.8 * n)
    subs = [("[3200]", f"[{ne}]"), ("[800]", f"[{ni}]"), ("p = 0.02", f"p = {80.0 / n:g}")]
    # NEST builds Bernoulli wiring in O(N^2): the large size uses fixed in-degree (64 E + 16 I,
    # the same mean in-degree), as shared/peers/cuba_nest.py allows.
    rule = "bernoulli" if n <= 10000 else "indegree"
    tag = name.lower()
    return Bench(name, size, f"{n:,} neurons", n, duration, example, subs,
                 brian2=(brian2_script, [str(n), f"{duration:g}", "cpp_standalone"],
                         f"/tmp/brian_{tag}_{n}"),
                 nest=(nest_script, [str(n), f"{duration:g}", "1", rule]))


def brunel(size, scale, duration):
    ne, ni = int(10000 * scale), int(2500 * scale)
    subs = [("[2000]", f"[{ne}]"), ("[500]", f"[{ni}]")]
    args = [f"{scale:g}", "5", "2", f"{duration:g}"]
    return Bench("Brunel A", size, f"{ne + ni:,} neurons (scale {scale:g})", ne + ni, duration,
                 "brunel.snn", subs,
                 brian2=(os.path.join(OWN_PEERS, "brunel_brian2.py"), args + ["cpp_standalone"],
                         f"/tmp/brian_brunel_{scale:g}"),
                 nest=(os.path.join(PEER_SCRIPTS, "brunel_nest.py"), args + ["1"]))


def stdp(size, inputs, duration):
    subs = [("[1000]", f"[{inputs}]")]
    return Bench("STDP Song", size, f"{inputs:,} inputs, {duration:g} s", inputs + 1, duration,
                 "stdp_song.snn", subs,
                 brian2=(os.path.join(PEER_SCRIPTS, "stdp_brian2.py"),
                         [str(inputs), f"{duration:g}", "cpp_standalone"],
                         f"/tmp/brian_stdp_{inputs}"),
                 nest=(os.path.join(OWN_PEERS, "stdp_nest.py"), [str(inputs), f"{duration:g}", "1"]))


def benchmarks(quick):
    """Sizes from shared/design/benchmarks.md; --quick simulates a tenth of the time."""
    f = 0.1 if quick else 1.0
    cuba_b, cuba_n = os.path.join(PEER_SCRIPTS, "cuba_brian2.py"), os.path.join(PEER_SCRIPTS, "cuba_nest.py")
    coba_b, coba_n = os.path.join(PEER_SCRIPTS, "coba_brian2.py"), os.path.join(OWN_PEERS, "coba_nest.py")
    return [
        cuba_like("CUBA", "cuba.snn", "small", 4000, 1.0 * f, cuba_b, cuba_n),
        cuba_like("CUBA", "cuba.snn", "large", 100000, 1.0 * f, cuba_b, cuba_n),
        cuba_like("COBA", "coba.snn", "small", 4000, 1.0 * f, coba_b, coba_n),
        cuba_like("COBA", "coba.snn", "large", 100000, 1.0 * f, coba_b, coba_n),
        brunel("small", 0.2, 1.0 * f),
        brunel("large", 1.0, 1.0 * f),
        stdp("small", 1000, 10.0 * f),
        stdp("large", 1000, 100.0 * f),
    ]


def model_text(text, bench):
    """The example with the bench's sizes, recording spikes only (as the peers do)."""
    for old, new in bench.substitutions:
        if old not in text:
            raise ValueError(f"examples/{bench.example} no longer contains `{old}`; "
                             "update the substitutions in bench/suite/suite.py")
        text = text.replace(old, new)
    # Trace recording is not part of the benchmark: the peer scripts monitor spikes only.
    kept = [line for line in text.splitlines()
            if not (line.strip().startswith("record ") and "spikes" not in line)]
    return "\n".join(kept) + "\n"


# --------------------------------------------------------------------------------------------
# Running processes and parsing what they print.
# --------------------------------------------------------------------------------------------


class Failed(Exception):
    pass


def timed(cmd, cwd=None, timeout=None):
    """Runs cmd under /usr/bin/time -v: (returncode, stdout, stderr, wall s, peak RSS bytes)."""
    # Wall time from the clock here (time -v prints centiseconds); RSS from time -v.
    started = time.perf_counter()
    try:
        r = subprocess.run(["/usr/bin/time", "-v"] + cmd, cwd=cwd, capture_output=True,
                           text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise Failed(f"timed out after {timeout:g} s")
    seconds = time.perf_counter() - started
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr)
    return (r.returncode, r.stdout, r.stderr, seconds,
            int(rss.group(1)) * 1024 if rss else None)


UNSUPPORTED = ("which the simulator does not run yet", "is not simulated yet",
               "not simulated yet", "not supported")


def parse_snnc(stdout):
    """Numbers from the summary of `snnc run` (compiler/src/bin/snnc.rs)."""
    head = re.search(r"(\d+) neurons, (\d+) synapses, .* in (\d+) steps", stdout)
    times = re.search(r"front end ([\d.]+) ms, JIT ([\d.]+) ms\), build ([\d.]+) ms, run ([\d.]+) s",
                      stdout)
    events = re.search(r"(\d+) synaptic events", stdout)
    if not (head and times and events):
        raise Failed("could not read the summary of `snnc run`: " + stdout[-300:])
    spikes = sum(int(x) for x in re.findall(r"^\s+\S+\s+\d+\s+(\d+)\s+[\d.]+ Hz", stdout, re.M))
    return {
        "neurons": int(head.group(1)),
        "synapses": int(head.group(2)),
        "steps": int(head.group(3)),
        "compile_s": (float(times.group(1)) + float(times.group(2))) / 1e3,
        "build_s": float(times.group(3)) / 1e3,
        "sim_s": float(times.group(4)),
        "spikes": spikes,
        "events": int(events.group(1)),
    }


def snnc_failure(stderr):
    """'unsupported' when snnc rejects the model as beyond this build, else the first error."""
    if any(marker in stderr for marker in UNSUPPORTED):
        return "unsupported", "not supported by this snnc build"
    first = next((line for line in stderr.splitlines() if line.startswith("error")), stderr[:200])
    return "error", first.strip()


def parse_brian2_build(stdout):
    """The peer script's line: synapses (when printed) and spikes of the run it did itself."""
    spikes = re.search(r"(?:post_)?spikes=(\d+)", stdout)
    syn = re.search(r"syn=(\d+)", stdout)
    if not spikes:
        raise Failed("could not read the Brian2 script's output: " + stdout[-300:])
    return {"spikes": int(spikes.group(1)), "synapses": int(syn.group(1)) if syn else None}


def parse_nest(stdout, neurons, duration):
    """The NEST script's line. brunel_nest.py prints a rate, not a count: spikes are then
    rate x N x T, good to +-0.005 Hz x N x T, and marked approximate."""
    setup = re.search(r"setup=([\d.]+)s", stdout)
    sim = re.search(r"(?:run|sim)=([\d.]+)s", stdout)
    spikes = re.search(r"(?:post_)?spikes=(\d+)", stdout)
    syn = re.search(r"syn=(\d+)", stdout)
    if not (setup and sim):
        raise Failed("could not read the NEST script's output: " + stdout[-300:])
    sample = {"build_s": float(setup.group(1)), "sim_s": float(sim.group(1)),
              "synapses": int(syn.group(1)) if syn else None, "spikes_approx": False}
    if spikes:
        sample["spikes"] = int(spikes.group(1))
    else:
        rate = re.search(r"rate=([\d.]+)Hz", stdout)
        if not rate:
            raise Failed("no spike count or rate in the NEST script's output")
        sample["spikes"] = int(round(float(rate.group(1)) * neurons * duration))
        sample["spikes_approx"] = True
    return sample


def snnc_supports_threads(snnc):
    r = subprocess.run([snnc, "run", "--help"], capture_output=True, text=True)
    return "--threads" in r.stdout


# --------------------------------------------------------------------------------------------
# The simulators.
# --------------------------------------------------------------------------------------------


class Snnc:
    name = "snnc"

    def __init__(self, path, work, threads_flag, timeout):
        self.path, self.work, self.threads_flag, self.timeout = path, work, threads_flag, timeout

    def prepare(self, bench):
        with open(os.path.join(ROOT, "examples", bench.example)) as f:
            text = model_text(f.read(), bench)
        model = os.path.join(self.work, f"{bench.name.split()[0].lower()}_{bench.size}.snn")
        with open(model, "w") as f:
            f.write(text)
        return model

    def run(self, bench, model, threads):
        cmd = [self.path, "run", model, "--duration", f"{bench.duration:g}s",
               "--out", os.path.join(self.work, "out")]
        if self.threads_flag:
            cmd += ["--threads", str(threads)]
        rc, out, err, wall, rss = timed(cmd, timeout=self.timeout)
        if rc != 0:
            status, message = snnc_failure(err)
            return {"status": status, "message": message}
        sample = parse_snnc(out)
        sample.update(status="ok", wall_s=wall, rss=rss)
        return sample


class Brian2:
    name = "Brian2"

    def __init__(self, python, timeout):
        self.python, self.timeout = python, timeout

    def prepare(self, bench):
        script, args, directory = bench.brian2
        shutil.rmtree(directory, ignore_errors=True)  # a cold C++ build every time
        rc, out, err, wall, _ = timed([self.python, script] + args, cwd=tempfile.gettempdir(),
                                      timeout=self.timeout)
        if rc != 0:
            raise Failed("Brian2 script failed: " + (err.strip().splitlines() or ["?"])[-1])
        info = parse_brian2_build(out)
        info.update(script_wall_s=wall, dir=directory)
        return info

    def run(self, bench, info, threads):
        rc, _, err, wall, rss = timed(["./main"], cwd=info["dir"], timeout=self.timeout)
        if rc != 0:
            return {"status": "error", "message": err.strip()[-200:]}
        with open(os.path.join(info["dir"], "results", "last_run_info.txt")) as f:
            sim = float(f.read().split()[0])
        return {"status": "ok", "sim_s": sim, "build_s": max(0.0, wall - sim), "wall_s": wall,
                "rss": rss, "spikes": info["spikes"], "synapses": info["synapses"],
                # The script ran the binary once too: compile is its wall time less one run.
                "compile_s": max(0.0, info["script_wall_s"] - wall)}


class Nest:
    name = "NEST"

    def __init__(self, python, timeout):
        self.python, self.timeout = python, timeout

    def prepare(self, bench):
        return None

    def run(self, bench, info, threads):
        script, args = bench.nest
        rc, out, err, wall, rss = timed([self.python, script] + args, cwd=tempfile.gettempdir(),
                                        timeout=self.timeout)
        if rc != 0:
            return {"status": "error", "message": (err.strip().splitlines() or ["?"])[-1]}
        sample = parse_nest(out, bench.neurons, bench.duration)
        sample.update(status="ok", wall_s=wall, rss=rss, compile_s=None)
        return sample


# --------------------------------------------------------------------------------------------
# The table.
# --------------------------------------------------------------------------------------------


def median_min(values):
    values = [v for v in values if v is not None]
    if not values:
        return None
    return statistics.median(values), min(values)


def fmt_t(pair):
    if pair is None:
        return "–"
    m, lo = pair
    if m < 1:
        return f"{m * 1e3:.1f} ms [{lo * 1e3:.1f}]"
    return f"{m:.3f} s [{lo:.3f}]"


def fmt_count(n, approx=False):
    if n is None:
        return "–"
    return ("≈" if approx else "") + f"{n:,}"


def fmt_rate(x):
    return "–" if x is None else f"{x:.3g}"


def summarize(samples):
    """Median/min of every timed quantity over the repetitions that succeeded."""
    ok = [s for s in samples if s.get("status") == "ok"]
    if not ok:
        failed = samples[0] if samples else {"status": "missing", "message": "not run"}
        return {"status": failed["status"], "message": failed.get("message", "")}
    out = {"status": "ok", "reps": len(ok)}
    for key in ("compile_s", "build_s", "sim_s", "wall_s"):
        out[key] = median_min([s.get(key) for s in ok])
    rss = [s["rss"] for s in ok if s.get("rss")]
    out["rss"] = statistics.median(rss) if rss else None
    for key in ("spikes", "synapses", "events", "neurons", "steps", "spikes_approx"):
        out[key] = ok[0].get(key)
    return out


def render(data):
    """The markdown of results.md from the recorded data (no measurement happens here)."""
    meta = data["meta"]
    lines = [
        "# Benchmark suite: snnc vs Brian2 cpp_standalone and NEST",
        "",
        f"- date: {meta['date']}; snnc {meta['snnc_commit']}; peers: {meta['peers']}",
        f"- machine: {meta['cpu_count']} CPUs, {meta['cpu_model']}; load average (1/5/15 min)"
        f" before {meta['load_before']}, after {meta['load_after']}",
        f"- command: `{meta['command']}`; repetitions {meta['reps']} (large sizes:"
        f" {meta.get('reps_large', meta['reps'])}; interleaved: snnc, Brian2, NEST, then again);"
        " times are the median [minimum].",
        f"- snnc threads: {meta['threads_note']}; Brian2 and NEST run single-threaded.",
    ]
    if meta.get("note"):
        lines.append(f"- note: {meta['note']}")
    lines += [
        "- compile: snnc front end + JIT; Brian2 code generation + cold C++ build; NEST none.",
        "  build: constructing the network (snnc instantiation; Brian2 binary wall less its",
        "  run; NEST Create + Connect). simulation: the step loop (snnc's includes writing the",
        "  spikes; Brian2's profiled code time; nest.Simulate). RSS: peak of the process.",
        "- snnc/peer: snnc's simulation time over the peer's, measured in this run (targets:",
        "  <= 0.5 against Brian2, <= 0.1 against NEST). events/s and updates/s: snnc's synaptic",
        "  events and neuron updates (neurons x steps) per second of simulation.",
        "- spikes differ between simulators (different random draws; NEST's large CUBA/COBA",
        "  use fixed in-degree 64+16 instead of Bernoulli p = 80/N): they show that the same",
        "  network ran at the same rate, not identical trajectories.",
        "",
        "| benchmark | size | simulator | threads | compile | build | simulation | peak RSS"
        " | spikes | snnc/peer (sim) | events/s | updates/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    targets = []
    scaling = []
    for bench in data["benchmarks"]:
        runs = bench["runs"]  # {"snnc@1": [...], "Brian2": [...], "NEST": [...]}
        snnc_keys = sorted((k for k in runs if k.startswith("snnc@")),
                           key=lambda k: int(k.split("@")[1]))
        summaries = {k: summarize(v) for k, v in runs.items()}
        base = summaries.get(snnc_keys[0]) if snnc_keys else None
        base_sim = base["sim_s"][0] if base and base["status"] == "ok" else None
        ratios = {}
        for key in snnc_keys + [k for k in ("Brian2", "NEST") if k in runs]:
            s = summaries[key]
            simulator, threads = (key.split("@") + [1])[:2] if key.startswith("snnc") else (key, 1)
            cells = [bench["name"], bench["label"], simulator, str(threads)]
            if s["status"] != "ok":
                text = {"unsupported": "not supported by this snnc build",
                        "missing": "not run"}.get(s["status"], f"{s['status']}: {s['message']}")
                lines.append("| " + " | ".join(cells + [text] + [""] * 7) + " |")
                continue
            ratio = "–"
            if not key.startswith("snnc") and base_sim is not None:
                ratios[key] = base_sim / s["sim_s"][0]
                ratio = f"**{ratios[key]:.3f}**"
            events = updates = None
            if key.startswith("snnc") and s["sim_s"][0] > 0:
                events = s["events"] / s["sim_s"][0]
                updates = s["neurons"] * s["steps"] / s["sim_s"][0]
            rss = "–" if not s["rss"] else f"{s['rss'] / 2**20:.0f} MiB"
            if s["rss"] and s.get("synapses"):
                rss += f" ({s['rss'] / s['synapses']:.1f} B/syn)"
            cells += [fmt_t(s["compile_s"]), fmt_t(s["build_s"]), fmt_t(s["sim_s"]), rss,
                      fmt_count(s["spikes"], s.get("spikes_approx")), ratio, fmt_rate(events),
                      fmt_rate(updates)]
            lines.append("| " + " | ".join(cells) + " |")
        if base_sim is not None:
            verdicts = []
            for peer, limit in (("Brian2", 0.5), ("NEST", 0.1)):
                if peer in ratios:
                    ok = "met" if ratios[peer] <= limit else "missed"
                    verdicts.append(f"{ratios[peer]:.3f} ({ok})")
                else:
                    verdicts.append("–")
            targets.append(f"| {bench['name']} | {bench['label']} | " + " | ".join(verdicts) + " |")
        elif snnc_keys:
            targets.append(f"| {bench['name']} | {bench['label']} | "
                           f"{summaries[snnc_keys[0]]['status']} | |")
        if len(snnc_keys) > 1 and base_sim is not None:
            t1_threads = int(snnc_keys[0].split("@")[1])
            for key in snnc_keys:
                s = summaries[key]
                if s["status"] != "ok":
                    continue
                n = int(key.split("@")[1])
                speedup = base_sim / s["sim_s"][0]
                efficiency = speedup * t1_threads / n
                same = "yes" if s["spikes"] == base["spikes"] else f"no ({s['spikes']:,})"
                scaling.append(f"| {bench['name']} | {bench['label']} | {n} | {fmt_t(s['sim_s'])}"
                               f" | {speedup:.2f} | {efficiency:.0%} | {same} |")
    if not any(k in b["runs"] for b in data["benchmarks"] for k in ("Brian2", "NEST")):
        targets = []  # snnc alone (e.g. bench/suite/remote.py): no ratios to judge
    if targets:
        lines += ["", "## Targets (simulation time, snnc/peer, single-threaded)", "",
                  "| benchmark | size | snnc/Brian2 (target <= 0.5) | snnc/NEST (target <= 0.1) |",
                  "|---|---|---|---|"] + targets
    if scaling:
        lines += ["", "## Scaling of snnc (speed-up and parallel efficiency against the lowest"
                  " thread count)", "",
                  "| benchmark | size | threads | simulation | speed-up | efficiency"
                  " | same spike count as the first |",
                  "|---|---|---|---|---|---|---|"] + scaling
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------
# The measurement.
# --------------------------------------------------------------------------------------------


def sh(cmd, cwd=None):
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True).stdout.strip()
    except OSError:
        return ""


def machine():
    lscpu = sh(["lscpu"])
    model = re.search(r"Model name:\s*(.*)", lscpu)
    return {"cpu_count": os.cpu_count(), "cpu_model": model.group(1).strip() if model else "?"}


def load():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def peer_versions(python):
    out = sh([python, "-c", "import brian2, nest; print('Brian2', brian2.__version__, "
                            "'NEST', nest.__version__)"])
    return out.splitlines()[-1] if out else "not installed"


def measure(args):
    threads = [int(t) for t in args.threads.split(",")]
    threads_flag = snnc_supports_threads(args.snnc)
    if not threads_flag:
        threads = [1]
        threads_note = "1 (this snnc has no --threads flag: single-threaded)"
    else:
        threads_note = ", ".join(map(str, threads)) + " (--threads)"
    python = os.path.join(PEERS_DIR, "venv", "bin", "python")
    peers_installed = os.path.exists(python)
    wanted_peers = [p for p in args.peers.split(",") if p] if peers_installed else []
    wanted = {b.strip().lower() for b in args.benchmarks.split(",")}
    selected = [b for b in benchmarks(args.quick)
                if (args.sizes == "all" or b.size == args.sizes)
                and (b.name.split()[0].lower() in wanted or "all" in wanted)]
    selected.sort(key=lambda b: b.size != "small")  # stable: small sizes first
    work = tempfile.mkdtemp(prefix="snnc-suite-")
    snnc = Snnc(args.snnc, work, threads_flag, args.timeout)
    peers = []
    if "brian2" in wanted_peers:
        peers.append(Brian2(python, args.timeout))
    if "nest" in wanted_peers:
        peers.append(Nest(python, args.timeout))
    data = {"meta": dict(machine(), date=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
                         load_before=load(), reps=args.reps, reps_large=args.reps_large,
                         threads_note=threads_note,
                         command=shlex.join(["bench/suite/run.sh"] + sys.argv[1:]),
                         snnc_commit=sh(["git", "describe", "--always", "--dirty"], cwd=ROOT),
                         peers=peer_versions(python) if peers_installed else
                         f"not installed ({python} missing)",
                         note=args.note),
            "benchmarks": []}
    for bench in selected:
        log(f"== {bench.key}: {bench.label}")
        runs = {f"snnc@{t}": [] for t in threads}
        model = snnc.prepare(bench)
        prepared = {}
        for peer in peers:
            runs[peer.name] = []
            try:
                log(f"   preparing {peer.name}")
                prepared[peer.name] = peer.prepare(bench)
            except Failed as error:
                runs[peer.name].append({"status": "error", "message": str(error)})
        unsupported = False
        reps = args.reps if bench.size == "small" else args.reps_large
        for rep in range(reps):
            for t in threads:
                if unsupported:
                    break
                try:
                    sample = snnc.run(bench, model, t)
                except Failed as error:
                    sample = {"status": "error", "message": str(error)}
                runs[f"snnc@{t}"].append(sample)
                unsupported = sample["status"] == "unsupported"
                log(f"   rep {rep + 1} snnc@{t}: " + describe(sample))
            for peer in peers:
                if peer.name not in prepared:
                    continue
                try:
                    sample = peer.run(bench, prepared[peer.name], 1)
                except Failed as error:
                    sample = {"status": "error", "message": str(error)}
                runs[peer.name].append(sample)
                log(f"   rep {rep + 1} {peer.name}: " + describe(sample))
        data["benchmarks"].append({"name": bench.name, "size": bench.size, "label": bench.label,
                                   "reps": reps, "runs": runs})
        # What is done so far is kept if the run is interrupted later.
        data["meta"]["load_after"] = load()
        write(data, args)
    data["meta"]["load_after"] = load()
    shutil.rmtree(work, ignore_errors=True)
    return data


def write(data, args):
    samples = args.samples or os.path.splitext(args.out)[0] + ".json"
    with open(samples, "w") as f:
        json.dump(data, f, indent=1)
    text = render(data)
    with open(args.out, "w") as f:
        f.write(text)
    return text


def describe(sample):
    if sample["status"] != "ok":
        return f"{sample['status']} ({sample.get('message', '')})"
    return f"sim {sample['sim_s']:.3f} s, spikes {sample['spikes']}"


def log(message):
    print(message, file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="small sizes, one repetition, a tenth of the simulated time")
    ap.add_argument("--sizes", choices=["small", "large", "all"], default="all")
    ap.add_argument("--threads", default="1", help="snnc thread counts, e.g. 1,2,4,8,16")
    ap.add_argument("--reps", type=int, default=None,
                    help="repetitions (default 5; 1 with --quick)")
    ap.add_argument("--reps-large", type=int, default=None,
                    help="repetitions of the large sizes (default: as --reps)")
    ap.add_argument("--snnc", default=os.path.join(ROOT, "target", "release", "snnc"))
    ap.add_argument("--benchmarks", default="all", help="cuba,coba,brunel,stdp or all")
    ap.add_argument("--peers", default="brian2,nest", help="brian2,nest or an empty string")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per process")
    ap.add_argument("--note", default="", help="a sentence for the header (e.g. the load)")
    ap.add_argument("--out", default=os.path.join(SUITE, "results.md"))
    ap.add_argument("--samples", default=None,
                    help="where the raw samples go (default: next to --out, .json)")
    ap.add_argument("--from-samples", default=None,
                    help="rebuild the table from recorded samples; runs nothing")
    args = ap.parse_args(argv)
    if args.quick:
        if args.sizes == "all":
            args.sizes = "small"
        if args.reps is None:
            args.reps = 1
    if args.reps is None:
        args.reps = 5
    if args.reps_large is None:
        args.reps_large = args.reps
    # Before measuring for half an hour, not after: the output folder may not exist yet.
    for path in (args.out, args.samples):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if args.from_samples:
        with open(args.from_samples) as f:
            data = json.load(f)
        text = render(data)
        with open(args.out, "w") as f:
            f.write(text)
    else:
        text = write(measure(args), args)
    print(text)


if __name__ == "__main__":
    main()
