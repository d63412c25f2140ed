"""The Markdown tables and notes of a run (pure)."""

import statistics

from .common import BALANCE_NOTE, FRAMEWORK_TARGETS, SHAPES, SHAPE_TITLES, TARGET_NOTES, shape_of
from .fmt import k, ms, pct
from .stats import noise


def markdown_load(meta, summary, targets, runs):
    L = []
    st = meta["settings"]
    L.append("Command: `%s`" % meta["command"])
    L.append("")
    L.append("Machine: %d cores (%s), Linux %s; %s; csgi-server build: %s. "
             "wrk %s: %d thread(s), %d connections, %g s per run after a %g s warm-up "
             "(discarded), %d round(s) interleaved; %d worker(s) x %d thread(s) per server.%s"
             % (meta["cores"], meta["cpu"], meta["kernel"], meta["date"], meta["buildtype"],
                meta["versions"].get("wrk") or "?", st["threads_load"], st["connections"],
                st["duration"], st["warmup"], st["rounds"], st["workers"], st["threads"],
                " Load shapes: %s (one table each)." % ", ".join(st["shapes"])
                if st.get("shapes", ["keepalive"]) != ["keepalive"] else ""))
    L.append("")
    shapes = [sh for sh in SHAPES if any(shape_of(s) == sh for s in summary)]
    # One table per shape; a keep-alive-only run looks as it did before --shape.
    titled = shapes != ["keepalive"]
    notes = []
    for sh in shapes:
        if titled:
            L.append("**%s.**" % SHAPE_TITLES[sh])
            L.append("")
        markdown_table(L, notes, [s for s in summary if shape_of(s) == sh],
                       (" (%s)" % sh) if titled else "")
    markdown_load_notes(L, notes, meta, summary, targets, runs, titled)
    return "\n".join(L) + "\n"


def markdown_table(L, notes, summary, tag):
    """The load table of one shape; tag names the shape in the notes."""
    L.append("| endpoint | target | req/s median [min-max] | p50 ms | p99 ms | server CPU "
             "µs/req | RSS/worker | wrk CPU | errors | req/s vs best | CPU vs best |")
    L.append("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for s in summary:
        name = s["target"] + (" (peer)" if s["role"] == "peer" else "")
        if "rps" not in s:
            continue
        r = s["rps"]
        err = str(s["errors"])
        if s["errors"]:
            err = "**%d** ⚠" % s["errors"]
            parts = []
            if s["status_errors"]:
                parts.append("%d bad status" % s["status_errors"])
            if s["socket_errors"]:
                parts.append("%d socket errors" % s["socket_errors"])
            pre = " (answers %s)" % s["precheck_status"] if s.get("precheck_status") else ""
            notes.append("⚠ %s %s%s: %s in %d requests%s." % (
                s["target"], s["endpoint"], tag, ", ".join(parts), s["requests"], pre))
        wrk = pct(s["wrk_cpu_frac"]["median"])
        if s["wrk_saturated_runs"]:
            wrk += " ⚑"
        c = s.get("cpu_us_per_req")
        L.append("| %s | %s | %s [%s-%s] | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            s["endpoint"], name, k(r["median"]), k(r["min"]), k(r["max"]),
            ms(s["p50_us"]["median"]), ms(s["p99_us"]["median"]),
            "%.1f" % c["median"] if c else "-",
            "%.1f MiB" % (s["rss_worker_kib"]["median"] / 1024) if s.get("rss_worker_kib") else "-",
            wrk, err,
            "%.2f" % s["rps_vs_best"] if s.get("rps_vs_best") else "-",
            "%.2f" % s["cpu_vs_best"] if s.get("cpu_vs_best") else "-"))
        for o in s.get("odd", []):
            notes.append("%s %s%s: %s" % (s["target"], s["endpoint"], tag, o))
    L.append("")


def saturation_note(meta, summary):
    """The ⚑ note under a load table, or None when wrk never saturated."""
    sat = [s for s in summary if s.get("wrk_saturated_runs")]
    if not sat:
        return None
    return ("⚑ wrk was CPU-saturated (≥ %d %% of its %d thread(s)) in at least one round of "
            "the row; %d of %d runs in all. There the load generator, not the server, set "
            "the req/s: compare the server CPU µs/request column (or `--instructions`) "
            "instead."
            % (100 * meta["settings"]["saturation"], meta["settings"]["threads_load"],
               sum(s["wrk_saturated_runs"] for s in sat),
               sum(s["runs"] for s in summary if "rps" in s)))


