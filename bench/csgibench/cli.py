"""The command line (bench/csgi-bench is a launcher for main())."""

import argparse
import datetime
import glob
import os
import platform
import shlex
import shutil
import sys
import tempfile

from .build import (build, build_type, ensure_tool, mhd_trees, mhd_version, python_of,
                    tool_version)
from .common import BENCH, ENDPOINT_NAMES, NCPU, ROOT, SHAPES, die, log
from .compare import compare
from .instructions import instructions_mode
from .load import load_mode
from . import readme
from .output import render, write_outputs
from .sse import run_sse
from .stats import aggregate
from .tls import CIPHER, GROUP, make_cert
from .targets import discover, prepare, select


# Options of load mode that --instructions ignores (it sends a fixed number of requests on
# one keep-alive connection to one worker with one thread): option -> takes a value.
LOAD_ONLY = {"-d": True, "--duration": True, "--warmup": True, "-c": True,
             "--connections": True, "-t": True, "--threads-load": True, "-w": True,
             "--workers": True, "--threads": True, "-r": True, "--rounds": True,
             "--wrk-timeout": True, "--saturation": True, "--strict-status": False,
             "--load-cpus": True}


def strip_options(argv, options):
    """(kept, dropped): argv without the given options and their values (pure).

    options maps an option to whether it takes a value; "-d 5", "-d5" and "--duration=5"
    are all recognized.
    """
    kept, dropped = [], []
    i = 0
    while i < len(argv):
        a = argv[i]
        name = a.split("=", 1)[0] if a.startswith("--") else a[:2]
        if a == "--":
            kept += argv[i:]
            break
        if name in options and (a.startswith("--") or len(a) == 2 or options[name]):
            takes = options[name]
            if takes and a == name and i + 1 < len(argv):
                dropped += argv[i:i + 2]
                i += 2
                continue
            dropped.append(a)
            i += 1
            continue
        kept.append(a)
        i += 1
    return kept, dropped


def parse_cpus(s):
    if not s:
        return None
    out = set()
    for part in s.split(","):
        a, _, b = part.partition("-")
        out.update(range(int(a), int(b or a) + 1))
    return out


