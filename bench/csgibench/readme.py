"""The README's generated figures (--render-readme), from the committed baseline files.

README.md holds blocks between `<!-- csgi-bench:begin NAME -->` and
`<!-- csgi-bench:end NAME -->`. Each block's text is a pure function of
bench/baseline/*/results.json (blocks()); rewrite() puts them into the README
text, and --render-readme --check (run by the tests) fails when the README
differs, so the Performance and Benchmarks sections quote the same numbers.
"""

import json
import os
import re
import sys

from .common import BENCH, ROOT, SHAPE_TITLES, shape_of
from .fmt import k
from .markdown import instr_table, markdown_table, noise_note, saturation_note
from .sse import sse_table

BASELINE = os.path.join(BENCH, "baseline")
README = os.path.join(ROOT, "README.md")
# A block: its markers and its text share the begin marker's indentation (a block may sit in
# a list item).
BLOCK_RE = re.compile(r"^([ ]*)<!-- csgi-bench:begin ([a-z0-9-]+) -->\n(.*?)"
                      r"^[ ]*<!-- csgi-bench:end \2 -->", re.S | re.M)


def load_baselines(top=BASELINE):
    """{name: results document} of every bench/baseline/NAME/results.json."""
    out = {}
    for name in sorted(os.listdir(top)):
        path = os.path.join(top, name, "results.json")
        if os.path.exists(path):
            with open(path) as f:
                out[name] = json.load(f)
    return out


def _per(doc):
    return {(r["target"], r["endpoint"]): r["per_request"] for r in doc.get("instructions", [])
            if r.get("per_request") is not None}


def _summ(doc, ep):
    return {s["target"]: s for s in doc.get("summary", [])
            if s["endpoint"] == ep and shape_of(s) == "keepalive" and "rps" in s}


def n0(x):
    return "{:,.0f}".format(x)


def mhd_labels(doc):
    """[(label, libmicrohttpd version)] of the run: "" for the build's own, then each
    --mhd-versions label whose hello and mhd were both measured (pure)."""
    p = _per(doc)
    v = doc["meta"].get("versions", {})
    out = [("", v.get("libmicrohttpd") or "?")]
    for key in sorted(v):
        label = key.partition("@")[2] if key.startswith("libmicrohttpd@") else ""
        if label and ("hello@" + label, "plaintext") in p and ("mhd@" + label, "plaintext") in p:
            out.append((label, v[key] or label))
    return out


def _pair(p, label):
    suffix = "@" + label if label else ""
    return p[("hello" + suffix, "plaintext")], p[("mhd" + suffix, "plaintext")]


def performance(doc):
    """The Performance section's figures: hello against mhd (and nginx), and a line per
    libmicrohttpd version when the run measured more than one."""
    p = _per(doc)
    labels = mhd_labels(doc)
    hello, mhd = _pair(p, "")
    text = ("hello costs **%s** instructions per request against **%s** for raw libmicrohttpd "
            "%s(`mhd`, at the default 16 KiB `--conn-memory`, building its response for every "
            "request): hello minus mhd is %s instructions (%.2fx)" % (
                n0(hello), n0(mhd), labels[0][1] + " " if len(labels) > 1 else "",
                "{:+,.0f}".format(hello - mhd), hello / mhd))
    if ("nginx", "plaintext") in p:
        text += ", and nginx's `return 200` costs %s" % n0(p[("nginx", "plaintext")])
    text += " (`bench/baseline/instructions/`, %s)." % doc["meta"]["date"]
    if len(labels) == 1:
        return text
    L = [text, "", "Each libmicrohttpd version, measured in the same run:", "",
         "| libmicrohttpd | targets | raw libmicrohttpd (mhd) | hello | hello - mhd |",
         "| --- | --- | ---: | ---: | ---: |"]
    for label, version in labels:
        hello, mhd = _pair(p, label)
        suffix = "@" + label if label else ""
        L.append("| %s | `mhd%s`, `hello%s` | %s | %s | %s (%.2fx) |" % (
            version, suffix, suffix, n0(mhd), n0(hello), "{:+,.0f}".format(hello - mhd),
            hello / mhd))
    return "\n".join(L)


def instructions_bullets(doc):
    """The generated bullets under the instruction table: the gateway and Falcon."""
    p = _per(doc)
    labels = mhd_labels(doc)
    hello, mhd = _pair(p, "")
    first = ("- **hello against raw libmicrohttpd%s**: %s instructions per request "
             "(%s against %s, %.2fx)." % (
                 " " + labels[0][1] if len(labels) > 1 else "", "{:+,.0f}".format(hello - mhd),
                 n0(hello), n0(mhd), hello / mhd))
    if ("nginx", "plaintext") in p:
        first += " Against nginx (%s) the ratio is %.2fx." % (
            n0(p[("nginx", "plaintext")]), hello / p[("nginx", "plaintext")])
    for label, version in labels[1:]:
        h, m = _pair(p, label)
        first += (" On libmicrohttpd %s (`hello@%s` against `mhd@%s`): %s "
                  "(%s against %s, %.2fx)." % (version, label, label, "{:+,.0f}".format(h - m),
                                               n0(h), n0(m), h / m))
    L = [first]
    if ("falcon", "plaintext") in p:
        f = p[("falcon", "plaintext")]
        L.append("- **Falcon on gunicorn** costs %s instructions for plaintext: %.0fx hello and "
                 "%.0fx raw libmicrohttpd." % (n0(f), f / hello, f / mhd))
    return "\n".join(L)


