"""Set-up: installing tools, building the release tree, finding what it built."""

import json
import os
import shutil
import subprocess

from .common import BENCH, ROOT, die, log


def apt_install(pkgs):
    """Install Debian packages with apt-get (through sudo when not root)."""
    if not shutil.which("apt-get"):
        return False
    cmd = [] if os.geteuid() == 0 else ["sudo", "-n"]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    log("installing missing packages: %s" % " ".join(pkgs))
    base = cmd + ["apt-get", "install", "-y", "--no-install-recommends"] + pkgs
    try:
        if subprocess.call(base, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           timeout=600) == 0:
            return True
        subprocess.call(cmd + ["apt-get", "update", "-qq"], env=env, timeout=600)
        return subprocess.call(base, env=env, timeout=600) == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def ensure_tool(tool, pkg):
    path = shutil.which(tool)
    if path:
        return path
    apt_install([pkg])
    return shutil.which(tool)


def build(build_dir):
    """Configure (release) and build; returns the build directory."""
    if os.path.exists(os.path.join(ROOT, "scripts", "deps.sh")):
        if subprocess.call([os.path.join(ROOT, "scripts", "deps.sh")]) != 0:
            die("scripts/deps.sh failed")
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        cmd = ["meson", "setup", build_dir, "--buildtype=release", "-Dbench=true",
               "-Dtests=disabled", "-Dexamples=true"]
        log("configuring: %s" % " ".join(cmd))
        if subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL) != 0:
            die("meson setup failed")
    log("building: ninja -C %s" % build_dir)
    if subprocess.call(["ninja", "-C", build_dir], cwd=ROOT, stdout=subprocess.DEVNULL) != 0:
        die("ninja failed")


def build_type(build_dir):
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            for o in json.load(f):
                if o["name"] == "buildtype":
                    return o["value"]
    except (OSError, ValueError, KeyError):
        pass
    return "unknown"


def find_files(top, name):
    out = []
    for dirpath, dirnames, filenames in os.walk(top):
        dirnames[:] = [d for d in dirnames if not d.endswith(".p")]
        if name in filenames:
            out.append(os.path.join(dirpath, name))
    return sorted(out)


def lib_dirs(build_dir):
    """Directories of the build's own shared libraries (framework libraries)."""
    dirs = set()
    for top in ("plugins", "gateway"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(build_dir, top)):
            dirnames[:] = [d for d in dirnames if not d.endswith(".p")]
            if any(f.startswith("lib") and ".so" in f for f in filenames):
                dirs.add(dirpath)
    return sorted(dirs)


def mhd_hello_binary(build_dir, workdir):
    built = os.path.join(build_dir, "bench", "mhd_hello")
    if os.access(built, os.X_OK):
        return built, None
    out = os.path.join(workdir, "mhd_hello")
    try:
        flags = subprocess.check_output(["pkg-config", "--cflags", "--libs", "libmicrohttpd"],
                                        text=True).split()
    except (OSError, subprocess.CalledProcessError):
        return None, "pkg-config cannot find libmicrohttpd"
    cc = shutil.which("cc") or shutil.which("gcc")
    if not cc:
        return None, "no C compiler"
    rc = subprocess.call([cc, "-O2", "-o", out, os.path.join(BENCH, "mhd_hello.c")] + flags)
    return (out, None) if rc == 0 else (None, "cc failed on bench/mhd_hello.c")


def python_of(script):
    try:
        with open(script) as f:
            line = f.readline().strip()
    except OSError:
        return None
    if line.startswith("#!"):
        parts = line[2:].split()
        if parts and os.path.basename(parts[0]) == "env" and len(parts) > 1:
            return shutil.which(parts[1])
        return parts[0] if parts else None
    return None


def tool_version(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=20)
        text = (p.stdout + p.stderr).strip().splitlines()
        return text[0].strip() if text else None
    except (OSError, subprocess.TimeoutExpired):
        return None