def end_tmp(args):
    """Remove the run's scratch directory, or say where it is kept (--keep-tmp)."""
    if args.keep_tmp:
        log("kept run files in %s" % args.tmp)
    else:
        shutil.rmtree(args.tmp, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(
        prog="csgi-bench",
        description="Compare csgi targets (the raw CSGI app, the app on each framework, the "
                    "hello plugin) and peer servers side by side.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(ROOT, "build-bench"),
                    help="release build directory (configured and built unless --no-build)")
    ap.add_argument("--no-build", action="store_true", help="use --build-dir as it is")
    ap.add_argument("-d", "--duration", type=int, default=10,
                    help="seconds per measured run (wrk takes whole seconds)")
    ap.add_argument("--warmup", type=int, default=2,
                    help="seconds of discarded warm-up load (0: none)")
    ap.add_argument("-c", "--connections", type=int, default=100, help="wrk connections")
    ap.add_argument("--shape", choices=["keepalive", "close", "both"], default="keepalive",
                    help="keepalive: many requests per connection; close: \"Connection: close\" "
                    "on every request, so one connection per request; both: a table for each")
    ap.add_argument("--tls", action="store_true",
                    help="serve over HTTPS: csgi-server targets and nginx with one certificate "
                    "(ECDSA P-256), TLS 1.3, TLS_AES_128_GCM_SHA256 and X25519; with --shape "
                    "close every request is a new handshake; other targets are skipped")
    ap.add_argument("-t", "--threads-load", type=int, default=1, help="wrk threads")
    ap.add_argument("-w", "--workers", type=int, default=NCPU, help="server worker processes")
    ap.add_argument("--threads", type=int, default=1, help="server threads per worker")
    ap.add_argument("-r", "--rounds", type=int, default=3, help="interleaved rounds")
    ap.add_argument("--targets", help="comma-separated target names (also: apps, peers); "
                    "default: all available")
    ap.add_argument("--endpoints", help="comma-separated endpoints; default: all of %s"
                    % ",".join(ENDPOINT_NAMES))
    ap.add_argument("--no-peers", action="store_true", help="leave out mhd, nginx and falcon")
    ap.add_argument("--extra-targets", action="append", metavar="FILE",
                    help="JSON list of extra targets (see bench/README.md)")
    ap.add_argument("--server-arg", action="append", metavar="ARG",
                    help="extra csgi-server argument (repeatable; use --server-arg=--x)")
    ap.add_argument("--mhd-versions", type=lambda s: [v.strip() for v in s.split(",") if v.strip()],
                    metavar="LIST",
                    help="libmicrohttpd versions to measure mhd and hello on, e.g. 0.9,1.0: "
                    "for each one the build is not on, a second release tree (BUILD-DIR-mhd10 "
                    "for 1.0) against scripts/deps.sh --mhd VERSION, and the targets mhd@1.0 "
                    "and hello@1.0 (default: the build's own only)")
    ap.add_argument("--mhd-pool", type=int, default=16384,
                    help="mhd_hello's connection memory (csgi-server's --conn-memory default)")
    ap.add_argument("--wrk-timeout", type=float, default=5.0, help="wrk --timeout seconds")
    ap.add_argument("--start-timeout", type=float, default=15.0,
                    help="seconds a server may take to be ready before it counts as dead")
    ap.add_argument("--stop-timeout", type=float, default=10.0,
                    help="seconds after SIGTERM before SIGKILL")
    ap.add_argument("--strict-status", action="store_true",
                    help="check every response's status in a wrk Lua hook (slower wrk)")
    ap.add_argument("--saturation", type=float, default=0.9,
                    help="wrk CPU share (per thread) from which wrk counts as saturated")
    ap.add_argument("--server-cpus", type=parse_cpus, help="pin servers to these CPUs (0,1-3)")
    ap.add_argument("--load-cpus", type=parse_cpus, help="pin wrk to these CPUs")
    ap.add_argument("-o", "--out", help="output directory (default bench/results/DATE-TIME)")
    ap.add_argument("--keep-tmp", action="store_true", help="keep each run's logs and files")
    ap.add_argument("--instructions", action="store_true",
                    help="count instructions per request instead of driving load")
    ap.add_argument("--instr-requests", default="500,2000",
                    type=lambda s: tuple(int(x) for x in s.split(",")),
                    help="the two request counts of --instructions")
    ap.add_argument("--instr-tool", choices=["auto", "callgrind", "perf"], default="callgrind",
                    help="how --instructions counts (auto: perf stat when it has counters)")
    ap.add_argument("--compare", nargs="+", metavar="JSON",
                    help="OLD.json [NEW.json]: print the change per figure (NEW defaults to "
                    "the newest bench/results/*/results.json)")
    ap.add_argument("--fail-over", type=float, metavar="PCT",
                    help="with --compare: exit 1 if a figure got worse by more than PCT %% "
                    "beyond the old run's noise")
    ap.add_argument("--noise-floor", type=float, metavar="PCT",
                    help="with --compare: changes up to PCT %% are never called better or "
                    "worse (default: 2 for load runs, 10 for load rows of one round, 0.5 for "
                    "instruction counts; a larger measured spread takes precedence)")
    ap.add_argument("--render-readme", action="store_true",
                    help="rewrite the generated blocks of README.md from "
                    "bench/baseline/*/results.json (--check: only say whether they match)")
    ap.add_argument("--check", action="store_true",
                    help="with --render-readme: exit 1 if README.md differs, change nothing")
    ap.add_argument("--render", metavar="JSON",
                    help="write results.md, results.svg and results.html again from a "
                    "results.json (into -o, default: beside it)")
    ap.add_argument("--list", action="store_true", help="list targets and endpoints, then exit")
    ap.add_argument("--sse", type=int, metavar="N",
                    help="instead of the targets: N waiting requests on one csgi-server worker "
                    "(plugins/sse, bench/sse_bench): delivery, latency, worker CPU, RSS, threads")
    ap.add_argument("--sse-mode", choices=["stream", "poll", "both"], default="stream",
                    help="--sse: server-sent-event subscribers, idle long polls (answered by "
                    "one event), or a run of each")
    ap.add_argument("--sse-runs", type=int, default=1,
                    help="--sse: runs per mode, each on a fresh server")
    ap.add_argument("--sse-events", type=int, default=5, help="--sse: events to publish")
    ap.add_argument("--sse-interval-ms", type=int, default=2000,
                    help="--sse: milliseconds between events")
    args = ap.parse_args()

    if args.compare:
        old = args.compare[0]
        if len(args.compare) > 1:
            new = args.compare[1]
        else:
            cands = sorted(glob.glob(os.path.join(BENCH, "results", "*", "results.json")))
            if not cands:
                die("--compare: no NEW.json given and no bench/results/*/results.json")
            new = cands[-1]
        sys.exit(compare(old, new, args.fail_over,
                         None if args.noise_floor is None else args.noise_floor / 100))
    if args.render_readme:
        sys.exit(readme.main(check=args.check))

    if args.duration < 1 or args.warmup < 0 or args.rounds < 1:
        die("--duration and --rounds must be at least 1, --warmup at least 0")
    if args.render:
        sys.exit(render(args.render, args.out))
    if args.connections < args.threads_load:
        die("--connections must be at least --threads-load")
    args.shapes = SHAPES if args.shape == "both" else [args.shape]
    if args.instructions and args.shapes != ["keepalive"]:
        die("--instructions counts requests on one keep-alive connection: no --shape")
    if args.instructions and args.tls:
        die("--instructions counts plain HTTP requests: no --tls")
    if len(args.instr_requests) != 2 or args.instr_requests[0] >= args.instr_requests[1]:
        die("--instr-requests wants two increasing counts, e.g. 500,2000")
    args.build_dir = os.path.abspath(args.build_dir)
    if not args.no_build:
        build(args.build_dir)
    if args.sse:
        if args.sse_runs < 1 or args.sse_events < 1:
            die("--sse-runs and --sse-events must be at least 1")
        args.tmp = tempfile.mkdtemp(prefix="csgi-bench-")
        try:
            stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
            return run_sse(args, os.path.abspath(args.out or
                                                 os.path.join(BENCH, "results", stamp)))
        finally:
            end_tmp(args)
    args.mhd_trees = mhd_trees(args)
    if not args.instructions:
        args.wrk = ensure_tool("wrk", "wrk")
        if not args.wrk:
            die("wrk is needed and could not be installed (apt-get install wrk)")

    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out or os.path.join(BENCH, "results", stamp))
    args.tmp = tempfile.mkdtemp(prefix="csgi-bench-")
    try:
        args.tls_files = make_cert(args.tmp) if args.tls else None
        targets = discover(args, args.tmp)
        if args.tls:
            for t in targets:
                if t.kind not in ("csgi", "nginx") and t.available:
                    t.note = "no TLS mode (--tls measures csgi-server and nginx)"
        if args.list:
            for t in targets:
                print("%-10s %-6s %-8s %s%s" % (t.name, t.role, t.kind,
                                                ",".join(t.endpoints),
                                                "" if t.available else "  (unavailable: %s)"
                                                % t.note))
            return 0
        targets, endpoints = select(targets, args)
        for t in targets:
            prepare(t, args, args.tmp)
        for t in targets:
            if not t.available:
                log("skipping %s: %s" % (t.name, t.note))
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                for line in f:
                    if line.startswith("model name"):
                        cpu = line.split(":", 1)[1].strip()
                        break
        except OSError:
            pass
        versions = {"wrk": None}
        if not args.instructions:
            v = tool_version([args.wrk, "-v"])
            versions["wrk"] = v.split()[1] if v and len(v.split()) > 1 else v
        versions["libmicrohttpd"] = (mhd_version(args.build_dir) or
                                     tool_version(["pkg-config", "--modversion", "libmicrohttpd"]))
        for v in args.mhd_trees:
            versions["libmicrohttpd@" + v["label"]] = v["version"]
        for t in targets:
            if t.available and t.kind == "nginx":
                versions["nginx"] = tool_version([t.spec["binary"], "-v"])
            if t.available and t.kind == "gunicorn":
                versions["gunicorn"] = tool_version([t.spec["binary"], "--version"])
                py = python_of(t.spec["binary"]) or "python3"
                versions["falcon"] = tool_version([py, "-c",
                                                   "import falcon; print(falcon.__version__)"])
        rest, ignored = sys.argv[1:], []
        if args.instructions:
            rest, ignored = strip_options(rest, LOAD_ONLY)
            if ignored:
                log("--instructions ignores %s (one worker, one thread, one connection, "
                    "a fixed number of requests)" % " ".join(ignored))
        argv = [os.path.relpath(sys.argv[0], ROOT) if sys.argv[0].startswith(ROOT)
                else sys.argv[0]] + rest
        meta = {"command": " ".join(shlex.quote(a) for a in argv),
                "date": datetime.datetime.now(datetime.timezone.utc)
                .strftime("%Y-%m-%d %H:%M UTC"),
                "cores": NCPU, "cpu": cpu, "kernel": platform.release(),
                "buildtype": build_type(args.build_dir), "build_dir": args.build_dir,
                "versions": versions,
                "settings": {k2: getattr(args, k2) for k2 in (
                    "duration", "warmup", "connections", "threads_load", "workers", "threads",
                    "rounds", "wrk_timeout", "strict_status", "saturation", "mhd_pool")},
                "targets": {t.name: t.describe() for t in targets}, "endpoints": endpoints}
        if args.server_cpus or args.load_cpus:
            meta["settings"]["server_cpus"] = sorted(args.server_cpus or [])
            meta["settings"]["load_cpus"] = sorted(args.load_cpus or [])
        os.makedirs(out_dir, exist_ok=True)
        if args.instructions:
            # Only what the count depends on: no load settings it ignored.
            meta["settings"] = dict({"workers": 1, "threads": 1, "mhd_pool": args.mhd_pool,
                                     "instr_requests": list(args.instr_requests)},
                                    **({"server_cpus": sorted(args.server_cpus)}
                                       if args.server_cpus else {}))
            if ignored:
                meta["ignored_args"] = ignored
            tool, runs, results = instructions_mode(args, targets, endpoints)
            meta["targets"] = {t.name: t.describe() for t in targets}
            doc = {"meta": meta, "mode": "instructions", "runs": runs, "instructions": results}
        else:
            meta["settings"]["shapes"] = args.shapes
            if args.tls:
                meta["settings"]["tls"] = "TLS 1.3, %s, %s, ECDSA P-256 certificate" % (
                    CIPHER, GROUP)
            runs = load_mode(args, targets, endpoints, meta)
            meta["targets"] = {t.name: t.describe() for t in targets}
            summary = aggregate(runs, targets, endpoints, args.shapes)
            doc = {"meta": meta, "mode": "load", "runs": runs, "summary": summary}
        md = write_outputs(out_dir, doc)
        sys.stdout.write(md)
        log("wrote %s/results.{json,md,svg,html}" % out_dir)
        return 0
    finally:
        end_tmp(args)


