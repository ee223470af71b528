#!/usr/bin/python3
"""Reference data for tests/core/tst_quantizer.cpp, made outside our C++ code.

    /usr/bin/python3 scripts/make_quantizer_references.py --out DIR

Writes raw little-endian float32 files (C order) and DIR/manifest.json:

    {"format": "quantizer-references", "version": N, "torch_version": "...", "cases": [case, ...]}

Every case has "name", "kind", "shape", "input" and "expected" (file names in DIR). Kinds:

  fake_quantize_per_tensor   torch.fake_quantize_per_tensor_affine(input, scale, zero_point, qmin, qmax);
                             fields "bits", "qmin", "qmax", "scale", "zero_point"
  fake_quantize_per_channel  torch.fake_quantize_per_channel_affine(input, scales, zero_points, axis, qmin,
                             qmax); fields "bits", "qmin", "qmax", "axis", "scales", "zero_points"
  fp16, bf16                 input.half().float() and input.bfloat16().float()
  fp8_e4m3, fp8_e5m2         the nearest value of the OCP 8-bit float format, built below from the OCP
                             specification's bit definitions (not from any library): ties go to the
                             code with an even mantissa, magnitudes beyond the largest finite value (and
                             infinities) saturate to it, NaN stays NaN, signs are kept (-0 included)

and two kinds without data files, parameters computed by PyTorch's observers:

  observer_per_tensor        torch.ao.quantization.MinMaxObserver with the given dtype, qscheme, qmin, qmax
                             on the two values [min, max]; fields "scheme" ("affine" or "symmetric"),
                             "signed", "bits", "qmin", "qmax", "min", "max", "scale", "zero_point"
  observer_per_channel       PerChannelMinMaxObserver(ch_axis=0) on the weight tensor in "input"; fields
                             "scheme", "signed", "bits", "qmin", "qmax", "scales", "zero_points"

Scales are float32 values written as JSON numbers (exact as doubles). Inputs are seeded, so the data
is the same on every run.

Exit codes: 0 ok, 1 failure, 3 numpy or torch missing (the test skips with a message).
"""

import argparse
import json
import math
import os
import sys
from bisect import bisect_right
from fractions import Fraction

EXIT_DEPS_MISSING = 3
MANIFEST_VERSION = 1  # the test regenerates the data when its expected version differs

try:
    import numpy as np
    import torch
    from torch.ao.quantization import MinMaxObserver, PerChannelMinMaxObserver
except Exception as exc:  # ImportError, or a broken installation
    print(f"dependencies missing: cannot import numpy/torch ({type(exc).__name__}: {exc}). "
          f"On Debian: apt install python3-torch python3-numpy", file=sys.stderr)
    sys.exit(EXIT_DEPS_MISSING)

F32 = np.float32


class Writer:
    """Collects the cases and writes each array to its own numbered file."""

    def __init__(self, out):
        self.out = out
        self.cases = []
        self.file_count = 0

    def save(self, array):
        name = f"{self.file_count:04d}.bin"
        self.file_count += 1
        np.ascontiguousarray(array, dtype="<f4").tofile(os.path.join(self.out, name))
        return name

    def add(self, name, kind, inp, expected, **fields):
        inp = np.asarray(inp, dtype=F32)
        expected = np.asarray(expected, dtype=F32)
        assert inp.shape == expected.shape
        case = {"name": name, "kind": kind, "shape": list(inp.shape),
                "input": self.save(inp), "expected": self.save(expected)}
        case.update(fields)
        self.cases.append(case)


def neighbours(values):
    """The values and their float32 neighbours on both sides."""
    v = np.asarray(values, dtype=F32)
    with np.errstate(over="ignore"):  # the neighbour of the largest float32 is infinity
        return np.concatenate([v, np.nextafter(v, F32(np.inf)), np.nextafter(v, F32(-np.inf))])


# ---------------------------------------------------------------------------------------------
# Uniform fake quantization: PyTorch's kernels

def code_range(bits, signed):
    return (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)


def uniform_inputs(rng, scale, zp, qmin, qmax, count=3000):
    """Ties (k + 0.5) * scale, grid points, their neighbours, values beyond the range, random values."""
    ks = np.arange(qmin - zp - 3, qmax - zp + 3)
    if len(ks) > count:
        ks = np.concatenate([ks[:200], ks[-200:], rng.choice(ks, count - 400, replace=False)])
    ks = ks.astype(F32)
    s = F32(scale)
    ties = (ks + F32(0.5)) * s
    grid = ks * s
    span = F32((qmax - qmin) * scale)
    random = (rng.standard_normal(count) * span / 4 + (qmin + qmax - 2 * zp) / 2 * scale).astype(F32)
    far = np.array([10 * span, -10 * span, 1e6 * s, -1e6 * s, 0.0, -0.0], dtype=F32)
    return np.concatenate([neighbours(ties), grid, random, far]).astype(F32)


