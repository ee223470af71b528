#!/usr/bin/python3
"""Train the demo vision transformer of Quantization Explorer: a small ViT on Fashion-MNIST.

Reproduce (from the repository root, Debian 12 packages only, no network):

    /usr/bin/python3 scripts/train_demo_vit.py

Writes into --out-dir (default: <repo>/resources/models):
    fashion_vit.onnx             opset 17, input "input" [N,1,28,28] float (pixel/255), output "logits" [N,10]
    fashion_vit.preprocess.json  the MNIST-style preprocessing sidecar (the CNN's)
    fashion_vit.md               description, command, measured training time and accuracy
and into --reference-dir (default: <repo>/tests/data):
    fashion_vit.logits.bin       PyTorch's logits of the first 100 t10k images, float32 little-endian
                                 [100,10]: the outside reference tst_real_models checks the engine on

Debian's PyTorch uses the system BLAS, by default the reference one (14 epochs: about two hours on 2
cores). OpenBLAS makes it many times faster; the project does not install it machine-wide (it changes
libtorch's arithmetic for everything, QAT's included), but it can be used for this process only:

    apt-get download libopenblas0-pthread && dpkg -x libopenblas0-pthread_*.deb /tmp/openblas
    LD_LIBRARY_PATH=/tmp/openblas/usr/lib/x86_64-linux-gnu/openblas-pthread /usr/bin/python3 scripts/train_demo_vit.py

The model card records which BLAS library the run loaded. Results differ in the last digits
between BLAS libraries, so another library may land a few images either side.

The model is written the way ViT/DeiT are (Dosovitskiy et al. 2021): 4x4 patches embedded by a
strided Conv, a class token and learned position embeddings, pre-norm encoder blocks of multi-head
self-attention and a GELU MLP, a LayerNorm and a linear head on the class token. Attention is
spelled out (Q, K, V projections, Q.K^T, Softmax, attention.V) so the ONNX graph shows each MatMul
of two activations as its own node, as PyTorch exports ViTs. The script fails (exit 1) if the test
accuracy is below --min-accuracy.
"""

import argparse
import json
import math
import os
import platform
import sys
import time

import numpy as np

try:
    import torch
    import torch.nn as nn
    import torch.nn.functional as F
except ImportError as exc:  # pragma: no cover
    print(f"error: PyTorch is required (Debian: apt install python3-torch): {exc}", file=sys.stderr)
    sys.exit(3)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_demo_model import CLASS_NAMES, DATA_DIR, REPO_ROOT, evaluate_torch, load_split  # noqa: E402

MODEL_NAME = "fashion_vit"
REFERENCE_IMAGES = 100


def blas_library():
    """The BLAS shared library this process loaded (the model card records it)."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                name = line.split()[-1]
                if "libblas.so" in name or "libopenblas" in name:
                    return name
    except OSError:
        pass
    return "unknown"


class Attention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        b, t, d = x.shape
        h = self.heads

        def split(y):  # [B,T,D] -> [B,H,T,D/H]
            return y.reshape(b, t, h, d // h).transpose(1, 2)

        q, k, v = split(self.q(x)), split(self.k(x)), split(self.v(x))
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(d // h))
        attention = torch.softmax(scores, dim=-1)
        y = torch.matmul(attention, v).transpose(1, 2).reshape(b, t, d)
        return self.proj(y)


class Block(nn.Module):
    def __init__(self, dim, heads, mlp_dim, dropout):
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, mlp_dim)
        self.gelu = nn.GELU()
        self.fc2 = nn.Linear(mlp_dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, x):
        x = x + self.drop(self.attn(self.ln1(x)))
        return x + self.drop(self.fc2(self.gelu(self.fc1(self.ln2(x)))))


class FashionViT(nn.Module):
    def __init__(self, patch=4, dim=64, depth=4, heads=4, mlp_dim=128, dropout=0.0, classes=10):
        super().__init__()
        self.patch_embed = nn.Conv2d(1, dim, patch, stride=patch)
        tokens = (28 // patch) ** 2
        self.class_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, tokens + 1, dim) * 0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_dim, dropout) for _ in range(depth)])
        self.ln = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, classes)
        self.shape_text = (f"1x28x28 -> {dim}x{28 // patch}x{28 // patch} patches -> {tokens + 1} tokens x {dim} "
                           f"-> {depth} blocks ({heads} heads, MLP {mlp_dim}) -> class token -> {classes}")

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)           # [B, T, D]
        x = torch.cat([self.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        x = self.blocks(x + self.pos_embed)
        return self.head(self.ln(x)[:, 0])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=14, help="training epochs (default 14)")
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "resources", "models"))
    ap.add_argument("--reference-dir", default=os.path.join(REPO_ROOT, "tests", "data"))
    ap.add_argument("--seed", type=int, default=20261206)
    ap.add_argument("--data-dir", default=DATA_DIR, help=f"Fashion-MNIST directory (default {DATA_DIR})")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak AdamW learning rate (one-cycle schedule)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--min-accuracy", type=float, default=0.88, help="fail below this test top-1 (default 0.88)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    x_train, y_train = load_split(args.data_dir, "train")
    x_test, y_test = load_split(args.data_dir, "t10k")
    print(f"data: train {x_train.shape}, test {x_test.shape} from {args.data_dir}")

    model = FashionViT()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters", flush=True)

    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch)
    order_rng = np.random.default_rng(args.seed)
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)

    t0 = time.perf_counter()
    c0 = time.process_time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.from_numpy(order_rng.permutation(len(x_train)))
        flip = torch.from_numpy(order_rng.random(len(x_train)) < 0.5)  # the CNN's augmentation
        total_loss, correct = 0.0, 0
        te = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb = torch.where(flip[idx][:, None, None, None], xt[idx].flip(3), xt[idx])
            yb = yt[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb, label_smoothing=0.1)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            total_loss += float(loss) * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
        acc, _ = evaluate_torch(model, x_test, y_test)
        print(f"epoch {epoch + 1}/{args.epochs}: loss {total_loss / len(x_train):.4f} "
              f"train acc {correct / len(x_train):.4f} test acc {acc:.4f} "
              f"({time.perf_counter() - te:.1f} s)", flush=True)
    train_seconds = time.perf_counter() - t0
    train_cpu_seconds = time.process_time() - c0

    model.eval()
    torch_acc, _ = evaluate_torch(model, x_test, y_test)
    print(f"PyTorch test top-1: {torch_acc * 100:.2f}% ({train_seconds:.1f} s wall, {train_cpu_seconds:.1f} s CPU)")

    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, MODEL_NAME + ".onnx")
    torch.onnx.export(model, torch.from_numpy(x_test[:2]), onnx_path, opset_version=17,
                      input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}},
                      do_constant_folding=True, export_params=True)
    import onnx
    m = onnx.load(onnx_path)
    onnx.checker.check_model(m)
    ops = {}
    for node in m.graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    onnx_size = os.path.getsize(onnx_path)
    print(f"wrote {onnx_path} ({onnx_size} bytes), ops: {ops}")

    os.makedirs(args.reference_dir, exist_ok=True)
    ref_path = os.path.join(args.reference_dir, MODEL_NAME + ".logits.bin")
    with torch.no_grad():
        ref = model(torch.from_numpy(x_test[:REFERENCE_IMAGES])).numpy().astype("<f4")
    ref.tofile(ref_path)
    print(f"wrote {ref_path}")

    preprocess = {
        "format": "quantexplorer-preprocess", "version": 1, "color": "gray",
        "resize_shorter": 0, "crop_fraction": 1.0, "scale": 0.00392156862745098,
        "mean": [0.0], "std": [1.0], "class_names": CLASS_NAMES,
    }
    with open(os.path.join(args.out_dir, MODEL_NAME + ".preprocess.json"), "w") as f:
        json.dump(preprocess, f, indent=2)
        f.write("\n")

    ops_text = ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))
    md = f"""# fashion_vit — the demo vision transformer

