"""Starting and stopping one server by pid, reading its CPU and memory from /proc, and
talking HTTP to it."""

import http.client
import os
import signal
import socket
import subprocess
import time

from .common import BENCH, CLK_TCK, log
from . import tls as tlsmod


def free_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def read_stat(pid):
    """(ppid, utime+stime in ticks) of one process, or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
    except OSError:
        return None
    fields = s[s.rfind(")") + 2:].split()
    return int(fields[1]), int(fields[11]) + int(fields[12])


def proc_tree(root):
    """root and all its descendants (pids), from a scan of /proc."""
    children = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        st = read_stat(int(d))
        if st:
            children.setdefault(st[0], []).append(int(d))
    out = [root]
    i = 0
    while i < len(out):
        out.extend(sorted(children.get(out[i], [])))
        i += 1
    return out


def tree_cpu(pids):
    """{pid: CPU seconds (user + system, all threads)} of the given processes."""
    out = {}
    for p in pids:
        st = read_stat(p)
        if st:
            out[p] = st[1] / CLK_TCK
    return out


def vm_hwm_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def machine_cpu():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + (v[4] if len(v) > 4 else 0)
    return sum(v[:8]), idle


def pin_fn(cpus):
    if not cpus:
        return None

    def fn():
        os.sched_setaffinity(0, cpus)
    return fn


class Server:
    """One started server process (we are its parent), stopped by its pid."""

    def __init__(self, target, argv, env, workdir, port, log_path, ready_lines, cpus=None):
        self.target = target
        self.port = port
        self.log_path = log_path
        self.ready_lines = ready_lines
        self.workdir = workdir
        self.rusage = None
        self.status = None
        self.argv = argv
        self.out = open(os.path.join(workdir, "server.out"), "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=workdir, stdin=subprocess.DEVNULL,
                                     stdout=self.out, stderr=subprocess.STDOUT,
                                     preexec_fn=pin_fn(cpus))
        self.pid = self.proc.pid
        self.known = {self.pid}

    def alive(self):
        if self.status is not None:
            return False
        pid, status, ru = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return True
        self._reaped(status, ru)
        return False

    def _reaped(self, status, ru):
        self.status = status
        self.rusage = ru
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.out.close()

    def tail(self, n=6):
        lines = []
        for p in (self.log_path, os.path.join(self.workdir, "server.out")):
            try:
                with open(p, errors="replace") as f:
                    lines += [l.rstrip() for l in f if l.strip()]
            except (OSError, TypeError):
                pass
        return " | ".join(lines[-n:])

    def exit_text(self):
        code = os.waitstatus_to_exitcode(self.status)
        return "exited with status %d" % code if code >= 0 else "killed by signal %d" % -code

    def wait_ready(self, timeout):
        """None when ready, else the reason it is not."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return "server %s before it was ready: %s" % (self.exit_text(), self.tail())
            if self.ready_lines:
                try:
                    with open(self.log_path, errors="replace") as f:
                        text = f.read()
                except OSError:
                    text = ""
                if text.count(self.ready_lines[0]) < self.ready_lines[1]:
                    time.sleep(0.05)
                    continue
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return None
            except OSError:
                time.sleep(0.05)
        return "not ready after %.0f s (port %d refuses or log never said ready): %s" % (
            timeout, self.port, self.tail())

    def tree(self):
        pids = proc_tree(self.pid) if self.status is None else []
        self.known.update(pids)
        return pids

    def stop(self, timeout):
        """SIGTERM to the pid we started, wait; SIGKILL what is left after timeout."""
        if self.status is None:
            self.tree()
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            deadline = time.monotonic() + timeout
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            if self.status is None:
                log("%s: pid %d still running %.0f s after SIGTERM: SIGKILL"
                    % (self.target.name, self.pid, timeout))
                for p in sorted(self.known, reverse=True):
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                _, status, ru = os.wait4(self.pid, 0)
                self._reaped(status, ru)
                return "did not stop within %.0f s of SIGTERM (killed)" % timeout
        # Workers that outlive their master (they should not) are ours too: by pid.
        left = [p for p in self.known - {self.pid} if read_stat(p)]
        deadline = time.monotonic() + 2
        while left and time.monotonic() < deadline:
            time.sleep(0.02)
            left = [p for p in left if read_stat(p)]
        if left:
            for p in left:
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            return "process(es) %s outlived the master (killed)" % left
        return None


