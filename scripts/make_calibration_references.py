#!/usr/bin/python3
"""Reference results for tests/core/tst_calibration.cpp, computed outside our C++ code.

    /usr/bin/python3 scripts/make_calibration_references.py --out DIR

Writes raw little-endian float32 data files and DIR/manifest.json:

  "moving_average": PyTorch's torch.quantization.MovingAverageMinMaxObserver on seeded batches.
      {"file", "batches", "batch_size", "results": [{"constant", "min", "max"}]}
  "entropy": TensorRT's KL-divergence threshold, by an independent numpy implementation of the
      published algorithm (below), on np.histogram(|x|, 2048, range=(0, max |x|)).
      [{"name", "file", "count", "abs_max", "bins",
        "cases": [{"quant_bins", "bins_kept", "threshold", "first_candidate", "divergences"}]}]
      where divergences[k] is KL(P||Q) for first_candidate + k bins kept (the curve is flat and
      noisy, so a threshold from a slightly different histogram is judged by its divergence).

Exit codes: 0 ok, 1 failure, 3 numpy or torch missing (the test skips).
"""

import argparse
import json
import os
import sys

EXIT_DEPS_MISSING = 3

try:
    import numpy as np
    import torch
except Exception as exc:  # ImportError, or a broken installation
    print(f"dependencies missing: cannot import numpy/torch ({type(exc).__name__}: {exc}). "
          f"On Debian: apt install python3-torch python3-numpy", file=sys.stderr)
    sys.exit(EXIT_DEPS_MISSING)

ENTROPY_BINS = 2048
KL_EPSILON = 1e-4  # probability given to an empty Q bin where P is not empty (MXNet/ONNX Runtime's constant)


def moving_average_reference(out_dir):
    """Seeded batches whose extremes drift and jump, run through PyTorch's observer."""
    rng = np.random.default_rng(20240611)
    batches, batch_size = 60, 512
    data = []
    for b in range(batches):
        batch = rng.normal(0.3 * np.sin(b / 5.0), 1.0 + 0.02 * b, size=batch_size)
        if b % 17 == 9:
            batch[b % batch_size] = 40.0 + b  # a rare outlier batch
        data.append(batch.astype(np.float32))
    data = np.stack(data)
    data.tofile(os.path.join(out_dir, "moving_average.f32"))
    results = []
    for constant in (0.01, 0.1, 0.5):
        observer = torch.quantization.MovingAverageMinMaxObserver(averaging_constant=constant)
        for batch in data:
            observer(torch.from_numpy(batch))
        results.append({"constant": constant, "min": observer.min_val.item(), "max": observer.max_val.item()})
    return {"file": "moving_average.f32", "batches": batches, "batch_size": batch_size, "results": results}


def kl_bins_kept(hist, quant_bins):
    """TensorRT's entropy calibration (Migacz, "8-bit Inference with TensorRT", GTC 2017), written
    with numpy array operations. For each number i of kept bins: P is hist[:i] with the outliers
    hist[i:].sum() added to its last bin; Q is hist[:i] merged into quant_bins levels by
    np.digitize on np.linspace(0, i, quant_bins + 1) (as pytorch-quantization's
    _compute_amax_entropy does) and expanded back evenly over each level's non-zero bins. Both are
    normalised; KL(P||Q) sums over P > 0, with KL_EPSILON where Q is 0. The last minimum wins. As in
    pytorch-quantization, the first bin's count is replaced by the second's first."""
    hist = np.asarray(hist, dtype=np.float64).copy()
    hist[0] = hist[1]  # exact zeros (ReLU) cost nothing to quantize: pytorch-quantization's bins[0] = bins[1]
    n = hist.size
    total = hist.sum()
    divergences = []
    candidates = range(min(quant_bins, n), n + 1)
    for i in candidates:
        kept = hist[:i]
        p = kept.copy()
        p[-1] += hist[i:].sum()
        p = p / total
        level = np.digitize(np.arange(i), np.linspace(0, i, quant_bins + 1)) - 1
        nonzero = kept != 0
        level_mass = np.bincount(level, weights=kept, minlength=quant_bins)
        level_nonzero = np.bincount(level, weights=nonzero.astype(np.float64), minlength=quant_bins)
        q = np.zeros(i)
        q[nonzero] = level_mass[level[nonzero]] / level_nonzero[level[nonzero]]
        if q.sum() > 0:
            q = q / q.sum()
        mask = p > 0
        q_safe = np.where(q[mask] > 0, q[mask], KL_EPSILON)
        divergences.append(float(np.sum(p[mask] * np.log(p[mask] / q_safe))))
    divergences = np.array(divergences)
    last_argmin = len(divergences) - 1 - int(np.argmin(divergences[::-1]))
    return list(candidates)[last_argmin], divergences


def entropy_reference(out_dir, name, values, quant_bins_list):
    values = values.astype(np.float32)
    values.tofile(os.path.join(out_dir, name + ".f32"))
    abs_max = float(np.abs(values).max())
    hist, _ = np.histogram(np.abs(values).astype(np.float64), bins=ENTROPY_BINS, range=(0.0, abs_max))
    width = abs_max / ENTROPY_BINS
    cases = []
    for quant_bins in quant_bins_list:
        kept, divergences = kl_bins_kept(hist, quant_bins)
        cases.append({"quant_bins": quant_bins, "bins_kept": kept, "threshold": kept * width,
                      "first_candidate": min(quant_bins, ENTROPY_BINS), "divergences": divergences.tolist()})
    return {"name": name, "file": name + ".f32", "count": int(values.size), "abs_max": abs_max,
            "bins": ENTROPY_BINS, "cases": cases}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(7)

    # ReLU of a Gaussian: non-negative, half the values exactly 0 (so min is 0 and a one-batch
    # observer histogram is np.histogram's grid).
    relu = np.maximum(rng.normal(0.0, 1.0, size=200_000), 0.0)
    # Laplace with its extremes made symmetric (-M and M both present), so a 4096-bin observer
    # histogram over [-M, M] folds exactly onto the 2048 bins of |x|.
    laplace = rng.laplace(0.0, 1.0, size=200_000).astype(np.float32)
    m = np.abs(laplace).max()
    laplace[np.argmin(laplace)] = -m
    laplace[np.argmax(laplace)] = m

    manifest = {
        "moving_average": moving_average_reference(args.out),
        "entropy": [
            entropy_reference(args.out, "relu_gaussian", relu, [8, 128, 256]),
            entropy_reference(args.out, "laplace", laplace, [8, 128]),
        ],
    }
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as exc:
        print(f"failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
