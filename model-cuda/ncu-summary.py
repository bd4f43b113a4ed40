#!/usr/bin/env python3
"""Summarises device-ncu.sh's per-kernel CSV (ncu --print-summary per-kernel --csv): one line per kernel and launch
shape with its total time over the profiled launches, time per launch, DRAM bytes per launch and GB/s, largest first.

    python3 model-cuda/ncu-summary.py ncu-b1.csv
"""
import collections
import csv
import sys

UNITS = {"ns": 1e-3, "us": 1, "ms": 1e3, "nsecond": 1e-3, "usecond": 1, "msecond": 1e3,
         "byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}

rows = list(csv.reader(open(sys.argv[1])))
header_at = next(i for i, r in enumerate(rows) if r and r[0] == "Process ID")
header = rows[header_at]
metrics = collections.defaultdict(dict)          # (kernel, block, grid, launches) -> metric -> value (us or bytes)
for values in rows[header_at + 1:]:
    if len(values) != len(header):
        continue
    r = dict(zip(header, values))
    key = (r["Kernel Name"][:34], r["Block Size"], r["Grid Size"], int(r["Invocations"]))
    metrics[key][r["Metric Name"]] = float(r["Average"].replace(",", "")) * UNITS.get(r["Metric Unit"], 1)

lines = []
for key, m in metrics.items():
    us = m["gpu__time_duration.sum"]
    dram = m.get("dram__bytes_read.sum", 0) + m.get("dram__bytes_write.sum", 0)
    lines.append((us * key[3], key, us, dram))
total_us = sum(line[0] for line in lines)
total_bytes = sum(line[3] * line[1][3] for line in lines)
for total, (name, block, grid, launches), us, dram in sorted(lines, reverse=True):
    print(f"{total:9.1f} us  {name:<34} {block:<12} {grid:<14} n={launches:<4} {us:8.1f} us {dram / 1e6:8.2f} MB "
          f"{dram / us / 1e3 if us else 0:6.0f} GB/s")
print(f"total {total_us:.1f} us, {total_bytes / 1e9:.3f} GB, {total_bytes / total_us / 1e3:.0f} GB/s")
