"""--sse N: N waiting requests on one csgi-server worker (plugins/sse).

Starts csgi-server with the sse plugin alone (one worker, --threads of the
command line, 4 KiB --conn-memory), runs bench/sse_bench against it (which
subscribes, publishes timed events and reads the worker's RSS, threads and CPU
time while the requests wait), and writes the runs to OUT/results.json (mode
"sse"; bench/baseline/sse/ holds the one the README quotes) and their table to
OUT/results.md. --sse-mode stream: N server-sent-event subscribers (GET /sse/);
poll: N idle long polls (GET /sse/poll), answered by one event; both: each.
--sse-runs R repeats each mode R times, each on a fresh server, and records the
machine's load average before each run: the delivery latency depends on it.
"""

import datetime
import json
import os
import platform
import shutil
import subprocess
import time

from .build import build_type, mhd_version
from .common import NCPU, die, log
from .server import free_port, proc_tree

# A poll waits heartbeat_ms before its 204: longer than any subscribe phase here.
POLL_HEARTBEAT_MS = 120000


def loadavg():
    """The 1-, 5- and 15-minute load averages, or None."""
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def one_run(args, mode, port):
    """One csgi-server and one sse_bench run of @p mode; the bench's JSON line, with the load
    average before it and the settings."""
    plugdir = os.path.join(args.tmp, "sse-plugins")
    os.makedirs(plugdir, exist_ok=True)
    shutil.copy(os.path.join(args.build_dir, "plugins", "sse.so"), plugdir)
    server = os.path.join(args.build_dir, "server", "csgi-server")
    client = os.path.join(args.build_dir, "bench", "sse_bench")
    argv = [server, "--plugins", plugdir, "--bind", "127.0.0.1:%d" % port, "--workers", "1",
            "--threads", str(args.threads), "--conn-memory", "4096", "--max-connections",
            str(2 * args.sse + 100), "--max-connections-per-ip", "0", "--log-level", "warn",
            "--error-log", os.path.join(args.tmp, "sse-error.log")]
    if mode == "poll":
        argv += ["--set", "sse.heartbeat_ms=%d" % POLL_HEARTBEAT_MS]
    load = loadavg()
    srv = subprocess.Popen(argv)
    try:
        worker = None
        end = time.time() + args.start_timeout
        while worker is None and time.time() < end:
            time.sleep(0.1)
            kids = proc_tree(srv.pid)[1:]
            worker = kids[0] if kids else None
        if worker is None:
            die("--sse: csgi-server started no worker")
        time.sleep(0.5)
        cmd = [client, "--port", str(port), "--subscribers", str(args.sse),
               "--events", str(args.sse_events), "--interval-ms", str(args.sse_interval_ms),
               "--pid", str(worker), "--timeout-s", "120", "--mode", mode]
        log("sse: " + " ".join(cmd))
        res = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, timeout=180)
        line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
        doc = dict(json.loads(line), threads=args.threads, load_before=load,
                   ok=res.returncode == 0)
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=args.stop_timeout)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    return doc


def mib(kib):
    return "%.1f MiB" % (kib / 1024.0)


def sse_table(doc):
    """The runs of an --sse results document as a markdown table and a line on the spread
    (pure)."""
    L = ["| Waiting requests | Events | Delivered | p50 | p99 | Worker CPU per event | "
         "Worker RSS | Worker threads | Load before |",
         "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in doc["runs"]:
        what = "%s %s" % ("{:,}".format(r["subscribers"]),
                          "SSE subscribers" if r["mode"] == "stream" else "idle long polls")
        events = "%d, %s ms apart" % (r["events"], "{:,}".format(r["interval_ms"])) \
            if r["mode"] == "stream" else "1 (answers every poll)"
        load = r.get("load_before")
        L.append("| %s | %s | %s of %s | %.0f ms | %.0f ms | %.0f ms | %s | %d | %s |" % (
            what, events, "{:,}".format(r["delivered"]), "{:,}".format(r["expected"]),
            r["p50_ms"], r["p99_ms"], r["worker_cpu_ms_per_event"], mib(r["worker_rss_kib"]),
            r["worker_threads"], "%.1f" % load[0] if load else "?"))
    streams = [r for r in doc["runs"] if r["mode"] == "stream"]
    if len(streams) > 1:
        p99 = [r["p99_ms"] for r in streams]
        cpu = [r["worker_cpu_ms_per_event"] for r in streams]
        L += ["", "Over the %d stream runs: p99 %.0f-%.0f ms, worker CPU per event %.0f-%.0f ms "
              "(libmicrohttpd %s, %s, %d cores, %s)." % (
                  len(streams), min(p99), max(p99), min(cpu), max(cpu),
                  doc["meta"]["versions"].get("libmicrohttpd") or "?",
                  doc["meta"]["buildtype"], doc["meta"]["cores"], doc["meta"]["date"])]
    return "\n".join(L)


def run_sse(args, out_dir):
    for f in (os.path.join(args.build_dir, "plugins", "sse.so"),
              os.path.join(args.build_dir, "server", "csgi-server"),
              os.path.join(args.build_dir, "bench", "sse_bench")):
        if not os.path.exists(f):
            die("--sse: %s is missing (build with -Dbench=true -Dexamples=true)" % f)
    modes = ["stream", "poll"] if args.sse_mode == "both" else [args.sse_mode]
    runs = []
    for mode in modes:
        for _ in range(args.sse_runs):
            r = one_run(args, mode, free_port())
            r["interval_ms"] = args.sse_interval_ms
            runs.append(r)
            print(json.dumps(r))
    doc = {"mode": "sse", "meta": {
        "command": "bench/csgi-bench --sse %d --sse-mode %s --sse-runs %d --sse-events %d "
                   "--sse-interval-ms %d --threads %d" % (
                       args.sse, args.sse_mode, args.sse_runs, args.sse_events,
                       args.sse_interval_ms, args.threads),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cores": NCPU, "kernel": platform.release(), "buildtype": build_type(args.build_dir),
        "versions": {"libmicrohttpd": mhd_version(args.build_dir)}}, "runs": runs}
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    md = sse_table(doc) + "\n"
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    print(md, end="")
    log("wrote %s/results.{json,md}" % out_dir)
    return 0 if all(r["ok"] for r in runs) else 1
