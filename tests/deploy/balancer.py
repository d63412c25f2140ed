#!/usr/bin/env python3
"""Two csgi-server instances behind Debian's HAProxy and nginx, with the
shipped configurations (contrib/haproxy/haproxy.cfg, contrib/nginx/csgi.conf;
only their loopback ports are changed).

Three runs: HAProxy (PROXY v2, health checks on /healthz), nginx with an
upstream keep-alive pool (HTTP/1.1), nginx with its default HTTP/1.0
upstream. In each, from a client on 127.0.0.2 (curl --interface), the echo
plugin must see remote_addr 127.0.0.2 and an instance's access log must
name it (the balancer connects from 127.0.0.1). Then, under wrk load
through the balancer: SIGHUP of instance a, once its new generation
serves SIGHUP of b, then SIGTERM of a (--drain-delay 1: /healthz fails,
then it drains and exits). wrk must report no failed request (no socket
error, no non-2xx), and the balancer's own log no status but 200.

The instances run on separate loopback ports (no network namespaces are
needed); each run takes about 5 s. Environment (tests/deploy/meson.build):
CSGI_SERVER, CSGI_EXAMPLES (hello.so, examples/echo.so), CSGI_SOURCE_ROOT.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

SERVER = os.environ["CSGI_SERVER"]
EXAMPLES = os.environ["CSGI_EXAMPLES"]
SRC = os.environ["CSGI_SOURCE_ROOT"]
LOAD_SECONDS = 3
LOAD_CONNECTIONS = 8
CLIENT_ADDR = "127.0.0.2"

failures = []


def check(cond, what):
    print("%s %s" % ("ok  " if cond else "FAIL", what), flush=True)
    if not cond:
        failures.append(what)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, step=0.02):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def slurp(path):
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Instance:
    """One csgi-server: a plain listener (nginx) and a PROXY one (HAProxy)."""

    def __init__(self, root, name):
        self.name = name
        self.dir = os.path.join(root, name)
        self.plugins = os.path.join(self.dir, "plugins")
        os.makedirs(self.plugins)
        for so in ("hello.so", "examples/echo.so"):
            shutil.copy(os.path.join(EXAMPLES, so), self.plugins)
        self.log = os.path.join(self.dir, "error.log")
        self.access = os.path.join(self.dir, "access.log")
        self.proc = subprocess.Popen(
            [SERVER, "--plugins", self.plugins, "--bind", "127.0.0.1:0",
             "--bind", "127.0.0.1:0,proxy", "--workers", "2", "--health", "/healthz",
             "--drain-delay", "1", "--trusted-proxy", "127.0.0.1", "--graceful-timeout", "10",
             "--error-log", self.log, "--access-log", self.access, "--tmp-dir", self.dir],
            stdin=subprocess.DEVNULL)
        if not wait_for(lambda: self.log_count("worker ready") >= 2, 15):
            raise RuntimeError("%s did not start: %s" % (name, slurp(self.log)))
        log = slurp(self.log)
        self.port = int(re.search(r"listening on http://127\.0\.0\.1:(\d+)/\n", log).group(1))
        self.proxy_port = int(
            re.search(r"listening on http://127\.0\.0\.1:(\d+)/ \(proxy protocol\)", log).group(1))

    def log_count(self, needle):
        return slurp(self.log).count(needle)

    def signal(self, sig):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def reload(self, gen):
        self.signal(signal.SIGHUP)
        return wait_for(lambda: "generation %d ready" % gen in slurp(self.log), 10)

    def stop(self):
        # A second TERM skips the drain delay; the drain itself stays graceful.
        self.signal(signal.SIGTERM)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def substitute(text, ports):
    for old, new in ports.items():
        check(text.count(old) >= 1, "the shipped configuration has %s" % old)
        text = text.replace(old, "127.0.0.1:%d" % new)
    return text


def start_haproxy(root, a, b):
    fe = free_port()
    conf = substitute(slurp(os.path.join(SRC, "contrib/haproxy/haproxy.cfg")),
                      {"127.0.0.1:8080": fe, "127.0.0.1:8001": a.proxy_port,
                       "127.0.0.1:8002": b.proxy_port})
    path = os.path.join(root, "haproxy.cfg")
    with open(path, "w") as f:
        f.write(conf)
    log = os.path.join(root, "haproxy.log")
    proc = subprocess.Popen(["haproxy", "-db", "-f", path], stdin=subprocess.DEVNULL,
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    return proc, fe, log


def start_nginx(root, a, b, front):
    fe = {"keepalive": free_port(), "http10": free_port()}
    site = substitute(slurp(os.path.join(SRC, "contrib/nginx/csgi.conf")),
                      {"127.0.0.1:8080": fe["keepalive"], "127.0.0.1:8090": fe["http10"],
                       "127.0.0.1:8011": a.port, "127.0.0.1:8012": b.port})
    site_path = os.path.join(root, "csgi.conf")
    with open(site_path, "w") as f:
        f.write(site)
    log = os.path.join(root, "nginx-access.log")
    conf = os.path.join(root, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""daemon off;
worker_processes 1;
pid %(root)s/nginx.pid;
error_log %(root)s/nginx-error.log info;
events { worker_connections 1024; }
http {
    log_format up '$status $upstream_addr $upstream_status';
    access_log %(log)s up;
    client_body_temp_path %(root)s/body;
    proxy_temp_path %(root)s/proxy;
    include %(site)s;
}
""" % {"root": root, "log": log, "site": site_path})
    proc = subprocess.Popen(["nginx", "-p", root, "-c", conf], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(root, "nginx.out"), "w"))
    return proc, fe[front], log