def csgi_argv(t, args, port, workdir, workers, threads):
    pdir = os.path.join(workdir, "plugins")
    os.makedirs(pdir, exist_ok=True)
    for so in t.spec["plugins"]:
        dst = os.path.join(pdir, os.path.basename(so))
        if not os.path.exists(dst):
            os.symlink(os.path.abspath(so), dst)
    bind = "127.0.0.1:%d" % port
    if getattr(args, "tls_files", None):
        bind = "https://" + bind
    argv = [t.spec["server"], "--bind", bind, "--plugins", pdir,
            "--workers", str(workers), "--threads", str(threads),
            "--error-log", os.path.join(workdir, "error.log"), "--tmp-dir", workdir,
            "--max-connections-per-ip", "0", "--graceful-timeout", "5"]
    for prefix, name in t.spec["mounts"].items():
        argv += ["--mount", "%s=%s" % (prefix, name)]
    for k, v in t.spec["sets"].items():
        argv += ["--set", "%s=%s" % (k, v.format(workdir=workdir))]
    if getattr(args, "tls_files", None):
        argv += ["--tls-cert", args.tls_files[0], "--tls-key", args.tls_files[1],
                 "--tls-priorities", tlsmod.GNUTLS_PRIORITIES]
    return argv + list(args.server_arg or [])


NGINX_CONF = """\
daemon off;
master_process {master};
worker_processes {workers};
pid {workdir}/nginx.pid;
error_log {workdir}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    keepalive_timeout 15s;
    client_body_temp_path {workdir}/body;
    server {{
        listen 127.0.0.1:{port}{ssl};
{ssl_conf}        location = /plaintext {{ default_type text/plain; return 200 "Hello, World!"; }}
        location = /json {{ default_type application/json;
                            return 200 '{{"message":"Hello, World!"}}'; }}
    }}
}}
"""


def start_server(t, args, workdir, workers, threads, wrapper=None, env_extra=None,
                 single_process=False):
    """Start target t on a fresh port; returns a Server (maybe not ready)."""
    port = free_port()
    env = dict(os.environ)
    if env_extra:
        env.update(env_extra)
    log_path = os.path.join(workdir, "error.log")
    ready = None
    if t.kind == "csgi":
        argv = csgi_argv(t, args, port, workdir, workers, threads)
        if t.spec.get("libs"):
            env["LD_LIBRARY_PATH"] = ":".join(
                t.spec["libs"] + [p for p in [env.get("LD_LIBRARY_PATH")] if p])
        ready = ("worker ready", workers)
    elif t.kind == "mhd":
        argv = [a.format(port=port) for a in t.spec["argv"]]
    elif t.kind == "nginx":
        conf = os.path.join(workdir, "nginx.conf")
        with open(conf, "w") as f:
            tls = getattr(args, "tls_files", None)
            f.write(NGINX_CONF.format(
                workdir=workdir, port=port, workers=workers,
                master="off" if single_process else "on", ssl=" ssl" if tls else "",
                ssl_conf=tlsmod.NGINX_SSL.format(cert=tls[0], key=tls[1]) if tls else ""))
        argv = [t.spec["binary"], "-p", workdir, "-c", conf, "-e", log_path]
    elif t.kind == "gunicorn":
        argv = [t.spec["binary"], "--bind", "127.0.0.1:%d" % port, "--workers", str(workers),
                "--worker-class", t.spec.get("worker_class", "gthread"), "--threads", str(threads),
                "--chdir", t.spec.get("chdir", os.path.join(BENCH, "peers")),
                "--error-logfile", log_path, "--log-level", "info", "--keep-alive", "15",
                t.spec.get("app", "falcon_app:app")]
        ready = ("Booting worker", workers)
    elif t.kind == "uwsgi":
        # --http11-socket: keep-alive (--http-socket closes without saying so, which wrk counts
        # as errors). --die-on-term: SIGTERM stops uWSGI (its default is a reload).
        argv = [t.spec["binary"], "--plugin", "python3", "--http11-socket", "127.0.0.1:%d" % port,
                "--master", "--processes", str(workers), "--chdir", t.spec["chdir"],
                "--module", t.spec["app"], "--die-on-term", "--disable-logging",
                "--logto", log_path, "--listen", "1024"]
        if threads > 1:
            argv += ["--threads", str(threads)]
        ready = ("spawned uWSGI worker", workers)
    else:
        argv = [a.format(port=port, workdir=workdir) for a in t.spec["argv"]]
        if t.spec.get("ready_log"):
            ready = (t.spec["ready_log"], 1)
    if wrapper:
        argv = wrapper + argv
    server = Server(t, argv, env, workdir, port, log_path, ready, cpus=args.server_cpus)
    # --tls: the CA file (the certificate itself) the precheck verifies the server with.
    server.cafile = args.tls_files[0] if getattr(args, "tls_files", None) else None
    return server


