"""--sse N: N server-sent-event subscribers on one csgi-server worker (plugins/sse).

Starts csgi-server with the sse plugin alone (one worker, --threads of the
command line, 4 KiB --conn-memory), runs bench/sse_bench against it (which
subscribes, publishes timed events and reads the worker's RSS and threads while
the subscribers wait), and writes its JSON line to OUT/sse.json.
"""

import json
import os
import shutil
import subprocess
import time

from .common import die, log
from .server import free_port, proc_tree


def run_sse(args, out_dir):
    plugin = os.path.join(args.build_dir, "plugins", "sse.so")
    server = os.path.join(args.build_dir, "server", "csgi-server")
    client = os.path.join(args.build_dir, "bench", "sse_bench")
    for f in (plugin, server, client):
        if not os.path.exists(f):
            die("--sse: %s is missing (build with -Dbench=true -Dexamples=true)" % f)
    plugdir = os.path.join(args.tmp, "sse-plugins")
    os.makedirs(plugdir, exist_ok=True)
    shutil.copy(plugin, plugdir)
    port = free_port()
    limit = str(2 * args.sse + 100)
    argv = [server, "--plugins", plugdir, "--bind", "127.0.0.1:%d" % port, "--workers", "1",
            "--threads", str(args.threads), "--conn-memory", "4096", "--max-connections", limit,
            "--max-connections-per-ip", "0", "--log-level", "warn",
            "--error-log", os.path.join(args.tmp, "sse-error.log")]
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
               "--pid", str(worker), "--timeout-s", "120"]
        log("sse: " + " ".join(cmd))
        res = subprocess.run(cmd, stdout=subprocess.PIPE, universal_newlines=True, timeout=180)
        line = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else "{}"
        doc = dict(json.loads(line), threads=args.threads, command=" ".join(cmd))
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=args.stop_timeout)
        except subprocess.TimeoutExpired:
            srv.kill()
            srv.wait()
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "sse.json"), "w") as f:
        json.dump(doc, f, indent=1)
    print(json.dumps(doc))
    return 0 if res.returncode == 0 else 1
