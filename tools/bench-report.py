#!/usr/bin/env python3
# SPDX-License-Identifier: GPL-2.0
#
# Turns the raw fio JSON of a `make bench` run into a table (terminal),
# results.json (machine-readable), results.md (the table in Markdown) and
# results.svg (Rust/C throughput ratio per target and profile) and
# summary.txt (the tables as plain text with how they were measured).
#
#   tools/bench-report.py OUT_DIR [--wall-seconds N] [--readme FILE]
#   tools/bench-report.py --self-test
#
# Every ratio in every table is Rust's performance over C's: > 1 means
# Rust better (throughput and rates: Rust / C; times and latencies: C time
# / Rust time). --self-test builds a results folder in which Rust is
# better (then worse) everywhere and checks that every ratio column of
# every table says so.
#
# --readme puts the tables (summary.txt) between the lines
# [bench-table-begin] and [bench-table-end] of FILE: Documentation/bench.md
# ("Latest results").
#
# OUT_DIR holds what tools/bench-guest.sh produced: runs.tsv (one line per
# measurement: target, profile, cache, impl, rep, fio JSON file, rw, bs,
# numjobs, iodepth, mode, fio exit status, what served it, fio job name; a
# JSON file holds the jobs of one fio batch), raw/*.json, meta.txt,
# skipped.tsv, c_as_rust.txt, messages.tsv (timed dm messages: target,
# message, via (dmsetup: around the process; ioctl: around the ioctl), impl,
# rep, index, microseconds, exit status or errno, what served it; message
# "floor": the same call reaching no target); timings.tsv (operations timed
# outside fio, e.g. clone's hydration of a whole device: target, metric,
# impl, rep, seconds, bytes, exit status, what served it); counts.tsv
# (counts observed during a fio run, e.g. regions hydrated: target,
# profile, qualifier, impl, rep, what, value, out of); checks.tsv (data
# checks: target, impl, rep, what, ok|FAILED, detail); loads.tsv
# (hydration under a load: target, profile, iodepth, policy, impl, rep,
# base seconds, base I/Os, regions hydrated in the base window, window
# seconds, window I/Os, regions hydrated in the window, total regions,
# done|partial, exit status, what served it); and host-meta.txt from
# scripts/bench.sh.
# Standard library only.

import json
import os
import shutil
import statistics
import sys
import tempfile
import textwrap
from html import escape

PROFILE_ORDER = ["randread-4k", "seqread-1m", "randwrite-4k", "seqwrite-1m"]
# The qualifier after the profile: verity's cache state (-bh: with
# try_verify_in_tasklet; fec: a table with the FEC options, clean image;
# fec-corrupt: the same, reads of corrupt blocks corrected), era's block state
# (fresh: first write to each block in the era; rewrite: blocks already
# marked; ckpt-load: the load under which checkpoints were timed), clone's
# hydration state (unhydrated: background hydration off; during:
# background hydration enabled while the run goes; after: the device fully
# hydrated).
CACHE_ORDER = ["-", "cold", "warm", "cold-bh", "warm-bh", "fec", "fec-corrupt", "fresh", "rewrite", "ckpt-load", "unhydrated", "during",
               "after"]
MIB = 1024.0


def read_kv(path):
    kv = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                if "=" in line:
                    k, v = line.rstrip("\n").split("=", 1)
                    for conv in (int, float):
                        try:
                            v = conv(v)
                            break
                        except ValueError:
                            pass
                    kv[k] = v
    return kv


def read_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


_fio_cache = {}


def load_fio(path, rw, jobname):
    """Returns bw (MiB/s), iops, mean and p99 latency (us) of one fio job."""
    if path not in _fio_cache:
        with open(path) as f:
            text = f.read()
        # fio may print notes before the JSON object.
        _fio_cache[path] = json.loads(text[text.index("{"):])
    jobs = [j for j in _fio_cache[path]["jobs"] if j["jobname"] == jobname]
    if not jobs:
        raise ValueError("no job %s in %s" % (jobname, path))
    job = jobs[0]
    if job.get("error"):
        raise ValueError("fio error %s" % job["error"])
    d = job["write" if "write" in rw else "read"]
    pct = d.get("clat_ns", {}).get("percentile", {})
    return {
        "bw_mib": d["bw"] / MIB,
        "iops": d["iops"],
        "lat_us": d["lat_ns"]["mean"] / 1000.0,
        "p99_us": pct.get("99.000000", 0) / 1000.0,
        "io_mib": d["io_kbytes"] / MIB,
        "runtime_ms": d["runtime"],
    }


def med(runs, key):
    v = [r[key] for r in runs if r.get(key) is not None]
    return statistics.median(v) if v else None


def summarize(runs):
    if not runs:
        return None
    s = {k: med(runs, k) for k in ("bw_mib", "iops", "lat_us", "p99_us")}
    bws = [r["bw_mib"] for r in runs]
    s["spread_pct"] = 100.0 * (max(bws) - min(bws)) / s["bw_mib"] if s["bw_mib"] else 0
    s["runs"] = runs
    return s


def ratio(a, b):
    return a / b if a is not None and b else None


def paired_range(pairs, prefix=""):
    """The min and max of the per-repetition ratios PAIRS (None without
    any), as PREFIX + "paired_min" and "paired_max"."""
    return {prefix + "paired_min": min(pairs) if pairs else None,
            prefix + "paired_max": max(pairs) if pairs else None}


def time_pairs(c, rs, key):
    """The per-repetition speed ratios of timed samples: C time / Rust time
    of the medians c[key][rep] and rs[key][rep], for the repetitions both
    have."""
    if not (c and rs):
        return []
    return [c[key][r] / t for r, t in rs[key].items() if t and r in c[key]]


def collect(out):
    rows = {}
    for line in read_lines(os.path.join(out, "runs.tsv")):
        f = line.split("\t")
        if len(f) < 14:
            continue
        target, profile, cache, impl, rep, file, rw, bs, nj, qd, mode, rc, served, job = f[:14]
        key = (target, profile, cache)
        row = rows.setdefault(key, {
            "target": target, "profile": profile, "cache": cache, "rw": rw, "bs": bs,
            "numjobs": int(nj), "iodepth": int(qd), "mode": mode,
            "impls": {}, "served_by": {}, "failed": [],
        })
        row["served_by"][impl] = served
        try:
            if rc != "0":
                raise ValueError("fio exit %s" % rc)
            run = load_fio(os.path.join(out, file), rw, job)
        except (OSError, ValueError, KeyError, IndexError) as e:
            row["failed"].append("%s r%s: %s" % (impl, rep, e))
            continue
        run["rep"] = int(rep)
        run["file"] = file
        run["job"] = job
        row["impls"].setdefault(impl, []).append(run)
    collect_windows(out, rows)
    return rows


PROFILE_RW = {"randread-4k": ("randread", "4k"), "seqread-1m": ("read", "1M"),
              "randwrite-4k": ("randwrite", "4k"), "seqwrite-1m": ("write", "1M")}


