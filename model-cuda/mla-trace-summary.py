#!/usr/bin/env python3
"""Summarises device-mla-trace.sh's trace.txt: for each traced batch-1 launch, where the time went between the first
split block's start and the last combine block's end (all in microseconds, from %globaltimer).

    python3 model-cuda/mla-trace-summary.py trace.txt

Split lines are "S block sm start mark... E end": marks alternate chunk ready / chunk done, relative to the block's start
(ns); combine lines are "C block sm start end" (ns).
"""
import statistics
import sys

CHUNK_BYTES = 64 * 576 * 2


def launches(lines):
    """S and C records, grouped into launches by time (launches are milliseconds apart, a launch tens of microseconds)."""
    records = []
    for line in lines:
        f = line.split()
        if f and f[0] == "S" and "E" in f:
            e = f.index("E")
            start = int(f[3])
            records.append(("S", start, {"start": start, "marks": [int(x) for x in f[4:e]], "end": start + int(f[e + 1])}))
        elif f and f[0] == "C" and len(f) == 5:
            records.append(("C", int(f[3]), {"start": int(f[3]), "end": int(f[4])}))
    records.sort(key=lambda r: r[1])
    groups = []
    for kind, t, rec in records:
        if not groups or t - groups[-1][-1][1] > 1_000_000:
            groups.append([])
        groups[-1].append((kind, t, rec))
    return groups


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def summarise(group):
    split = [r for k, _, r in group if k == "S"]
    combine = [r for k, _, r in group if k == "C"]
    t0 = min(r["start"] for r in split)
    us = lambda ns: ns / 1000.0
    ready = [[r["start"] + m for m in r["marks"][0::2]] for r in split]
    done = [[r["start"] + m for m in r["marks"][1::2]] for r in split]
    chunks = sum(len(x) for x in ready)
    first_ready = [x[0] - t0 for x in ready if x]
    cadence = [x[i + 1] - x[i] for x in ready for i in range(len(x) - 1)]
    compute = [d - r for rs, ds in zip(ready, done) for r, d in zip(rs, ds)]
    waiting = [rs[i + 1] - ds[i] for rs, ds in zip(ready, done) for i in range(len(rs) - 1)]
    last_done = [ds[-1] - t0 for ds in done if ds]
    split_end = max(r["end"] for r in split)
    out = [f"launch: {len(split)} split blocks, {chunks} chunks ({chunks * CHUNK_BYTES / 1e6:.1f} MB), "
           f"{chunks / len(split):.1f} per block",
           f"  split blocks start within {us(max(r['start'] for r in split) - t0):.2f} us of the first",
           f"  first chunk ready at {us(median(first_ready)):.2f} us (median), {us(max(first_ready)):.2f} (last block)",
           f"  chunk to chunk {us(median(cadence)):.2f} us (median; a copy-speed share is "
           f"{CHUNK_BYTES / (3.0e12 / 132) * 1e6:.2f}), compute {us(median(compute)):.2f}, waiting for data "
           f"{us(median(waiting)):.2f}",
           f"  last chunk done at {us(median(last_done)):.2f} us (median), {us(max(last_done)):.2f} (last block); "
           f"split ends at {us(split_end - t0):.2f} (partials written)"]
    if combine:
        c0 = min(r["start"] for r in combine)
        c1 = max(r["end"] for r in combine)
        out.append(f"  combine starts {us(c0 - split_end):.2f} us after the split ends, its blocks take "
                   f"{us(median([r['end'] - r['start'] for r in combine])):.2f} us (median), it ends at {us(c1 - t0):.2f}")
        out.append(f"  in all {us(c1 - t0):.2f} us from the first split block's start: "
                   f"{chunks * CHUNK_BYTES / ((c1 - t0) * 1e-9) / 1e9:.0f} GB/s on the cache")
    return "\n".join(out)


if __name__ == "__main__":
    for g in launches(open(sys.argv[1])):
        print(summarise(g))
