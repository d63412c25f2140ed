"""Load mode: wrk runs against a fresh server per target x endpoint x round."""

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

from .common import LIB, MARK, NCPU, WRK_SHAPE_ARGS, die, log
from .server import machine_cpu, pin_fn, precheck, start_server, tree_cpu, vm_hwm_kib


def wrk_script(workdir, strict):
    with open(os.path.join(LIB, "report.lua")) as f:
        text = f.read()
    if strict:
        with open(os.path.join(LIB, "status.lua")) as f:
            text += "\n" + f.read()
    path = os.path.join(workdir, "wrk-strict.lua" if strict else "wrk.lua")
    with open(path, "w") as f:
        f.write(text)
    return path


def run_wrk(args, url, duration, script, workdir, tag, shape="keepalive"):
    """Run wrk once, bounded; returns (record dict, error text or None)."""
    argv = [args.wrk, "-t", str(args.threads_load), "-c", str(args.connections),
            "-d", "%ds" % duration, "--timeout", "%gs" % args.wrk_timeout, "-s", script]
    argv += WRK_SHAPE_ARGS[shape] + [url]
    out_path = os.path.join(workdir, "wrk-%s.out" % tag)
    with open(out_path, "wb") as out:
        t0 = time.monotonic()
        p = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=pin_fn(args.load_cpus))
        deadline = t0 + duration + args.wrk_timeout + 15
        status = ru = None
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                os.kill(p.pid, signal.SIGKILL)
                _, status, ru = os.wait4(p.pid, 0)
                p.returncode = -9
                return None, "wrk did not finish within %.0f s (killed)" % (deadline - t0)
            time.sleep(0.02)
        p.returncode = os.waitstatus_to_exitcode(status)
        wall = time.monotonic() - t0
    with open(out_path, errors="replace") as f:
        text = f.read()
    rec = None
    for line in text.splitlines():
        if line.startswith(MARK):
            rec = json.loads(line[len(MARK):])
    if rec is None:
        return None, "wrk printed no result (status %d): %s" % (
            p.returncode, " ".join(text.split())[-300:])
    rec["wrk_cpu_s"] = ru.ru_utime + ru.ru_stime
    rec["wrk_wall_s"] = wall
    rec["argv"] = argv
    return rec, None


def failure(server):
    """A failed wrk run: the target is dead if its server died, else the run failed."""
    return "failed" if server.alive() else "dead"