def add_uniform_cases(w, rng):
    # Scales: a power of two (so (k + 0.5) * scale is an exact tie) and two that are not, where
    # x * (1 / scale) and x / scale round differently for many x. Zero-points of both parities.
    for bits in (2, 4, 8, 16):
        for signed in (False, True):
            qmin, qmax = code_range(bits, signed)
            mid = (qmin + qmax) // 2
            for scale, zp in ((2.0 ** -3, mid | 1), (0.1, mid & ~1), (0.0271, qmin), (3.3, qmax)):
                scale = float(F32(scale))
                x = uniform_inputs(rng, scale, zp, qmin, qmax)
                y = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, zp, qmin, qmax).numpy()
                w.add(f"per_tensor b{bits} {'s' if signed else 'u'} scale {scale:g} zp {zp}",
                      "fake_quantize_per_tensor", x, y, bits=bits, qmin=qmin, qmax=qmax, scale=scale, zero_point=zp)
    # Narrow symmetric range, and a tensor large enough for the parallel path.
    x = (rng.standard_normal(300_000) * 0.7).astype(F32)
    scale = float(F32(3.0 / 127))
    y = torch.fake_quantize_per_tensor_affine(torch.from_numpy(x), scale, 0, -127, 127).numpy()
    w.add("per_tensor symmetric narrow, 300k values", "fake_quantize_per_tensor", x, y,
          bits=8, qmin=-127, qmax=127, scale=scale, zero_point=0)

    # Per-channel on a conv-shaped weight [out, in, kh, kw] along axis 0, and along axis 1.
    for bits in (2, 4, 8):
        for signed in (False, True):
            qmin, qmax = code_range(bits, signed)
            channels = 8
            scales = (F32(2.0) ** rng.integers(-8, 0, channels).astype(F32)
                      * rng.choice([F32(1.0), F32(0.7), F32(1.3)], channels)).astype(F32)
            zps = rng.integers(qmin, qmax + 1, channels).astype(np.int32)
            x = (rng.standard_normal((channels, 3, 3, 3)) * (qmax - qmin) / 3).astype(F32) * scales[:, None, None, None]
            # Exact and near ties in every channel.
            flat = x.reshape(channels, -1)
            k = rng.integers(qmin, qmax + 1, (channels, 8)).astype(F32) - zps[:, None]
            flat[:, :8] = (k + F32(0.5)) * scales[:, None]
            flat[:, 8:16] = np.nextafter(flat[:, :8], F32(np.inf))
            y = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.from_numpy(scales),
                                                       torch.from_numpy(zps), 0, qmin, qmax).numpy()
            w.add(f"per_channel conv b{bits} {'s' if signed else 'u'}", "fake_quantize_per_channel", x, y,
                  bits=bits, qmin=qmin, qmax=qmax, axis=0,
                  scales=[float(s) for s in scales], zero_points=[int(z) for z in zps])
    qmin, qmax = code_range(8, True)
    scales = np.array([0.01, 0.02, 0.05, 0.1, 0.2, 0.5], dtype=F32)
    zps = np.array([0, 3, -4, 7, -128, 127], dtype=np.int32)
    x = (rng.standard_normal((4, 6, 5)) * 3).astype(F32)
    y = torch.fake_quantize_per_channel_affine(torch.from_numpy(x), torch.from_numpy(scales),
                                               torch.from_numpy(zps), 1, qmin, qmax).numpy()
    w.add("per_channel axis 1", "fake_quantize_per_channel", x, y, bits=8, qmin=qmin, qmax=qmax, axis=1,
          scales=[float(s) for s in scales], zero_points=[int(z) for z in zps])


