"""--compare: the change per figure between two result files.

compare_docs() is pure (documents in, lines and an exit status out) and unit-tested; compare()
reads the files and prints. The rules:

- Files of different modes (an --instructions file and a load file) cannot be compared: exit 2.
- A comparison with no row in both files (target x endpoint x shape) compares nothing: exit 1,
  so that a --fail-over gate never passes on an empty table.
- A change is "better" or "worse" only beyond its noise threshold, and "within noise" (load) or
  "same" (instructions) inside it. The threshold is the larger of the measured spread, (max -
  min) / median over the rounds of either file, and a floor (--noise-floor, default
  DEFAULT_FLOOR). A load row that had one round on either side has no measured spread: the
  output warns so, and only the floor applies (ONE_ROUND_FLOOR by default). Load rows whose
  min-max ranges overlap are within noise as well.
- --fail-over PCT: exit 1 when a figure is worse (beyond its threshold) by more than PCT %.
"""

import json

from .common import shape_of
from .fmt import k

# Default floors of the noise threshold, as fractions: load runs of several rounds, load runs
# of one round (no spread was measured: -r 1 runs of the same code differ by several per cent
# on a small machine), and instruction counts (repeatable within about 0.3 %).
DEFAULT_FLOOR = {"load": 0.02, "instructions": 0.005}
ONE_ROUND_FLOOR = 0.10

# Load figures: key, label, +1 when higher is better.
LOAD_FIGURES = [("rps", "req/s", 1), ("p50_us", "p50 µs", -1), ("p99_us", "p99 µs", -1),
                ("cpu_us_per_req", "CPU µs/req", -1), ("rss_worker_kib", "RSS KiB", -1)]

MODE_NAMES = {"load": "a load run", "instructions": "an instruction count (--instructions)"}


def mode_of(doc):
    """"load" or "instructions" (older files may lack "mode"), None when neither."""
    m = doc.get("mode")
    if m in MODE_NAMES:
        return m
    if doc.get("instructions"):
        return "instructions"
    if "summary" in doc:
        return "load"
    return None


def spread(fig):
    """(max - min) / median of a summarized figure; None with one round (nothing measured)."""
    if not fig or fig.get("n", 2) < 2 or not fig.get("median"):
        return None
    return (fig["max"] - fig["min"]) / abs(fig["median"])


def threshold(a, b, floor):
    """The noise threshold of one figure (a fraction): the larger spread of the two, or floor."""
    spreads = [s for s in (spread(a), spread(b)) if s is not None]
    return max(spreads + [floor])


def verdict(change, thr, sign, overlap=False):
    """"within noise" when |change| <= thr (or the ranges overlap), else better or worse."""
    if overlap or abs(change) <= thr:
        return "within noise"
    return "better" if change * sign > 0 else "worse"


def _row_label(s):
    return s["endpoint"] + ("" if shape_of(s) == "keepalive" else " (%s)" % shape_of(s))


def compare_load(old, new, fail_over, floor):
    """Rows, failures and notes of two load documents."""
    rows, worse, one = [], [], []
    o_by = {(s["target"], s["endpoint"], shape_of(s)): s for s in old.get("summary", [])}
    for s in new.get("summary", []):
        o = o_by.get((s["target"], s["endpoint"], shape_of(s)))
        if not o:
            continue
        ep = _row_label(s)
        for key, label, sign in LOAD_FIGURES:
            a, b = o.get(key), s.get(key)
            if not a or not b or not a["median"]:
                continue
            single = a.get("n", 2) < 2 or b.get("n", 2) < 2
            if single:
                one.append("%s %s" % (s["target"], ep))
            fl = floor if floor is not None else (ONE_ROUND_FLOOR if single
                                                  else DEFAULT_FLOOR["load"])
            thr = threshold(a, b, fl)
            ch = (b["median"] - a["median"]) / a["median"]
            overlap = not single and not (b["min"] > a["max"] or b["max"] < a["min"])
            v = verdict(ch, thr, sign, overlap)
            if v == "worse" and fail_over is not None and abs(ch) * 100 > fail_over:
                worse.append("%s %s %s %+.1f%%" % (s["target"], ep, label, 100 * ch))
            rows.append((ep, s["target"], label, k(a["median"]), k(b["median"]),
                         "%+.1f %%" % (100 * ch), "±%.1f %%" % (100 * thr), v))
        if o.get("errors", 0) != s.get("errors", 0):
            rows.append((ep, s["target"], "errors", str(o.get("errors")), str(s.get("errors")),
                         "", "", "worse" if s.get("errors", 0) > o.get("errors", 0)
                         else "better"))
    notes = []
    if one:
        fl = floor if floor is not None else ONE_ROUND_FLOOR
        notes.append("Warning: %d row(s) had one round (-r 1) in one file or both (%s): one "
                     "round gives no noise estimate, so a change is called better or worse only "
                     "beyond ±%.1f %% (--noise-floor). Use -r 3 or more, or --instructions, for "
                     "a gate." % (len(set(one)), ", ".join(sorted(set(one))[:4]) +
                                  (", ..." if len(set(one)) > 4 else ""), 100 * fl))
    return rows, worse, notes


