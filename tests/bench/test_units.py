#!/usr/bin/env python3
"""Unit tests of csgi-bench's pure parts (bench/csgibench): summaries, comparisons (with the
one-round rule), chart ticks and legend sizing, the instruction table's columns, option
stripping, the README's generated blocks, and the self-contained HTML report. No server, no
wrk: a second or less."""

import copy
import os
import re
import sys
import unittest
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "bench"))

import htmlcheck  # noqa: E402
from csgibench import build, compare, markdown, output, readme, stats, svg  # noqa: E402
from csgibench import html as report_html  # noqa: E402
from csgibench.cli import LOAD_ONLY, strip_options  # noqa: E402
from csgibench.sse import sse_table  # noqa: E402
from csgibench.targets import Target, select  # noqa: E402

SVG_NS = "{http://www.w3.org/2000/svg}"


def fig(median, lo=None, hi=None, n=3):
    return {"median": median, "min": median if lo is None else lo,
            "max": median if hi is None else hi, "n": n}


def load_doc(rows, rounds=3):
    """A load results document with one summary row per (target, rps median, lo, hi)."""
    summary = []
    for target, med, lo, hi in rows:
        n = rounds
        summary.append({"target": target, "endpoint": "plaintext", "shape": "keepalive",
                        "role": "app", "runs": n, "rps": fig(med, lo, hi, n),
                        "cpu_us_per_req": fig(10.0, 10.0, 10.0, n), "errors": 0})
    return {"mode": "load", "meta": {"settings": {"rounds": rounds}}, "summary": summary}


def instr_doc(per):
    return {"mode": "instructions", "meta": {}, "instructions": [
        {"target": t, "endpoint": ep, "role": "peer" if t.startswith("mhd") else "app",
         "tool": "callgrind", "per_request": v, "startup": 1000.0, "errors": 0}
        for (t, ep), v in per.items()]}


def run(target, rnd, rps, cpu, shape="keepalive", saturated=False):
    lat = {"p50": 100, "p90": 200, "p99": 300, "max": 400}
    return {"target": target, "endpoint": "plaintext", "shape": shape, "round": rnd,
            "rps": rps, "latency_us": lat, "cpu_us_per_req": cpu, "rss_worker_kib": 4096,
            "rss_total_kib": 8192, "wrk_cpu_frac": 0.5, "server_cpu_frac": 0.5,
            "wrk": {"requests": 1000}, "errors": 0, "socket_errors": 0, "status_errors": 0,
            "wrk_saturated": saturated, "precheck": {"ok": True, "status": 200}}


class Summaries(unittest.TestCase):
    def test_summarize(self):
        self.assertEqual(stats.summarize([3, None, 1, 2]),
                         {"median": 2, "min": 1, "max": 3, "n": 3})
        self.assertIsNone(stats.summarize([None]))

    def test_aggregate_ratios_and_spread(self):
        ts = [Target("a", "csgi", {"plaintext": "/"}), Target("b", "csgi", {"plaintext": "/"})]
        runs = [run("a", 1, 100.0, 10.0), run("a", 2, 120.0, 12.0), run("a", 3, 110.0, 11.0),
                run("b", 1, 50.0, 20.0, saturated=True)]
        out = {s["target"]: s for s in stats.aggregate(runs, ts, ["plaintext"])}
        self.assertEqual(out["a"]["rps"], {"median": 110.0, "min": 100.0, "max": 120.0, "n": 3})
        self.assertAlmostEqual(out["a"]["rps_spread"], 20 / 110)
        self.assertEqual(out["a"]["rps_vs_best"], 1.0)
        self.assertAlmostEqual(out["b"]["rps_vs_best"], 50 / 110)
        self.assertAlmostEqual(out["b"]["cpu_vs_best"], 20 / 11)
        self.assertEqual(out["b"]["wrk_saturated_runs"], 1)
        # One round has no spread: the noise figure ignores it.
        self.assertEqual(stats.noise(list(out.values()), "rps_spread"), (20 / 110, 20 / 110))

    def test_aggregate_by_shape(self):
        ts = [Target("a", "csgi", {"plaintext": "/"})]
        runs = [run("a", 1, 100.0, 10.0), run("a", 1, 10.0, 50.0, shape="close")]
        out = stats.aggregate(runs, ts, ["plaintext"], ["keepalive", "close"])
        self.assertEqual([(s["shape"], s["rps"]["median"]) for s in out],
                         [("keepalive", 100.0), ("close", 10.0)])


