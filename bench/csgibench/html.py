"""results.html: the whole report of a run as one self-contained HTML file (pure).

The tables and notes are the run's Markdown (markdown.py), converted here, so that the two
files never say different things; the chart is the run's SVG (svg.py), inline; then the
method and the machine and settings, from the run's meta. No script, no external asset:
the file carries a Content-Security-Policy that lets nothing load, so it reads the same
offline, from a mail attachment or from a CI artifact.
"""

import re

from .fmt import esc

STYLE = """
body { margin: 0; font: 15px/1.5 system-ui, -apple-system, "Segoe UI", sans-serif; color: #1d232a; }
main { max-width: 1360px; margin: 0 auto; padding: 8px 24px 40px; }
h1 { font-size: 22px; margin: 18px 0 4px; }
h2 { font-size: 17px; margin: 28px 0 8px; border-bottom: 1px solid #d8dee4; padding-bottom: 3px; }
.sub { color: #5d6b78; margin: 0 0 12px; }
table { border-collapse: collapse; margin: 8px 0 14px; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d8dee4; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; font-weight: 600; }
td.r, th.r { text-align: right; }
table.kv th { width: 13em; }
code { font: 13px ui-monospace, "DejaVu Sans Mono", monospace; background: #f6f8fa;
       padding: 0 3px; border-radius: 3px; overflow-wrap: anywhere; }
figure { margin: 8px 0; overflow-x: auto; }
figure svg { max-width: 100%; height: auto; }
li { margin: 2px 0; }
"""

CSP = "default-src 'none'; style-src 'unsafe-inline'"


def inline(text):
    """One line of the Markdown's inline subset as HTML: `code` and **bold**, the rest
    escaped."""
    out = []
    for i, part in enumerate(text.split("`")):
        if i % 2:
            out.append("<code>%s</code>" % esc(part))
        else:
            out.append(re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc(part)))
    return "".join(out)


def cells(line):
    """The cells of a Markdown table row "| a | b |" (pure)."""
    return [c.strip() for c in line.strip().strip("|").split(" | ")]


def table_html(lines):
    """A Markdown table (header, alignment row, body rows) as an HTML table."""
    head = cells(lines[0])
    right = [c.endswith(":") for c in cells(lines[1])]

    def cls(i):
        return ' class="r"' if i < len(right) and right[i] else ""
    out = ["<table>", "<thead><tr>%s</tr></thead>" % "".join(
        "<th%s>%s</th>" % (cls(i), inline(c)) for i, c in enumerate(head)), "<tbody>"]
    for line in lines[2:]:
        out.append("<tr>%s</tr>" % "".join("<td%s>%s</td>" % (cls(i), inline(c))
                                           for i, c in enumerate(cells(line))))
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def markdown_html(md):
    """The subset of Markdown that markdown.py writes (paragraphs, tables, "- " lists,
    `code`, **bold**) as HTML (pure)."""
    out = []
    for block in re.split(r"\n\s*\n", md.strip()):
        lines = block.splitlines()
        if lines[0].startswith("|") and len(lines) >= 2:
            out.append(table_html(lines))
        elif all(line.startswith("- ") for line in lines):
            out.append("<ul>\n%s\n</ul>" % "\n".join("<li>%s</li>" % inline(line[2:])
                                                       for line in lines))
        else:
            out.append("<p>%s</p>" % inline(" ".join(lines)))
    return "\n".join(out)


def method_load(meta):
    st = meta["settings"]
    shapes = st.get("shapes", ["keepalive"])
    return [
        "For each of %d round(s), every target and endpoint (the order rotates by one each "
        "round) gets a fresh server on a free 127.0.0.1 port, started by csgi-bench as its "
        "direct child, with %d worker(s) of %d thread(s). Once the server is ready, one GET "
        "checks the endpoint (status, type and size are recorded), wrk runs a %g s warm-up "
        "whose figures are discarded, then the measured run: %g s, %d wrk thread(s), %d "
        "connections (load shape: %s). The server is stopped with SIGTERM to the pid "
        "csgi-bench started."
        % (st["rounds"], st["workers"], st["threads"], st["warmup"], st["duration"],
           st["threads_load"], st["connections"], ", ".join(shapes)),
        "Figures are medians over the rounds, with min-max. Server CPU µs/request is the "
        "CPU time of the server's processes (from /proc, before and after the run) over the "
        "requests wrk completed; RSS/worker is the largest peak resident size (VmHWM) of "
        "a worker; wrk CPU is wrk's CPU time over its wall time and threads, and a run at "
        "%d %% or more counts as saturated (⚑): there the load generator set the req/s. "
        "Errors are wrk's socket errors plus responses with an unexpected status."
        % (100 * st.get("saturation", 0.9)),
    ]