def measure_one(t, ep, args, rnd, base_tmp, script, shape="keepalive"):
    """Fresh server, precheck, warm-up, measured run, stop. Returns a run record."""
    path = t.endpoints[ep]
    rec = {"target": t.name, "endpoint": ep, "shape": shape, "path": path, "round": rnd,
           "time": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")}
    workdir = tempfile.mkdtemp(prefix="%s-%s-%s-r%d-" % (t.name, ep, shape, rnd), dir=base_tmp)
    server = start_server(t, args, workdir, args.workers, args.threads)
    rec["argv"] = server.argv
    try:
        why = server.wait_ready(args.start_timeout)
        if why:
            rec["dead"] = why
            return rec
        rec["precheck"] = precheck(server, path, args.start_timeout)
        if rec["precheck"]["status"] is None:
            rec["dead"] = "no answer on port %d: %s" % (server.port, rec["precheck"]["error"])
            return rec
        url = "%s://127.0.0.1:%d%s" % ("https" if server.cafile else "http", server.port, path)
        if args.warmup > 0:
            w, err = run_wrk(args, url, args.warmup, script, workdir, "warmup", shape)
            if err:
                rec[failure(server)] = "warm-up: " + err
                return rec
            rec["warmup"] = {"requests": w["requests"], "errors": w["errors"]}
        pids0 = server.tree()
        by0 = tree_cpu(pids0)
        m0 = machine_cpu()
        r, err = run_wrk(args, url, args.duration, script, workdir, "run", shape)
        pids1 = server.tree()
        by1 = tree_cpu(pids1)
        m1 = machine_cpu()
        cpu0, cpu1 = sum(by0.values()), sum(by1.values())
        if err:
            rec[failure(server)] = err
            return rec
        rec["wrk"] = r
        secs = r["duration_us"] / 1e6
        n = r["requests"]
        e = r["errors"]
        rec["rps"] = n / secs if secs > 0 else 0.0
        rec["socket_errors"] = e["connect"] + e["read"] + e["write"] + e["timeout"]
        rec["status_errors"] = max(e["status"], r.get("non2xx", 0))
        rec["errors"] = rec["socket_errors"] + rec["status_errors"]
        rec["server_cpu_s"] = cpu1 - cpu0
        rec["cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / n if n else None
        rec["server_cpu_frac"] = (cpu1 - cpu0) / r["wrk_wall_s"]
        rec["wrk_cpu_frac"] = r["wrk_cpu_s"] / (r["wrk_wall_s"] * args.threads_load)
        rec["wrk_saturated"] = rec["wrk_cpu_frac"] >= args.saturation
        dt, di = m1[0] - m0[0], m1[1] - m0[1]
        rec["machine_busy"] = 1 - di / dt if dt > 0 else None
        if rec["machine_busy"] is not None:
            # Cores used by neither wrk nor the server: other processes on the machine.
            rec["other_cores"] = max(0.0, rec["machine_busy"] * NCPU - rec["server_cpu_frac"]
                                     - r["wrk_cpu_s"] / r["wrk_wall_s"])
        hwm = {p: vm_hwm_kib(p) for p in pids1}
        rec["rss_kib"] = {str(p): v for p, v in hwm.items() if v is not None}
        workers = [p for p in pids1 if p != server.pid] or [server.pid]
        ws = [hwm[p] for p in workers if hwm.get(p)]
        rec["rss_worker_kib"] = max(ws) if ws else None
        rec["rss_total_kib"] = sum(v for v in hwm.values() if v)
        rec["latency_us"] = r["latency_us"]
        rec["cpu_s_by_pid"] = {str(p): round(by1[p] - by0.get(p, 0.0), 3) for p in by1}
        wcpu = [by1[p] - by0.get(p, 0.0) for p in workers if p in by1]
        if len(wcpu) > 1 and sum(wcpu) > 0:
            # 1.0: the busiest worker did all the work; 1/len: perfectly even.
            rec["worker_cpu_max_share"] = max(wcpu) / sum(wcpu)
        if set(pids0) != set(pids1):
            rec["process_change"] = "server processes changed during the run: %s -> %s" % (
                sorted(pids0), sorted(pids1))
        return rec
    finally:
        why = server.stop(args.stop_timeout)
        if why:
            rec["stop"] = why
        elif server.status is not None and "dead" not in rec:
            code = os.waitstatus_to_exitcode(server.status)
            if code != 0 and t.kind != "nginx":
                rec["stop"] = "server %s on SIGTERM" % server.exit_text()
        if server.rusage is not None:
            ru = server.rusage
            rec["server_total_cpu_s"] = ru.ru_utime + ru.ru_stime
        if not args.keep_tmp:
            shutil.rmtree(workdir, ignore_errors=True)


def fmt_eta(s):
    s = int(max(0, s))
    return "%dm%02ds" % (s // 60, s % 60) if s >= 60 else "%ds" % s


class Progress:
    def __init__(self, total, per_run):
        self.total = total
        self.done = 0
        self.t0 = time.monotonic()
        self.per_run = per_run
        self.tty = sys.stderr.isatty()

    def show(self, text):
        left = self.total - self.done
        if self.done:
            per = (time.monotonic() - self.t0) / self.done
        else:
            per = self.per_run
        line = "[%d/%d] %s  ETA %s" % (self.done + 1, self.total, text, fmt_eta(left * per))
        if self.tty:
            sys.stderr.write("\r\033[K" + line)
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def finish(self):
        if self.tty:
            sys.stderr.write("\r\033[K")
        sys.stderr.flush()


def load_mode(args, targets, endpoints, meta):
    script = wrk_script(args.tmp, args.strict_status)
    with open("/proc/loadavg") as f:
        la = float(f.read().split()[0])
    meta["loadavg_before"] = la
    if la > 0.5:
        log("the machine is not idle (load average %.2f): expect noisy req/s" % la)
    combos = [(t, e, sh) for sh in args.shapes for e in endpoints for t in targets
              if t.available and e in t.endpoints]
    if not combos:
        die("nothing to run: no available target serves the selected endpoints")
    per_run = 1.0 + args.warmup + args.duration
    prog = Progress(len(combos) * args.rounds, per_run)
    runs = []
    for rnd in range(1, args.rounds + 1):
        k = (rnd - 1) % len(combos)
        order = combos[k:] + combos[:k]   # rotate: no combo always runs first
        for t, ep, sh in order:
            if t.dead:
                runs.append({"target": t.name, "endpoint": ep, "shape": sh, "round": rnd,
                             "skipped": "target dead: " + t.dead})
                prog.done += 1
                continue
            what = "%s %s%s" % (t.name, ep, "" if args.shapes == ["keepalive"] else " " + sh)
            prog.show("%s round %d/%d" % (what, rnd, args.rounds))
            rec = measure_one(t, ep, args, rnd, args.tmp, script, sh)
            if rec.get("dead"):
                t.dead = rec["dead"]
                prog.finish()
                log("%s is dead, skipping it from now on: %s" % (t.name, rec["dead"]))
            elif rec.get("failed"):
                prog.finish()
                log("%s round %d failed: %s" % (what, rnd, rec["failed"]))
            runs.append(rec)
            prog.done += 1
    prog.finish()
    return runs
