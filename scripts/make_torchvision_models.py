#!/usr/bin/python3
"""Generate randomly initialised torchvision models as ONNX files plus PyTorch reference outputs.

Used by the CTest test of the ONNX importer/engine:

    /usr/bin/python3 scripts/make_torchvision_models.py --out DIR

For each model (resnet18, mobilenet_v2, mobilenet_v3_small, squeezenet1_1, shufflenet_v2_x0_5, and the
vision transformer vit_b_16 twice: at opset 14, where LayerNorm is exported decomposed into
ReduceMean/Sub/Pow/Sqrt/Div, and at opset 17 as LayerNormalization):
    DIR/<name>.onnx         dynamic batch axis, input "input" [N,3,224,224], output "output" [N,1000]
    DIR/<name>.input.bin    raw little-endian float32, C order, shape [2,3,224,224], seeded N(0,1)
    DIR/<name>.output.bin   raw little-endian float32, C order, shape [2,1000], PyTorch eval output
and DIR/manifest.json:
    {"models": [{"name", "file", "input_shape", "output_shape", "opset", "ops": {op: count},
                 "constant_folding", "input_file", "output_file"}]}

Weights are random (weights=None, torch.manual_seed(0) before building each model). BatchNorm
statistics and affine parameters are re-initialised with seeded non-trivial values so that
BatchNorm folding in the importer is really exercised.

resnet18 and shufflenet_v2_x0_5 are exported without constant folding and without the exporter's
Conv+BN fusion (training=TrainingMode.PRESERVE on an eval-mode model), so BatchNormalization nodes,
Constant nodes and Shape->Gather->Unsqueeze->Concat->Reshape chains stay in the graph. The other
models are exported with do_constant_folding=True (BN fused into Conv by the exporter).

Exit codes: 0 ok, 1 failure, 3 dependencies (torch / torchvision / onnx) missing, so the test can skip.
"""

import argparse
import contextlib
import json
import os
import sys
import time
from collections import Counter

EXIT_DEPS_MISSING = 3

try:
    import numpy as np
    import torch
    import torchvision
    import onnx
    import onnx.numpy_helper
except Exception as exc:  # ImportError, or a broken installation
    print(f"dependencies missing: cannot import numpy/torch/torchvision/onnx ({type(exc).__name__}: {exc}). "
          f"On Debian: apt install python3-torch python3-torchvision python3-onnx python3-numpy",
          file=sys.stderr)
    sys.exit(EXIT_DEPS_MISSING)

# name -> (opset, do_constant_folding); a name's "_opset<N>" suffix is not part of the torchvision model's.
MODELS = [
    ("resnet18", 13, False),
    ("mobilenet_v2", 13, True),
    ("mobilenet_v3_small", 14, True),   # opset 14: hardswish exports as HardSwish
    ("squeezenet1_1", 13, True),
    ("shufflenet_v2_x0_5", 13, False),
    ("vit_b_16", 14, True),
    ("vit_b_16_opset17", 17, True),     # opset 17: LayerNorm exports as LayerNormalization
]
INPUT_SHAPE = (2, 3, 224, 224)