def method_instructions(meta):
    ns = meta.get("settings", {}).get("instr_requests")
    return [
        "Each target runs with one worker and one thread under valgrind's callgrind (or perf "
        "where it works) and serves %s requests on one keep-alive connection; the "
        "instructions per request are the slope between the two counts, so start-up and "
        "shutdown cancel out. The counts repeat from run to run: there are no rounds and no "
        "min-max. \"vs mhd\" compares with raw libmicrohttpd (what the gateway adds), "
        "\"vs raw\" with the same app on raw CSGI (what a framework adds)."
        % (" and then ".join("{:,}".format(n) for n in ns) if ns else "two counts of"),
    ]


def machine_rows(meta):
    """(label, value) rows: the command, the machine, the build, the versions, the settings."""
    rows = [("command", meta.get("command", "?")), ("date", meta.get("date", "?")),
            ("machine", "%s cores (%s), Linux %s" % (meta.get("cores", "?"),
                                                     meta.get("cpu", "?"),
                                                     meta.get("kernel", "?")))]
    if meta.get("loadavg_before") is not None:
        rows.append(("load average before", "%g" % meta["loadavg_before"]))
    rows.append(("csgi-server build", "%s (%s)" % (meta.get("buildtype", "?"),
                                                   meta.get("build_dir", "?"))))
    for name, v in sorted(meta.get("versions", {}).items()):
        rows.append((name, v if v else "-"))
    for name, v in meta.get("settings", {}).items():
        rows.append(("setting: " + name, ", ".join(map(str, v)) if isinstance(v, list)
                     else str(v)))
    return rows


def targets_table(meta):
    """The targets of the run: kind, role, endpoints and paths."""
    out = ["<table>", "<thead><tr><th>target</th><th>kind</th><th>role</th><th>endpoints</th>"
           "</tr></thead>", "<tbody>"]
    for name, t in meta.get("targets", {}).items():
        eps = ", ".join("%s <code>%s</code>" % (esc(ep), esc(path))
                        for ep, path in t.get("endpoints", {}).items())
        out.append("<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>"
                   % (esc(name), esc(t.get("kind", "")), esc(t.get("role", "")), eps))
    out += ["</tbody>", "</table>"]
    return "\n".join(out)


def html_report(doc, md, svg):
    """The report of doc (a results document) as one HTML page; md and svg are the run's
    Markdown and SVG (pure)."""
    meta = doc["meta"]
    instr = doc["mode"] == "instructions"
    title = ("csgi-bench --instructions: instructions per request" if instr
             else "csgi-bench: requests per second and server CPU per request")
    method = method_instructions(meta) if instr else method_load(meta)
    chart = re.sub(r"^<\?xml[^>]*\?>\s*", "", svg)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="%s">' % CSP,
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        "<title>%s (%s)</title>" % (esc(title), esc(meta.get("date", ""))),
        "<style>%s</style>" % STYLE,
        "</head>",
        "<body>",
        "<main>",
        "<h1>%s</h1>" % esc(title),
        '<p class="sub">%s; generated by bench/csgi-bench from results.json, beside '
        "results.md and results.svg.</p>" % esc(meta.get("date", "")),
        "<h2>Chart</h2>",
        "<figure>\n%s</figure>" % chart,
        "<h2>Results</h2>",
        markdown_html(md),
        "<h2>Method</h2>",
        "\n".join("<p>%s</p>" % esc(p) for p in method),
        "<h2>Machine and settings</h2>",
        '<table class="kv">\n<tbody>\n%s\n</tbody>\n</table>' % "\n".join(
            "<tr><th>%s</th><td>%s</td></tr>" % (esc(k), esc(v)) for k, v in machine_rows(meta)),
        "<h2>Targets</h2>",
        targets_table(meta),
        "</main>",
        "</body>",
        "</html>",
    ]
    return "\n".join(parts) + "\n"
