#!/usr/bin/env python3
"""The stats endpoint's status page in a real browser (headless Chromium).

Starts csgi-server (two workers, the probe fixture, --stats on loopback TCP),
crashes a worker with a request whose target carries markup, reloads with
SIGHUP while a slow request keeps a generation-1 worker draining, serves a few
requests on generation 2, then loads the page at / in one headless Chromium
run that dumps the DOM after the page's script has polled stats.json, and
writes a screenshot. Checks, in the DOM the script built: the new generation,
both generations' workers, the probe plugin's counters, the reload event and
the crash event with the dead worker's pid (read from the server's log), the
crash's request target as text (no element made of it), and the "updated"
line that only a successful poll writes (so the CSP let the page's own script
and fetch run).

    status_page.py OUT_DIR

Environment (tests/browser/meson.build): CSGI_SERVER, CSGI_FIXTURES (probe.so).
Needs chromium (scripts/deps.sh --test installs it). Writes
OUT_DIR/status-page.png and OUT_DIR/status-page.html (the DOM), the artifacts.
"""

import html.parser
import http.client
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

SERVER = os.environ["CSGI_SERVER"]
FIXTURES = os.environ["CSGI_FIXTURES"]
CRASH_TARGET = "/probe/crash?<b>x</b>"

failures = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)
    return cond


def wait_for(what, fn, timeout_s):
    """Call fn until it returns something true; that value, or exit with a failure."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            got = fn()
        except (TypeError, KeyError, ValueError):
            got = None  # no stats answer this time
        if got:
            return got
        time.sleep(0.05)
    sys.exit("FAIL timed out waiting for %s" % what)


def request(port, target, timeout=10, headers=None):
    """GET target on 127.0.0.1:port: (status, body), or (None, error text) when the connection broke."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", target, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    except (OSError, http.client.HTTPException) as e:
        return None, str(e)
    finally:
        c.close()


def stats(port):
    status, body = request(port, "/stats.json")
    return json.loads(body) if status == 200 else None


class Server:
    def __init__(self, workdir):
        self.dir = workdir
        self.log = os.path.join(workdir, "error.log")
        plugins = os.path.join(workdir, "plugins")
        os.mkdir(plugins)
        shutil.copy(os.path.join(FIXTURES, "probe.so"), os.path.join(plugins, "probe.so"))
        argv = [SERVER, "--bind", "127.0.0.1:0", "--stats", "127.0.0.1:0", "--workers", "2",
                "--plugins", plugins, "--error-log", self.log, "--tmp-dir", workdir,
                "--graceful-timeout", "10"]
        # A plugin's SIGSEGV must kill its worker also in a sanitizer build.
        env = dict(os.environ, ASAN_OPTIONS="handle_segv=0:detect_leaks=1")
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env)
        text = wait_for("csgi-server to start", self._started, 15)
        self.port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)/", text).group(1))
        self.stats_port = int(re.search(r"stats on http://127\.0\.0\.1:(\d+)/", text).group(1))

    def text(self):
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def _started(self):
        if self.proc.poll() is not None:
            sys.exit("FAIL csgi-server exited during start-up:\n" + self.text())
        text = self.text()
        return text if text.count("worker ready") >= 2 and "stats on http" in text else None

    def stop(self):
        """A fast stop (SIGINT): the slow request is not worth waiting for."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Dom(html.parser.HTMLParser):
    """The tables (rows: attributes and cell texts), the text of each id, and every tag seen."""

    def __init__(self):
        super().__init__()
        self.tables = {}
        self.ids = {}
        self.tags_in_cells = []
        self._table = None
        self._row = None
        self._cell = None
        self._id_stack = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "table" and "id" in a:
            self._table = self.tables.setdefault(a["id"], [])
        elif tag == "tr" and self._table is not None:
            self._row = {"attrs": a, "cells": []}
        elif tag == "td" and self._row is not None:
            self._cell = []
        elif self._cell is not None and not (tag == "span" and "badge" in a.get("class", "")):
            self.tags_in_cells.append(tag)
        self._id_stack.append(a.get("id"))
        if a.get("id"):
            self.ids[a["id"]] = ""

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self._row["cells"].append("".join(self._cell))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            if self._row["cells"]:
                self._table.append(self._row)
            self._row = None
        elif tag == "table":
            self._table = None
        if self._id_stack:
            self._id_stack.pop()

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)
        for i in self._id_stack:
            if i:
                self.ids[i] += data


def run_chromium(url, out_dir, profile):
    """One headless Chromium run: the DOM after the page polled, and a screenshot."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("FAIL chromium is not installed (scripts/deps.sh --test installs it)")
    os.makedirs(profile, exist_ok=True)
    shot = os.path.join(out_dir, "status-page.png")
    if os.path.exists(shot):
        os.unlink(shot)
    argv = [chromium, "--headless=new", "--no-sandbox", "--disable-gpu",
            "--user-data-dir=" + profile, "--no-first-run", "--disable-extensions",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            "--hide-scrollbars", "--window-size=1200,800",
            # The page fetches stats.json at once and every 2 s: this lets it poll twice.
            "--virtual-time-budget=3000",
            "--screenshot=" + shot, "--dump-dom", url]
    t0 = time.monotonic()
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=90,
                       cwd=profile)
    print("chromium: exit %d after %.1f s" % (p.returncode, time.monotonic() - t0), flush=True)
    if p.returncode != 0:
        sys.stderr.write(p.stderr.decode(errors="replace")[-3000:])
    dom = p.stdout.decode("utf-8", errors="replace")
    with open(os.path.join(out_dir, "status-page.html"), "w", encoding="utf-8") as f:
        f.write(dom)
    return dom, shot