def http_get(port, path, timeout, cafile=None, tls_info=None):
    """One GET (over TLS, verified against cafile, when given); (status, content-type, body
    bytes) or raises OSError. tls_info (a dict) gets the TLS version and cipher suite."""
    if cafile:
        c = http.client.HTTPSConnection("127.0.0.1", port, timeout=timeout,
                                        context=tlsmod.client_context(cafile))
    else:
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if cafile and tls_info is not None and c.sock is not None:
            tls_info["tls"] = "%s %s" % (c.sock.version(), c.sock.cipher()[0])
        return r.status, r.getheader("Content-Type"), body
    finally:
        c.close()


def precheck(server, path, timeout):
    """Check the endpoint once before loading it; a dict for the record."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            info = {}
            status, ctype, body = http_get(server.port, path, max(1.0, deadline - time.monotonic()),
                                           getattr(server, "cafile", None), info)
            return dict({"status": status, "content_type": ctype, "bytes": len(body),
                         "ok": 200 <= status < 300,
                         "sample": body[:80].decode("utf-8", "replace")}, **info)
        except (OSError, http.client.HTTPException) as e:
            last = e
            if not server.alive():
                break
            time.sleep(0.1)
    return {"status": None, "ok": False, "error": "%s: %s" % (type(last).__name__, last)}


class KeepAliveClient:
    """A fixed number of GETs on one keep-alive connection (instruction mode)."""

    def __init__(self, port, timeout):
        self.port = port
        self.timeout = timeout
        self.sock = None
        self.buf = b""

    def _connect(self):
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        self.buf = b""

    def _fill(self):
        d = self.sock.recv(65536)
        if not d:
            raise ConnectionError("server closed the connection")
        self.buf += d

    def get(self, path):
        if self.sock is None:
            self._connect()
        self.sock.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                           % (path, self.port)).encode())
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for l in lines[1:]:
            k, _, v = l.partition(":")
            hdrs[k.strip().lower()] = v.strip()
        if "content-length" in hdrs:
            n = int(hdrs["content-length"])
            while len(self.buf) < n:
                self._fill()
            self.buf = self.buf[n:]
        elif "chunked" in hdrs.get("transfer-encoding", ""):
            while True:
                while b"\r\n" not in self.buf:
                    self._fill()
                line, self.buf = self.buf.split(b"\r\n", 1)
                n = int(line.split(b";")[0], 16)
                while len(self.buf) < n + 2:
                    self._fill()
                self.buf = self.buf[n + 2:]
                if n == 0:
                    break
        else:
            try:
                while True:
                    self._fill()
            except ConnectionError:
                pass
            self.close()
            return status
        if hdrs.get("connection", "").lower() == "close":
            self.close()
        return status

    def close(self):
        if self.sock:
            self.sock.close()
        self.sock = None