def collect_windows(out, rows):
    """Measurements over a window that fio cannot delimit (windows.tsv:
    target, profile, qualifier, impl, rep, seconds, then from the dm
    device's /sys/block/dm-N/stat over the window: reads, read sectors, read
    ms, writes, write sectors, write ms; numjobs, iodepth, exit status, what
    served it), e.g. clone's I/O while it hydrates. bw and IOPS: what the
    device completed in the window / its length; lat: numjobs x iodepth /
    IOPS (Little's law: fio keeps that many I/Os queued, so this is the mean
    total latency fio would report); dm_lat_us: the device's own mean time
    per I/O (ms spent / I/Os: dm's accounting, from the bio's arrival at dm
    to its completion, without the queueing in fio and aio); no p99."""
    for line in read_lines(os.path.join(out, "windows.tsv")):
        f = line.split("\t")
        if len(f) < 16:
            continue
        target, profile, cache, impl, rep, sec, nr, rs, rms, nw, ws, wms, nj, qd, rc, served = f[:16]
        rw, bs = PROFILE_RW.get(profile, ("?", "?"))
        key = (target, profile, cache)
        row = rows.setdefault(key, {
            "target": target, "profile": profile, "cache": cache, "rw": rw, "bs": bs,
            "numjobs": int(nj), "iodepth": int(qd), "mode": "window",
            "impls": {}, "served_by": {}, "failed": [],
        })
        row["served_by"][impl] = served
        try:
            sec = float(sec)
            ios, sect, ms = (int(nw), int(ws), int(wms)) if "write" in rw else (int(nr), int(rs), int(rms))
            if rc != "0" or sec <= 0 or ios <= 0:
                raise ValueError("window of %s s, %d I/Os, exit %s" % (sec, ios, rc))
        except ValueError as e:
            row["failed"].append("%s r%s: %s" % (impl, rep, e))
            continue
        row["impls"].setdefault(impl, []).append({
            "bw_mib": sect * 512 / MIB / MIB / sec, "iops": ios / sec,
            "lat_us": 1e6 * int(nj) * int(qd) * sec / ios, "dm_lat_us": 1000.0 * ms / ios,
            "p99_us": None, "io_mib": sect * 512 / MIB / MIB,
            "runtime_ms": 1000.0 * sec, "rep": int(rep), "file": "windows.tsv",
            "job": "%s-%s-%s-%s" % (target, profile, cache, impl),
        })


def collect_messages(out, c_as_rust):
    """Timed dm messages (messages.tsv): per target, message and way of
    sending it (via: dmsetup = wall clock around the dmsetup process, ioctl =
    around the ioctl alone), per impl: count, median, max (ms) and
    per-repetition medians; the floor (message "floor": the same way of
    calling without a target) under the same load; Rust/C speed of the
    medians (C time / Rust time, > 1: Rust faster) and its paired range
    (per-repetition medians)."""
    raw = {}
    for line in read_lines(os.path.join(out, "messages.tsv")):
        f = line.split("\t")
        if len(f) < 8:
            continue
        target, msg, via, impl, rep, idx, us, rc = f[:8]
        served = f[8] if len(f) > 8 else ""
        m = raw.setdefault((target, msg, via), {})
        d = m.setdefault(impl, {"ms": [], "reps": {}, "failed": 0, "served_by": served})
        if rc != "0":
            d["failed"] += 1
            continue
        ms = int(us) / 1000.0
        d["ms"].append(ms)
        d["reps"].setdefault(int(rep), []).append(ms)
    res = []
    for (target, msg, via), impls in raw.items():
        if msg == "floor":
            continue
        floor = raw.get((target, "floor", via), {})
        s = {}
        for impl, d in impls.items():
            s[impl] = {
                "n": len(d["ms"]), "failed": d["failed"],
                "median_ms": statistics.median(d["ms"]) if d["ms"] else None,
                "max_ms": max(d["ms"]) if d["ms"] else None,
                "min_ms": min(d["ms"]) if d["ms"] else None,
                "rep_median_ms": {r: statistics.median(v) for r, v in sorted(d["reps"].items())},
                "all_ms": d["ms"],
                "floor_median_ms": (statistics.median(floor[impl]["ms"])
                                    if floor.get(impl, {}).get("ms") else None),
                "served_by": d["served_by"],
            }
        c, rs = s.get("c"), s.get("rust")
        pairs = time_pairs(c, rs, "rep_median_ms")
        res.append({
            "target": target, "message": msg, "via": via,
            "selftest_c_as_rust": target in c_as_rust,
            "impls": s,
            # Speed: C time / Rust time (> 1: Rust faster), as every ratio.
            "ratio_median": ratio(c and c["median_ms"], rs and rs["median_ms"]),
            "ratio_max": ratio(c and c["max_ms"], rs and rs["max_ms"]),
            **paired_range(pairs),
        })
    return res


def collect_timings(out, c_as_rust):
    """Operations timed outside fio (timings.tsv; a repetition may time
    one several times): per target and metric, per impl: every sample,
    per-repetition medians, median, min and max over all samples, MiB/s of
    the median (if the operation moved a known number of bytes); speed
    ratio Rust/C = C median time / Rust median time (> 1: Rust faster),
    its paired range (per repetition, of the per-repetition medians), and
    the ratio of the fastest samples."""
    raw = {}
    for line in read_lines(os.path.join(out, "timings.tsv")):
        f = line.split("\t")
        if len(f) < 7:
            continue
        target, metric, impl, rep, sec, nbytes, rc = f[:7]
        served = f[7] if len(f) > 7 else ""
        m = raw.setdefault((target, metric), {})
        d = m.setdefault(impl, {"s": {}, "failed": [], "served_by": served, "bytes": int(nbytes)})
        try:
            v = float(sec)
        except ValueError:
            v = -1
        if rc != "0" or v < 0:
            d["failed"].append("r%s: exit %s" % (rep, rc))
            continue
        d["s"].setdefault(int(rep), []).append(v)
    res = []
    for (target, metric), impls in raw.items():
        s = {}
        for impl, d in impls.items():
            v = [x for r in sorted(d["s"]) for x in d["s"][r]]
            medv = statistics.median(v) if v else None
            s[impl] = {
                "n": len(v), "failed": d["failed"],
                "samples_s": {r: d["s"][r] for r in sorted(d["s"])},
                "rep_median_s": {r: statistics.median(d["s"][r]) for r in sorted(d["s"])},
                "median_s": medv, "min_s": min(v) if v else None, "max_s": max(v) if v else None,
                "mib_s": d["bytes"] / MIB / MIB / medv if medv and d["bytes"] > 0 else None,
                "bytes": d["bytes"], "served_by": d["served_by"],
            }
        c, rs = s.get("c"), s.get("rust")
        pairs = time_pairs(c, rs, "rep_median_s")
        res.append({
            "target": target, "metric": metric,
            "selftest_c_as_rust": target in c_as_rust,
            "impls": s,
            "speed_ratio": ratio(c and c["median_s"], rs and rs["median_s"]),
            # The fastest run of each: what the code costs when the host
            # did not get in the way (a busy host only adds time).
            "speed_ratio_best": ratio(c and c["min_s"], rs and rs["min_s"]),
            **paired_range(pairs),
        })
    return res