def compare_instructions(old, new, fail_over, floor):
    rows, worse = [], []
    thr = floor if floor is not None else DEFAULT_FLOOR["instructions"]
    o_in = {(r["target"], r["endpoint"]): r for r in old.get("instructions", [])}
    for r in new.get("instructions", []):
        o = o_in.get((r["target"], r["endpoint"]))
        if not o or not o.get("per_request") or "per_request" not in r:
            continue
        ch = (r["per_request"] - o["per_request"]) / o["per_request"]
        v = verdict(ch, thr, -1)
        if v == "within noise":
            v = "same"
        if v == "worse" and fail_over is not None and abs(ch) * 100 > fail_over:
            worse.append("%s %s instructions %+.1f%%" % (r["target"], r["endpoint"], 100 * ch))
        rows.append((r["endpoint"], r["target"], "instructions/req",
                     "{:,.0f}".format(o["per_request"]), "{:,.0f}".format(r["per_request"]),
                     "%+.1f %%" % (100 * ch), "±%.1f %%" % (100 * thr), v))
    return rows, worse, []


def compare_docs(old, new, fail_over=None, floor=None, names=("OLD", "NEW")):
    """(lines, exit status) of comparing two result documents; floor is a fraction or None."""
    mo, mn = mode_of(old), mode_of(new)
    if mo is None or mn is None:
        bad = names[0] if mo is None else names[1]
        return (["Cannot compare: %s is not a csgi-bench results.json (no summary and no "
                 "instructions)." % bad], 2)
    if mo != mn:
        return (["Cannot compare: %s is %s and %s is %s; their figures measure different "
                 "things. Compare two files of the same mode." % (
                     names[0], MODE_NAMES[mo], names[1], MODE_NAMES[mn])], 2)
    fn = compare_instructions if mo == "instructions" else compare_load
    rows, worse, notes = fn(old, new, fail_over, floor)
    lines = ["Comparing %s (old) with %s (new)" % names, ""]
    if not rows:
        lines.append("Nothing to compare: no %s is in both files." % (
            "target x endpoint" if mo == "instructions" else "target x endpoint x shape"))
        return lines, 1
    for n in notes:
        lines += [n, ""]
    lines.append("| endpoint | target | figure | old | new | change | noise | |")
    lines.append("| --- | --- | --- | ---: | ---: | ---: | ---: | --- |")
    for r in rows:
        lines.append("| %s |" % " | ".join(r))
    lines.append("")
    lines.append("noise: the threshold of each row, the larger of the spread (max - min over "
                 "the rounds, of either file) and the floor; changes within it are %s."
                 % ("\"same\"" if mo == "instructions" else "\"within noise\", as are load "
                    "rows whose min-max ranges overlap"))
    lines.append("")
    if worse:
        lines.append("Worse by more than %g %% (beyond the noise threshold): %s"
                     % (fail_over, "; ".join(worse)))
        return lines, 1
    return lines, 0


def compare(old_path, new_path, fail_over, floor=None):
    """Print the comparison of two files; returns the exit status."""
    docs = []
    for p in (old_path, new_path):
        try:
            with open(p) as f:
                docs.append(json.load(f))
        except (OSError, ValueError) as e:
            print("Cannot compare: %s: %s" % (p, e))
            return 2
    lines, status = compare_docs(docs[0], docs[1], fail_over, floor, (old_path, new_path))
    print("\n".join(lines))
    return status
