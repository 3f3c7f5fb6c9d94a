#!/usr/bin/env python3
"""Checks of the benchmark suite that need neither the peers nor a timing: the parsers on
recorded outputs of snnc, Brian2 and NEST, the generated models against the current examples,
and the table built from recorded samples (medians, ratios, targets, scaling, unsupported).

    python3 bench/suite/test_suite.py        # also run by `cargo test` (compiler/tests/bench_suite.rs)
"""
import contextlib
import io
import json
import os
import stat
import subprocess
import sys
import tempfile
import unittest

sys.dont_write_bytecode = True  # no __pycache__ in the source tree

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import remote  # noqa: E402
import suite  # noqa: E402

# Recorded from `snnc run examples/cuba.snn` (compiler/src/bin/snnc.rs prints this summary).
SNNC_SUMMARY = """\
network Cuba: 4000 neurons, 321569 synapses, 1 s simulated in 10000 steps
  population      neurons     spikes    mean rate
  E                  3200      17312      5.41 Hz
  I                   800       4395      5.49 Hz
  compile 5.6 ms (front end 1.2 ms, JIT 4.4 ms), build 18.2 ms, run 0.127 s, real-time factor 0.127
  1744529 synaptic events; outputs in /tmp/bo/ (manifest.json)
"""

# Recorded from `snnc run examples/stdp_song.snn` before plasticity was simulated.
SNNC_UNSUPPORTED = """\
error: `StdpAdditive` has an ODE in a synapse, which the simulator does not run yet
   ┌─ <stdlib>/synapses/stdp.snn:31:5
   │
31 │     dA_pre/dt = -A_pre / tau_pre
   │     ^^^^^^^^^^^^^^^^^^^^^^^^^^^^ plasticity is not simulated yet
"""


def sample(sim, **extra):
    s = {"status": "ok", "sim_s": sim, "build_s": 0.5, "compile_s": 0.01, "wall_s": sim + 1,
         "rss": 2**20 * 100, "spikes": 1000, "synapses": 2**20 * 10}
    s.update(extra)
    return s


def snnc_sample(sim):
    return sample(sim, events=2_000_000, neurons=4000, steps=10000)


class Parsers(unittest.TestCase):
    def test_snnc_summary(self):
        s = suite.parse_snnc(SNNC_SUMMARY)
        self.assertEqual((s["neurons"], s["synapses"], s["steps"]), (4000, 321569, 10000))
        self.assertEqual(s["spikes"], 17312 + 4395)
        self.assertEqual(s["events"], 1744529)
        self.assertAlmostEqual(s["compile_s"], 5.6e-3)  # front end + JIT
        self.assertAlmostEqual(s["build_s"], 18.2e-3)
        self.assertAlmostEqual(s["sim_s"], 0.127)

    def test_snnc_summary_that_changed_shape_is_an_error(self):
        with self.assertRaises(suite.Failed):
            suite.parse_snnc("network Cuba: 4000 neurons\n")

    def test_unsupported_and_other_failures(self):
        self.assertEqual(suite.snnc_failure(SNNC_UNSUPPORTED),
                         ("unsupported", "not supported by this snnc build"))
        status, message = suite.snnc_failure("error: cannot read `x.snn`: No such file\n")
        self.assertEqual(status, "error")
        self.assertIn("cannot read", message)

    def test_nest_lines(self):
        cuba = suite.parse_nest("nest threads=1 rule=bernoulli N=4000 syn=320418 spikes=22361 "
                                "rate=5.59Hz setup=0.72s run=0.758s", 4000, 1.0)
        self.assertEqual((cuba["spikes"], cuba["synapses"], cuba["sim_s"], cuba["build_s"]),
                         (22361, 320418, 0.758, 0.72))
        self.assertFalse(cuba["spikes_approx"])
        # brunel_nest.py prints a rate: spikes = rate x N x T, marked approximate.
        brunel = suite.parse_nest("nest brunel NE=2000 NI=500 g=5.0 eta=2.0 rate=32.36Hz "
                                  "cv_isi=0.201 sync_chi=0.100 setup=0.89s sim=0.66s", 2500, 1.0)
        self.assertEqual((brunel["spikes"], brunel["sim_s"]), (80900, 0.66))
        self.assertTrue(brunel["spikes_approx"])
        stdp = suite.parse_nest("nest threads=1 STDP inputs=1000 post_spikes=261 frac_w>0.9=0.116"
                                " frac_w<0.1=0.145 setup=0.006s run=3.918s", 1001, 10.0)
        self.assertEqual((stdp["spikes"], stdp["sim_s"]), (261, 3.918))

    def test_brian2_lines(self):
        cuba = suite.parse_brian2_build("brian2 cpp_standalone N=4000 syn=319792 spikes=22463 "
                                        "rate=5.62Hz setup=0.11s run+build=3.05s\n")
        self.assertEqual((cuba["spikes"], cuba["synapses"]), (22463, 319792))
        stdp = suite.parse_brian2_build("brian2 cpp_standalone STDP inputs=1000 post_spikes=360 "
                                        "frac_w>0.9=0.124 frac_w<0.1=0.142 setup=0.14s\n")
        self.assertEqual((stdp["spikes"], stdp["synapses"]), (360, None))

    def test_threads_flag_detected_from_help(self):
        with tempfile.TemporaryDirectory() as d:
            for help_text, expected in (("--threads <N>  worker threads", True),
                                        ("--quiet  Print only errors", False)):
                fake = os.path.join(d, f"snnc_{expected}")
                with open(fake, "w") as f:
                    f.write(f"#!/bin/sh\necho '{help_text}'\n")
                os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
                self.assertEqual(suite.snnc_supports_threads(fake), expected)