def collect_loads(out, c_as_rust):
    """Hydration under a load (loads.tsv). Per (target, profile, iodepth,
    policy) and impl: per repetition the rate (regions hydrated per second
    of the window with hydration on), the IOPS in that window and in the
    window of load alone before it, and the window's length if every
    region was hydrated in it. A row compares Rust under a policy with C
    under C's only one ("idle-only"): ratio = Rust rate / C rate (> 1:
    Rust better), paired per repetition."""
    raw = {}
    for line in read_lines(os.path.join(out, "loads.tsv")):
        f = line.split("\t")
        if len(f) < 15:
            continue
        target, prof, qd, pol, impl, rep, bs, bios, _breg, ws, wios, wreg, n, state, rc = f[:15]
        served = f[15] if len(f) > 15 else ""
        d = raw.setdefault((target, prof, int(qd), pol), {}).setdefault(
            impl, {"reps": {}, "failed": [], "served_by": served})
        try:
            bs, ws = float(bs), float(ws)
            if rc != "0" or ws <= 0:
                raise ValueError("exit %s, window %s s" % (rc, ws))
        except ValueError as e:
            d["failed"].append("r%s: %s" % (rep, e))
            continue
        d["reps"][int(rep)] = {
            "rate": int(wreg) / ws, "regions": int(wreg), "of": int(n), "window_s": ws,
            "iops": int(wios) / ws, "base_iops": int(bios) / bs if bs > 0 else None,
            "done_s": ws if state == "done" else None,
        }

    def summ(d):
        if not d or not d["reps"]:
            return None
        reps = d["reps"]
        rates = [r["rate"] for r in reps.values()]
        kept = [r["iops"] / r["base_iops"] for r in reps.values() if r["base_iops"]]
        done = [r["done_s"] for r in reps.values()]
        return {
            "n": len(reps), "failed": d["failed"], "served_by": d["served_by"],
            "rate": statistics.median(rates), "rate_min": min(rates), "rate_max": max(rates),
            "iops": statistics.median(r["iops"] for r in reps.values()),
            "kept": statistics.median(kept) if kept else None,
            "kept_min": min(kept) if kept else None,
            # Repetitions that hydrated nothing in their window: a policy
            # that starved (no ratio can be taken against them).
            "starved": sum(1 for v in rates if v == 0),
            "done_s": statistics.median(done) if None not in done else None,
            "done_max_s": max(done) if None not in done else None,
            "reps": {r: reps[r] for r in sorted(reps)},
        }
    res = []
    order = lambda k: (k[0], k[1] != "idle", PROFILE_ORDER.index(k[1]) if k[1] in PROFILE_ORDER
                       else -1, k[2], k[3] != "idle-only", k[3])
    for key in sorted(raw, key=order):
        target, prof, qd, pol = key
        rs = summ(raw[key].get("rust"))
        c = summ(raw.get((target, prof, qd, "idle-only"), {}).get("c"))
        if rs is None and pol != "idle-only":
            continue
        pairs = []
        if c and rs:
            pairs = [v["rate"] / c["reps"][r]["rate"] for r, v in rs["reps"].items()
                     if r in c["reps"] and c["reps"][r]["rate"] > 0]
        res.append({
            "target": target, "profile": prof, "iodepth": qd, "policy": pol,
            # "clone src+1ms" is clone's module too.
            "selftest_c_as_rust": target.split()[0] in c_as_rust,
            "impls": {"c": c, "rust": rs},
            "ratio": ratio(rs and rs["rate"], c and c["rate"]),
            **paired_range(pairs),
        })
    return res


def collect_counts(out):
    """Counts observed during fio runs (counts.tsv), keyed like the fio
    rows: (target, profile, qualifier) -> what -> {"of": N, "impls": {impl:
    {rep: value}}}."""
    res = {}
    for line in read_lines(os.path.join(out, "counts.tsv")):
        f = line.split("\t")
        if len(f) < 8:
            continue
        target, profile, cache, impl, rep, what, value, of = f[:8]
        if not (rep.isdigit() and value.isdigit() and of.isdigit()):
            continue
        d = res.setdefault((target, profile, cache), {}).setdefault(what, {"of": int(of), "impls": {}})
        d["impls"].setdefault(impl, {})[int(rep)] = int(value)
    return res


def collect_checks(out):
    """Data checks (checks.tsv)."""
    res = []
    for line in read_lines(os.path.join(out, "checks.tsv")):
        f = line.split("\t")
        if len(f) < 5:
            continue
        res.append({"target": f[0], "impl": f[1], "rep": int(f[2]), "what": f[3],
                    "ok": f[4] == "ok", "detail": f[5] if len(f) > 5 else ""})
    return res


def build(out, wall):
    meta = read_kv(os.path.join(out, "meta.txt"))
    meta.update(read_kv(os.path.join(out, "host-meta.txt")))
    if wall is not None:
        meta["wall_seconds"] = wall
    c_as_rust = set(read_lines(os.path.join(out, "c_as_rust.txt")))
    skipped = [dict(zip(("target", "reason"), l.split("\t", 1)))
               for l in read_lines(os.path.join(out, "skipped.tsv"))]
    rows = collect(out)
    counts = collect_counts(out)

    # Raw device runs are the baseline of every cache state of their profile.
    raw = {(k[0], k[1]): summarize(v["impls"].get("raw", [])) for k, v in rows.items()
           if "raw" in v["impls"]}

    results = []
    targets = []
    for key, row in rows.items():
        if key[0] not in targets:
            targets.append(key[0])
    for key in sorted(rows, key=lambda k: (targets.index(k[0]),
                                            PROFILE_ORDER.index(k[1]) if k[1] in PROFILE_ORDER else 99,
                                            CACHE_ORDER.index(k[2]) if k[2] in CACHE_ORDER else 99)):
        row = rows[key]
        c = summarize(row["impls"].get("c", []))
        rs = summarize(row["impls"].get("rust", []))
        if c is None and rs is None:
            continue  # a raw-only row (verity's raw baseline has no cache state)
        base = raw.get((key[0], key[1]))
        # Paired ratios: repetition i of Rust over repetition i of C.
        pairs = []
        if c and rs:
            cb = {r["rep"]: r["bw_mib"] for r in c["runs"]}
            pairs = [r["bw_mib"] / cb[r["rep"]] for r in rs["runs"] if cb.get(r["rep"])]
        res = {
            "target": row["target"],
            "profile": row["profile"],
            "cache": None if row["cache"] == "-" else row["cache"],
            "rw": row["rw"], "bs": row["bs"],
            "numjobs": row["numjobs"], "iodepth": row["iodepth"], "mode": row["mode"],
            "selftest_c_as_rust": row["target"] in c_as_rust,
            "impls": {"raw": base, "c": c, "rust": rs},
            "ratio": {
                "bw": ratio(rs and rs["bw_mib"], c and c["bw_mib"]),
                "iops": ratio(rs and rs["iops"], c and c["iops"]),
                "lat": ratio(c and c["lat_us"], rs and rs["lat_us"]),
                **paired_range(pairs, "bw_"),
            },
            "vs_raw": {
                impl: ratio(s and s["bw_mib"], base and base["bw_mib"])
                for impl, s in (("c", c), ("rust", rs))
            },
            "served_by": row["served_by"],
            "failed_runs": row["failed"],
        }
        if key in counts:
            res["counts"] = counts[key]
        results.append(res)
    messages = collect_messages(out, c_as_rust)
    for m in messages:
        load = [r for r in results if r["target"] == m["target"] and r["cache"] == "ckpt-load"]
        m["load"] = ("%s %dx%d" % (load[0]["profile"], load[0]["numjobs"], load[0]["iodepth"])
                     if load else None)
    return {
        "meta": meta,
        "note": "Guest under %s: absolute numbers do not hold for real hardware; "
                "Rust/C ratios measured in the same boot do." % meta.get("accel", "tcg").upper(),
        "units": {"bw": "MiB/s", "iops": "IO/s", "lat": "us (mean total latency)",
                  "ratio": "Rust/C of the medians, > 1: Rust better (bw, iops: Rust / C; lat: "
                           "C latency / Rust latency)",
                  "vs_raw": "impl bw / raw device bw"},
        "skipped": skipped,
        "results": results,
        "messages": messages,
        "timings": collect_timings(out, c_as_rust),
        "timings_units": {"s": "seconds in the guest, every sample by repetition; median, min, "
                               "max over all samples",
                          "mib_s": "bytes moved / median seconds",
                          "speed_ratio": "C median time / Rust median time (> 1: Rust faster); "
                                         "paired range: of the per-repetition medians",
                          "speed_ratio_best": "C min time / Rust min time (> 1: Rust faster)"},
        "checks": collect_checks(out),
        "messages_units": {"latency": "ms, wall clock around `dmsetup message` in the guest "
                                      "(includes starting dmsetup: see floor_median_ms)",
                           "ratio": "Rust/C speed: C median / Rust median (> 1: Rust faster)"},
        "loads": collect_loads(out, c_as_rust),
        "loads_units": {"rate": "regions hydrated per second of the window with hydration on",
                        "kept": "the device's IOPS with hydration on / its IOPS in the window "
                                "just before (hydration off)",
                        "ratio": "Rust rate / C rate (> 1: Rust hydrates faster); for a "
                                 "policy row, Rust under that policy against C's only policy",
                        "done_s": "seconds until every region was hydrated (median; only "
                                  "where every sample finished)"},
    }


