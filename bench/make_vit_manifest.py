#!/usr/bin/python3
"""The manifest.json that peers.js (../shared/bench) and bench_engines read, for the demo vision
transformer: its files, its input shape and a correctness check on two real test images against
PyTorch's logits (tests/data/fashion_vit.logits.bin, written by scripts/train_demo_vit.py). No
multiply-accumulate count: ONNX 1.12's shape inference cannot follow the Shape->Reshape chains of a
PyTorch export, so bench_engines counts them from a run (peers.js then prints no GOPS).

    bench/make_vit_manifest.py WORK_DIR FP32_FILE QDQ_FILE QDQ_KEY
"""
import gzip
import json
import os
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGES = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz"


def main():
    work, fp32, qdq, key = sys.argv[1:5]
    with gzip.open(IMAGES) as f:
        pixels = np.frombuffer(f.read(), np.uint8, offset=16)[: 2 * 28 * 28]
    (pixels.astype(np.float32) / 255.0).tofile(os.path.join(work, "fashion_vit.input.bin"))  # the sidecar's pixel/255
    logits = np.fromfile(os.path.join(REPO, "tests", "data", "fashion_vit.logits.bin"), np.float32)
    logits[:20].tofile(os.path.join(work, "fashion_vit.ref.bin"))
    manifest = {"models": {"fashion_vit": {
        "input_shape": [1, 1, 28, 28],
        "files": {"fp32": fp32, key: qdq},
        "check": {"input": "fashion_vit.input.bin", "ref": "fashion_vit.ref.bin"},
    }}}
    with open(os.path.join(work, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
