"""--sse N: N waiting requests on one csgi-server worker (plugins/sse).

Starts csgi-server with the sse plugin alone (one worker, --threads of the
command line, 4 KiB --conn-memory), runs bench/sse_bench against it (which
subscribes, publishes timed events and reads the worker's RSS, threads and CPU
time while the requests wait), and writes the runs to OUT/results.json (mode
"sse"; bench/baseline/sse/ holds the one the README quotes) and their table to
OUT/results.md. --sse-mode stream: N server-sent-event subscribers (GET /sse/);
poll: N idle long polls (GET /sse/poll), answered by one event; both: each.
Each stream run is followed by the same run on bench/mhd_sse, a raw
libmicrohttpd broadcast channel (the floor under the gateway, as mhd_hello is
for the load tables).
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


# The connection memory of both servers (csgi-server's --conn-memory minimum).
CONN_MEMORY = 4096

# What a run's "server" field names, in the table.
SERVER_NAMES = {"csgi": "csgi-server", "mhd": "libmicrohttpd alone (mhd_sse)"}


def server_argv(args, server, mode, port):
    """The command line of @p server ("csgi": csgi-server with plugins/sse and one worker;
    "mhd": bench/mhd_sse, the floor)."""
    max_conn = str(2 * args.sse + 100)
    if server == "mhd":
        return [os.path.join(args.build_dir, "bench", "mhd_sse"), str(port), str(CONN_MEMORY),
                max_conn, "/sse"]
    plugdir = os.path.join(args.tmp, "sse-plugins")
    os.makedirs(plugdir, exist_ok=True)
    shutil.copy(os.path.join(args.build_dir, "plugins", "sse.so"), plugdir)
    argv = [os.path.join(args.build_dir, "server", "csgi-server"), "--plugins", plugdir,
            "--bind", "127.0.0.1:%d" % port, "--workers", "1",
            "--threads", str(args.threads), "--conn-memory", str(CONN_MEMORY),
            "--max-connections", max_conn, "--max-connections-per-ip", "0",
            "--log-level", "warn", "--error-log", os.path.join(args.tmp, "sse-error-%d.log" % port)]
    if mode == "poll":
        argv += ["--set", "sse.heartbeat_ms=%d" % POLL_HEARTBEAT_MS]
    return argv


def one_run(args, mode, port, server="csgi"):
    """One server and one sse_bench run of @p mode; the bench's JSON line, with the load
    average before it and the settings."""
    client = os.path.join(args.build_dir, "bench", "sse_bench")
    argv = server_argv(args, server, mode, port)
    load = loadavg()
    srv = subprocess.Popen(argv, stdout=subprocess.DEVNULL)
    try:
        worker = None
        end = time.time() + args.start_timeout
        while worker is None and time.time() < end:
            time.sleep(0.1)
            # mhd_sse serves in its own process; csgi-server in its worker.
            kids = proc_tree(srv.pid)[1:] if server == "csgi" else [srv.pid]
            worker = kids[0] if kids else None
        if worker is None:
            die("--sse: %s started no worker" % SERVER_NAMES[server])
        time.sleep(0.5)
        cmd = [client, "--port", str(port), "--subscribers", str(args.sse),
               "--events", str(args.sse_events), "--interval-ms", str(args.sse_interval_ms),
               "--pid", str(worker), "--timeout-s", "120", "--mode", mode]
        log("sse: " + " ".join(cmd))
        res = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, timeout=180)
        line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
        doc = dict(json.loads(line), server=server, threads=args.threads, load_before=load,
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
    L = ["| Server | Waiting requests | Events | Delivered | p50 | p99 | Worker CPU per event | "
         "Worker RSS | Worker threads | Load before |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in doc["runs"]:
        what = "%s %s" % ("{:,}".format(r["subscribers"]),
                          "SSE subscribers" if r["mode"] == "stream" else "idle long polls")
        events = "%d, %s ms apart" % (r["events"], "{:,}".format(r["interval_ms"])) \
            if r["mode"] == "stream" else "1 (answers every poll)"
        load = r.get("load_before")
        # A run that delivered nothing has no latency to tell (sse_bench says -1).
        whole = r["delivered"] > 0 and r["p99_ms"] >= 0
        short = "" if r.get("subscribed", r["subscribers"]) >= r["subscribers"] else \
            " (%s subscribed)" % "{:,}".format(r["subscribed"])
        L.append("| %s | %s | %s | %s of %s%s | %s | %s | %s | %s | %d | %s |" % (
            SERVER_NAMES[r.get("server", "csgi")], what, events,
            "{:,}".format(r["delivered"]), "{:,}".format(r["expected"]), short,
            "%.0f ms" % r["p50_ms"] if whole else "-", "%.0f ms" % r["p99_ms"] if whole else "-",
            "%.0f ms" % r["worker_cpu_ms_per_event"] if whole else "-",
            mib(r["worker_rss_kib"]), r["worker_threads"], "%.1f" % load[0] if load else "?"))
    spread = []
    for server in ("csgi", "mhd"):
        mine = [r for r in doc["runs"]
                if r["mode"] == "stream" and r.get("server", "csgi") == server]
        streams = [r for r in mine if r["delivered"] >= r["expected"]]
        if len(streams) < len(mine):
            spread.append("%s: %d of its %d stream runs did not deliver every event (left out "
                          "below)." % (SERVER_NAMES[server], len(mine) - len(streams), len(mine)))
        if len(streams) > 1:
            p99 = [r["p99_ms"] for r in streams]
            cpu = [r["worker_cpu_ms_per_event"] for r in streams]
            rss = [r["worker_rss_kib"] for r in streams]
            spread.append("%s over its %d stream runs: p99 %.0f-%.0f ms, worker CPU per event "
                          "%.0f-%.0f ms, RSS %s-%s." % (
                              SERVER_NAMES[server], len(streams), min(p99), max(p99), min(cpu),
                              max(cpu), mib(min(rss)), mib(max(rss))))
    if spread:
        L += [""] + spread + ["(libmicrohttpd %s, %s, %d cores, %s.)" % (
            doc["meta"]["versions"].get("libmicrohttpd") or "?", doc["meta"]["buildtype"],
            doc["meta"]["cores"], doc["meta"]["date"])]
    return "\n".join(L)


def run_sse(args, out_dir):
    for f in (os.path.join(args.build_dir, "plugins", "sse.so"),
              os.path.join(args.build_dir, "server", "csgi-server"),
              os.path.join(args.build_dir, "bench", "sse_bench")):
        if not os.path.exists(f):
            die("--sse: %s is missing (build with -Dbench=true -Dexamples=true)" % f)
    modes = ["stream", "poll"] if args.sse_mode == "both" else [args.sse_mode]
    # The floor beside each stream run, right after it: the same subscribers and events on
    # libmicrohttpd alone (mhd_sse speaks the stream protocol only).
    floor = os.path.exists(os.path.join(args.build_dir, "bench", "mhd_sse"))
    runs = []
    for mode in modes:
        for _ in range(args.sse_runs):
            for server in ("csgi", "mhd") if mode == "stream" and floor else ("csgi",):
                r = one_run(args, mode, free_port(), server)
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
