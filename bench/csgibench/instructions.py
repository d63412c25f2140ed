"""Instruction mode: instructions per request under callgrind (or perf), as the slope
between two request counts."""

import glob
import os
import shutil
import subprocess
import tempfile

from .build import ensure_tool
from .common import GLIBC_TUNABLES, die, log
from .load import Progress
from .server import KeepAliveClient, start_server


def callgrind_total(path):
    total = None
    with open(path, errors="replace") as f:
        for line in f:
            if line.startswith("totals:") or (line.startswith("summary:") and total is None):
                total = int(line.split()[1])
    return total


def perf_total(path):
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[2].startswith("instructions") and parts[0].isdigit():
                return int(parts[0])
    return None


def perf_works():
    try:
        p = subprocess.run(["perf", "stat", "-x,", "-e", "instructions:u", "true"],
                           capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return any(l.split(",")[0].isdigit() for l in p.stderr.splitlines())


def count_once(t, ep, n, args, tool):
    """Instructions of the serving process(es) for n requests; (count, record)."""
    path = t.endpoints[ep]
    workdir = tempfile.mkdtemp(prefix="instr-%s-%s-%d-" % (t.name, ep, n), dir=args.tmp)
    rec = {"target": t.name, "endpoint": ep, "requests": n}
    if tool == "callgrind":
        wrapper = [args.valgrind, "--tool=callgrind", "--callgrind-out-file=%s/cg.%%p" % workdir,
                   "--dump-line=no", "--compress-strings=no"]
    else:
        wrapper = ["perf", "stat", "-x,", "-e", "instructions:u", "-o",
                   os.path.join(workdir, "perf.out"), "--"]
    env = {"GLIBC_TUNABLES": GLIBC_TUNABLES}
    server = start_server(t, args, workdir, 1, 1, wrapper=wrapper, env_extra=env,
                          single_process=True)
    try:
        why = server.wait_ready(args.start_timeout * 6)
        if why:
            rec["dead"] = why
            return None, rec
        client = KeepAliveClient(server.port, 120)
        statuses = {}
        try:
            for _ in range(n):
                st = client.get(path)
                statuses[st] = statuses.get(st, 0) + 1
        except (OSError, ValueError, IndexError) as e:
            rec["dead"] = "request failed: %s: %s" % (type(e).__name__, e)
            return None, rec
        finally:
            client.close()
        rec["statuses"] = {str(k): v for k, v in statuses.items()}
        rec["errors"] = sum(v for k, v in statuses.items() if not 200 <= k < 300)
        server.tree()
    finally:
        why = server.stop(args.stop_timeout * 12)
        if why:
            rec["stop"] = why
    if tool == "callgrind":
        files = glob.glob(os.path.join(workdir, "cg.*"))
        counts = {}
        for fpath in files:
            pid = int(fpath.rsplit(".", 1)[1])
            counts[pid] = callgrind_total(fpath)
        rec["per_process"] = {str(k): v for k, v in counts.items()}
        serving = {p: c for p, c in counts.items() if p != server.pid} or counts
        total = sum(c for c in serving.values() if c)
    else:
        total = perf_total(os.path.join(workdir, "perf.out"))
    if not args.keep_tmp:
        shutil.rmtree(workdir, ignore_errors=True)
    rec["instructions"] = total
    return total, rec


def instructions_mode(args, targets, endpoints):
    tool = args.instr_tool
    if tool == "auto":
        tool = "perf" if perf_works() else "callgrind"
    if tool == "callgrind":
        args.valgrind = ensure_tool("valgrind", "valgrind")
        if not args.valgrind:
            die("valgrind is needed for --instructions and could not be installed")
    n1, n2 = args.instr_requests
    combos = [(t, e) for e in endpoints for t in targets if t.available and e in t.endpoints]
    prog = Progress(len(combos) * 2, 15.0)
    runs, results = [], []
    for t, ep in combos:
        counts = []
        # Python under callgrind is ~100x slower per request: fewer requests, same method.
        scale = 5 if t.kind in ("gunicorn", "uwsgi") or t.spec.get("python") else 1
        ns = (max(1, n1 // scale), max(2, n2 // scale))
        for n in ns:
            if t.dead:
                break
            prog.show("%s %s: %d requests under %s" % (t.name, ep, n, tool))
            c, rec = count_once(t, ep, n, args, tool)
            runs.append(rec)
            prog.done += 1
            if rec.get("dead"):
                t.dead = rec["dead"]
                prog.finish()
                log("%s is dead: %s" % (t.name, rec["dead"]))
            counts.append(c)
        r = {"target": t.name, "endpoint": ep, "role": t.role, "tool": tool,
             "requests": list(ns)}
        if len(counts) == 2 and None not in counts:
            r["instructions"] = counts
            r["per_request"] = (counts[1] - counts[0]) / (ns[1] - ns[0])
            r["startup"] = counts[0] - r["per_request"] * ns[0]
            errs = sum(x.get("errors", 0) for x in runs[-2:])
            r["errors"] = errs
        else:
            r["dead"] = t.dead or "no count"
        results.append(r)
    prog.finish()
    for t in targets:
        if not t.available:
            for ep in endpoints:
                if ep in t.endpoints:
                    results.append({"target": t.name, "endpoint": ep, "role": t.role,
                                    "skipped": t.note})
    return tool, runs, results
