"""The SVG charts (pure): grouped bars with min-max whiskers, one scale per endpoint."""

import math
import textwrap

from .common import SHAPES, TARGET_ORDER, shape_of
from .fmt import esc, k, short


PALETTE = ["#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3",
           "#8c8c8c", "#ccb974", "#64b5cd"]


def nice_ticks(top, n=5):
    """Axis ticks from 0 to at least top, about n steps of 1, 2, 2.5 or 5 x 10^k (pure)."""
    if top <= 0:
        return [0, 1]
    raw = top / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    count = math.ceil(top / step - 1e-9)
    # Multiples, not a running sum: 0.1 + 0.1 + 0.1 is not 0.3.
    return [round(i * step, 12) for i in range(count + 1)]


# Text metrics: an average glyph of DejaVu Sans (the widest of the fonts the SVG asks for) is
# about 0.62 of the font size; wrapping and the legend are laid out with it.
GLYPH = 0.62
LEGEND_FONT = 12
LEGEND_ROW = 18
MIN_WIDTH = 760


def text_width(text, size):
    return len(text) * size * GLYPH


def legend_layout(names, width, x0=12):
    """Where each legend entry goes: rows of (x, name), every row within width (pure)."""
    rows = [[]]
    x = x0
    for n in names:
        w = 16 + text_width(n, LEGEND_FONT) + 12
        if rows[-1] and x + w > width - x0:
            rows.append([])
            x = x0
        rows[-1].append((x, n))
        x += w
    return rows


def wrap(text, width, size, x0=12):
    """text as lines that fit between x0 and width - x0 at the given font size (pure)."""
    chars = max(20, int((width - 2 * x0) / (size * GLYPH)))
    return textwrap.wrap(text, chars) or [""]


def svg_group(out, x0, y0, ph, ep, d, names, colors):
    """One endpoint's bars on its own scale; returns the width used.

    d = {target: (median, lo, hi, errors, saturated)}: errors draws a red outline and "!",
    saturated (wrk was CPU-bound in a round) a "⚑" after the value. Each endpoint gets its
    own y axis because the figure that matters is the ratio between targets within it.
    """
    present = [n for n in names if n in d]
    bw = 30
    axis = 46
    width = axis + bw * len(present) + 16
    top, bottom = 22, 22
    h = ph - top - bottom
    vals = sorted((v[2] for v in d.values()), reverse=True)
    vmax = vals[0] if vals else 0
    # One bar 6x above all the others (Python next to C) would flatten them:
    # cut the axis above the others and mark the cut bar.
    cut = len(vals) > 2 and vals[1] > 0 and vals[0] > 6 * vals[1]
    if cut:
        vmax = vals[1]
    ticks = nice_ticks(vmax * 1.1)
    ymax = ticks[-1] or 1
    ybase = y0 + top + h
    left = x0 + axis
    for tv in ticks:
        y = ybase - h * tv / ymax
        out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#e4e4e4"/>'
                   % (left, left + bw * len(present) + 6, y, y))
        out.append('<text x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#444">%s</text>'
                   % (left - 4, y + 3.5, esc(k(tv) if tv >= 1000 else ("%g" % tv))))
    for bi, n in enumerate(present):
        med, lo, hi, flag, sat = (tuple(d[n]) + (False,))[:5]
        x = left + 3 + bi * bw
        clipped = med > ymax
        if clipped:
            lo = hi = med
        bh = h * min(med, ymax) / ymax
        out.append('<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"%s>'
                   '<title>%s %s: %s [%s-%s]%s</title></rect>'
                   % (x + 2, ybase - bh, bw - 4, bh, colors[n],
                      ' stroke="#d00" stroke-width="2"' if flag else "",
                      esc(n), esc(ep), esc(k(med)), esc(k(lo)), esc(k(hi)),
                      (" (errors)" if flag else "") + (" (wrk saturated)" if sat else "")))
        cx = x + bw / 2
        ylo, yhi = ybase - h * min(lo, ymax) / ymax, ybase - h * min(hi, ymax) / ymax
        if clipped:
            yb = ybase - bh + 14
            out.append('<path d="M%.1f %.1fl6 -4l6 4l6 -4l6 4" stroke="white" stroke-width="3" '
                       'fill="none"/>' % (x + 1, yb))
        if hi > lo:
            out.append('<path d="M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f" stroke="#222" '
                       'stroke-width="1.2" fill="none"/>'
                       % (cx, ylo, yhi, cx - 4, ylo, cx + 4, cx - 4, yhi, cx + 4))
        out.append('<text x="%.1f" y="%.1f" font-size="9" text-anchor="middle">%s</text>'
                   % (cx, min(yhi, ybase - bh) - 3,
                      esc(short(med) + ("!" if flag else "") + ("⚑" if sat else ""))))
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#222"/>'
               % (left, left + bw * len(present) + 6, ybase, ybase))
    out.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#222"/>'
               % (left, left, ybase, y0 + top))
    out.append('<text x="%.1f" y="%.1f" font-size="12" font-weight="bold" '
               'text-anchor="middle">%s</text>' % (left + bw * len(present) / 2 + 3, y0 + 12,
                                                   esc(ep)))
    return width