# ---- table ------------------------------------------------------------------
COLS = ["target", "profile", "jobs x qd", "raw MiB/s", "C MiB/s", "Rust MiB/s",
        "C IOPS", "Rust IOPS", "C lat us", "Rust lat us", "C vs raw", "Rust vs raw",
        "Rust/C", "paired range"]


def fmt(v, spec):
    return "-" if v is None else format(v, spec)


def fmt_time(v):
    """A time (seconds or milliseconds) with 3 significant digits, down to
    a thousandth of its unit."""
    if v is None:
        return "-"
    return format(v, ".3f" if v < 1 else ".2f" if v < 10 else ".1f")


def fmt_range(lo, hi):
    """A paired range: min-max of the per-repetition ratios."""
    return "%.3f-%.3f" % (lo, hi) if lo is not None else "-"


def fmt_n(c, rs):
    """How many runs of C and of Rust: "C/Rust"."""
    return "%d/%d" % (c.get("n", 0), rs.get("n", 0))


def row_target(x):
    """A row's target, marked (C/C) when the C module ran in the Rust slot."""
    return x["target"] + (" (C/C)" if x["selftest_c_as_rust"] else "")


def c_rust(x):
    """The C and the Rust figures of a message, timing or load row ({} for
    one that is missing)."""
    return x["impls"].get("c") or {}, x["impls"].get("rust") or {}


def table_rows(doc):
    rows = []
    for r in doc["results"]:
        i = r["impls"]
        g = lambda impl, k: i[impl][k] if i.get(impl) else None
        name = row_target(r)
        prof = r["profile"] + (" " + r["cache"] if r["cache"] else "")
        lo, hi = r["ratio"]["bw_paired_min"], r["ratio"]["bw_paired_max"]
        rows.append([
            name, prof, "%dx%d" % (r["numjobs"], r["iodepth"]),
            fmt(g("raw", "bw_mib"), ".1f"), fmt(g("c", "bw_mib"), ".1f"), fmt(g("rust", "bw_mib"), ".1f"),
            fmt(g("c", "iops"), ".0f"), fmt(g("rust", "iops"), ".0f"),
            fmt(g("c", "lat_us"), ".1f"), fmt(g("rust", "lat_us"), ".1f"),
            fmt(r["vs_raw"]["c"] and 100 * r["vs_raw"]["c"], ".0f") + "%" if r["vs_raw"]["c"] else "-",
            fmt(r["vs_raw"]["rust"] and 100 * r["vs_raw"]["rust"], ".0f") + "%" if r["vs_raw"]["rust"] else "-",
            fmt(r["ratio"]["bw"], ".3f"),
            fmt_range(lo, hi),
        ])
    return rows