class Comparisons(unittest.TestCase):
    def test_modes_cannot_be_compared(self):
        lines, status = compare.compare_docs(instr_doc({("hello", "plaintext"): 1e4}),
                                             load_doc([("hello", 100, 90, 110)]), 3)
        self.assertEqual(status, 2)
        self.assertIn("Cannot compare", lines[0])
        self.assertIn("instruction count", lines[0])
        _, status = compare.compare_docs({"x": 1}, load_doc([("hello", 100, 90, 110)]))
        self.assertEqual(status, 2)

    def test_old_files_without_mode(self):
        a = load_doc([("hello", 100, 90, 110)])
        del a["mode"]
        self.assertEqual(compare.mode_of(a), "load")
        b = instr_doc({("hello", "plaintext"): 1e4})
        del b["mode"]
        self.assertEqual(compare.mode_of(b), "instructions")

    def test_empty_comparison_fails(self):
        for fail_over in (None, 3):
            lines, status = compare.compare_docs(load_doc([("hello", 100, 90, 110)]),
                                                 load_doc([("raw", 100, 90, 110)]), fail_over)
            self.assertEqual(status, 1)
            self.assertTrue(any("Nothing to compare" in line for line in lines))
        _, status = compare.compare_docs(instr_doc({("a", "json"): 1.0}),
                                         instr_doc({("b", "json"): 1.0}), 3)
        self.assertEqual(status, 1)

    def test_identical_files(self):
        d = load_doc([("hello", 100, 90, 110)])
        lines, status = compare.compare_docs(d, copy.deepcopy(d), 3)
        self.assertEqual(status, 0)
        self.assertIn("within noise", "\n".join(lines))

    def test_one_round_warns_and_uses_the_floor(self):
        old = load_doc([("hello", 100, None, None)], rounds=1)
        for s in old["summary"]:
            s["rps"]["n"] = s["cpu_us_per_req"]["n"] = 1
        new = copy.deepcopy(old)
        new["summary"][0]["rps"] = fig(96.0, n=1)      # 4 % worse: within the floor
        lines, status = compare.compare_docs(old, new, 3)
        text = "\n".join(lines)
        self.assertEqual(status, 0, text)
        self.assertIn("one round", text)
        self.assertIn("no noise estimate", text)
        self.assertIn("within noise", text)
        self.assertNotIn("| worse", text)
        new["summary"][0]["rps"] = fig(99.7, n=1)      # the 0.3 %
        self.assertNotIn("| worse", "\n".join(compare.compare_docs(old, new, 3)[0]))
        new["summary"][0]["rps"] = fig(80.0, n=1)      # 20 % worse: beyond the floor
        lines, status = compare.compare_docs(old, new, 3)
        self.assertEqual(status, 1)
        self.assertIn("Worse by more than 3 %", lines[-1])
        # A stated floor replaces the default.
        _, status = compare.compare_docs(old, new, 3, floor=0.25)
        self.assertEqual(status, 0)

    def test_measured_spread_is_the_threshold(self):
        old = load_doc([("hello", 100, 85, 115)])    # 30 % spread
        new = load_doc([("hello", 80, 79, 81)])      # 20 % worse, ranges apart
        lines, status = compare.compare_docs(old, new, 3)
        self.assertEqual(status, 0, "\n".join(lines))
        self.assertIn("±30.0 %", "\n".join(lines))
        old = load_doc([("hello", 100, 99, 101)])    # 2 % spread
        lines, status = compare.compare_docs(old, new, 3)
        self.assertEqual(status, 1)
        self.assertIn("hello plaintext req/s -20.0%", lines[-1])
        # Better is never a failure.
        _, status = compare.compare_docs(new, old, 3)
        self.assertEqual(status, 0)

    def test_threshold_and_verdict(self):
        self.assertEqual(compare.threshold(fig(100, 90, 110), fig(100, 95, 105), 0.02), 0.2)
        self.assertEqual(compare.threshold(fig(100, n=1), fig(100, n=1), 0.1), 0.1)
        self.assertEqual(compare.verdict(0.05, 0.1, 1), "within noise")
        self.assertEqual(compare.verdict(0.15, 0.1, 1), "better")
        self.assertEqual(compare.verdict(0.15, 0.1, -1), "worse")

    def test_instructions(self):
        old = instr_doc({("hello", "plaintext"): 10000.0})
        lines, status = compare.compare_docs(old, instr_doc({("hello", "plaintext"): 10030.0}),
                                             3)
        self.assertEqual(status, 0)
        self.assertIn("| same |", "\n".join(lines))
        lines, status = compare.compare_docs(old, instr_doc({("hello", "plaintext"): 10500.0}),
                                             3)
        self.assertEqual(status, 1)
        lines, status = compare.compare_docs(old, instr_doc({("hello", "plaintext"): 10200.0}),
                                             3)
        self.assertEqual(status, 0)
        self.assertIn("| worse |", "\n".join(lines))