def svg_chart(title, subtitle, panels, names, footer, max_width=1320):
    """panels = [(title, [(endpoint, {target: (median, lo, hi, errors[, saturated])})])].

    The body is laid out first; the legend then wraps into rows within the chart's width,
    and the subtitle and the footer wrap into lines, so nothing is cut in a small chart.
    """
    # The same target has the same colour in every chart.
    extra = [n for n in names if n not in TARGET_ORDER]
    colors = {n: PALETTE[(TARGET_ORDER + extra).index(n) % len(PALETTE)] for n in names}
    ph = 230
    body = []
    y = 0
    width = 0
    for ptitle, groups in panels:
        body.append('<text x="12" y="%d" font-size="14" font-weight="bold">%s</text>'
                    % (y + 14, esc(ptitle)))
        y += 24
        x = 12
        for ep, d in groups:
            if not d:
                continue
            need = 46 + 30 * len(d) + 16
            if x > 12 and x + need > max_width:
                x = 12
                y += ph
            x += svg_group(body, x, y, ph, ep, d, names, colors) + 8
            width = max(width, x)
        y += ph + 6
    width = max(width + 12, MIN_WIDTH)
    head = ['<text x="12" y="22" font-size="17" font-weight="bold">%s</text>' % esc(title)]
    ty = 40
    for line in wrap(subtitle, width, 11):
        head.append('<text x="12" y="%d" font-size="11" fill="#444">%s</text>' % (ty, esc(line)))
        ty += 14
    ly = ty - 4
    for row in legend_layout(names, width):
        for lx, n in row:
            head.append('<rect x="%d" y="%d" width="12" height="12" fill="%s"/>'
                        % (lx, ly, colors[n]))
            head.append('<text x="%d" y="%d" font-size="%d">%s</text>'
                        % (lx + 16, ly + 10, LEGEND_FONT, esc(n)))
        ly += LEGEND_ROW
    top = ly + 4
    foot = wrap(footer, width, 10)
    height = top + y + 8 + 13 * len(foot)
    out = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" '
           'font-family="DejaVu Sans, Helvetica, Arial, sans-serif">' % (width, height, width,
                                                                         height),
           '<rect width="100%" height="100%" fill="white"/>'] + head
    out.append('<g transform="translate(0 %d)">' % top)
    out += body
    out.append("</g>")
    fy = top + y + 8
    for line in foot:
        fy += 13
        out.append('<text x="12" y="%d" font-size="10" fill="#666">%s</text>' % (fy - 3,
                                                                                 esc(line)))
    out.append("</svg>")
    return "\n".join(out) + "\n"


