"""The targets: what the build and the machine offer (discover), and what the command line
selects."""

import json
import os
import shutil
import subprocess

from .build import find_files, lib_dirs, mhd_hello_binary, mhd_version, python_of
from .common import (APP_MOUNT, BENCH, ENDPOINT_NAMES, ENDPOINTS, PEERS, PYTHON_TARGETS,
                     TARGET_ORDER, WORLD_APPS, WSGI_FRAMEWORKS, die)


class Target:
    """A server to measure: how to start it and which endpoints it serves."""

    def __init__(self, name, kind, endpoints, role="app", note=None, **spec):
        self.name = name
        self.kind = kind            # csgi | mhd | nginx | gunicorn | command
        self.endpoints = endpoints  # endpoint name -> request path
        self.role = role            # app | peer | extra
        self.note = note            # why it is unavailable (None: available)
        self.spec = spec
        self.dead = None            # reason, once it failed to start

    @property
    def available(self):
        return self.note is None

    def describe(self):
        d = {"kind": self.kind, "role": self.role, "available": self.available,
             "endpoints": self.endpoints}
        if self.note:
            d["note"] = self.note
        if self.dead:
            d["dead"] = self.dead
        for k in ("plugins", "argv", "libmicrohttpd", "tree"):
            if k in self.spec:
                d[k] = self.spec[k]
        return d


def base_name(name):
    """A target's name without its libmicrohttpd label: hello@1.0 -> hello (pure)."""
    return name.split("@", 1)[0]


def csgi_target(tree, name, so_name, endpoints, mounts=None, sets=None, note=None):
    """A csgi-server target of a release tree (note: why the tree is unusable)."""
    server = os.path.join(tree, "server", "csgi-server")
    plugin_top = os.path.join(tree, "plugins")
    found = find_files(plugin_top, so_name + ".so")
    if not note and not os.access(server, os.X_OK):
        note = "no csgi-server in %s" % tree
    elif not note and not found:
        note = "%s.so not built (looked under %s)" % (so_name, plugin_top)
    return Target(name, "csgi", endpoints, plugins=found[:1], mounts=mounts or {},
                  sets=sets or {}, libs=lib_dirs(tree), server=server, note=note)


def mhd_target(args, name, note=None):
    """mhd_hello of a release tree: spec["tree"], else --build-dir's (compiled on demand by
    prepare() when the tree has none)."""
    return Target(name, "mhd", {"plaintext": "/plaintext"}, role="peer", note=note,
                  argv=["{mhd_hello}", "{port}", str(args.mhd_pool)])


def version_targets(args):
    """mhd and hello on each other libmicrohttpd version of --mhd-versions (args.mhd_trees):
    mhd@1.0 and hello@1.0, from the tree built on it."""
    out = []
    for v in getattr(args, "mhd_trees", []):
        for t in (mhd_target(args, "mhd@" + v["label"], v["note"]),
                  csgi_target(v["tree"], "hello@" + v["label"], "hello", {"plaintext": "/hello"},
                              note=v["note"])):
            if v["version"]:
                t.spec["libmicrohttpd"] = v["version"]
            t.spec["tree"] = v["tree"]
            out.append(t)
    return out


PY_ENDPOINTS = {"plaintext": "/plaintext", "json": "/json"}
DEBIAN_PYTHON = "/usr/bin/python3"


def python_targets(build_dir):
    """The WSGI races: each framework on csgi-server's wsgi plugin, gunicorn (sync, gthread)
    and uWSGI; Debian's python3 and packages only. Opt-in (--targets python or by name)."""
    peers = os.path.join(BENCH, "peers")
    missing = [fw for fw in WSGI_FRAMEWORKS
               if subprocess.call([DEBIAN_PYTHON, "-c", "import " + fw],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) != 0]
    gunicorn = "/usr/bin/gunicorn" if os.access("/usr/bin/gunicorn", os.X_OK) else None
    uwsgi = "/usr/bin/uwsgi" if os.access("/usr/bin/uwsgi", os.X_OK) else None
    plugin = "/usr/lib/uwsgi/plugins/python3_plugin.so"
    out = []
    for fw in WSGI_FRAMEWORKS:
        app = "wsgi_apps:%s_app" % fw
        note = "python3-%s not importable by %s" % (fw, DEBIAN_PYTHON) if fw in missing else None
        t = csgi_target(build_dir, "wsgi-" + fw, "wsgi", dict(PY_ENDPOINTS), mounts={"/": "wsgi"},
                        sets={"wsgi.app": app, "wsgi.path": peers}, note=note)
        out.append(t)
        for cls in ("sync", "gthread"):
            name = ("gunicorn-" if cls == "sync" else "gthread-") + fw
            out.append(Target(name, "gunicorn", dict(PY_ENDPOINTS), role="peer",
                              note=note or (None if gunicorn else "gunicorn not installed"),
                              binary=gunicorn, app=app, worker_class=cls, chdir=peers))
        unote = note or (None if uwsgi and os.path.exists(plugin)
                         else "uwsgi or uwsgi-plugin-python3 not installed")
        out.append(Target("uwsgi-" + fw, "uwsgi", dict(PY_ENDPOINTS), role="peer", note=unote,
                          binary=uwsgi, app=app, chdir=peers))
    for t in out:
        t.spec["opt_in"] = True
        t.spec["python"] = True
    return out