def notes(doc):
    m = doc["meta"]
    n = ["%s guest, %s CPUs, kernel %s, %s; brd %s MiB devices; %s reps, C/Rust order "
         "alternating, medians; timed runs %ss after %ss ramp; direct I/O, libaio." % (
             m.get("accel", "tcg").upper(), m.get("cpus", "?"), m.get("kernel", "?"),
             m.get("fio", "fio"), m.get("dev_mib", "?"), m.get("reps", "?"),
             m.get("runtime", "?"), m.get("ramp", "?"))]
    if "icount" in str(m.get("qemu_opts", "")):
        n.append("QEMU %s: guest time counts executed instructions; throughput is "
                 "deterministic whatever the host load." % m["qemu_opts"])
    if m.get("git"):
        kos = ", ".join("%s.ko sha256 %s" % (k[3:], v) for k, v in sorted(m.items())
                        if k.startswith("ko_"))
        n.append("Tree %s (%s); guest ran %s s, %s failed run(s); host load "
                 "(1-min avg) before/after: %s/%s." % (
                     m.get("git"), kos or "no modules", m.get("elapsed_s", "?"),
                     m.get("failed_runs", "?"), m.get("host_load_before", "?"),
                     m.get("host_load_after", "?")))
    n.append(RATIO_LEGEND + " vs raw: throughput as a share of the raw brd device.")
    try:
        load = max(float(m.get("host_load_before", 0)), float(m.get("host_load_after", 0)))
    except ValueError:
        load = 0
    if load > 1.0:
        n.append("WARNING: the host was busy (1-min load %.2f on %s host CPUs running the "
                 "guest's vCPUs): expect more noise; trust a ratio only where its paired range "
                 "is narrow." % (load, m.get("host_cpus", "?")))
    if any(r["cache"] in ("cold", "warm", "cold-bh", "warm-bh") for r in doc["results"]):
        n.append("verity cold: fresh device (module reloaded, page cache of the data and hash "
                 "devices dropped), one pass over the device "
                 "(capped at the run time), no ramp; warm: the timed run that follows on the same device; "
                 "cold-bh / warm-bh: the same with the table option try_verify_in_tasklet.")
    if any(r["cache"] in ("fec", "fec-corrupt") for r in doc["results"]):
        n.append("verity fec: timed run with the FEC options (use_fec_from_device, roots %s), "
                 "clean image; fec-corrupt: the same over the first MiB of the device, in which "
                 "every 8th block is corrupt (4k: random reads of the corrupt blocks only; 1M: "
                 "32 blocks corrected per read); the MiB is then checked to read back corrected."
                 % m.get("verity_fec_roots", "?"))
    if any(r["target"] == "era" for r in doc["results"]):
        n.append("era: fresh device per repetition and implementation (zeroed metadata, era 1), "
                 "era block 4 KiB; fresh: one pass (capped at the run time) in which every "
                 "write is the first to its block in the era (mark on disk + commit before "
                 "the write goes down); rewrite: timed run over a region already written in "
                 "this era (fast path); ckpt-load: the 4k random write load during the "
                 "timed checkpoints.")
    if any(r["target"] == "clone" for r in doc["results"]) or any(
            t["target"] == "clone" for t in doc.get("timings", [])):
        n.append("clone: region %s sectors; every device new (zeroed metadata, formatted by "
                 "the target; the destination zeroed before every checked run), created with "
                 "no_hydration. hydration T/B: time from the enable_hydration message until "
                 "the status (polled every 5 ms, no flush) shows every region hydrated, with "
                 "no other I/O (threshold T, batch size B; 1/1: the defaults); committed: "
                 "until the table event of the commit that records the last region (0-2 s "
                 "later: both commit from a 1 s timer). hydration under <profile> load: the "
                 "same (threshold/batch %s) while fio runs that profile on the device. "
                 "Rust/C best: C's fastest / Rust's fastest (a busy host only adds time). "
                 "during: the I/O "
                 "the dm device completed between enable_hydration and the last region "
                 "hydrated (its /sys/block/dm-N/stat; lat = jobs x qd / IOPS); after: timed fio runs on the fully hydrated device; unhydrated "
                 "(BENCH_CLONE_UNHYDRATED=1): runs with background hydration off." % (
                     m.get("clone_region_sectors", "?"), m.get("clone_tuned", "?")))
    checks = doc.get("checks", [])
    if checks:
        bad = [c for c in checks if not c["ok"]]
        n.append("Data checks: %d of %d passed%s." % (
            len(checks) - len(bad), len(checks),
            "; FAILED: " + "; ".join("%s %s r%d: %s" % (c["target"], c["impl"], c["rep"], c["what"])
                                     for c in bad) if bad else ""))
    rate = m.get("guest_clock_rate")
    if isinstance(rate, (int, float)):
        n.append("Guest clock: %.3f guest seconds per RTC second over the run (%s)." % (
            rate, m.get("clocksource", "?")))
        if not 0.9 <= rate <= 1.1:
            n.append("WARNING: the guest's clock did not run at real time (%.2fx; boot: %s): "
                     "absolute rates and times are off by that factor; ratios measured in the "
                     "same boot are not." % (rate, m.get("tsc_boot", "?")))
    if doc.get("messages"):
        n.append("Messages: latency in the guest under the load shown, median and max over all "
                 "repetitions; timed around the dmsetup process (`dmsetup message`, wall clock, "
                 "includes starting dmsetup) or around the DM_TARGET_MSG ioctl alone; floor = "
                 "median of the same call without a target (`dmsetup version`, DM_VERSION "
                 "ioctl) under the same load; paired range: of the per-repetition medians.")
    if doc.get("loads"):
        n.append("clone hydration under load (loads.tsv): per profile and iodepth, a new device "
                 "(threshold/batch %s) under a fio load; the load alone for %s s, then hydration "
                 "on until done or %s s (policy rows: until done): regions hydrated per second "
                 "of that window; IOPS: the device's in that window; kept: that / the IOPS "
                 "of the load alone; done s: window length where every region was hydrated. "
                 "no load: idle hydration. idle-only: the default policy of both (C's: no "
                 "background copy while a bio is in flight); share=P: ours with the extension "
                 "hydration_share_under_io P, against C's idle-only figures of the same "
                 "repetition. The write load writes the first 8 MiB (its first writes "
                 "hydrate those regions before hydration is enabled). Source: the RAM disk "
                 "(target clone)%s." % (
                     m.get("clone_tuned", "?"), m.get("clone_load_base", "?"),
                     m.get("clone_load_window", "?"),
                     "".join("; dm-delay over it, %s ms per I/O (target clone src+%sms: a far "
                             "source, clone's real use)" % (d, d)
                             for d in m.get("clone_src_delay_ms", "0").split() if d != "0")))
        n += policy_target(doc)
    if any(r["selftest_c_as_rust"] for r in doc["results"]):
        n.append("(C/C) SELFTEST (BENCH_SELFTEST_C_AS_RUST): the C module ran in the Rust slot; "
                 "the ratio is C/C and only shows the noise floor.")
    for s in doc["skipped"]:
        n.append("skipped: %s" % s["reason"])
    fails = [f for r in doc["results"] for f in r["failed_runs"]]
    fails += ["%s %s (%s) %s: %d failed message(s)" % (m["target"], m["message"], m["via"], impl,
                                                        d["failed"])
              for m in doc.get("messages", []) for impl, d in m["impls"].items() if d["failed"]]
    fails += ["%s %s %s: %s" % (t["target"], t["metric"], impl, ", ".join(d["failed"]))
              for t in doc.get("timings", []) for impl, d in t["impls"].items() if d["failed"]]
    fails += ["%s under %s qd %d %s %s: %s" % (l["target"], l["profile"], l["iodepth"], l["policy"],
                                               impl, ", ".join(d["failed"]))
              for l in doc.get("loads", []) for impl, d in l["impls"].items()
              if d and d["failed"]]
    if fails:
        n.append("FAILED runs: " + "; ".join(fails))
    n.append(doc["note"])
    return n


MSG_COLS = ["target", "message", "timed around", "under load", "N C/Rust", "C median ms", "C max ms",
            "Rust median ms", "Rust max ms", "C floor ms", "Rust floor ms", "Rust/C speed",
            "paired range"]


def msg_rows(doc):
    rows = []
    for m in doc.get("messages", []):
        c, rs = c_rust(m)
        lo, hi = m["paired_min"], m["paired_max"]
        rows.append([
            row_target(m), m["message"],
            {"dmsetup": "dmsetup process", "ioctl": "ioctl"}.get(m["via"], m["via"]),
            m.get("load") or "-", fmt_n(c, rs),
            fmt_time(c.get("median_ms")), fmt_time(c.get("max_ms")),
            fmt_time(rs.get("median_ms")), fmt_time(rs.get("max_ms")),
            fmt_time(c.get("floor_median_ms")), fmt_time(rs.get("floor_median_ms")),
            fmt(m["ratio_median"], ".3f"),
            fmt_range(lo, hi),
        ])
    return rows


TIMING_COLS = ["target", "timed", "N C/Rust", "C median s", "C min-max s", "Rust median s",
               "Rust min-max s", "C MiB/s", "Rust MiB/s", "Rust/C speed", "paired range",
               "Rust/C best"]


def timing_rows(doc):
    rows = []
    for t in doc.get("timings", []):
        c, rs = c_rust(t)
        lo, hi = t["paired_min"], t["paired_max"]
        mm = lambda d: "%s-%s" % (fmt_time(d.get("min_s")), fmt_time(d.get("max_s"))) if d.get("n") else "-"
        rows.append([
            row_target(t), t["metric"], fmt_n(c, rs),
            fmt_time(c.get("median_s")), mm(c), fmt_time(rs.get("median_s")), mm(rs),
            fmt(c.get("mib_s"), ".1f"), fmt(rs.get("mib_s"), ".1f"),
            fmt(t["speed_ratio"], ".3f"),
            fmt_range(lo, hi),
            fmt(t.get("speed_ratio_best"), ".3f"),
        ])
    return rows


RATIO_LEGEND = ("Every ratio (Rust/C ...) is Rust's performance over C's, > 1: Rust better "
                "(throughput and hydration rates: Rust / C; times and latencies: C time / "
                "Rust time); medians; paired range: min-max of the per-repetition ratios.")

LOAD_COLS = ["target", "hydration under", "jobs x qd", "policy", "N C/Rust", "C regions/s",
             "C min-max", "Rust regions/s", "Rust min-max", "Rust/C", "paired range", "C IOPS",
             "Rust IOPS", "C kept", "Rust kept", "C done s", "Rust done s"]


def ratio_cell(l, c):
    """A load row's Rust/C: "C: 0" when C hydrated nothing in any of its
    repetitions (no ratio), the median ratio with "(C: 0 in k of n)" when
    in some of them (the paired range leaves those out)."""
    k = c.get("starved", 0)
    if k and k == c.get("n"):
        return "C: 0"
    return fmt(l["ratio"], ".3f") + (" (C: 0 in %d of %d)" % (k, c["n"]) if k else "")