def add_observer_cases(w, rng):
    configs = []  # (scheme, signed, bits, dtype, qscheme, qmin, qmax)
    for bits in (2, 4, 8):
        configs.append(("affine", False, bits, torch.quint8, torch.per_tensor_affine, 0, (1 << bits) - 1))
        configs.append(("affine", True, bits, torch.qint8, torch.per_tensor_affine, -(1 << (bits - 1)), (1 << (bits - 1)) - 1))
        configs.append(("symmetric", True, bits, torch.qint8, torch.per_tensor_symmetric,
                        -((1 << (bits - 1)) - 1), (1 << (bits - 1)) - 1))
    ranges = [(-0.3, 2.7), (0.5, 6.0), (-5.25, -0.75), (-1.0, 1.0), (-0.0123, 0.0456), (-100.0, 3.0), (0.0, 1.0)]
    for scheme, signed, bits, dtype, qscheme, qmin, qmax in configs:
        for lo, hi in ranges:
            lo, hi = float(F32(lo)), float(F32(hi))
            observer = MinMaxObserver(dtype=dtype, qscheme=qscheme, quant_min=qmin, quant_max=qmax)
            observer(torch.tensor([lo, hi], dtype=torch.float32))
            scale, zp = observer.calculate_qparams()
            w.cases.append({"name": f"observer {scheme} b{bits} {'s' if signed else 'u'} [{lo:g}, {hi:g}]",
                            "kind": "observer_per_tensor", "scheme": scheme, "signed": signed, "bits": bits,
                            "qmin": qmin, "qmax": qmax, "min": lo, "max": hi,
                            "scale": float(scale.item()), "zero_point": int(zp.item())})
    weights = (rng.laplace(size=(16, 3, 3, 3)) * rng.uniform(0.01, 1.0, (16, 1, 1, 1))).astype(F32)
    weights[3] = np.abs(weights[3])   # a channel without negative weights
    weights[5] = -np.abs(weights[5])  # and one without positive weights
    name = w.save(weights)
    for scheme, signed, bits, dtype, qscheme, qmin, qmax in configs:
        qscheme = torch.per_channel_affine if scheme == "affine" else torch.per_channel_symmetric
        observer = PerChannelMinMaxObserver(ch_axis=0, dtype=dtype, qscheme=qscheme, quant_min=qmin, quant_max=qmax)
        observer(torch.from_numpy(weights))
        scales, zps = observer.calculate_qparams()
        w.cases.append({"name": f"per-channel observer {scheme} b{bits} {'s' if signed else 'u'}",
                        "kind": "observer_per_channel", "shape": list(weights.shape), "input": name,
                        "scheme": scheme, "signed": signed, "bits": bits, "qmin": qmin, "qmax": qmax,
                        "scales": [float(s) for s in scales], "zero_points": [int(z) for z in zps]})


# ---------------------------------------------------------------------------------------------
# fp16 and bf16: PyTorch's conversions

def float_format_inputs(rng, codes_to_float, ulp_at, special):
    """Random values over many magnitudes, exact midpoints between neighbouring values of the format
    (and their float32 neighbours), and special values."""
    magnitudes = 10.0 ** np.arange(-12, 7)
    random = np.concatenate([rng.standard_normal(400) * m for m in magnitudes]).astype(F32)
    values = codes_to_float(rng.integers(0, 1 << 16, 4000))
    values = values[np.isfinite(values)]
    midpoints = (values.astype(np.float64) + np.sign(values) * ulp_at(values) / 2).astype(F32)
    return np.concatenate([random, values, neighbours(midpoints), np.array(special, dtype=F32)]).astype(F32)


def fp16_values(codes):
    return np.asarray(codes, dtype=np.uint16).view(np.float16).astype(F32)


def fp16_ulp(values):
    a = np.abs(values.astype(np.float64))
    exponent = np.maximum(np.floor(np.log2(np.where(a > 0, a, 1.0))), -14)
    return 2.0 ** (exponent - 10)


def bf16_values(codes):
    return (np.asarray(codes, dtype=np.uint32) << 16).view(F32)


def bf16_ulp(values):
    a = np.abs(values.astype(np.float64))
    exponent = np.maximum(np.floor(np.log2(np.where(a > 0, a, 1.0))), -126)
    return 2.0 ** (exponent - 7)


def add_half_cases(w, rng):
    inf, nan, fmax = float("inf"), float("nan"), float(np.finfo(F32).max)
    special = [0.0, -0.0, inf, -inf, nan, -nan, fmax, -fmax, 1e-45, -1e-45, np.finfo(F32).tiny]
    fp16_special = special + [65504.0, 65519.996, 65520.0, -65520.0, 65535.0, 1e6, 2.0 ** -24, 2.0 ** -25,
                              -(2.0 ** -25), 3 * 2.0 ** -26, 2.0 ** -25 * 1.0000001, 2.0 ** -14, 2.0 ** -14 * (1 - 2.0 ** -11)]
    x = float_format_inputs(rng, fp16_values, fp16_ulp, fp16_special)
    w.add("fp16", "fp16", x, torch.from_numpy(x).half().float().numpy())
    bf16_special = special + [3.3895314e38, 3.3961776e38, 1.0 + 2.0 ** -8, 1.0 + 3 * 2.0 ** -8, 2.0 ** -133, 2.0 ** -134]
    x = float_format_inputs(rng, bf16_values, bf16_ulp, bf16_special)
    w.add("bf16", "bf16", x, torch.from_numpy(x).bfloat16().float().numpy())