def discover(args, workdir):
    targets = []
    b = args.build_dir
    server = os.path.join(b, "server", "csgi-server")
    libs = lib_dirs(b)

    def csgi(name, so_name, endpoints, mounts=None, sets=None):
        return csgi_target(b, name, so_name, endpoints, mounts, sets)

    targets.append(csgi("hello", "hello", {"plaintext": "/hello"}))
    for name, so in WORLD_APPS:
        eps = {e: APP_MOUNT + p for e, p in ENDPOINTS}
        targets.append(csgi(name, so, eps, mounts={APP_MOUNT: so},
                            sets={so + ".db": "{workdir}/world.sqlite"}))

    # Peers: used when installed, never required.
    # mhd_hello is compiled on demand (see prepare()) when the build has none.
    targets.append(mhd_target(args, "mhd"))
    # The build's own libmicrohttpd, when another one is measured too (--mhd-versions).
    version = mhd_version(b)
    twins = version_targets(args)
    if twins and version:
        for t in targets:
            if t.kind in ("csgi", "mhd"):
                t.spec["libmicrohttpd"] = version
    targets += twins
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if os.access("/usr/sbin/nginx", os.X_OK)
                                      else None)
    targets.append(Target("nginx", "nginx", {"plaintext": "/plaintext", "json": "/json"},
                          role="peer", note=None if nginx else "nginx not installed",
                          binary=nginx))
    gunicorn = shutil.which("gunicorn") or shutil.which("gunicorn3")
    note = None
    if not gunicorn:
        note = "gunicorn not installed"
    else:
        py = python_of(gunicorn) or "python3"
        if subprocess.call([py, "-c", "import falcon"], stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL) != 0:
            note = "python3-falcon not importable by %s" % py
    targets.append(Target("falcon", "gunicorn", {"plaintext": "/plaintext", "json": "/json"},
                          role="peer", note=note, binary=gunicorn))
    targets += python_targets(b)

    for path in args.extra_targets or []:
        with open(path) as f:
            for t in json.load(f):
                kind = t.get("kind", "command")
                if kind == "csgi":
                    plugins = [os.path.abspath(p) for p in t.get("plugins", [])]
                    missing = [p for p in plugins if not os.path.exists(p)]
                    srv = t.get("server", server)
                    note = None
                    if missing:
                        note = "missing: " + ", ".join(missing)
                    elif not os.access(srv, os.X_OK):
                        note = "no csgi-server at %s" % srv
                    targets.append(Target(t["name"], "csgi", t["endpoints"], role="extra",
                                          note=note, plugins=plugins, server=srv,
                                          mounts=t.get("mounts", {}), sets=t.get("set", {}),
                                          libs=libs))
                else:
                    targets.append(Target(t["name"], "command", t["endpoints"], role="extra",
                                          argv=t["argv"], ready_log=t.get("ready_log")))
    for t in targets:
        if t.kind == "csgi" and "server" not in t.spec:
            t.spec["server"] = server
    order = {n: i for i, n in enumerate(TARGET_ORDER)}
    # A target on another libmicrohttpd comes right after the same target on the build's own.
    targets.sort(key=lambda t: (order.get(base_name(t.name), len(order)), "@" in t.name))
    return targets


def prepare(t, args, workdir):
    """Last steps before a selected target can run (building mhd_hello)."""
    if t.kind == "mhd" and t.available and "{mhd_hello}" in t.spec["argv"]:
        label = t.name.split("@", 1)[1] if "@" in t.name else None
        path, why = mhd_hello_binary(t.spec.get("tree", args.build_dir), workdir, label)
        t.note = why
        t.spec["argv"] = [path if a == "{mhd_hello}" else a for a in t.spec["argv"]]


def select(targets, args):
    wanted = None
    if args.targets:
        wanted = set()
        for w in args.targets.split(","):
            w = w.strip()
            if w == "peers":
                wanted |= PEERS
            elif w == "python":
                wanted |= set(PYTHON_TARGETS)
            elif w == "apps":
                wanted |= {n for n, _ in WORLD_APPS} | {"hello"}
            elif w:
                wanted.add(w)
        unknown = wanted - {t.name for t in targets} - PEERS
        if unknown:
            die("unknown target(s): %s (known: %s)"
                % (", ".join(sorted(unknown)), ", ".join(t.name for t in targets)))
    out = []
    for t in targets:
        # hello@1.0 and mhd@1.0 come with hello and mhd (--mhd-versions).
        if wanted is not None and t.name not in wanted and base_name(t.name) not in wanted:
            continue
        if wanted is None and t.spec.get("opt_in"):
            continue
        if args.no_peers and t.role == "peer":
            continue
        out.append(t)
    eps = ENDPOINT_NAMES
    if args.endpoints:
        eps = [e.strip() for e in args.endpoints.split(",") if e.strip()]
        extra = {e for t in out for e in t.endpoints}
        bad = [e for e in eps if e not in ENDPOINT_NAMES and e not in extra]
        if bad:
            die("unknown endpoint(s): %s (known: %s)" % (", ".join(bad), ", ".join(ENDPOINT_NAMES)))
    else:
        for t in out:
            for e in t.endpoints:
                if e not in eps:
                    eps = eps + [e]
    return out, eps