LOAD_FOOTER = ("Each endpoint has its own scale; a bar with a white zigzag is cut (its label "
               "gives its value). Bars: median over rounds; whiskers: min-max; red outline and "
               "\"!\": the run had errors.")
SATURATED_FOOTER = (" \u2691 after a req/s value: wrk was CPU-saturated in at least one round, "
                    "so the load generator, not the server, set the req/s (compare the CPU "
                    "panel, or --instructions).")
INSTR_FOOTER = ("Each endpoint has its own scale; a bar with a white zigzag is cut (its label "
                "gives its value). Bars: instructions per request, the slope between two "
                "request counts under %s (one worker, one thread, one keep-alive connection), "
                "so start-up and shutdown cancel out; counts repeat, so there are no rounds "
                "and no whiskers. Red outline and \"!\": some responses were errors.")
GENERATED = " Generated by bench/csgi-bench."


def svg_load(meta, summary):
    names = [n for n in TARGET_ORDER + sorted({s["target"] for s in summary})
             if any(s["target"] == n and "rps" in s for s in summary)]
    names = list(dict.fromkeys(names))
    shapes = [sh for sh in SHAPES if any(shape_of(s) == sh and "rps" in s for s in summary)]
    titled = shapes != ["keepalive"]
    # A group per endpoint and shape, the shapes of one endpoint side by side.
    ep_order = list(dict.fromkeys(s["endpoint"] for s in summary if "rps" in s))
    eps = [(ep, sh) for ep in ep_order for sh in shapes
           if any(s["endpoint"] == ep and shape_of(s) == sh and "rps" in s for s in summary)]

    def groups(key, flag_saturation=False):
        g = []
        for ep, sh in eps:
            d = {}
            for s in summary:
                if s["endpoint"] == ep and shape_of(s) == sh and s.get(key):
                    v = s[key]
                    d[s["target"]] = (v["median"], v["min"], v["max"], bool(s["errors"]),
                                      flag_saturation and bool(s.get("wrk_saturated_runs")))
            g.append(("%s, %s" % (ep, sh) if titled else ep, d))
        return g
    saturated = any(s.get("wrk_saturated_runs") for s in summary if "rps" in s)
    st = meta["settings"]
    sub = ("%d cores; wrk -t%d -c%d, %g s x %d rounds; %d worker(s) per server; %s%s"
           % (meta["cores"], st["threads_load"], st["connections"], st["duration"], st["rounds"],
              st["workers"], "shapes: %s; " % ", ".join(shapes) if titled else "",
              meta["date"]))
    return svg_chart("csgi-bench: requests per second and server CPU per request", sub,
                     [("Requests per second (higher is better)", groups("rps", True)),
                      ("Server CPU time per request, µs (lower is better)",
                       groups("cpu_us_per_req"))], names,
                     LOAD_FOOTER + (SATURATED_FOOTER if saturated else "") + GENERATED)


def svg_instr(meta, results):
    names = list(dict.fromkeys([n for n in TARGET_ORDER + [r["target"] for r in results]
                                if any(r["target"] == n and "per_request" in r
                                       for r in results)]))
    eps = list(dict.fromkeys(r["endpoint"] for r in results if "per_request" in r))
    g = []
    for ep in eps:
        d = {r["target"]: (r["per_request"], r["per_request"], r["per_request"],
                           bool(r.get("errors")))
             for r in results if r["endpoint"] == ep and "per_request" in r}
        g.append((ep, d))
    tool = next((r["tool"] for r in results if r.get("tool")), "callgrind")
    return svg_chart("csgi-bench --instructions: instructions per request",
                     "%d cores; %s; one worker, one thread, keep-alive; %s"
                     % (meta["cores"], tool, meta["date"]),
                     [("Instructions per request (lower is better)", g)], names,
                     INSTR_FOOTER % tool + GENERATED)