def load_table(doc):
    """A load run's keep-alive table, its saturation and its noise notes (no per-run notes)."""
    summary = [s for s in doc["summary"] if shape_of(s) == "keepalive"]
    L, notes = [], []
    markdown_table(L, notes, summary, "")
    for note in (saturation_note(doc["meta"], summary), noise_note(summary)):
        if note:
            L += [note, ""]
    return "\n".join(L).rstrip("\n")


def tls_table(doc):
    """The --tls run: a table per shape (keep-alive, then a handshake per request), each with
    its saturation note, then the noise note over both, and the ratios hello/nginx."""
    L = []
    shapes = doc["meta"]["settings"].get("shapes", ["keepalive"])
    for shape in shapes:
        summary = [s for s in doc["summary"] if shape_of(s) == shape]
        notes = []
        L += ["**%s**" % SHAPE_TITLES[shape].split(":")[0].rstrip("."), ""]
        markdown_table(L, notes, summary, "")
        note = saturation_note(doc["meta"], summary)
        if note:
            L += [note, ""]
        by = {s["target"]: s for s in summary}
        if "hello" in by and "nginx" in by:
            L += ["hello/nginx: %.2fx the req/s, %.2fx the server CPU per request." % (
                by["hello"]["rps"]["median"] / by["nginx"]["rps"]["median"],
                by["hello"]["cpu_us_per_req"]["median"] / by["nginx"]["cpu_us_per_req"]["median"]),
                ""]
    note = noise_note(doc["summary"])
    if note:
        L += [note, ""]
    return "\n".join(L).rstrip("\n")


def balanced(doc):
    """The re-run with csgi-server's acceptor: req/s, CPU and worker balance on plaintext."""
    s = _summ(doc, "plaintext")
    csgi = [t for t in ("hello", "raw", "resource", "route") if t in s]
    peers = [t for t in ("mhd", "nginx") if t in s]
    shares = [s[t]["worker_cpu_max_share"] for t in csgi if s[t].get("worker_cpu_max_share")]
    text = ("On plaintext: %s req/s against %s; %s µs of server CPU per request against %s"
            % (", ".join("%s %s" % (t, k(s[t]["rps"]["median"])) for t in csgi),
               " and ".join("%s %s" % (t, k(s[t]["rps"]["median"])) for t in peers),
               "%.1f-%.1f" % (min(s[t]["cpu_us_per_req"]["median"] for t in csgi),
                              max(s[t]["cpu_us_per_req"]["median"] for t in csgi)),
               " and ".join("%.1f (%s)" % (s[t]["cpu_us_per_req"]["median"], t)
                            for t in peers)))
    if shares:
        text += ("; the busiest worker's share of the server CPU %.2f-%.2f for the csgi "
                 "targets" % (min(x["min"] for x in shares), max(x["max"] for x in shares)))
    return text + "."


def blocks(baselines):
    """{block name: text} for every block the baselines can fill (pure)."""
    out = {}
    ins = baselines.get("instructions")
    if ins:
        out["performance"] = performance(ins)
        out["instructions-table"] = "\n".join(instr_table(ins["instructions"])[0])
        out["instructions-bullets"] = instructions_bullets(ins)
    for name in ("load", "load-w1", "wsgi"):
        if name in baselines:
            out[name + "-table"] = load_table(baselines[name])
    if "tls" in baselines:
        out["tls-table"] = tls_table(baselines["tls"])
    if "load-balanced" in baselines:
        out["load-balanced"] = balanced(baselines["load-balanced"])
    if "sse" in baselines:
        out["sse-table"] = sse_table(baselines["sse"])
    return out


def rewrite(text, generated):
    """(new text, names of blocks in the text that nothing generates) (pure)."""
    unknown = []

    def sub(m):
        name = m.group(2)
        if name not in generated:
            unknown.append(name)
            return m.group(0)
        ind = m.group(1)
        body = "".join((ind + line if line else "") + "\n"
                       for line in generated[name].split("\n"))
        return "%s<!-- csgi-bench:begin %s -->\n%s%s<!-- csgi-bench:end %s -->" % (
            ind, name, body, ind, name)
    return BLOCK_RE.sub(sub, text), unknown


def main(check=False, readme=README, top=BASELINE):
    with open(readme) as f:
        text = f.read()
    new, unknown = rewrite(text, blocks(load_baselines(top)))
    rel = os.path.relpath(readme, ROOT)
    if unknown:
        sys.stderr.write("csgi-bench: %s: no baseline for block(s) %s\n"
                         % (rel, ", ".join(unknown)))
        return 1
    found = set(m.group(2) for m in BLOCK_RE.finditer(text))
    if new == text:
        print("%s: the %d generated block(s) match bench/baseline/ (%s)"
              % (rel, len(found), ", ".join(sorted(found))))
        return 0
    if check:
        print("%s differs from what bench/csgi-bench --render-readme writes from "
              "bench/baseline/: run it and commit the result" % rel)
        return 1
    with open(readme, "w") as f:
        f.write(new)
    print("%s: rewrote %s" % (rel, ", ".join(sorted(found))))
    return 0
