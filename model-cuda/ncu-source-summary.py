#!/usr/bin/env python3
"""Summarises SOURCE=1 device-ncu.sh's source view (ncu --page source --csv --print-source cuda,sass) of one kernel: the
source lines with the most warp stall samples (share of stalls, of executed warp instructions, of excess shared-memory
wavefronts, i.e. bank conflicts), then the SASS opcodes by share of executed instructions.

    python3 model-cuda/ncu-source-summary.py kda_chunk_state-source.csv [LINES]
"""
import collections
import csv
import sys


def number(text):
    try:
        return float(text.replace(",", ""))
    except ValueError:
        return 0.0


lines = collections.defaultdict(lambda: [0.0, 0.0, 0.0, ""])      # (file, line) -> stalls, instructions, excess, text
opcodes = collections.Counter()
file_name = None
header = None
for row in csv.reader(open(sys.argv[1])):
    if not row:
        continue
    if row[0] == "File Path":
        file_name = row[1].split("/")[-1]
        continue
    if row[0] == "Line No":
        header = row
        continue
    if header is None or len(row) < len(header):
        continue
    if row[0] == "" and row[2].startswith("0x"):                 # a SASS row under its source line
        words = row[3].split()
        if words:
            opcode = words[1] if words[0].startswith("@") and len(words) > 1 else words[0]
            opcodes[opcode] += number(row[header.index("Instructions Executed", 4)])
        continue
    try:
        line_no = int(row[0])
    except ValueError:
        continue
    entry = lines[(file_name, line_no)]
    entry[0] += number(row[4])
    entry[1] += number(row[header.index("Instructions Executed", 4)])
    entry[2] += number(row[header.index("L1 Wavefronts Shared Excessive")])
    entry[3] = entry[3] or row[1].strip()[:80]
totals = [sum(e[i] for e in lines.values()) or 1.0 for i in range(3)]
print(f"stall samples {totals[0]:.0f}, warp instructions {totals[1]:.3g}, excess shared wavefronts {totals[2]:.3g}")
print("stalls  instr  excess  line")
for (name, line_no), e in sorted(lines.items(), key=lambda kv: -kv[1][0])[:int(sys.argv[2]) if len(sys.argv) > 2 else 30]:
    print(f"{100 * e[0] / totals[0]:5.1f}% {100 * e[1] / totals[1]:5.1f}% {100 * e[2] / totals[2]:5.1f}%  {name}:{line_no} {e[3]}")
total_ops = sum(opcodes.values()) or 1.0
print("SASS opcodes by executed instructions:")
for opcode, count in opcodes.most_common(20):
    print(f"  {opcode:<26} {100 * count / total_ops:5.1f}%")