def get(url, interface=None):
    cmd = ["curl", "-s", "-m", "5", "-o", "-", "-w", "\n%{http_code}", url]
    if interface:
        cmd[1:1] = ["--interface", interface]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    body, _, code = out.rpartition("\n")
    return code, body


def wrk_failures(out):
    """(requests, failed) from wrk's summary."""
    m = re.search(r"(\d+) requests in", out)
    requests = int(m.group(1)) if m else 0
    failed = 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    if m:
        failed += sum(int(x) for x in m.groups())
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if m:
        failed += int(m.group(1))
    return requests, failed


def balancer_statuses(kind, log):
    """Status codes of the requests the balancer logged (health checks are not logged).

    Left out: requests the client gave up, which wrk does to those in flight
    when its time is up (nginx's 499, HAProxy's termination state C...).
    """
    text = slurp(log)
    if kind == "haproxy":
        # option httplog: '... csgi_front csgi/a 0/0/0/1/1 200 123 - - ---- ... "GET / HTTP/1.1"'
        return [int(status) for status, state in
                re.findall(r" csgi/\S+ \S+ (-?\d+) \d+ \S+ \S+ (\S{4}) ", text)
                if not state.startswith("C")]
    return [int(line.split()[0]) for line in text.splitlines()
            if line.strip() and line.split()[0] != "499"]


def run(root, kind, front=None):
    label = kind + (" " + front if front else "")
    print("# %s" % label, flush=True)
    os.makedirs(root)
    a = Instance(root, "a")
    b = Instance(root, "b")
    if kind == "haproxy":
        proc, fe, log = start_haproxy(root, a, b)
    else:
        proc, fe, log = start_nginx(root, a, b, front)
    try:
        url = "http://127.0.0.1:%d" % fe
        # HAProxy needs rise 2 checks per server; nginx is up at once.
        if kind == "haproxy":
            check(wait_for(lambda: slurp(a.access).count("/healthz") >= 2 and
                           slurp(b.access).count("/healthz") >= 2, 10),
                  "%s: both instances answered HAProxy's health checks" % label)
        check(wait_for(lambda: get(url + "/hello")[0] == "200", 10, 0.1),
              "%s: serves /hello" % label)
        code, body = get(url + "/echo/who", CLIENT_ADDR)
        try:
            seen = json.loads(body).get("remote_addr") if code == "200" else None
        except ValueError:
            seen = None
        check(seen == CLIENT_ADDR, "%s: the app sees the client %s (got %s)" %
              (label, CLIENT_ADDR, seen))
        check(wait_for(lambda: any(re.search(r"(^|\n)%s .*GET /echo/who" % re.escape(CLIENT_ADDR),
                                             slurp(i.access)) for i in (a, b)), 3),
              "%s: the access log names the client" % label)

        wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % LOAD_CONNECTIONS, "-d%ds" % LOAD_SECONDS, "--timeout", "3s",
                                url + "/hello"], stdout=subprocess.PIPE, text=True)
        t0 = time.monotonic()
        time.sleep(0.3)
        check(a.reload(2), "%s: a reloaded (generation 2 serves)" % label)
        check(b.reload(2), "%s: b reloaded (generation 2 serves)" % label)
        a.signal(signal.SIGTERM)
        try:
            a.proc.wait(8)
            check(a.proc.returncode == 0, "%s: a stopped with status 0, %.1f s into the load" %
                  (label, time.monotonic() - t0))
        except subprocess.TimeoutExpired:
            check(False, "%s: a stopped within 8 s" % label)
        out, _ = wrk.communicate(timeout=LOAD_SECONDS + 10)
        requests, failed = wrk_failures(out)
        print(out, flush=True)
        check(requests > 100, "%s: wrk made %d requests" % (label, requests))
        check(failed == 0, "%s: %d failed requests in wrk" % (label, failed))
        # The balancer writes its log lines after the responses: the last ones may lag wrk's end.
        # A request wrk counted as its time ran out can be logged as the client's abort (and
        # left out above): at most one per connection.
        wait_for(lambda: len(balancer_statuses(kind, log)) >= requests, 5, 0.1)
        statuses = balancer_statuses(kind, log)
        bad = [s for s in statuses if s != 200]
        check(len(statuses) >= requests - LOAD_CONNECTIONS and not bad,
              "%s: the balancer logged %d requests, %d not 200 %s" %
              (label, len(statuses), len(bad), sorted(set(bad))))
        check(a.log_count("failing health checks for 1 s") == 1,
              "%s: a failed its health checks before draining" % label)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        a.stop()
        b.stop()


def main():
    for tool in ("haproxy", "nginx", "wrk", "curl"):
        if not shutil.which(tool):
            print("FAIL %s is not installed (scripts/deps.sh --test installs it)" % tool)
            return 1
    root = tempfile.mkdtemp(prefix="csgi-balancer-")
    t0 = time.monotonic()
    try:
        run(os.path.join(root, "haproxy"), "haproxy")
        run(os.path.join(root, "nginx-keepalive"), "nginx", "keepalive")
        run(os.path.join(root, "nginx-http10"), "nginx", "http10")
    finally:
        if failures:
            print("logs kept in %s" % root)
        else:
            shutil.rmtree(root, ignore_errors=True)
    print("%d failure(s) in %.1f s" % (len(failures), time.monotonic() - t0))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