class Charts(unittest.TestCase):
    def test_ticks(self):
        self.assertEqual(svg.nice_ticks(0), [0, 1])
        self.assertEqual(svg.nice_ticks(100), [0, 20, 40, 60, 80, 100])
        self.assertEqual(svg.nice_ticks(0.3), [0, 0.1, 0.2, 0.3])
        self.assertEqual(svg.nice_ticks(137500), [0, 50000, 100000, 150000])
        self.assertEqual(svg.nice_ticks(120), [0, 25, 50, 75, 100, 125])

    def test_legend_fits(self):
        names = ["mhd", "nginx", "hello", "raw", "resource", "route", "falcon",
                 "a-long-extra-target-name", "another-long-extra-target"]
        rows = svg.legend_layout(names, svg.MIN_WIDTH)
        self.assertGreater(len(rows), 1)
        self.assertEqual([n for row in rows for _, n in row], names)
        for row in rows:
            x, n = row[-1]
            self.assertLessEqual(x + 16 + svg.text_width(n, svg.LEGEND_FONT), svg.MIN_WIDTH - 12)
        self.assertEqual(len(svg.legend_layout(["hello"], svg.MIN_WIDTH)), 1)

    def test_small_chart_keeps_legend_and_footer_inside(self):
        names = ["hello", "fail500", "one-more-target-with-a-name", "and-yet-another-one"]
        d = {n: (100.0 + i, 90.0, 110.0, False, i == 0) for i, n in enumerate(names)}
        text = svg.svg_chart("t", "a subtitle " * 20, [("panel", [("plaintext", d)])], names,
                             svg.LOAD_FOOTER + svg.SATURATED_FOOTER + svg.GENERATED)
        root = ET.fromstring(text)
        width = float(root.get("width"))
        height = float(root.get("height"))
        for t in root.iter(SVG_NS + "text"):
            x = float(t.get("x"))
            size = float(t.get("font-size"))
            if t.get("text-anchor") in ("middle", "end"):
                continue
            self.assertLessEqual(x + svg.text_width(t.text or "", size), width + 1,
                                 "text cut off: %r" % t.text)
            self.assertLessEqual(float(t.get("y")), height)
        labels = [t.text for t in root.iter(SVG_NS + "text")]
        self.assertTrue(any(lbl and lbl.endswith("\u2691") for lbl in labels),
                        "the saturated bar is marked")

    def test_load_chart_marks_saturation(self):
        meta = {"cores": 2, "date": "d", "settings": {"threads_load": 1, "connections": 10,
                                                      "duration": 1, "rounds": 1,
                                                      "workers": 1}}
        s = load_doc([("hello", 100, 90, 110)])["summary"]
        s[0]["wrk_saturated_runs"] = 1
        text = svg.svg_load(meta, s)
        self.assertIn("\u2691", text)
        self.assertIn("CPU-saturated", text)
        s[0]["wrk_saturated_runs"] = 0
        self.assertNotIn("\u2691", svg.svg_load(meta, s))

    def test_instruction_chart_footer(self):
        text = svg.svg_instr({"cores": 2, "date": "d"},
                             instr_doc({("hello", "plaintext"): 1e4})["instructions"])
        self.assertIn("no rounds", text)
        self.assertNotIn("median over rounds", text)
        ET.fromstring(text)


