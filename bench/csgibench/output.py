"""Writing results.{json,md,svg,html}, and --render."""

import json
import os
import re
import sys
import tempfile

from .common import ROOT, log
from .html import html_report
from .markdown import markdown_instr, markdown_load
from .svg import svg_instr, svg_load
from .targets import Target


def portable(obj):
    """Rewrite machine paths in a result document so that it can be committed:
    paths under the project root become relative to it, and the run's private
    temporary directory becomes "<tmp>"."""
    tmp_re = re.compile(re.escape(os.path.join(tempfile.gettempdir(), "csgi-bench-"))
                        + r"[A-Za-z0-9_]+")

    def fix(v):
        if isinstance(v, str):
            v = tmp_re.sub("<tmp>", v)
            if v == ROOT:
                return "."
            return v.replace(ROOT + os.sep, "")
        if isinstance(v, list):
            return [fix(x) for x in v]
        if isinstance(v, dict):
            return {k: fix(x) for k, x in v.items()}
        return v

    return fix(obj)


def reports(doc):
    """(Markdown, SVG, HTML) of a portable results document (pure)."""
    meta = doc["meta"]
    if doc["mode"] == "instructions":
        md = markdown_instr(meta, doc["instructions"])
        svg = svg_instr(meta, doc["instructions"])
    else:
        targets = []
        for name, t in meta["targets"].items():
            tt = Target(name, t["kind"], t["endpoints"], role=t["role"], note=t.get("note"))
            tt.dead = t.get("dead")
            targets.append(tt)
        md = markdown_load(meta, doc["summary"], targets, doc["runs"])
        svg = svg_load(meta, doc["summary"])
    return md, svg, html_report(doc, md, svg)


def write_outputs(out_dir, doc):
    doc = portable(doc)
    md, svg, page = reports(doc)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(out_dir, "results.svg"), "w") as f:
        f.write(svg)
    # The whole report in one file that opens offline: tables, the chart inline, the method.
    with open(os.path.join(out_dir, "results.html"), "w", encoding="utf-8") as f:
        f.write(page)
    return md


def render(path, out_dir):
    with open(path) as f:
        doc = json.load(f)
    out_dir = os.path.abspath(out_dir or os.path.dirname(os.path.abspath(path)))
    sys.stdout.write(write_outputs(out_dir, doc))
    log("wrote %s/results.{json,md,svg,html}" % out_dir)
    return 0
