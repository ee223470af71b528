#!/usr/bin/env python3
"""One table of median milliseconds per batch and the ratios the int8 engine is judged by.
   python3 bench/compare_engines.py RESULT_DIR      (the *.jsonl files bench/run_peers.sh wrote)
Ratios: "int8 speed-up" = our fp32 / our int8 (target >= 2); "vs ORT int8" = ONNX Runtime's
int8 (u8s8 QDQ, the same uint8-activation, int8-weight scheme) / our int8 (target >= 1).
A figure measured in several rounds (ROUNDS=3 bench/run_peers.sh) is the median of the rounds."""
import glob
import json
import os
import statistics
import sys


def main():
    rounds = {}
    for path in sorted(glob.glob(os.path.join(sys.argv[1] if len(sys.argv) > 1 else ".", "*.jsonl"))):
        for line in open(path):
            line = line.strip()
            if not line:
                continue
            r = json.loads(line)
            if r.get("kind") == "peer":
                rounds.setdefault((r["model"], r["engine"], r["precision"], int(r["threads"]), int(r["batch"])), []).append(r["median_ms"])
    rows = {key: statistics.median(values) for key, values in rounds.items()}
    keys = sorted({(m, t, b) for (m, _, _, t, b) in rows}, key=lambda k: (["lenet", "mobilenet", "resnet18"].index(k[0]) if k[0] in ["lenet", "mobilenet", "resnet18"] else 9, k[1], k[2]))
    cols = [("qe", "fp32", "ours fp32"), ("qe", "int8", "ours int8"), ("ort", "fp32", "ORT fp32"),
            ("ort", "int8_u8s8", "ORT int8 u8s8"), ("ort", "int8_s8s8", "ORT int8 s8s8"), ("opencv", "fp32", "OpenCV fp32")]
    print("| model | threads | batch | " + " | ".join(c[2] for c in cols) + " | int8 speed-up | vs ORT int8 |")
    print("|---|---:|---:|" + "---:|" * len(cols) + "---:|---:|")
    fmt = lambda v: "-" if v is None else (f"{v:.3f}" if v < 1 else f"{v:.2f}" if v < 100 else f"{v:.1f}")
    for (m, t, b) in keys:
        vals = [rows.get((m, e, p, t, b)) for (e, p, _) in cols]
        ours32, ours8, ort8 = vals[0], vals[1], vals[3]
        speedup = f"{ours32 / ours8:.2f}x" if ours32 and ours8 else "-"
        vs = f"{ort8 / ours8:.2f}x" if ort8 and ours8 else "-"
        print(f"| {m} | {t} | {b} | " + " | ".join(fmt(v) for v in vals) + f" | {speedup} | {vs} |")


if __name__ == "__main__":
    main()