class InstructionColumns(unittest.TestCase):
    PER = {("mhd", "plaintext"): 8000.0, ("hello", "plaintext"): 11000.0,
           ("raw", "plaintext"): 11500.0, ("route", "plaintext"): 12000.0,
           ("raw", "json"): 13000.0, ("resource", "json"): 13400.0}

    def test_filled(self):
        cols, notes = markdown.instr_columns(instr_doc(self.PER)["instructions"])
        self.assertEqual(cols[("hello", "plaintext")], (3000.0, None))
        self.assertEqual(cols[("route", "plaintext")], (4000.0, 500.0))
        self.assertEqual(cols[("resource", "json")], (None, 400.0))
        self.assertEqual(cols[("mhd", "plaintext")], (None, None))
        self.assertEqual(cols[("raw", "json")], (None, None))
        self.assertEqual(notes, [])
        lines, _ = markdown.instr_table(instr_doc(self.PER)["instructions"])
        self.assertIn("| plaintext | hello | 11,000 | 1,000 | +3,000 | - | 0 |", lines)

    def test_missing_targets_are_explained(self):
        per = {("hello", "plaintext"): 11000.0}
        cols, notes = markdown.instr_columns(instr_doc(per)["instructions"])
        self.assertEqual(cols[("hello", "plaintext")], (None, None))
        self.assertTrue(any("mhd was not measured" in n for n in notes))
        self.assertTrue(any("raw was not measured" in n for n in notes))

    def test_markdown_says_what_it_ignored(self):
        meta = {"command": "bench/csgi-bench --instructions", "cores": 2, "kernel": "k",
                "date": "d", "buildtype": "release", "ignored_args": ["-d", "1", "-r", "1"],
                "settings": {"instr_requests": [500, 2000]}}
        md = markdown.markdown_instr(meta, instr_doc(self.PER)["instructions"])
        self.assertIn("Ignored by --instructions", md)
        self.assertIn("`-d 1 -r 1`", md)
        self.assertIn("**hello**: csgi-server + the hello plugin", md)
        self.assertNotIn("round", md.split("Counts are repeatable")[0])


