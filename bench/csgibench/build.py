"""Set-up: installing tools, building the release tree, finding what it built."""

import json
import os
import shutil
import subprocess

from .common import BENCH, ROOT, die, log

DEPS = os.path.join(ROOT, "scripts", "deps.sh")


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


def build(build_dir, pkg_config_path=None, deps=True):
    """Configure (release, with link-time optimization, the build README.md recommends for
    production) and build build_dir; pkg_config_path: where meson looks for libmicrohttpd
    first (a tree of another version). Exits on failure."""
    if deps and os.path.exists(DEPS):
        if subprocess.call([DEPS]) != 0:
            die("scripts/deps.sh failed")
    if not os.path.exists(os.path.join(build_dir, "build.ninja")):
        cmd = ["meson", "setup", build_dir, "--buildtype=release", "-Db_lto=true",
               "-Dbench=true", "-Dtests=disabled", "-Dexamples=true"]
        if pkg_config_path:
            cmd.append("-Dpkg_config_path=" + pkg_config_path)
        log("configuring: %s" % " ".join(cmd))
        if subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL) != 0:
            die("meson setup failed")
    elif build_type(build_dir) != "release, LTO":
        # A tree configured before the bench built with LTO: brought to the same options.
        cmd = ["meson", "configure", build_dir, "--buildtype=release", "-Db_lto=true"]
        if subprocess.call(cmd, cwd=ROOT, stdout=subprocess.DEVNULL) != 0:
            die("meson configure failed")
    log("building: ninja -C %s" % build_dir)
    if subprocess.call(["ninja", "-C", build_dir], cwd=ROOT, stdout=subprocess.DEVNULL) != 0:
        die("ninja failed")


def mhd_dependency(build_dir):
    """meson's record of the libmicrohttpd a configured tree builds against (version,
    compile_args, link_args), or None."""
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-dependencies.json")) as f:
            for d in json.load(f):
                if d.get("name") == "libmicrohttpd":
                    return d
    except (OSError, ValueError):
        pass
    return None


def mhd_version(build_dir):
    """The libmicrohttpd version a configured tree builds against, or None."""
    d = mhd_dependency(build_dir)
    return d.get("version") if d else None


def same_series(version, wanted):
    """Whether version (1.0.1) is of the series wanted (1.0, or 1.0.1 itself) (pure)."""
    return bool(version) and (version == wanted or version.startswith(wanted + "."))


def mhd_trees(args):
    """The release trees for --mhd-versions: for each version that the main tree is not
    built on, a tree beside it (BUILD-DIR-mhd10 for 1.0) configured against what
    scripts/deps.sh --mhd VERSION provides. A list of {"label", "tree", "version", "note"}:
    label is the targets' suffix (mhd@1.0), note why the tree is missing (None: usable)."""
    base = mhd_version(args.build_dir)
    out = []
    for wanted in args.mhd_versions or []:
        if same_series(base, wanted):
            continue
        tree = "%s-mhd%s" % (args.build_dir, wanted.replace(".", ""))
        note = None
        if not args.no_build:
            p = subprocess.run([DEPS, "--mhd", wanted], stdout=subprocess.PIPE, text=True)
            if p.returncode != 0:
                note = "scripts/deps.sh --mhd %s failed" % wanted
            else:
                build(tree, p.stdout.strip(), deps=False)
        version = mhd_version(tree)
        if not note and not os.path.exists(os.path.join(tree, "build.ninja")):
            note = "no release tree at %s (run without --no-build)" % tree
        elif not note and not same_series(version, wanted):
            note = "%s is built on libmicrohttpd %s, not %s" % (tree, version, wanted)
        out.append({"label": wanted, "tree": tree, "version": version, "note": note})
    return out


def build_type(build_dir):
    """meson's build type of a configured tree, with ", LTO" when it links with
    link-time optimization ("release, LTO"); "unknown" when it is not configured."""
    opts = {}
    try:
        with open(os.path.join(build_dir, "meson-info", "intro-buildoptions.json")) as f:
            for o in json.load(f):
                opts[o["name"]] = o["value"]
    except (OSError, ValueError, KeyError):
        pass
    if "buildtype" not in opts:
        return "unknown"
    return opts["buildtype"] + (", LTO" if opts.get("b_lto") is True else "")


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


def mhd_hello_binary(build_dir, workdir, label=None):
    """(path, None) of the tree's mhd_hello, compiled with cc against the tree's
    libmicrohttpd (or pkg-config's) when the tree has none; or (None, why)."""
    built = os.path.join(build_dir, "bench", "mhd_hello")
    if os.access(built, os.X_OK):
        return built, None
    out = os.path.join(workdir, "mhd_hello" + ("-" + label if label else ""))
    dep = mhd_dependency(build_dir)
    if dep:
        flags = dep.get("compile_args", []) + dep.get("link_args", [])
    else:
        try:
            flags = subprocess.check_output(["pkg-config", "--cflags", "--libs",
                                             "libmicrohttpd"], text=True).split()
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
