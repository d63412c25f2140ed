#!/usr/bin/env python3
"""Smoke test of the benchmark harness (bench/csgi-bench), not a benchmark.

    smoke.py load          1 round of 1-second runs on four targets:
                           hello (healthy), fail500 (answers 500 to everything),
                           dead (its server exits at once) and refuse (its
                           server never opens its port). Checks the JSON,
                           Markdown, SVG and HTML it writes, then --compare. Then
                           one round of --shape both on hello with two
                           workers: a keep-alive and a connection-per-request
                           table, and --compare across the two files. Then
                           --tls on hello and nginx (one handshake per request).
    smoke.py instructions  --instructions on hello with small request counts.

Environment (set by tests/bench/meson.build): CSGI_BENCH (the script),
CSGI_BUILD_DIR (a built tree: server/csgi-server, plugins/hello.so),
CSGI_BENCH_FAIL500 (the fixture plugin). Exit 77 (skipped) only when wrk or
valgrind is missing and cannot be installed.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

import htmlcheck

BENCH = os.environ["CSGI_BENCH"]
BUILD = os.environ["CSGI_BUILD_DIR"]
FAIL500 = os.environ["CSGI_BENCH_FAIL500"]
BASELINE_INSTR = os.path.join(os.path.dirname(os.path.abspath(BENCH)), "baseline",
                              "instructions", "results.json")

failures = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what))
    if not cond:
        failures.append(what)
    return cond


def have_or_install(tool, pkg):
    if shutil.which(tool):
        return True
    if os.geteuid() == 0 and shutil.which("apt-get"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cmd = ["apt-get", "install", "-y", "--no-install-recommends", pkg]
        if subprocess.call(cmd, env=env, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL, timeout=600) != 0:
            subprocess.call(["apt-get", "update", "-qq"], env=env, timeout=600)
            subprocess.call(cmd, env=env, timeout=600)
    return shutil.which(tool) is not None


def check_html(out, what):
    """results.html beside results.md and results.svg: self-contained, every table, the chart."""
    try:
        with open(os.path.join(out, "results.html"), encoding="utf-8") as f:
            page = f.read()
        with open(os.path.join(out, "results.md"), encoding="utf-8") as f:
            md = f.read()
        with open(os.path.join(out, "results.svg"), encoding="utf-8") as f:
            svg = f.read()
        problems = htmlcheck.report_problems(page, md, svg)
    except (OSError, ET.ParseError) as e:
        problems = [str(e)]
    check(not problems, "results.html (%s): self-contained, every table and the chart %s"
          % (what, problems[:3]))


def run_bench(args, timeout):
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, BENCH, "--no-build", "--build-dir", BUILD] + args,
                       capture_output=True, text=True, timeout=timeout)
    dt = time.monotonic() - t0
    sys.stdout.write(p.stdout)
    sys.stderr.write(p.stderr)
    return p, dt


def figures_present(s, keys):
    for key in keys:
        v = s.get(key)
        if not (isinstance(v, dict) and all(isinstance(v.get(f), (int, float))
                                            for f in ("median", "min", "max"))):
            return key
    return None


def test_load(tmp):
    targets = [
        {"name": "fail500", "kind": "csgi", "plugins": [FAIL500],
         "endpoints": {"plaintext": "/fail500"}},
        {"name": "dead", "kind": "command", "argv": [sys.executable, "-c", "raise SystemExit(3)"],
         "endpoints": {"plaintext": "/"}},
        {"name": "refuse", "kind": "command",
         "argv": [sys.executable, "-c", "import time; time.sleep(20)"],
         "endpoints": {"plaintext": "/"}},
    ]
    spec = os.path.join(tmp, "targets.json")
    with open(spec, "w") as f:
        json.dump(targets, f)
    out = os.path.join(tmp, "out")
    p, dt = run_bench(["--extra-targets", spec, "--targets", "hello,fail500,dead,refuse",
                       "--endpoints", "plaintext", "--rounds", "1", "--duration", "1",
                       "--warmup", "1", "--connections", "10", "--workers", "1",
                       "--start-timeout", "3", "--stop-timeout", "5", "-o", out], 90)
    check(p.returncode == 0, "harness exits 0 (took %.1f s)" % dt)
    check(dt < 60, "a dead target is reported, not waited on (run took %.1f s)" % dt)
    try:
        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "results.json readable: %s" % e)
        return
    check(doc.get("mode") == "load", "results.json is a load run")
    meta = doc.get("meta", {})
    check(meta.get("cores") == os.cpu_count(), "the machine's core count is recorded")
    check(bool(meta.get("command")), "the exact command is recorded")
    summ = {s["target"]: s for s in doc.get("summary", [])}
    runs = doc.get("runs", [])
    check(len(runs) == 4, "one raw run per target (%d)" % len(runs))

    h = summ.get("hello", {})
    missing = figures_present(h, ["rps", "p50_us", "p90_us", "p99_us", "max_us",
                                  "cpu_us_per_req", "rss_worker_kib", "rss_total_kib",
                                  "wrk_cpu_frac", "server_cpu_frac"])
    check(missing is None, "hello: every figure present (missing: %s)" % missing)
    check(h.get("requests", 0) > 0 and h["rps"]["median"] > 0, "hello: requests were served")
    check(h.get("errors") == 0, "hello: no errors (%s)" % h.get("errors"))
    check(h.get("rps_vs_best") is not None, "hello: ratio to the fastest")
    hr = [r for r in runs if r["target"] == "hello"]
    check(bool(hr) and hr[0].get("precheck", {}).get("status") == 200,
          "hello: precheck saw 200")
    check(bool(hr) and isinstance(hr[0].get("wrk", {}).get("latency_us", {}).get("p99"), int),
          "hello: raw wrk record kept (latency p99)")

    f5 = summ.get("fail500", {})
    check(f5.get("requests", 0) > 0, "fail500: requests were sent")
    check(f5.get("status_errors", 0) > 0 and f5.get("status_errors") == f5.get("requests"),
          "fail500: every 500 counted as an error (%s of %s)"
          % (f5.get("status_errors"), f5.get("requests")))
    check(f5.get("precheck_status") == 500, "fail500: precheck status 500 reported")

    d = summ.get("dead", {})
    check("exited with status 3" in d.get("dead", ""), "dead: reported as dead with its exit "
          "status (%r)" % d.get("dead"))
    r = summ.get("refuse", {})
    check("not ready" in r.get("dead", ""), "refuse: reported as not ready (%r)" % r.get("dead"))

    try:
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
    except OSError:
        md = ""
    check("| endpoint | target | req/s median [min-max] | p50 ms | p99 ms |" in md,
          "results.md has the table header")
    rows = {l.split("|")[2].strip(): l for l in md.splitlines() if l.startswith("| plaintext |")}
    check("hello" in rows and "⚠" not in rows.get("hello", ""), "results.md: hello row, clean")
    check("fail500" in rows and "⚠" in rows.get("fail500", ""),
          "results.md: fail500 row flagged with errors")
    check("dead is dead" in md and "refuse is dead" in md, "results.md: dead targets noted")
    check("Machine:" in md and "cores" in md, "results.md: machine and settings")

    try:
        root = ET.parse(os.path.join(out, "results.svg")).getroot()
        rects = root.findall(".//{http://www.w3.org/2000/svg}rect")
        ok = root.tag.endswith("svg") and len(rects) > 3
    except (OSError, ET.ParseError) as e:
        print(e)
        ok = False
    check(ok, "results.svg is well-formed SVG with bars")
    check_html(out, "load")

    res = os.path.join(out, "results.json")
    p, _ = run_bench(["--compare", res, res, "--fail-over", "3"], 30)
    check(p.returncode == 0 and "within noise" in p.stdout, "--compare runs on two files")
    check("one round" in p.stdout and "no noise estimate" in p.stdout,
          "--compare warns that one round gives no noise estimate")
    p, _ = run_bench(["--compare", BASELINE_INSTR, res, "--fail-over", "3"], 30)
    check(p.returncode == 2 and "Cannot compare" in p.stdout,
          "--compare of an instruction file with a load file refuses (exit %d)" % p.returncode)
    check("| hello |" in md and "**hello**: csgi-server" in md,
          "results.md says what the targets are")
    test_shapes(tmp, res)
    test_tls(tmp)


def test_tls(tmp):
    """--tls: hello and nginx over HTTPS with the same certificate, version and cipher suite,
    one new handshake per request."""
    out = os.path.join(tmp, "tls")
    p, dt = run_bench(["--tls", "--targets", "hello,nginx", "--endpoints", "plaintext",
                       "--shape", "close", "--rounds", "1", "--duration", "1", "--warmup", "0",
                       "--connections", "4", "--workers", "1", "--start-timeout", "10",
                       "--stop-timeout", "5", "-o", out], 60)
    check(p.returncode == 0, "--tls exits 0 (took %.1f s)" % dt)
    try:
        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "--tls: results.json readable: %s" % e)
        return
    check("TLS_AES_128_GCM_SHA256" in doc.get("meta", {}).get("settings", {}).get("tls", ""),
          "--tls: the TLS settings recorded")
    # nginx is in scripts/deps.sh --test: both are checked.
    names = ["hello", "nginx"]
    runs = {r.get("target"): r for r in doc.get("runs", [])}
    for name in names:
        r = runs.get(name, {})
        check(r.get("precheck", {}).get("tls") == "TLSv1.3 TLS_AES_128_GCM_SHA256",
              "--tls: %s answered over TLS 1.3 with TLS_AES_128_GCM_SHA256 (%s)"
              % (name, r.get("precheck", {}).get("tls")))
        url = (r.get("wrk", {}).get("argv") or [""])[-1]
        check(url.startswith("https://127.0.0.1:"), "--tls: wrk loaded %s over https (%s)"
              % (name, url))
        check(r.get("wrk", {}).get("requests", 0) > 0 and r.get("errors") == 0,
              "--tls: %s served requests without errors (%s)" % (name, r.get("errors")))


def test_shapes(tmp, keepalive_json):
    """--shape both: the same target under keep-alive and one connection per request."""
    out = os.path.join(tmp, "shapes")
    p, dt = run_bench(["--targets", "hello", "--endpoints", "plaintext", "--shape", "both",
                       "--rounds", "1", "--duration", "1", "--warmup", "0",
                       "--connections", "4", "--workers", "2", "--start-timeout", "10",
                       "--stop-timeout", "5", "-o", out], 60)
    check(p.returncode == 0, "--shape both exits 0 (took %.1f s)" % dt)
    try:
        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "--shape both: results.json readable: %s" % e)
        return
    check(doc.get("meta", {}).get("settings", {}).get("shapes") == ["keepalive", "close"],
          "--shape both: both shapes recorded in the settings")
    runs = {r.get("shape"): r for r in doc.get("runs", []) if r.get("target") == "hello"}
    check(set(runs) == {"keepalive", "close"}, "one hello run per shape (%s)" % sorted(runs))
    argv = {sh: r.get("wrk", {}).get("argv", []) for sh, r in runs.items()}
    check("Connection: close" in argv.get("close", []) and
          "Connection: close" not in argv.get("keepalive", ["Connection: close"]),
          "only the close run sends Connection: close")
    summ = {s.get("shape"): s for s in doc.get("summary", []) if s.get("target") == "hello"}
    for sh in ("keepalive", "close"):
        h = summ.get(sh, {})
        missing = figures_present(h, ["rps", "p50_us", "p99_us", "cpu_us_per_req"])
        check(missing is None and h.get("requests", 0) > 0,
              "hello %s: requests served, figures present (missing: %s)" % (sh, missing))
        check(h.get("errors") == 0, "hello %s: no errors (%s)" % (sh, h.get("errors")))
        check(h.get("rps_vs_best") == 1.0, "hello %s: ranked within its own shape" % sh)
    try:
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
    except OSError:
        md = ""
    head = "| endpoint | target | req/s median [min-max] |"
    ka, cl = md.find("**Keep-alive"), md.find("**Connection per request")
    check(md.count(head) == 2 and 0 <= ka < cl and md.find(head, cl) > cl,
          "results.md: a keep-alive table, then a connection-per-request table")
    try:
        root = ET.parse(os.path.join(out, "results.svg")).getroot()
        labels = [t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text")]
        ok = "plaintext, keepalive" in labels and "plaintext, close" in labels
    except (OSError, ET.ParseError) as e:
        print(e)
        ok = False
    check(ok, "results.svg: a group per shape")
    check_html(out, "--shape both")
    p, _ = run_bench(["--compare", keepalive_json, os.path.join(out, "results.json")], 30)
    check(p.returncode == 0 and "| plaintext | hello | req/s |" in p.stdout and
          "plaintext (close)" not in p.stdout,
          "--compare matches shapes (an old keep-alive file has no close rows)")


def test_instructions(tmp):
    out = os.path.join(tmp, "out")
    # -d and -r are load options: --instructions ignores them, and says so.
    p, dt = run_bench(["--instructions", "--targets", "hello", "--instr-requests", "50,250",
                       "-d", "1", "-r", "1", "--start-timeout", "10", "-o", out], 160)
    check(p.returncode == 0, "harness --instructions exits 0 (took %.1f s)" % dt)
    try:
        with open(os.path.join(out, "results.json")) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        check(False, "results.json readable: %s" % e)
        return
    res = [r for r in doc.get("instructions", []) if r["target"] == "hello"]
    check(len(res) == 1, "one instruction result for hello")
    if res:
        n = res[0].get("per_request")
        # A hello request costs libmicrohttpd and the gateway some thousands of
        # instructions: far more than 1,000, far less than 1,000,000.
        check(isinstance(n, (int, float)) and 1000 < n < 1000000,
              "hello: instructions per request plausible (%s)" % n)
        check(res[0].get("errors") == 0, "hello: every response 2xx")
        check(res[0].get("startup", 0) > 0, "hello: start-up cost separated")
    meta = doc.get("meta", {})
    check("-d" not in meta.get("command", "").split() and
          "duration" not in meta.get("settings", {}) and
          "rounds" not in meta.get("settings", {}),
          "--instructions does not echo -d/-r (%r)" % meta.get("command"))
    try:
        with open(os.path.join(out, "results.md")) as f:
            md = f.read()
        with open(os.path.join(out, "results.svg")) as f:
            svg = f.read()
    except OSError:
        md = svg = ""
    check("Ignored by --instructions" in md and "`-d 1 -r 1`" in md,
          "results.md names the ignored options")
    check("whiskers: min-max" not in svg and "no rounds" in svg,
          "results.svg's footer describes the instruction count")
    check_html(out, "--instructions")
    check("vs mhd: no value, because mhd was not measured" in md,
          "results.md says why vs mhd is empty")
    load = os.path.join(os.path.dirname(BASELINE_INSTR), "..", "load", "results.json")
    p, _ = run_bench(["--compare", load, os.path.join(out, "results.json"),
                      "--fail-over", "3"], 30)
    check(p.returncode == 2 and "Cannot compare" in p.stdout,
          "--compare of a load file with an instruction file refuses (exit %d)"
          % p.returncode)


def main():
    mode = sys.argv[1] if len(sys.argv) > 1 else "load"
    if mode == "load" and not have_or_install("wrk", "wrk"):
        print("SKIP: wrk is not installed and could not be installed")
        return 77
    if mode == "instructions" and not have_or_install("valgrind", "valgrind"):
        print("SKIP: valgrind is not installed and could not be installed")
        return 77
    tmp = tempfile.mkdtemp(prefix="bench-smoke-")
    try:
        (test_load if mode == "load" else test_instructions)(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("%d check(s) failed" % len(failures) if failures else "all checks passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