class MhdVersions(unittest.TestCase):
    """--mhd-versions: mhd@1.0 and hello@1.0 beside mhd and hello."""
    PER = {("mhd", "plaintext"): 8000.0, ("mhd@1.0", "plaintext"): 9000.0,
           ("hello", "plaintext"): 11000.0, ("hello@1.0", "plaintext"): 11500.0}
    VERSIONS = {"libmicrohttpd": "0.9.75", "libmicrohttpd@1.0": "1.0.1"}

    def doc(self, per=None, versions=None):
        d = instr_doc(per or self.PER)
        d["meta"] = {"date": "d", "versions": versions or self.VERSIONS}
        return d

    def test_each_version_against_its_own_mhd(self):
        cols, notes = markdown.instr_columns(instr_doc(self.PER)["instructions"])
        self.assertEqual(cols[("hello", "plaintext")], (3000.0, None))
        self.assertEqual(cols[("hello@1.0", "plaintext")], (2500.0, None))
        self.assertEqual(cols[("mhd@1.0", "plaintext")], (None, None))
        self.assertEqual(cols[("mhd", "plaintext")], (None, None))

    def test_readme_figures_per_version(self):
        perf = readme.performance(self.doc())
        self.assertIn("against **8,000** for raw libmicrohttpd 0.9.75 (`mhd`", perf)
        self.assertIn("| 0.9.75 | `mhd`, `hello` | 8,000 | 11,000 | +3,000 (1.38x) |", perf)
        self.assertIn("| 1.0.1 | `mhd@1.0`, `hello@1.0` | 9,000 | 11,500 | +2,500 (1.28x) |",
                      perf)
        bullets = readme.instructions_bullets(self.doc())
        self.assertIn("On libmicrohttpd 1.0.1 (`hello@1.0` against `mhd@1.0`): "
                      "+2,500 (11,500 against 9,000, 1.28x).", bullets)
        self.assertIn("- **hello against raw libmicrohttpd 0.9.75**: +3,000 instructions per "
                      "request (11,000 against 8,000, 1.38x).", bullets)
        self.assertIn("hello minus mhd is +3,000 instructions (1.38x)", perf)
        # One version (or a second one without both targets): the figures as before.
        one = {k: v for k, v in self.PER.items() if k[0] != "mhd@1.0"}
        for doc in (self.doc(one), self.doc(one, {"libmicrohttpd": "0.9.75"})):
            self.assertNotIn("|", readme.performance(doc))
            self.assertIn("raw libmicrohttpd (`mhd`", readme.performance(doc))
            self.assertNotIn("1.0", readme.instructions_bullets(doc))

    def test_markdown_names_the_versions(self):
        meta = {"command": "c", "cores": 2, "kernel": "k", "date": "d", "buildtype": "release",
                "versions": self.VERSIONS, "settings": {"instr_requests": [500, 2000]}}
        md = markdown.markdown_instr(meta, instr_doc(self.PER)["instructions"])
        self.assertIn("| plaintext | hello@1.0 | 11,500 | 1,000 | +2,500 | - | 0 |", md)
        self.assertIn("1.0.1 for the targets labelled @1.0", md)
        self.assertIn("**hello@1.0**: csgi-server + the hello plugin (GET /hello), built on "
                      "libmicrohttpd 1.0.1", md)
        self.assertEqual(markdown.target_note("mine@1.0"), "an extra target (--extra-targets)")

    def test_selecting_a_target_selects_it_on_every_version(self):
        ts = [Target(n, "mhd" if n.startswith("mhd") else "csgi", {"plaintext": "/"},
                     role="peer" if n.startswith("mhd") else "app")
              for n in ("mhd", "mhd@1.0", "hello", "hello@1.0", "raw")]

        class Args:
            targets, endpoints, no_peers = "hello,mhd", None, False
        self.assertEqual([t.name for t in select(ts, Args)[0]],
                         ["mhd", "mhd@1.0", "hello", "hello@1.0"])
        Args.targets, Args.no_peers = "hello@1.0,mhd", True
        self.assertEqual([t.name for t in select(ts, Args)[0]], ["hello@1.0"])

    def test_same_series(self):
        self.assertTrue(build.same_series("1.0.1", "1.0"))
        self.assertTrue(build.same_series("1.0.1", "1.0.1"))
        self.assertFalse(build.same_series("0.9.75", "1.0"))
        self.assertFalse(build.same_series("1.01", "1.0"))
        self.assertFalse(build.same_series(None, "1.0"))