class Models(unittest.TestCase):
    """The generated models come from the current examples: a changed example that the
    substitutions no longer fit must fail here, not silently benchmark the wrong size."""

    def test_every_benchmark_model_is_generated_with_its_size(self):
        expected = {
            ("CUBA", "small"): ["[3200]", "[800]", "p = 0.02"],
            ("CUBA", "large"): ["[80000]", "[20000]", "p = 0.0008"],
            ("COBA", "large"): ["[80000]", "[20000]", "p = 0.0008"],
            ("Brunel A", "small"): ["[2000]", "[500]"],
            ("Brunel A", "large"): ["[10000]", "[2500]"],
            ("STDP Song", "small"): ["[1000]"],
        }
        for bench in suite.benchmarks(quick=False):
            with open(os.path.join(suite.ROOT, "examples", bench.example)) as f:
                text = suite.model_text(f.read(), bench)
            for needle in expected.get((bench.name, bench.size), []):
                self.assertIn(needle, text, bench.key)
            records = [l.strip() for l in text.splitlines() if l.strip().startswith("record ")]
            self.assertTrue(records, bench.key)
            self.assertTrue(all("spikes" in r for r in records), (bench.key, records))

    def test_a_missing_substitution_is_reported(self):
        bench = suite.benchmarks(quick=False)[0]
        with self.assertRaises(ValueError):
            suite.model_text("network Empty { run 1 s }", bench)

    def test_quick_simulates_a_tenth(self):
        full = {b.key: b.duration for b in suite.benchmarks(quick=False)}
        for b in suite.benchmarks(quick=True):
            self.assertAlmostEqual(b.duration, full[b.key] / 10)


def fixture():
    meta = {"cpu_count": 2, "cpu_model": "Test CPU", "date": "2026-01-01 00:00",
            "load_before": "0.1 0.1 0.1", "load_after": "0.2 0.1 0.1", "reps": 3,
            "threads_note": "1, 2 (--threads)", "command": "bench/suite/run.sh", "note": "",
            "snnc_commit": "abc123", "peers": "Brian2 2.9.0 NEST 3.10.0"}
    cuba = {"name": "CUBA", "size": "small", "label": "4,000 neurons", "runs": {
        # Medians: snnc@1 0.2 s, snnc@2 0.125 s, Brian2 0.5 s, NEST 4.0 s (of two that ran).
        "snnc@1": [snnc_sample(0.3), snnc_sample(0.2), snnc_sample(0.1)],
        "snnc@2": [snnc_sample(0.125), snnc_sample(0.15), snnc_sample(0.1)],
        "Brian2": [sample(0.5), sample(0.6), sample(0.4)],
        "NEST": [sample(3.0, compile_s=None), sample(5.0, compile_s=None),
                 {"status": "error", "message": "timed out after 10 s"}],
    }}
    stdp = {"name": "STDP Song", "size": "small", "label": "1,000 inputs, 10 s", "runs": {
        "snnc@1": [{"status": "unsupported", "message": "not supported by this snnc build"}],
        "Brian2": [sample(1.0)],
        "NEST": [sample(4.0)],
    }}
    return {"meta": meta, "benchmarks": [cuba, stdp]}