A small vision transformer trained on
[Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist) by `scripts/train_demo_vit.py`.
*File > Open Example* opens it beside the CNN (`fashion_cnn`): the same images, a transformer's
quantization problems (LayerNorm, Softmax, GELU, attention products of two activations, outlier
channels in the residual stream).

## Files

| File | Content |
| --- | --- |
| `fashion_vit.onnx` | ONNX opset 17, {onnx_size} bytes. Input `input` float32 `[N,1,28,28]`, output `logits` float32 `[N,10]` (dynamic batch `N`). |
| `fashion_vit.preprocess.json` | Preprocessing sidecar: gray, pixel/255 (the "MNIST-style" preset), class names. |
| `fashion_vit.md` | This file (generated by the script). |

## Architecture ({n_params} trainable parameters)

`{model.shape_text}`. Pre-norm blocks: `x + proj(softmax(Q.K^T / sqrt(16)).V)` on `LayerNorm(x)`,
then `x + fc2(GELU(fc1(LayerNorm(x))))`. GELU is the exact (erf) form.

ONNX graph ops: {ops_text}.

## Reproduce

From the repository root on Debian 12 (`python3-torch`, `python3-onnx`, `python3-numpy`; the data
comes from `{args.data_dir}`; no network):

```
/usr/bin/python3 scripts/train_demo_vit.py
```

Training: {args.epochs} epochs, AdamW (weight decay 0.05) with a one-cycle schedule (peak learning
rate {args.lr}), batch size {args.batch_size}, cross-entropy with label smoothing 0.1, gradient
clipping at norm 1, no dropout, random horizontal flips, seed {args.seed}, {args.threads} CPU threads,
BLAS `{blas_library()}`.

## Measured results

| | |
| --- | --- |
| Training time | {train_seconds:.0f} s wall ({train_seconds / 60:.1f} min), {train_cpu_seconds:.0f} s CPU ({platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}) |
| Test top-1, PyTorch (10,000 t10k images) | **{torch_acc * 100:.2f}%** |

`tests/data/fashion_vit.logits.bin` holds PyTorch's logits of the first {REFERENCE_IMAGES} test
images; `tst_real_models` checks the engine's fp32 run of this file against them.
"""
    with open(os.path.join(args.out_dir, MODEL_NAME + ".md"), "w") as f:
        f.write(md)

    if torch_acc < args.min_accuracy:
        print(f"error: test accuracy {torch_acc:.4f} is below {args.min_accuracy}", file=sys.stderr)
        return 1
    print(f"RESULT: PyTorch {torch_acc * 100:.2f}%, train {train_seconds:.1f} s wall, params {n_params}, "
          f"onnx {onnx_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
