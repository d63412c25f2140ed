"""The targets: what the build and the machine offer (discover), and what the command line
selects."""

import json
import os
import shutil
import subprocess

from .build import find_files, lib_dirs, mhd_hello_binary, python_of
from .common import (APP_MOUNT, ENDPOINT_NAMES, ENDPOINTS, PEERS, TARGET_ORDER, WORLD_APPS,
                     die)


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
        for k in ("plugins", "argv"):
            if k in self.spec:
                d[k] = self.spec[k]
        return d


def discover(args, workdir):
    targets = []
    b = args.build_dir
    server = os.path.join(b, "server", "csgi-server")
    have_server = os.access(server, os.X_OK)
    plugin_top = os.path.join(b, "plugins")
    libs = lib_dirs(b)

    def csgi(name, so_name, endpoints, mounts=None, sets=None):
        found = find_files(plugin_top, so_name + ".so")
        note = None
        if not have_server:
            note = "no csgi-server in %s" % b
        elif not found:
            note = "%s.so not built (looked under %s)" % (so_name, plugin_top)
        return Target(name, "csgi", endpoints, plugins=found[:1], mounts=mounts or {},
                      sets=sets or {}, libs=libs, note=note)

    targets.append(csgi("hello", "hello", {"plaintext": "/hello"}))
    for name, so in WORLD_APPS:
        eps = {e: APP_MOUNT + p for e, p in ENDPOINTS}
        targets.append(csgi(name, so, eps, mounts={APP_MOUNT: so},
                            sets={so + ".db": "{workdir}/world.sqlite"}))

    # Peers: used when installed, never required.
    # mhd_hello is compiled on demand (see prepare()) when the build has none.
    targets.append(Target("mhd", "mhd", {"plaintext": "/plaintext"}, role="peer",
                          argv=["{mhd_hello}", "{port}", str(args.mhd_pool)]))
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
    targets.sort(key=lambda t: order.get(t.name, len(order)))
    return targets


def prepare(t, args, workdir):
    """Last steps before a selected target can run (building mhd_hello)."""
    if t.kind == "mhd" and t.available and "{mhd_hello}" in t.spec["argv"]:
        path, why = mhd_hello_binary(args.build_dir, workdir)
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
        if wanted is not None and t.name not in wanted:
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