class LoadMarkdown(unittest.TestCase):
    def test_notes(self):
        meta = {"command": "c", "cores": 2, "cpu": "x", "kernel": "k", "date": "d",
                "buildtype": "release", "versions": {},
                "settings": {"threads_load": 1, "connections": 10, "duration": 1, "warmup": 0,
                             "rounds": 3, "workers": 2, "threads": 1, "saturation": 0.9}}
        s = load_doc([("hello", 100, 90, 110), ("nginx", 120, 110, 130)])["summary"]
        for x in s:
            x.update(p50_us=fig(100), p99_us=fig(300), rss_worker_kib=fig(4096),
                     wrk_cpu_frac=fig(0.95), wrk_saturated_runs=1, status_errors=0,
                     socket_errors=0, requests=100, rps_vs_best=1.0,
                     worker_cpu_max_share=fig(0.6, 0.5, 0.7))
        ts = [Target("hello", "csgi", {"plaintext": "/"}),
              Target("nginx", "nginx", {"plaintext": "/"}, role="peer")]
        md = markdown.markdown_load(meta, s, ts, [])
        self.assertIn("each worker accepts in its own thread", md)
        self.assertIn("generation's average", md)
        self.assertIn("**hello**: csgi-server + the hello plugin", md)
        self.assertIn("**nginx**: nginx", md)
        self.assertIn("⚑ wrk was CPU-saturated", md)


class Options(unittest.TestCase):
    def test_strip(self):
        kept, dropped = strip_options(
            ["--instructions", "-d", "1", "-r1", "--duration=3", "--targets", "hello",
             "--strict-status", "-w", "2", "--threads-load", "2", "-o", "x"], LOAD_ONLY)
        self.assertEqual(kept, ["--instructions", "--targets", "hello", "-o", "x"])
        self.assertEqual(dropped, ["-d", "1", "-r1", "--duration=3", "--strict-status",
                                   "-w", "2", "--threads-load", "2"])
        self.assertEqual(strip_options(["--instr-requests", "5,10"], LOAD_ONLY),
                         (["--instr-requests", "5,10"], []))


class Readme(unittest.TestCase):
    def test_rewrite(self):
        text = ("a\n<!-- csgi-bench:begin x -->\nold\n<!-- csgi-bench:end x -->\n"
                "- item\n  <!-- csgi-bench:begin y -->\n  old\n  <!-- csgi-bench:end y -->\nz\n")
        new, unknown = readme.rewrite(text, {"x": "one\ntwo", "y": "three"})
        self.assertEqual(unknown, [])
        self.assertEqual(new, "a\n<!-- csgi-bench:begin x -->\none\ntwo\n"
                              "<!-- csgi-bench:end x -->\n- item\n"
                              "  <!-- csgi-bench:begin y -->\n  three\n"
                              "  <!-- csgi-bench:end y -->\nz\n")
        self.assertEqual(readme.rewrite(new, {"x": "one\ntwo", "y": "three"})[0], new)
        self.assertEqual(readme.rewrite(text, {"x": "1"})[1], ["y"])

    def test_tls_table(self):
        ts = [Target("nginx", "nginx", {"plaintext": "/"}, role="peer"),
              Target("hello", "csgi", {"plaintext": "/"})]
        runs = [run("nginx", 1, 100.0, 10.0), run("hello", 1, 90.0, 12.0),
                run("nginx", 1, 10.0, 400.0, shape="close"),
                run("hello", 1, 4.0, 800.0, shape="close")]
        doc = {"mode": "load", "meta": {"settings": {"rounds": 1,
                                                     "shapes": ["keepalive", "close"]}},
               "summary": stats.aggregate(runs, ts, ["plaintext"], ["keepalive", "close"])}
        text = readme.tls_table(doc)
        ka, cl = text.find("**Keep-alive**"), text.find("**Connection per request**")
        self.assertTrue(0 <= ka < cl, text)
        self.assertIn("hello/nginx: 0.90x the req/s, 1.20x the server CPU per request.",
                      text[ka:cl])
        self.assertIn("hello/nginx: 0.40x the req/s, 2.00x the server CPU per request.",
                      text[cl:])

    def test_readme_matches_the_baselines(self):
        with open(readme.README) as f:
            text = f.read()
        generated = readme.blocks(readme.load_baselines())
        new, unknown = readme.rewrite(text, generated)
        self.assertEqual(unknown, [])
        found = {m.group(2) for m in readme.BLOCK_RE.finditer(text)}
        self.assertEqual(found, set(generated), "every generated block is in README.md")
        self.assertTrue(new == text, "README.md's generated blocks differ from "
                        "bench/baseline/: run bench/csgi-bench --render-readme")
        # The Performance section and the Benchmarks table quote the same hello and mhd.
        per = {(r["target"], r["endpoint"]): r["per_request"]
               for r in readme.load_baselines()["instructions"]["instructions"]
               if "per_request" in r}
        hello = "{:,.0f}".format(per[("hello", "plaintext")])
        perf = text.split("## Performance", 1)[1].split("\n## ", 1)[0]
        bench = text.split("## Benchmarks", 1)[1]
        self.assertIn("**%s**" % hello, perf)
        self.assertIn("| plaintext | hello | %s |" % hello, bench)