def load_rows(doc):
    rows = []
    for l in doc.get("loads", []):
        c, rs = c_rust(l)
        mm = lambda d: "%.1f-%.1f" % (d["rate_min"], d["rate_max"]) if d.get("n") else "-"
        pct = lambda v: "-" if v is None else "%.0f%%" % (100 * v)
        lo, hi = l["paired_min"], l["paired_max"]
        idle = l["profile"] == "idle"
        rows.append([
            row_target(l),
            "no load" if idle else l["profile"],
            "-" if idle else "1x%d" % l["iodepth"], l["policy"],
            fmt_n(c, rs),
            fmt(c.get("rate"), ".1f"), mm(c), fmt(rs.get("rate"), ".1f"), mm(rs),
            ratio_cell(l, c), fmt_range(lo, hi),
            "-" if idle else fmt(c.get("iops"), ".0f"), "-" if idle else fmt(rs.get("iops"), ".0f"),
            "-" if idle else pct(c.get("kept")), "-" if idle else pct(rs.get("kept")),
            fmt_time(c.get("done_s")), fmt_time(rs.get("done_s")),
        ])
    return rows


def policy_target(doc):
    """The policy's target: under sustained 4k random reads, hydration
    done within 5x the idle hydration time, the reads keeping at least 80%
    of their IOPS; both medians over the repetitions. The least
    repetition's "kept" is shown beside, and C's under its own policy in
    the same windows (it copies little under load): in real time under
    TCG a window's IOPS against the window before it moves by 10-20% with
    no copy at all, so one repetition does not decide; by instruction
    count (-icount) the repetitions agree to a point or two."""
    loads = doc.get("loads", [])
    # Each source (target) against its own idle hydration.
    idles = {l["target"]: l for l in loads if l["profile"] == "idle"}
    # C's figures under its policy, for the same source, load and depth.
    c_rows = {(l["target"], l["iodepth"]): l["impls"].get("c") or {}
              for l in loads if l["profile"] == "randread-4k" and l["policy"] == "idle-only"}
    pct = lambda v: "-" if v is None else "%.0f%%" % (100 * v)
    out = []
    for l in loads:
        if l["profile"] != "randread-4k" or l["policy"] == "idle-only":
            continue
        idle = idles.get(l["target"])
        rs = l["impls"].get("rust") or {}
        ci = idle and (idle["impls"].get("c") or {}).get("done_s")
        ri = idle and (idle["impls"].get("rust") or {}).get("done_s")
        done, kept = rs.get("done_s"), rs.get("kept")
        ok = bool(done and ri and done <= 5 * ri and kept is not None and kept >= 0.8)
        c = c_rows.get((l["target"], l["iodepth"])) or {}
        out.append("Policy target (%s, %s, randread-4k 1x%d): hydration done in %s s (slowest "
                   "%s s) against %s s idle (C idle: %s s): %s x idle (<= 5); reads kept %s "
                   "(>= 80%%; least %s; C's, idle-only, %s): %s." % (
                       row_target(l), l["policy"], l["iodepth"], fmt_time(done), fmt_time(rs.get("done_max_s")),
                       fmt_time(ri), fmt_time(ci), fmt(done / ri if done and ri else None, ".1f"),
                       pct(kept), pct(rs.get("kept_min")), pct(c.get("kept")),
                       "met" if ok else "NOT met"))
    return out


COUNT_COLS = ["target", "profile", "count", "of", "C median", "Rust median", "C per rep",
              "Rust per rep"]


def count_rows(doc):
    rows = []
    for r in doc["results"]:
        for what, d in sorted(r.get("counts", {}).items()):
            per = lambda impl: d["impls"].get(impl, {})
            rows.append([
                row_target(r),
                r["profile"] + (" " + r["cache"] if r["cache"] else ""), what, str(d["of"]),
                fmt(statistics.median(per("c").values()) if per("c") else None, ".0f"),
                fmt(statistics.median(per("rust").values()) if per("rust") else None, ".0f"),
                " ".join(str(v) for _, v in sorted(per("c").items())) or "-",
                " ".join(str(v) for _, v in sorted(per("rust").items())) or "-",
            ])
    return rows


def text_grid(cols, rows, left):
    w = [max(len(c), *(len(r[i]) for r in rows)) if rows else len(c) for i, c in enumerate(cols)]
    line = lambda cells: "  ".join(c.ljust(w[i]) if i < left else c.rjust(w[i]) for i, c in enumerate(cells))
    return [line(cols), line(["-" * x for x in w])] + [line(r) for r in rows]


def md_grid(cols, rows, left):
    out = ["| " + " | ".join(cols) + " |",
           "|" + "|".join(["---"] * left + ["---:"] * (len(cols) - left)) + "|"]
    return out + ["| " + " | ".join(r) + " |" for r in rows]


def grids(doc, grid):
    out = grid(COLS, table_rows(doc), 3) if doc["results"] else []
    if doc.get("messages"):
        out += [""] + grid(MSG_COLS, msg_rows(doc), 5)
    if doc.get("timings"):
        out += [""] + grid(TIMING_COLS, timing_rows(doc), 3)
    if doc.get("loads"):
        out += [""] + grid(LOAD_COLS, load_rows(doc), 4)
    if count_rows(doc):
        out += [""] + grid(COUNT_COLS, count_rows(doc), 3)
    return out


def text_table(doc):
    return "\n".join(grids(doc, text_grid) + [""] + notes(doc))


def md_table(doc):
    return "\n".join(grids(doc, md_grid) + [""] + ["- " + n for n in notes(doc)]) + "\n"


# ---- SVG --------------------------------------------------------------------
COLORS = {"randread-4k": "#4e79a7", "seqread-1m": "#59a14f",
          "randwrite-4k": "#e15759", "seqwrite-1m": "#f28e2b"}