def noise_note(summary):
    """How far the same target moved between rounds, or None with one round."""
    n1 = noise(summary, "rps_spread") or (None, None)
    n2 = noise(summary, "cpu_spread") or (None, None)
    if n1[0] is None:
        return None
    return ("Machine noise: the same target's req/s varied between rounds by a median of "
            "%.0f %% (max %.0f %%) of its median; its server CPU µs/request by %.0f %% "
            "(max %.0f %%)." % (100 * n1[0], 100 * n1[1], 100 * (n2[0] or 0),
                                 100 * (n2[1] or 0)))


def markdown_load_notes(L, notes, meta, summary, targets, runs, titled):
    """What follows the tables: saturation, balance, machine noise, then the notes."""
    note = saturation_note(meta, summary)
    if note:
        L += [note, ""]
    shares = {}
    for s in summary:
        if s.get("worker_cpu_max_share"):
            shares.setdefault(s["target"], []).extend(
                [s["worker_cpu_max_share"]["min"], s["worker_cpu_max_share"]["max"]])
    if shares and meta["settings"]["workers"] > 1:
        L.append("Load balance between workers (the busiest worker's share of the server's CPU "
                 "time; %.2f is even, 1.00 means one worker did everything), min-max over all "
                 "runs: %s. %s"
                 % (1.0 / meta["settings"]["workers"],
                    "; ".join("%s %.2f-%.2f" % (n, min(v), max(v)) for n, v in shares.items()),
                    BALANCE_NOTE))
        L.append("")
    other = [r["other_cores"] for r in runs if r.get("other_cores") is not None]
    if other:
        busy = sum(1 for o in other if o >= 0.25)
        L.append("Other processes on the machine (CPU used by neither wrk nor the server, in "
                 "cores of %d): median %.2f, max %.2f; %d of %d runs lost a quarter of a core or "
                 "more to them (`other_cores` in the JSON)." % (
                     meta["cores"], statistics.median(other), max(other), busy, len(other)))
        L.append("")
    note = noise_note(summary)
    if note:
        L += [note, ""]
    for t in targets:
        eps = list(dict.fromkeys(s["endpoint"] for s in summary if s["target"] == t.name))
        if not eps:
            continue
        if not t.available:
            notes.append("skipped %s (%s): %s" % (t.name, ", ".join(eps), t.note))
        elif t.dead:
            notes.append("✗ %s is dead (no figures for %s): %s" % (t.name, ", ".join(eps),
                                                                   t.dead))
    for s in summary:
        tag = (" (%s)" % shape_of(s)) if titled else ""
        if s.get("failed"):
            notes.append("✗ %s %s%s: every run failed: %s" % (s["target"], s["endpoint"], tag,
                                                              s["failed"]))
        elif s.get("failed_runs"):
            notes.append("%s %s%s: %d run(s) failed" % (s["target"], s["endpoint"], tag,
                                                        s["failed_runs"]))
    present = list(dict.fromkeys(s["target"] for s in summary if "rps" in s))
    if present:
        L.append(targets_note(present, meta.get("versions")))
        L.append("")
    seen = set()
    for n in notes:
        if n not in seen:
            L.append("- " + n)
            seen.add(n)


def target_note(name, versions=None):
    """What a target is; hello@1.0 is hello on libmicrohttpd 1.0 (versions: the meta's, which
    names the exact version) (pure)."""
    base, _, label = name.partition("@")
    if base not in TARGET_NOTES:
        return "an extra target (--extra-targets)"
    if not label:
        return TARGET_NOTES[base]
    exact = (versions or {}).get("libmicrohttpd@" + label) or label
    return "%s, built on libmicrohttpd %s" % (TARGET_NOTES[base], exact)


def targets_note(names, versions=None):
    """One line saying what each target is (extra targets: from --extra-targets)."""
    return "Targets: " + "; ".join("**%s**: %s" % (n, target_note(n, versions))
                                   for n in names) + "."