def exercise(s):
    """Crash a worker, reload with a slow request in flight, serve on generation 2.

    Returns the crashed worker's pid (from the log) and the slow request's thread.
    """
    status, _ = request(s.port, CRASH_TARGET)
    check(status is None, "the crashing request got no response")
    m = wait_for("the crash in the log",
                 lambda: re.search(r"\(gen 1, pid (\d+)\) killed by signal SEGV", s.text()), 10)
    crashed = int(m.group(1))
    wait_for("two workers again",
             lambda: (lambda j: j and sum(w["state"] == "ready" for w in j["workers"]) == 2)(
                 stats(s.stats_port)), 15)
    # Held by a generation-1 worker across the reload: it drains while the page loads.
    slow = threading.Thread(target=request, args=(s.port, "/probe/slow?ms=6000", 20))
    slow.start()
    wait_for("the slow request in flight",
             lambda: any(w["in_flight"] for w in stats(s.stats_port)["workers"]), 10)
    os.kill(s.proc.pid, signal.SIGHUP)
    wait_for("generation 2 serving",
             lambda: (lambda j: j["generation"] == 2 and not j["reloading_generation"])(
                 stats(s.stats_port)), 15)
    for target in ["/probe/version"] * 3 + ["/probe/status?code=404"]:
        request(s.port, target)
    # Workers publish their counters on their next tick.
    wait_for("generation 2's counters",
             lambda: any(p["name"] == "probe" and p["requests"] >= 4
                         for p in stats(s.stats_port)["plugins"]), 10)
    return crashed, slow


def check_dom(dom, crashed):
    d = Dom()
    d.feed(dom)
    check(d.ids.get("conn", "").startswith("updated "),
          "the page's script polled stats.json (CSP allows it): %r" % d.ids.get("conn"))
    check(d.ids.get("generation") == "2", "serving generation 2: %r" % d.ids.get("generation"))
    gens = {r["attrs"].get("data-generation"): r["attrs"].get("data-role")
            for r in d.tables.get("generations", [])}
    check(gens.get("2") == "serving", "generations table: 2 serving (%r)" % gens)
    workers = d.tables.get("workers", [])
    check(sum(r["attrs"].get("data-generation") == "2" and r["attrs"].get("data-state") == "ready"
              for r in workers) == 2, "two generation-2 workers ready")
    check(str(crashed) not in [r["attrs"].get("data-pid") for r in workers],
          "the crashed worker is gone from the workers")
    probe = [r for r in d.tables.get("plugins", []) if r["attrs"].get("data-plugin") == "probe"]
    check(len(probe) == 1 and int(probe[0]["cells"][3]) >= 4 and int(probe[0]["cells"][4]) >= 1,
          "plugin probe: requests >= 4, 4xx >= 1 (%r)" % (probe[0]["cells"] if probe else None))
    events = d.tables.get("events", [])
    reload = [r for r in events if r["attrs"].get("data-kind") == "reload"
              and r["attrs"].get("data-generation") == "2"]
    check(len(reload) == 1 and "generation 1 draining" in reload[0]["cells"],
          "the reload to generation 2 is in the events")
    crash = [r for r in events if r["attrs"].get("data-kind") == "crash"]
    check(len(crash) == 1 and crash[0]["attrs"].get("data-pid") == str(crashed),
          "the crash of pid %d is in the events (%r)" % (crashed, [r["attrs"] for r in crash]))
    if crash:
        cells = crash[0]["cells"]
        check("killed by signal SEGV" in cells and "probe" in cells and str(crashed) in cells,
              "the crash row names the signal, the plugin and the pid: %r" % cells)
        check("GET " + CRASH_TARGET in cells, "the crash's request target shown as text")
    check(not d.tags_in_cells and "<b>" not in dom,
          "no element made from a value (tags in cells: %r)" % d.tags_in_cells)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: status_page.py OUT_DIR")
    out_dir = sys.argv[1]
    workdir = tempfile.mkdtemp(prefix="csgi-status-page-")
    s = None
    try:
        s = Server(workdir)
        crashed, slow = exercise(s)
        dom, shot = run_chromium("http://127.0.0.1:%d/" % s.stats_port, out_dir,
                                 os.path.join(workdir, "chromium"))
        check_dom(dom, crashed)
        with open(shot, "rb") as f:
            png = f.read()
        check(png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 20000,
              "screenshot %s (%d bytes)" % (shot, len(png)))
        check(s.stop() == 0, "csgi-server stopped cleanly")
        slow.join(20)
    finally:
        if s:
            s.stop()
        shutil.rmtree(workdir, ignore_errors=True)
    if failures:
        print("%d check(s) failed; the DOM is in %s" % (len(failures), out_dir))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