def reinit_batchnorm(model, seed):
    """Give every BatchNorm non-trivial, seeded statistics and affine parameters."""
    g = torch.Generator().manual_seed(seed)
    count = 0
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                c = m.num_features
                m.running_mean.copy_(torch.randn(c, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
                if m.affine:
                    m.weight.copy_(torch.rand(c, generator=g) + 0.5)
                    m.bias.copy_(torch.randn(c, generator=g) * 0.1)
                count += 1
    return count


def attr_value(a):
    v = onnx.helper.get_attribute_value(a)
    if isinstance(v, bytes):
        return v.decode(errors="replace")
    if isinstance(v, onnx.TensorProto):
        arr = onnx.numpy_helper.to_array(v)
        return f"tensor{list(arr.shape)}:{arr.dtype}" if arr.size > 4 else arr.tolist()
    if isinstance(v, list):
        return list(v)
    return v


def describe_ops(model_proto):
    """Per op type: set of distinct attribute/input signatures (for --verbose)."""
    inits = {i.name for i in model_proto.graph.initializer}
    const_outputs = {o for n in model_proto.graph.node if n.op_type == "Constant" for o in n.output}
    sigs = {}
    for n in model_proto.graph.node:
        attrs = {a.name: attr_value(a) for a in n.attribute}
        if n.op_type == "Constant":
            attrs = {"value": attrs.get("value")}
        kinds = []
        for i in n.input:
            kinds.append("-" if i == "" else "init" if i in inits else "const" if i in const_outputs else "act")
        key = json.dumps(attrs, sort_keys=True, default=str) + f" inputs={','.join(kinds)}"
        sigs.setdefault(n.op_type, Counter())[key] += 1
    return sigs


# --- Independent check: a minimal ONNX interpreter (numpy + torch.nn.functional kernels) -------------
# It executes the exported graph node by node following the ONNX operator definitions, so the saved
# PyTorch outputs are known to be what the ONNX file itself computes (not only what the module computes).

_ONNX_TO_NP = {1: np.float32, 6: np.int32, 7: np.int64, 9: np.bool_, 10: np.float16, 11: np.float64}


def _attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _sym_pads(pads, n):
    begin, end = list(pads[:n]), list(pads[n:])
    return begin, end


def _run_node(node, ins):
    import torch.nn.functional as F
    op, at = node.op_type, _attrs(node)
    t = lambda a: torch.from_numpy(np.require(a, requirements=["C", "W"]))
    if op == "Constant":
        return [onnx.numpy_helper.to_array(at["value"])]
    if op == "Identity":
        return [ins[0]]
    if op in ("Conv", "MaxPool"):
        x = t(ins[0])
        nd = x.dim() - 2
        if at.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NotImplementedError(f"{op} auto_pad")
        begin, end = _sym_pads(at.get("pads", [0] * 2 * nd), nd)
        strides = at.get("strides", [1] * nd)
        dil = at.get("dilations", [1] * nd)
        if op == "Conv":
            if begin != end:
                x = F.pad(x, sum(([b, e] for b, e in zip(reversed(begin), reversed(end))), []))
                begin = [0] * nd
            w = t(ins[1])
            b = t(ins[2]) if len(ins) > 2 and ins[2] is not None else None
            return [F.conv2d(x, w, b, stride=strides, padding=begin, dilation=dil, groups=at.get("group", 1)).numpy()]
        if begin != end:
            raise NotImplementedError("MaxPool asymmetric pads")
        return [F.max_pool2d(x, at["kernel_shape"], strides, begin, dil, ceil_mode=bool(at.get("ceil_mode", 0))).numpy()]
    if op == "BatchNormalization":
        x, s, b, m, v = ins
        shape = (1, -1) + (1,) * (x.ndim - 2)
        eps = at.get("epsilon", 1e-5)
        return [((x - m.reshape(shape)) / np.sqrt(v.reshape(shape) + np.float32(eps)) * s.reshape(shape)
                 + b.reshape(shape)).astype(np.float32)]
    if op == "Relu":
        return [np.maximum(ins[0], 0).astype(ins[0].dtype)]
    if op == "Clip":
        x = ins[0]
        lo = ins[1] if len(ins) > 1 and ins[1] is not None else None
        hi = ins[2] if len(ins) > 2 and ins[2] is not None else None
        if lo is not None:
            x = np.maximum(x, lo)
        if hi is not None:
            x = np.minimum(x, hi)
        return [x.astype(ins[0].dtype)]
    if op == "HardSigmoid":
        a, b = at.get("alpha", 0.2), at.get("beta", 0.5)
        return [np.clip(np.float32(a) * ins[0] + np.float32(b), 0, 1).astype(np.float32)]
    if op == "HardSwish":
        x = ins[0]
        return [(x * np.clip(x / np.float32(6) + np.float32(0.5), 0, 1)).astype(np.float32)]
    if op in ("Add", "Sub", "Mul", "Div"):
        a, b = ins
        if op == "Add":
            r = a + b
        elif op == "Sub":
            r = a - b
        elif op == "Mul":
            r = a * b
        elif np.issubdtype(a.dtype, np.integer):
            r = np.trunc(a / b).astype(a.dtype)  # ONNX integer Div truncates
        else:
            r = a / b
        return [np.asarray(r, dtype=a.dtype)]
    if op == "GlobalAveragePool":
        x = ins[0]
        return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True, dtype=np.float64).astype(x.dtype)]
    if op == "ReduceMean":
        x = ins[0]
        axes = at.get("axes", list(range(x.ndim)))
        return [x.mean(axis=tuple(axes), keepdims=bool(at.get("keepdims", 1)), dtype=np.float64).astype(x.dtype)]
    if op == "Flatten":
        x, axis = ins[0], at.get("axis", 1)
        axis = axis + x.ndim if axis < 0 else axis
        return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]
    if op == "Gemm":
        a, b = ins[0], ins[1]
        if at.get("transA", 0):
            a = a.T
        if at.get("transB", 0):
            b = b.T
        r = np.float32(at.get("alpha", 1.0)) * (a.astype(np.float64) @ b.astype(np.float64))
        if len(ins) > 2 and ins[2] is not None:
            r = r + np.float32(at.get("beta", 1.0)) * ins[2]
        return [r.astype(np.float32)]
    if op == "Concat":
        return [np.concatenate(ins, axis=at["axis"])]
    if op == "Shape":
        return [np.array(ins[0].shape, dtype=np.int64)]
    if op == "Gather":
        return [np.take(ins[0], ins[1], axis=at.get("axis", 0))]
    if op == "Unsqueeze":
        x = ins[0]
        axes = sorted(int(a) + (x.ndim + len(ins[1]) if a < 0 else 0) for a in ins[1])
        for a in axes:
            x = np.expand_dims(x, a)
        return [x]
    if op == "Cast":
        return [ins[0].astype(_ONNX_TO_NP[at["to"]])]
    if op == "Reshape":
        x, shape = ins[0], [int(v) for v in ins[1]]
        if not at.get("allowzero", 0):
            shape = [x.shape[i] if v == 0 else v for i, v in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Transpose":
        return [np.transpose(ins[0], at.get("perm"))]
    if op == "Slice":
        x = ins[0]
        starts, ends = ins[1], ins[2]
        axes = ins[3] if len(ins) > 3 and ins[3] is not None else range(len(starts))
        steps = ins[4] if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        sl = [slice(None)] * x.ndim
        for s, e, a, st in zip(starts, ends, axes, steps):
            a = int(a) + (x.ndim if a < 0 else 0)
            dim = x.shape[a]
            s, e = int(max(min(s, dim), -dim - 1)), int(max(min(e, dim), -dim - 1))
            sl[a] = slice(s, e, int(st))
        return [x[tuple(sl)]]
    if op == "MatMul":
        return [np.matmul(ins[0].astype(np.float64), ins[1].astype(np.float64)).astype(np.float32)]
    if op == "Softmax":
        x = ins[0].astype(np.float64)
        axis = at.get("axis", -1)
        e = np.exp(x - x.max(axis=axis, keepdims=True))
        return [(e / e.sum(axis=axis, keepdims=True)).astype(np.float32)]
    if op == "Erf":
        return [torch.erf(torch.from_numpy(ins[0].astype(np.float64))).numpy().astype(np.float32)]
    if op == "Sqrt":
        return [np.sqrt(ins[0])]
    if op == "Pow":
        return [np.power(ins[0].astype(np.float64), ins[1]).astype(ins[0].dtype)]
    if op == "Equal":
        return [np.equal(ins[0], ins[1])]
    if op == "Where":
        return [np.where(ins[0], ins[1], ins[2])]
    if op == "ConstantOfShape":
        value = onnx.numpy_helper.to_array(at["value"]) if "value" in at else np.zeros(1, np.float32)
        return [np.full([int(d) for d in ins[0]], value.reshape(-1)[0], dtype=value.dtype)]
    if op == "Expand":
        x = ins[0]
        return [x * np.ones([int(d) for d in ins[1]], dtype=x.dtype)]
    if op == "LayerNormalization":
        x = ins[0].astype(np.float64)
        axes = tuple(range(at.get("axis", -1) % x.ndim, x.ndim))
        mean = x.mean(axis=axes, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
        y = (x - mean) / np.sqrt(var + at.get("epsilon", 1e-5)) * ins[1]
        if len(ins) > 2 and ins[2] is not None:
            y = y + ins[2]
        return [y.astype(np.float32)]
    raise NotImplementedError(f"verifier does not implement {op}")


def run_onnx_reference(proto, x):
    env = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    env[proto.graph.input[0].name] = x
    for node in proto.graph.node:
        ins = [env[i] if i else None for i in node.input]
        outs = _run_node(node, ins)
        for name, val in zip(node.output, outs):
            env[name] = np.asarray(val)
    return env[proto.graph.output[0].name]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="output directory (created if missing)")
    ap.add_argument("--models", default=",".join(m[0] for m in MODELS),
                    help="comma-separated subset of models (default: all)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--verbose", action="store_true", help="print distinct attribute signatures per op")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip executing each ONNX file with the built-in reference interpreter")
    args = ap.parse_args()

    wanted = [s for s in args.models.split(",") if s]
    known = {m[0] for m in MODELS}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        print(f"error: unknown model(s) {unknown}; known: {sorted(known)}", file=sys.stderr)
        return 1

    torch.set_num_threads(max(1, args.threads))
    os.makedirs(args.out, exist_ok=True)
    print(f"torch {torch.__version__}, torchvision {torchvision.__version__}, onnx {onnx.__version__}; "
          f"writing to {os.path.abspath(args.out)}")

    manifest = {"models": []}
    t_all = time.perf_counter()
    for index, (name, opset, fold) in enumerate(MODELS):
        if name not in wanted:
            continue
        t0 = time.perf_counter()
        torch.manual_seed(0)
        model = getattr(torchvision.models, name.split("_opset")[0])(weights=None)
        n_bn = reinit_batchnorm(model, seed=1000 + index)
        if hasattr(model, "heads"):
            # torchvision starts a vision transformer's classifier at zero, so every output would be 0.
            with torch.no_grad():
                model.heads.head.weight.normal_(0, 0.02, generator=torch.Generator().manual_seed(3000 + index))
        model.eval()

        g = torch.Generator().manual_seed(2000 + index)
        x = torch.randn(*INPUT_SHAPE, generator=g, dtype=torch.float32)
        with torch.no_grad():
            y = model(x).float()

        onnx_file = f"{name}.onnx"
        onnx_path = os.path.join(args.out, onnx_file)
        export_kwargs = dict(
            opset_version=opset,
            input_names=["input"], output_names=["output"],
            dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
            do_constant_folding=fold, export_params=True,
        )
        if not fold:
            # The model is in eval mode; PRESERVE keeps it so (inference BatchNormalization with one
            # output) but skips the exporter's eval peephole pass that would fuse BN into Conv.
            export_kwargs["training"] = torch.onnx.TrainingMode.PRESERVE
        # Under no_grad, nn.MultiheadAttention takes its fused fast path, which PyTorch 1.13 cannot
        # export; with gradients on it runs (and exports) the plain MatMul/Softmax form.
        with torch.no_grad() if not name.startswith("vit") else contextlib.nullcontext():
            torch.onnx.export(model, x, onnx_path, **export_kwargs)

        proto = onnx.load(onnx_path)
        onnx.checker.check_model(proto)
        ops = dict(sorted(Counter(n.op_type for n in proto.graph.node).items()))
        if not fold and ops.get("BatchNormalization", 0) == 0:
            print(f"error: {name}: expected BatchNormalization nodes in the unfolded export", file=sys.stderr)
            return 1
        if fold and ops.get("BatchNormalization", 0) != 0:
            print(f"warning: {name}: BatchNormalization left in a folded export", file=sys.stderr)

        x_np = np.ascontiguousarray(x.numpy(), dtype="<f4")
        y_np = np.ascontiguousarray(y.numpy(), dtype="<f4")
        if y_np.shape != (INPUT_SHAPE[0], 1000) or not np.all(np.isfinite(y_np)):
            print(f"error: {name}: unexpected output shape {y_np.shape} or non-finite values", file=sys.stderr)
            return 1
        in_file, out_file = f"{name}.input.bin", f"{name}.output.bin"
        x_np.tofile(os.path.join(args.out, in_file))
        y_np.tofile(os.path.join(args.out, out_file))

        manifest["models"].append({
            "name": name, "file": onnx_file,
            "input_file": in_file, "output_file": out_file,
            "input_shape": list(x_np.shape), "output_shape": list(y_np.shape),
            "opset": opset, "constant_folding": fold,
            "ops": ops,
        })
        size_kb = os.path.getsize(onnx_path) / 1024
        print(f"{name}: opset {opset}, constant folding {'on' if fold else 'off'}, {n_bn} BatchNorms re-initialised, "
              f"{len(proto.graph.node)} nodes, {len(proto.graph.initializer)} initializers, {size_kb:.0f} KiB, "
              f"output {list(y_np.shape)} (|y| max {float(np.abs(y_np).max()):.3g}), {time.perf_counter() - t0:.1f} s")
        print("  ops: " + ", ".join(f"{k} {v}" for k, v in ops.items()))
        if args.verbose:
            for op, sigs in sorted(describe_ops(proto).items()):
                for sig, cnt in sigs.most_common():
                    print(f"    {op} x{cnt}: {sig}")
        if not args.no_verify:
            y_onnx = run_onnx_reference(proto, x_np)
            diff = float(np.abs(y_onnx.astype(np.float64) - y_np).max())
            scale = float(np.abs(y_np).max())
            print(f"  verified: ONNX graph re-executed node by node, max |diff| vs PyTorch {diff:.2e} "
                  f"(max |y| {scale:.2e})")
            if y_onnx.shape != y_np.shape or not diff <= 1e-4 * max(scale, 1e-2):
                print(f"error: {name}: the ONNX graph does not reproduce the PyTorch output", file=sys.stderr)
                return 1

    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print(f"wrote {len(manifest['models'])} models + manifest.json in {time.perf_counter() - t_all:.1f} s")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit:
        raise
    except Exception as exc:
        import traceback
        traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(1)
