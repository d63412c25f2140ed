"""Names shared by every part of csgi-bench: the endpoints, the targets, their order and what
each one is, the load shapes, logging."""

import os
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(ROOT, "bench")
LIB = os.path.join(BENCH, "lib")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NCPU = os.cpu_count() or 1

# The app's test types (TechEmpower's, plus items), in table order.
ENDPOINTS = [
    ("plaintext", "/plaintext"),
    ("json", "/json"),
    ("db", "/db"),
    ("queries", "/queries?queries=20"),
    ("fortunes", "/fortunes"),
    ("updates", "/updates?queries=20"),
    ("items", "/items?limit=10"),
]
ENDPOINT_NAMES = [e for e, _ in ENDPOINTS]
APP_PATHS = dict(ENDPOINTS)

# The world app as raw CSGI and on each framework; all are mounted at /app so
# that every target gets byte-identical requests.
WORLD_APPS = [("raw", "world_raw"), ("resource", "world_resource"), ("route", "world_route")]
APP_MOUNT = "/app"
FRAMEWORK_TARGETS = {"resource", "route"}

# Table and chart order: the floor first, then the ceiling, then ours, then the article's pick.
TARGET_ORDER = ["mhd", "nginx", "hello", "raw", "resource", "route", "falcon"]
PEERS = {"mhd", "nginx", "falcon"}

# The WSGI races (issue 14): each framework of the article on csgi-server's wsgi plugin and on
# the article's Python servers, bench/peers/wsgi_apps.py everywhere. Selected only by name
# or with --targets python (a default run leaves them out).
WSGI_FRAMEWORKS = ["falcon", "bottle", "flask"]
WSGI_SERVERS = [
    ("wsgi", "csgi-server + the wsgi plugin (embedded CPython, plugins/wsgi)"),
    ("gunicorn", "gunicorn, sync workers (the article's set-up)"),
    ("gthread", "gunicorn, gthread workers (keep-alive)"),
    ("uwsgi", "uWSGI with its python3 plugin, --http11-socket (keep-alive)"),
]
PYTHON_TARGETS = ["%s-%s" % (srv, fw) for fw in WSGI_FRAMEWORKS for srv, _ in WSGI_SERVERS]
TARGET_ORDER += PYTHON_TARGETS

# What each target is, for the notes under the tables (and the README's list).
TARGET_NOTES = {
    "mhd": "raw libmicrohttpd (bench/mhd_hello.c) with csgi-server's threading: the floor",
    "nginx": "nginx, return 200, access log off: a ceiling for C HTTP servers",
    "hello": "csgi-server + the hello plugin (GET /hello)",
    "raw": "csgi-server + the World app on raw CSGI (world_raw.so)",
    "resource": "csgi-server + the World app on the resource framework (world_resource.so)",
    "route": "csgi-server + the World app on the route framework (world_route.so)",
    "falcon": "gunicorn (gthread workers) + Falcon, bench/peers/falcon_app.py",
}
TARGET_NOTES.update({"%s-%s" % (srv, fw): "%s; %s from bench/peers/wsgi_apps.py"
                     % (what, fw.capitalize())
                     for fw in WSGI_FRAMEWORKS for srv, what in WSGI_SERVERS})

# The acceptors, for the load-balance note: csgi-server's own, and the kernel's for the peers.
BALANCE_NOTE = (
    "csgi-server's workers share out connections themselves: each worker accepts in its own "
    "thread and stops accepting while it holds more than its generation's average number of "
    "connections (README: \"Balance between workers\"). For the peers with several workers "
    "(nginx, gunicorn) the kernel hands each new connection to whichever worker accepts "
    "first, and with wrk's connections opened all at once the split varies from run to run; "
    "on a small machine it moves req/s too, because an idle worker leaves a core to wrk.")

GLIBC_TUNABLES = ("glibc.cpu.x86_rep_stosb_threshold=0x7fffffff:"
                  "glibc.cpu.x86_rep_movsb_threshold=0x7fffffff")

MARK = "CSGI_BENCH_JSON "

# Connection shapes of the load (--shape), in table order.
SHAPES = ["keepalive", "close"]
SHAPE_TITLES = {
    "keepalive": "Keep-alive: each of wrk's connections carries many requests",
    "close": "Connection per request: every request carries \"Connection: close\", so each one "
             "opens, and the server closes, a new TCP connection (HTTP/1.0 clients, nginx's "
             "default upstream, health checkers)",
}
WRK_SHAPE_ARGS = {"keepalive": [], "close": ["-H", "Connection: close"]}


def shape_of(rec):
    """The shape of a run or summary record; files from before --shape are keep-alive."""
    return rec.get("shape", "keepalive")


def log(msg):
    sys.stderr.write("csgi-bench: %s\n" % msg)
    sys.stderr.flush()


def die(msg, code=2):
    log(msg)
    sys.exit(code)