class Table(unittest.TestCase):
    def setUp(self):
        self.text = suite.render(fixture())
        self.rows = [l for l in self.text.splitlines() if l.startswith("| ") and "---" not in l]

    def row(self, *cells):
        found = [r for r in self.rows if all(f"| {c} |" in r for c in cells)]
        self.assertEqual(len(found), 1, (cells, self.rows))
        return [c.strip() for c in found[0].strip("|").split("|")]

    def test_median_min_and_ratios(self):
        snnc = self.row("CUBA", "snnc", "1")
        self.assertEqual(snnc[6], "200.0 ms [100.0]")
        # events/s = 2e6 / 0.2 s; updates/s = 4000 x 10000 / 0.2 s.
        self.assertEqual((snnc[10], snnc[11]), ("1e+07", "2e+08"))
        self.assertEqual(self.row("CUBA", "Brian2")[9], "**0.400**")  # 0.2 / 0.5
        nest = self.row("CUBA", "NEST")
        self.assertEqual(nest[9], "**0.050**")  # 0.2 / 4.0, the failed repetition left out
        self.assertEqual(nest[4], "–")  # NEST has no compile step

    def test_memory_per_synapse(self):
        self.assertEqual(self.row("CUBA", "snnc", "1")[7], "100 MiB (10.0 B/syn)")

    def test_targets(self):
        self.assertIn("| CUBA | 4,000 neurons | 0.400 (met) | 0.050 (met) |", self.text)
        self.assertIn("| STDP Song | 1,000 inputs, 10 s | unsupported | |", self.text)

    def test_unsupported_row_and_no_ratio_against_it(self):
        self.assertIn("not supported by this snnc build", self.row("STDP Song", "snnc")[4])
        self.assertEqual(self.row("STDP Song", "Brian2")[9], "–")

    def test_scaling_efficiency(self):
        # 2 threads: speed-up 0.2 / 0.125 = 1.6, efficiency 1.6 / 2 = 80 %.
        self.assertIn("| CUBA | 4,000 neurons | 2 | 125.0 ms [100.0] | 1.60 | 80% | yes |", self.text)

    def test_missed_target(self):
        data = fixture()
        data["benchmarks"][0]["runs"]["Brian2"] = [sample(0.3)]
        self.assertIn("0.667 (missed)", suite.render(data))


class RecordedRun(unittest.TestCase):
    def test_table_from_a_recorded_quick_run(self):
        recorded = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata",
                                "quick_samples.json")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "results.md")
            with contextlib.redirect_stdout(io.StringIO()):
                suite.main(["--from-samples", recorded, "--out", out])
            with open(out) as f:
                text = f.read()
        with open(recorded) as f:
            data = json.load(f)
        runs = sum(len(b["runs"]) for b in data["benchmarks"])
        table = [l for l in text.split("## Targets")[0].splitlines()
                 if l.startswith("| ") and "---" not in l and "benchmark" not in l]
        self.assertEqual(len(table), runs)
        self.assertIn("Brian2 2.9.0 NEST 3.10.0", text)

    def test_the_output_folder_is_created(self):
        recorded = os.path.join(os.path.dirname(os.path.abspath(__file__)), "testdata",
                                "quick_samples.json")
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "new", "folder", "results.md")
            with contextlib.redirect_stdout(io.StringIO()):
                suite.main(["--from-samples", recorded, "--out", out])
            self.assertTrue(os.path.exists(out))


class Remote(unittest.TestCase):
    """bench/suite/remote.py: the script for a machine with only the binary, and its log."""

    def test_the_script_generates_the_same_models_as_the_suite(self):
        text = remote.script([1, 2], 1, "all")
        seds = [l for l in text.splitlines() if l.startswith("sed ")]
        self.assertEqual(len(seds), 6)  # CUBA, COBA, Brunel at two sizes; STDP left out
        with tempfile.TemporaryDirectory() as d:
            for line, bench in zip(seds, remote.selected("all")):
                generated = subprocess.run(["sh", "-c", line.replace("$D", d)], cwd=suite.ROOT,
                                           capture_output=True, text=True)
                self.assertEqual(generated.returncode, 0, generated.stderr)
                with open(os.path.join(d, remote.tag(bench) + ".snn")) as f:
                    ours = f.read()
                with open(os.path.join(suite.ROOT, "examples", bench.example)) as f:
                    self.assertEqual(ours.rstrip("\n"), suite.model_text(f.read(), bench).rstrip("\n"),
                                     bench.key)

    def test_a_log_becomes_a_scaling_table(self):
        block = SNNC_SUMMARY + "\tMaximum resident set size (kbytes): 11296\n"
        log = ("binary " + "ab" * 32 + "  target/release/snnc\n"
               "cpu Test Xeon cores 16\nload_before 0.1 0.2 0.3\n"
               "@@ cuba_small 1 1\n" + block +
               "@@ cuba_small 4 1\n" + block.replace("run 0.127 s", "run 0.050 s on 4 threads") +
               "@@ coba_s 1 1\nerror: something broke\nload_after 1.0 1.0 1.0\n")
        data = remote.parse_log(log)
        self.assertEqual((data["meta"]["cpu_model"], data["meta"]["cpu_count"]), ("Test Xeon", 16))
        self.assertEqual(data["meta"]["load_after"], "1.0 1.0 1.0")
        text = suite.render(data)
        # 0.127 s / 0.050 s = 2.54 on 4 threads: 64 % efficiency; the spike counts agree.
        self.assertIn("| CUBA | 4,000 neurons | 4 | 50.0 ms [50.0] | 2.54 | 64% | yes |", text)
        self.assertIn("error: error: something broke", text)
        self.assertNotIn("## Targets", text)  # no peers ran: nothing to judge


if __name__ == "__main__":
    unittest.main()
