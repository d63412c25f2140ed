"""Summaries of the runs (pure): medians with min-max, the ratios to the best, the noise."""

import statistics

from .common import shape_of


def summarize(values):
    v = [x for x in values if x is not None]
    if not v:
        return None
    return {"median": statistics.median(v), "min": min(v), "max": max(v), "n": len(v)}


def aggregate(runs, targets, endpoints, shapes=("keepalive",)):
    out = []
    for sh in shapes:
        out += aggregate_shape(runs, targets, endpoints, sh)
    return out


def aggregate_shape(runs, targets, endpoints, shape):
    out = []
    for ep in endpoints:
        for t in targets:
            if ep not in t.endpoints:
                continue
            rs = [r for r in runs if r["target"] == t.name and r["endpoint"] == ep
                  and shape_of(r) == shape]
            ok = [r for r in rs if "rps" in r]
            s = {"target": t.name, "endpoint": ep, "shape": shape, "role": t.role,
                 "runs": len(ok)}
            if not t.available:
                s["skipped"] = t.note
                out.append(s)
                continue
            if not ok:
                if t.dead:
                    s["dead"] = t.dead
                else:
                    s["failed"] = next((r["failed"] for r in rs if r.get("failed")),
                                       "no successful run")
                out.append(s)
                continue
            fails = [r["failed"] for r in rs if r.get("failed")]
            if fails:
                s["failed_runs"] = len(fails)
            s["rps"] = summarize([r["rps"] for r in ok])
            s["p50_us"] = summarize([r["latency_us"]["p50"] for r in ok])
            s["p90_us"] = summarize([r["latency_us"]["p90"] for r in ok])
            s["p99_us"] = summarize([r["latency_us"]["p99"] for r in ok])
            s["max_us"] = summarize([r["latency_us"]["max"] for r in ok])
            s["cpu_us_per_req"] = summarize([r["cpu_us_per_req"] for r in ok])
            s["rss_worker_kib"] = summarize([r["rss_worker_kib"] for r in ok])
            s["rss_total_kib"] = summarize([r["rss_total_kib"] for r in ok])
            s["wrk_cpu_frac"] = summarize([r["wrk_cpu_frac"] for r in ok])
            s["server_cpu_frac"] = summarize([r["server_cpu_frac"] for r in ok])
            s["worker_cpu_max_share"] = summarize([r.get("worker_cpu_max_share") for r in ok])
            s["other_cores"] = summarize([r.get("other_cores") for r in ok])
            s["requests"] = sum(r["wrk"]["requests"] for r in ok)
            s["errors"] = sum(r["errors"] for r in ok)
            s["socket_errors"] = sum(r["socket_errors"] for r in ok)
            s["status_errors"] = sum(r["status_errors"] for r in ok)
            s["wrk_saturated_runs"] = sum(1 for r in ok if r["wrk_saturated"])
            pre = [r["precheck"] for r in ok if r.get("precheck")]
            if pre and not pre[0]["ok"]:
                s["precheck_status"] = pre[0]["status"]
            odd = [r[k] for r in rs for k in ("process_change", "stop") if r.get(k)]
            if odd:
                s["odd"] = odd
            if s["rps"]["median"] > 0:
                s["rps_spread"] = (s["rps"]["max"] - s["rps"]["min"]) / s["rps"]["median"]
            c = s["cpu_us_per_req"]
            if c and c["median"]:
                s["cpu_spread"] = (c["max"] - c["min"]) / c["median"]
            out.append(s)
        best = max((s["rps"]["median"] for s in out if s["endpoint"] == ep and "rps" in s),
                   default=None)
        lowc = min((s["cpu_us_per_req"]["median"] for s in out
                    if s["endpoint"] == ep and s.get("cpu_us_per_req")), default=None)
        for s in out:
            if s["endpoint"] == ep and "rps" in s:
                s["rps_vs_best"] = s["rps"]["median"] / best if best else None
                if lowc and s.get("cpu_us_per_req"):
                    s["cpu_vs_best"] = s["cpu_us_per_req"]["median"] / lowc
    return out


def noise(summary, key):
    v = [s[key] for s in summary if s.get(key) is not None and s.get("runs", 0) > 1]
    if not v:
        return None
    return statistics.median(v), max(v)