# ---------------------------------------------------------------------------------------------
# OCP 8-bit floats, from the specification ("OCP 8-bit Floating Point Specification (OFP8)", 2023)

def ocp_table(exponent_bits, mantissa_bits, bias, ieee_specials):
    """(code, exact value) of every non-negative finite code, ascending. E4M3: the exponent field
    1111 is an ordinary binade except S.1111.111, which is NaN. E5M2: as IEEE, exponent 11111 is
    infinity (mantissa 0) or NaN."""
    table = []
    exponent_all_ones = (1 << exponent_bits) - 1
    for code in range(1 << (exponent_bits + mantissa_bits)):
        e, m = code >> mantissa_bits, code & ((1 << mantissa_bits) - 1)
        if e == exponent_all_ones and (ieee_specials or m == (1 << mantissa_bits) - 1):
            continue
        if e == 0:  # subnormal: 0.m * 2^(1 - bias)
            value = Fraction(m, 1 << mantissa_bits) * Fraction(2) ** (1 - bias)
        else:       # normal: 1.m * 2^(e - bias)
            value = (1 + Fraction(m, 1 << mantissa_bits)) * Fraction(2) ** (e - bias)
        table.append((code, value))
    return table


def ocp_round(x, table):
    """Round-to-nearest-even with saturation, computed exactly with fractions."""
    if math.isnan(x):
        return float("nan")
    values = [v for _, v in table]
    largest = values[-1]
    a = Fraction(abs(x)) if math.isfinite(x) else largest
    if a >= largest:
        r = largest
    else:
        i = bisect_right(values, a) - 1  # values[i] <= a < values[i + 1]
        below, above = table[i], table[i + 1]
        d_below, d_above = a - below[1], above[1] - a
        if d_below != d_above:
            r = below[1] if d_below < d_above else above[1]
        else:
            r = below[1] if below[0] % 2 == 0 else above[1]
    return math.copysign(float(r), x)


def add_fp8_cases(w, rng):
    for name, exponent_bits, mantissa_bits, bias, ieee in (("fp8_e4m3", 4, 3, 7, False), ("fp8_e5m2", 5, 2, 15, True)):
        table = ocp_table(exponent_bits, mantissa_bits, bias, ieee)
        values = np.array([float(v) for _, v in table], dtype=F32)
        largest = values[-1]
        # Midpoints between neighbours, and the one between the largest value and the next
        # binade step beyond it (which still saturates).
        midpoints = ((values[:-1].astype(np.float64) + values[1:]) / 2).astype(F32)
        step = float(values[-1] - values[-2])
        beyond = np.array([largest + step / 2, largest + step, largest * 1.01, largest * 2, 1e30,
                           float(np.finfo(F32).max), float("inf")], dtype=F32)
        smallest = values[1]
        tiny = np.array([smallest / 2, smallest / 4, smallest * 0.75, smallest * 0.5000001, 1e-30, 1e-45, 0.0], dtype=F32)
        random = np.concatenate([rng.standard_normal(300) * 10.0 ** k for k in range(-6, 6)]).astype(F32)
        positive = np.concatenate([values, neighbours(midpoints), neighbours(beyond[:-1]), beyond[-1:], tiny,
                                   np.abs(random)])
        x = np.concatenate([positive, -positive, random, np.array([float("nan")], dtype=F32)]).astype(F32)
        y = np.array([ocp_round(float(v), table) for v in x], dtype=F32)
        w.add(name, name, x, y, largest=float(largest), smallest_subnormal=float(smallest),
              finite_values=2 * len(table) - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", required=True, help="output directory")
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rng = np.random.default_rng(20240607)
    w = Writer(args.out)
    add_uniform_cases(w, rng)
    add_observer_cases(w, rng)
    add_half_cases(w, rng)
    add_fp8_cases(w, rng)
    manifest = {"format": "quantizer-references", "version": MANIFEST_VERSION, "torch_version": torch.__version__,
                "cases": w.cases}
    # The manifest comes last and appears atomically, so an interrupted run is regenerated.
    tmp = os.path.join(args.out, "manifest.json.tmp")
    with open(tmp, "w") as f:
        json.dump(manifest, f, indent=1)
    os.replace(tmp, os.path.join(args.out, "manifest.json"))
    print(f"{len(w.cases)} reference cases in {args.out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as exc:
        print(f"make_quantizer_references.py failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        raise