class SseTable(unittest.TestCase):
    @staticmethod
    def sse_run(mode, p99, cpu, load, server=None, rss=130560):
        r = {"mode": mode, "subscribers": 10000, "events": 5 if mode == "stream" else 1,
             "interval_ms": 2000, "expected": 50000 if mode == "stream" else 10000,
             "delivered": 50000 if mode == "stream" else 9999, "p50_ms": 40.4,
             "p99_ms": p99, "worker_cpu_ms_per_event": cpu, "worker_rss_kib": rss,
             "worker_threads": 4, "load_before": load}
        if server:
            r["server"] = server
        return r

    def test_rows_and_spread(self):
        doc = {"mode": "sse", "meta": {"versions": {"libmicrohttpd": "0.9.75"},
                                       "buildtype": "release, LTO", "cores": 2,
                                       "date": "2026-12-04 07:00 UTC"},
               # A run without "server" (older documents) is csgi-server's.
               "runs": [self.sse_run("stream", 95.2, 101, [1.5, 2, 3]),
                        self.sse_run("stream", 60.4, 50, [1.0, 2, 3], "mhd", 57344),
                        self.sse_run("stream", 180.6, 112, [6.25, 2, 3], "csgi", 131072),
                        self.sse_run("stream", 70.6, 55, [1.0, 2, 3], "mhd", 58368),
                        self.sse_run("poll", 300, 250, None)]}
        lines = sse_table(doc).split("\n")
        self.assertEqual(lines[2], "| csgi-server | 10,000 SSE subscribers | 5, 2,000 ms apart "
                         "| 50,000 of 50,000 | 40 ms | 95 ms | 101 ms | 127.5 MiB | 4 | 1.5 |")
        self.assertEqual(lines[3], "| libmicrohttpd alone (mhd_sse) | 10,000 SSE subscribers | "
                         "5, 2,000 ms apart | 50,000 of 50,000 | 40 ms | 60 ms | 50 ms | "
                         "56.0 MiB | 4 | 1.0 |")
        self.assertEqual(lines[6], "| csgi-server | 10,000 idle long polls | 1 (answers every "
                         "poll) | 9,999 of 10,000 | 40 ms | 300 ms | 250 ms | 127.5 MiB | 4 | ? |")
        self.assertEqual(lines[-3], "csgi-server over its 2 stream runs: p99 95-181 ms, worker "
                         "CPU per event 101-112 ms, RSS 127.5 MiB-128.0 MiB.")
        self.assertEqual(lines[-2], "libmicrohttpd alone (mhd_sse) over its 2 stream runs: p99 "
                         "60-71 ms, worker CPU per event 50-55 ms, RSS 56.0 MiB-57.0 MiB.")
        self.assertEqual(lines[-1], "(libmicrohttpd 0.9.75, release, LTO, 2 cores, "
                         "2026-12-04 07:00 UTC.)")
        # A run short of delivery: no latency or CPU figures, and out of the spread.
        short = dict(self.sse_run("stream", -1, 0, [1.0, 2, 3], "csgi"), delivered=0,
                     subscribed=9745)
        lines2 = sse_table(dict(doc, runs=doc["runs"] + [short])).split("\n")
        self.assertIn("| csgi-server | 10,000 SSE subscribers | 5, 2,000 ms apart | 0 of 50,000 "
                      "(9,745 subscribed) | - | - | - | 127.5 MiB | 4 | 1.0 |", lines2)
        self.assertIn("csgi-server: 1 of its 3 stream runs did not deliver every event (left "
                      "out below).", lines2)
        self.assertIn("csgi-server over its 2 stream runs: p99 95-181 ms, worker CPU per event "
                      "101-112 ms, RSS 127.5 MiB-128.0 MiB.", lines2)
        # One stream run each: no spread to tell.
        doc["runs"] = doc["runs"][:2]
        self.assertEqual(len(sse_table(doc).split("\n")), 4)