def instr_columns(results):
    """The "vs mhd" and "vs raw" differences of instruction results (pure).

    Returns ({(target, endpoint): (vs_mhd, vs_raw)}, notes). vs mhd: every other target's
    plaintext against mhd's (what the gateway adds to libmicrohttpd: hello, and the apps);
    vs raw: each framework target (resource, route) against raw on the same endpoint (what
    the framework adds to the same app). A value is None where it does not apply; a note
    says why a column has no value at all.
    """
    per = {(r["target"], r["endpoint"]): r["per_request"] for r in results
           if r.get("per_request") is not None}
    out, notes = {}, []
    mhd = per.get(("mhd", "plaintext"))
    for (t, ep), v in per.items():
        # hello@1.0 against mhd@1.0: the floor on the same libmicrohttpd.
        label = t.partition("@")[2]
        floor = "mhd@" + label if label else "mhd"
        base = per.get((floor, "plaintext"))
        vs_mhd = v - base if base is not None and ep == "plaintext" and t != floor else None
        raw = per.get(("raw", ep))
        vs_raw = v - raw if raw is not None and t in FRAMEWORK_TARGETS else None
        out[(t, ep)] = (vs_mhd, vs_raw)
    targets = {t for t, _ in per}
    if not any(v[0] is not None for v in out.values()):
        notes.append("vs mhd: no value, because %s (add mhd and another plaintext target to "
                     "--targets)." % ("mhd was not measured" if mhd is None else
                                      "no other target served plaintext"))
    if not any(v[1] is not None for v in out.values()):
        notes.append("vs raw: no value, because %s (add raw and resource or route to "
                     "--targets)." % ("raw was not measured" if "raw" not in targets else
                                      "no framework target (resource, route) was measured"))
    return out, notes


def instr_table(results):
    """(lines, notes): the instruction table's Markdown rows, and the notes of missing rows."""
    L = ["| endpoint | target | instructions/request | start-up + shutdown | vs mhd | "
         "vs raw | errors |",
         "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    notes = []
    cols, col_notes = instr_columns(results)
    for r in results:
        if "per_request" not in r:
            if r.get("skipped"):
                notes.append("skipped %s %s: %s" % (r["target"], r["endpoint"], r["skipped"]))
            elif r.get("dead"):
                notes.append("✗ %s %s: dead (%s)" % (r["target"], r["endpoint"], r["dead"]))
            continue
        vs_mhd, vs_raw = cols.get((r["target"], r["endpoint"]), (None, None))
        err = "**%d** ⚠" % r["errors"] if r.get("errors") else "0"
        L.append("| %s | %s | %s | %s | %s | %s | %s |" % (
            r["endpoint"], r["target"] + (" (peer)" if r["role"] == "peer" else ""),
            "{:,.0f}".format(r["per_request"]), "{:,.0f}".format(r["startup"]),
            "-" if vs_mhd is None else "{:+,.0f}".format(vs_mhd),
            "-" if vs_raw is None else "{:+,.0f}".format(vs_raw), err))
    return L, col_notes + notes


def mhd_versions_line(meta):
    """Which libmicrohttpd each target ran on, when a run measured more than one
    (--mhd-versions); else None (pure)."""
    v = meta.get("versions", {})
    labels = sorted(k.partition("@")[2] for k in v if k.startswith("libmicrohttpd@"))
    if not labels:
        return None
    return ("libmicrohttpd: %s for the targets without a label (the build's own); %s. "
            "A target with a label is compared with mhd of the same label."
            % (v.get("libmicrohttpd") or "?",
               "; ".join("%s for the targets labelled @%s" % (v["libmicrohttpd@" + x] or "?", x)
                         for x in labels)))


def markdown_instr(meta, results):
    L = ["Command: `%s`" % meta["command"], ""]
    if meta.get("ignored_args"):
        L.append("Ignored by --instructions (it sends a fixed number of requests on one "
                 "connection to one worker): `%s`." % " ".join(meta["ignored_args"]))
        L.append("")
    tool = next((r["tool"] for r in results if r.get("tool")), "?")
    ns = meta.get("settings", {}).get("instr_requests")
    L.append("Instructions per request (%s, user space, the serving process: worker, or the "
             "whole server when it has one process), one worker, one thread, one keep-alive "
             "connection%s; the slope between two request counts, so start-up and shutdown "
             "cancel out. Counts are repeatable: there are no rounds and no min-max. "
             "Machine: %d cores, Linux %s, %s; csgi-server build: %s."
             % (tool, " (%s requests; a fifth of each for Python)" % " and ".join(
                 "{:,}".format(n) for n in ns) if ns else "",
                meta["cores"], meta["kernel"], meta["date"], meta["buildtype"]))
    L.append("")
    table, notes = instr_table(results)
    L += table
    L.append("")
    L.append("vs mhd: instructions per request over raw libmicrohttpd's (plaintext: what the "
             "gateway adds); vs raw: over the same app on raw CSGI (what the framework adds).")
    mv = mhd_versions_line(meta)
    if mv:
        L += ["", mv]
    L.append("")
    present = list(dict.fromkeys(r["target"] for r in results if "per_request" in r))
    if present:
        L.append(targets_note(present, meta.get("versions")))
        L.append("")
    for n in notes:
        L.append("- " + n)
    return "\n".join(L) + "\n"