def svg_chart(doc):
    bars = [r for r in doc["results"] if r["ratio"]["bw"] is not None]
    # Timed operations (clone's hydration) as bars of their speed ratio.
    for t in doc.get("timings", []):
        # "committed" is mostly the phase of a 1 s commit timer: tables only.
        if t["speed_ratio"] is None or t["metric"].endswith("committed"):
            continue
        pos = max((i for i, r in enumerate(bars) if r["target"] == t["target"]), default=len(bars) - 1)
        bars.insert(pos + 1, {
            "target": t["target"], "profile": t["metric"], "cache": None,
            "selftest_c_as_rust": t["selftest_c_as_rust"],
            "ratio": {"bw": t["speed_ratio"], "bw_paired_min": t["paired_min"],
                      "bw_paired_max": t["paired_max"]},
        })
    groups = []
    for r in bars:
        if not groups or groups[-1][0] != r["target"]:
            groups.append((r["target"], []))
        groups[-1][1].append(r)
    bw, gap, left, top, ph = 34, 26, 60, 50, 260
    timed = any(r["profile"].startswith("hydration") for r in bars)
    if timed:
        top += 14  # a second subtitle line
    width = left + sum(len(g[1]) * bw + gap for g in groups) + 20
    width = max(width, 640)
    # Room for the rotated labels (about 4 px down per character).
    longest = max((len(r["profile"]) + (len(r["cache"]) + 1 if r["cache"] else 0) for r in bars),
                  default=0)
    height = top + ph + max(110, 40 + 4 * longest)
    vals = [r["ratio"]["bw_paired_max"] or r["ratio"]["bw"] for r in bars] + [1.2]
    ymax = max(vals) * 1.08
    ymax = (int(ymax * 10) + 1) / 10.0
    y = lambda v: top + ph - v / ymax * ph
    s = ['<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" '
         'font-family="sans-serif" font-size="11">' % (width, height),
         '<rect width="100%" height="100%" fill="white"/>',
         '<text x="%d" y="20" font-size="14" font-weight="bold">Rust/C throughput ratio</text>' % left,
         '<text x="%d" y="36" fill="#555">%s</text>' % (left, escape(
             "median of %s; whiskers: per-repetition range; >1 = Rust faster; %s guest, %s" % (
                 doc["meta"].get("reps", "?"), doc["meta"].get("accel", "tcg").upper(),
                 doc["meta"].get("date", ""))))]
    if timed:
        s.append('<text x="%d" y="50" fill="#555">%s</text>' % (left, escape(
            "purple: whole-device hydration, C median time / Rust median time")))
    step = 0.2 if ymax <= 2.4 else 0.5 if ymax <= 6 else 1.0
    i = 0
    while i * step <= ymax + 1e-9:
        t = i * step
        s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/>' % (left, width - 10, y(t), y(t)))
        s.append('<text x="%d" y="%.1f" text-anchor="end">%.1f</text>' % (left - 6, y(t) + 4, t))
        i += 1
    x = left + gap / 2
    for target, rs in groups:
        gx = x
        for r in rs:
            v = r["ratio"]["bw"]
            col = COLORS.get(r["profile"], "#b07aa1" if r["profile"].startswith("hydration") else "#999")
            op = "0.55" if r["cache"] == "cold" else "1"
            s.append('<rect x="%.1f" y="%.1f" width="%d" height="%.1f" fill="%s" fill-opacity="%s">'
                     '<title>%s %s%s: %.3f</title></rect>' % (
                         x + 3, y(v), bw - 6, y(0) - y(v), col, op, escape(target),
                         escape(r["profile"]), " " + r["cache"] if r["cache"] else "", v))
            lo, hi = r["ratio"]["bw_paired_min"], r["ratio"]["bw_paired_max"]
            if lo is not None:
                cx = x + bw / 2
                s.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333"/>' % (cx, cx, y(lo), y(hi)))
                for e in (lo, hi):
                    s.append('<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#333"/>' % (cx - 5, cx + 5, y(e), y(e)))
            s.append('<text x="%.1f" y="%.1f" text-anchor="middle" font-size="10">%.2f</text>' % (
                x + bw / 2, y(max(v, hi or v)) - 4, v))
            label = r["profile"] + (" " + r["cache"] if r["cache"] else "")
            s.append('<text transform="translate(%.1f,%.1f) rotate(-40)" text-anchor="end">%s</text>' % (
                x + bw / 2 + 3, y(0) + 12, escape(label)))
            x += bw
        name = target + (" (C/C selftest)" if rs[0]["selftest_c_as_rust"] else "")
        s.append('<text x="%.1f" y="%d" text-anchor="middle" font-weight="bold">%s</text>' % (
            (gx + x) / 2, height - 12, escape(name)))
        x += gap
    s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#c00" stroke-width="1.5" '
             'stroke-dasharray="6,3"/>' % (left, width - 10, y(1.0), y(1.0)))
    s.append('<text x="%d" y="%.1f" fill="#c00" text-anchor="end">1.0</text>' % (width - 12, y(1.0) - 4))
    s.append('<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#333"/>' % (left, width - 10, y(0), y(0)))
    s.append("</svg>")
    return "\n".join(s) + "\n"


# ---- summary (README) ---------------------------------------------------------
README_BEGIN = "[bench-table-begin]"
README_END = "[bench-table-end]"


def summary_text(doc):
    """The tables as plain text with a header saying where and how they
    were measured: out/bench/summary.txt, and what --readme puts in
    Documentation/bench.md."""
    m = doc["meta"]
    head = ("make bench, %s UTC, tree %s, %s guest (%s vCPUs, QEMU software CPU: absolute "
            "numbers do not hold, Rust/C ratios in one boot do), %s reps, numjobs x iodepth "
            "per row, %s s runs; host load (1-min) %s before, %s after; %s s in all; "
            "%s failed run(s)." % (
                str(m.get("date", "?")).replace("T", " ").rstrip("Z"), m.get("git", "?"),
                m.get("accel", "tcg").upper(), m.get("cpus", "?"), m.get("reps", "?"),
                m.get("runtime", "?"), m.get("host_load_before", "?"),
                m.get("host_load_after", "?"), m.get("wall_seconds", m.get("elapsed_s", "?")),
                m.get("failed_runs", "?")))
    if "icount" in str(m.get("qemu_opts", "")):
        head += (" QEMU %s: the guest clock counts executed instructions, so the figures "
                 "are deterministic (CPU work per I/O; idle time is skipped) whatever the "
                 "host load." % m["qemu_opts"])
    out = textwrap.wrap(head, 76) + [""]
    # Without the IOPS columns (in results.md and .json): narrower.
    keep = [i for i, c in enumerate(COLS) if not c.endswith("IOPS")]
    if doc["results"]:
        out += text_grid([COLS[i] for i in keep], [[r[i] for i in keep] for r in table_rows(doc)], 3)
    if doc.get("timings"):
        out += [""] + text_grid(TIMING_COLS, timing_rows(doc), 3)
    if doc.get("loads"):
        out += [""] + text_grid(LOAD_COLS, load_rows(doc), 4)
    if doc.get("messages"):
        out += [""] + text_grid(MSG_COLS, msg_rows(doc), 5)
    out += ["", RATIO_LEGEND + " vs raw: share of the raw brd device. Rows, qualifiers and "
                "checks: Documentation/bench.md; all figures: out/bench/results.json; plot: "
                "out/bench/results.svg."]
    out[-1:] = textwrap.wrap(out[-1], 76)
    for line in policy_target(doc):
        out += textwrap.wrap(line, 76)
    for s in doc["skipped"]:
        out.append("skipped: %s" % s["reason"])
    return "\n".join(out) + "\n"