class HtmlReport(unittest.TestCase):
    def test_baselines_render_self_contained(self):
        # Every committed run: well-formed, standing alone, every table and the chart.
        docs = readme.load_baselines()
        self.assertTrue({"load", "instructions"} <= set(docs))
        for name, doc in docs.items():
            if doc.get("mode") == "sse":
                continue  # an --sse run has its table only (results.md, the README's block)
            md, chart, page = output.reports(doc)
            self.assertEqual(htmlcheck.report_problems(page, md, chart), [], name)
            self.assertIn(doc["meta"]["command"], page)
            self.assertIn("Linux %s" % doc["meta"]["kernel"], page)

    def test_checker_finds_what_is_wrong(self):
        md, chart, page = output.reports(readme.load_baselines()["load"])
        row = re.search(r"<tr><td>plaintext</td>.*?</tr>\n", page).group(0)
        bar = re.search(r"<rect [^>]*><title>", page).group(0)
        broken = {
            "an element left open": page.replace("</table>", "", 1),
            "a table row missing": page.replace(row, "", 1),
            "a bar missing": page.replace(bar, "<g><title>", 1).replace("</title></rect>",
                                                                      "</title></g>", 1),
            "an image": page.replace("<h2>Chart</h2>", '<h2>Chart</h2><img src="x.png">'),
            "a link": page.replace("<h2>Method</h2>",
                                   '<h2>Method</h2><a href="https://x.invalid/">x</a>'),
            "a script": page.replace("</main>", "<script>1</script></main>"),
            "an import": page.replace("<style>", "<style>@import 'x.css';"),
            "a handler": page.replace("<main>", '<main onload="x()">'),
        }
        for what, bad in broken.items():
            self.assertNotEqual(htmlcheck.report_problems(bad, md, chart), [], what)

    def test_markdown_subset(self):
        md = ("Command: `a <b>`\n\n**Keep-alive.**\n\n| x | y & z |\n| --- | ---: |\n"
              "| `c` | **2** ⚠ |\n\n- one <i>\n- two")
        self.assertEqual(report_html.markdown_html(md),
                         "<p>Command: <code>a &lt;b&gt;</code></p>\n"
                         "<p><strong>Keep-alive.</strong></p>\n"
                         "<table>\n<thead><tr><th>x</th><th class=\"r\">y &amp; z</th></tr>"
                         "</thead>\n<tbody>\n<tr><td><code>c</code></td>"
                         "<td class=\"r\"><strong>2</strong> ⚠</td></tr>\n</tbody>\n</table>\n"
                         "<ul>\n<li>one &lt;i&gt;</li>\n<li>two</li>\n</ul>")

    def test_names_are_escaped(self):
        # A target's name comes from the command line (--extra-targets): text, never markup.
        doc = copy.deepcopy(readme.load_baselines()["load"])
        evil = "<b>hello</b>"
        doc["meta"]["targets"] = {evil if n == "hello" else n: t
                                  for n, t in doc["meta"]["targets"].items()}
        for s in doc["summary"]:
            if s["target"] == "hello":
                s["target"] = evil
        md, chart, page = output.reports(doc)
        self.assertEqual(htmlcheck.report_problems(page, md, chart), [])
        self.assertNotIn(evil, page)
        self.assertIn("&lt;b&gt;hello&lt;/b&gt;", page)


if __name__ == "__main__":
    unittest.main(verbosity=2)