def update_readme(path, text):
    """Replaces the lines between README_BEGIN and README_END in PATH with
    TEXT, indented by 4 (a preformatted block in Markdown and plain text)."""
    with open(path) as f:
        lines = f.read().split("\n")
    try:
        b = next(i for i, l in enumerate(lines) if l.strip() == README_BEGIN)
        e = next(i for i, l in enumerate(lines) if l.strip() == README_END and i > b)
    except StopIteration:
        raise SystemExit("bench-report: %s has no %s ... %s lines" % (path, README_BEGIN, README_END))
    body = [("    " + l).rstrip() for l in text.rstrip("\n").split("\n")]
    lines[b + 1:e] = [""] + body + [""]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def self_test():
    """Builds a results folder with every kind of row (fio runs, a
    window, timed messages, timed operations, hydration under load) in
    which Rust is better than C by a factor of 2 everywhere, then one in
    which it is worse by the same factor, and checks that every ratio
    column of every table, and every ratio in results.json, reads > 1 in
    the first and < 1 in the second, that the legend saying so is printed
    once, that the policy target of each clone source is measured
    against that source's idle hydration and decided on the medians, and
    that a load row in which C hydrated nothing reads "C: 0", with no
    ratio."""
    checked, bad = 0, []
    for better in (True, False):
        f = 2.0 if better else 0.5
        tmp = tempfile.mkdtemp(prefix="bench-report-test.")
        try:
            w = lambda name, lines: open(os.path.join(tmp, name), "w").write(
                "".join("\t".join(str(x) for x in l) + "\n" for l in lines))
            w("meta.txt", [["reps=2"], ["clone_tuned=64 16"]])
            os.mkdir(os.path.join(tmp, "raw"))
            jobs, runs = [], []
            for rep in (1, 2):
                for impl, k in (("raw", 4.0), ("c", 1.0), ("rust", f)):
                    name = "linear-randread-4k-%s-%d" % (impl, rep)
                    jobs.append({"jobname": name, "read": {
                        "bw": 1000 * k, "iops": 250 * k, "lat_ns": {"mean": 4e6 / k},
                        "clat_ns": {"percentile": {"99.000000": 8e6 / k}},
                        "io_kbytes": 3000 * k, "runtime": 3000}})
                    runs.append(["linear", "randread-4k", "-", impl, rep, "raw/t.json", "randread",
                                 "4k", 1, 16, "timed", 0, "served", name])
            with open(os.path.join(tmp, "raw", "t.json"), "w") as fj:
                json.dump({"jobs": jobs}, fj)
            w("runs.tsv", runs)
            lines = {"windows.tsv": [], "messages.tsv": [], "timings.tsv": [], "loads.tsv": []}
            for rep in (1, 2):
                for impl, k in (("c", 1.0), ("rust", f)):
                    lines["windows.tsv"].append(["clone", "randread-4k", "during", impl, rep, 2.0,
                                                 int(1000 * k), int(8000 * k), 100, 0, 0, 0, 1,
                                                 16, 0, "s"])
                    for via in ("dmsetup", "ioctl"):
                        for i in range(3):
                            lines["messages.tsv"].append(["era", "checkpoint", via, impl, rep, i,
                                                          int(2000 / k), 0, "s"])
                            lines["messages.tsv"].append(["era", "floor", via, impl, rep, i,
                                                          100, 0, "s"])
                    lines["timings.tsv"].append(["clone", "hydration 64/16", impl, rep, 1.0 / k,
                                                 1 << 27, 0, "s"])
                    pols = ["idle-only"] + (["share=30"] if impl == "rust" else [])
                    for target, idle_s in (("clone", 2.0), ("clone src+1ms", 3.0)):
                        lines["loads.tsv"].append([target, "idle", 0, "idle-only", impl, rep, 0,
                                                   0, 0, idle_s / k, 0, 2048, 2048, "done", 0,
                                                   "s"])
                        for pol in pols:
                            g = k * (1.5 if pol != "idle-only" else 1)
                            lines["loads.tsv"].append([target, "randread-4k", 16, pol, impl, rep,
                                                       1.0, 1000, 0, 4.0, int(3800 * min(g, 1)),
                                                       int(100 * g), 2048, "partial", 0, "s"])
                    # A window in which C hydrates nothing (C's policy
                    # starved by the load): no ratio, "C: 0".
                    lines["loads.tsv"].append(["clone", "randwrite-4k", 1, "idle-only", impl, rep,
                                               1.0, 1000, 0, 4.0, 3800,
                                               100 if impl == "rust" else 0, 2048, "partial", 0,
                                               "s"])
            for name, l in lines.items():
                w(name, l)
            doc = build(tmp, None)
        finally:
            shutil.rmtree(tmp)
        tables = [("fio", COLS, table_rows(doc)), ("messages", MSG_COLS, msg_rows(doc)),
                  ("timings", TIMING_COLS, timing_rows(doc)), ("loads", LOAD_COLS, load_rows(doc))]
        for tname, cols, rows in tables:
            if not rows:
                bad.append("%s: no rows" % tname)
            for row in rows:
                for col, cell in zip(cols, row):
                    if not (col.startswith("Rust/C") or col == "paired range"):
                        continue
                    if tname == "loads" and row[1] == "randwrite-4k":
                        # C starved in every repetition: no ratio.
                        checked += 1
                        if cell != {"Rust/C": "C: 0"}.get(col, "-"):
                            bad.append("loads %s with C at 0: %s = %r" % (row[1], col, cell))
                        continue
                    if cell == "-":
                        continue
                    for v in (float(x) for x in cell.split("-")):
                        checked += 1
                        if (v > 1) != better:
                            bad.append("%s %s %r: %s = %s with Rust %s" % (
                                tname, row[1], row[3] if tname == "loads" else "", col, cell,
                                "better" if better else "worse"))
        js = [("result " + k, r["ratio"][k]) for r in doc["results"]
              for k in ("bw", "iops", "lat", "bw_paired_min", "bw_paired_max")]
        js += [("message " + k, m[k]) for m in doc["messages"]
               for k in ("ratio_median", "ratio_max", "paired_min", "paired_max")]
        js += [("timing " + k, t[k]) for t in doc["timings"]
               for k in ("speed_ratio", "speed_ratio_best", "paired_min", "paired_max")]
        js += [("load " + k, l[k]) for l in doc["loads"] if l["profile"] != "randwrite-4k"
               for k in ("ratio", "paired_min", "paired_max")]
        for what, v in js:
            checked += 1
            if v is None or (v > 1) != better:
                bad.append("results.json %s = %s with Rust %s" % (what, v, "better" if better else "worse"))
        # The policy target: one line per source, each against its own idle
        # hydration.
        for target, idle_s in (("clone", 2.0), ("clone src+1ms", 3.0)):
            want = "against %s s idle" % fmt_time(idle_s / f)
            got = [t for t in policy_target(doc) if t.startswith("Policy target (%s," % target)]
            checked += 1
            if len(got) != 1 or want not in got[0]:
                bad.append("policy target of %s: %r, wanted one line with %r" % (target, got, want))
        # The target is decided on the medians (a repetition below 80%
        # does not decide it), and missed by either median.
        for done, kept, want in ((0.9, 0.85, "met."), (0.9, 0.79, "NOT met."),
                                 (1.1, 0.85, "NOT met.")):
            t = {"loads": [
                {"target": "clone", "profile": "idle", "policy": "idle-only", "iodepth": 0,
                 "impls": {"c": {"done_s": 0.2}, "rust": {"done_s": 0.2}}},
                {"target": "clone", "profile": "randread-4k", "policy": "share=15", "iodepth": 1,
                 "selftest_c_as_rust": False,
                 "impls": {"rust": {"done_s": done, "done_max_s": 1.2, "kept": kept,
                                    "kept_min": 0.7}}}]}
            got = policy_target(t)
            checked += 1
            if len(got) != 1 or not got[0].endswith(": " + want):
                bad.append("policy target, done %s s of 0.2 s idle, kept %s: %r, wanted %r"
                           % (done, kept, got, want))
        for where, text in (("summary", summary_text(doc)), ("table", text_table(doc))):
            n = " ".join(text.split()).count(" ".join(RATIO_LEGEND.split()))
            if n != 1:
                bad.append("%s: the ratio legend printed %d times" % (where, n))
    for b in bad:
        print("not ok: " + b)
    print("bench-report self-test: %d ratios checked, %d wrong" % (checked, len(bad)))
    return 1 if bad else 0


def main(argv):
    if argv and argv[0] == "--self-test":
        return self_test()
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__ or "usage: bench-report OUT_DIR [--wall-seconds N]")
        return 2
    out = argv[0]
    wall = None
    if "--wall-seconds" in argv:
        wall = int(argv[argv.index("--wall-seconds") + 1])
    doc = build(out, wall)
    with open(os.path.join(out, "results.json"), "w") as f:
        json.dump(doc, f, indent=1, sort_keys=False)
        f.write("\n")
    with open(os.path.join(out, "results.md"), "w") as f:
        f.write(md_table(doc))
    with open(os.path.join(out, "results.svg"), "w") as f:
        f.write(svg_chart(doc))
    with open(os.path.join(out, "summary.txt"), "w") as f:
        f.write(summary_text(doc))
    if "--readme" in argv:
        update_readme(argv[argv.index("--readme") + 1], summary_text(doc))
    print(text_table(doc))
    if wall is not None:
        print("wall time of the whole bench: %d s" % wall)
    return 0 if (doc["results"] or doc["skipped"] or doc["messages"] or doc["timings"]
                 or doc["loads"]) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
