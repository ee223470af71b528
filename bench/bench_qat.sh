#!/usr/bin/env bash
# One epoch of quantization-aware training of the demo model on the 60,000 Fashion-MNIST
# training images (batch 64, Adam), ours (quantexplorer-cli qat, W8A8 and W4A4 per-channel) beside
# PyTorch's own eager-mode QAT of the same architecture (bench/qat_peer.py, fbgemm W8A8), in one run
# on 2 threads. Prints a Markdown table: the training steps alone, and our whole command (which
# also measures the model before and after on the 10,000 test images).
#   bench/bench_qat.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"
echo
echo "| run | training steps (s) | whole command (s) | top-1 after |"
echo "|---|---:|---:|---:|"
for config in w8a8 w4a4_per_channel; do
  "$CLI" qat --model resources/models/fashion_cnn.onnx --data /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
    --config "resources/configs/$config.json" --epochs 1 --lr 1e-3 --out "$tmp/m.onnx" --json 2>/dev/null > "$tmp/r.json"
  /usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(f\"| ours, {sys.argv[2]} | {r['training_seconds']:.1f} | {r['seconds']:.1f} | {100*r['top1']:.2f}% |\")" "$tmp/r.json" "$config"
done
echo "| PyTorch 1.13 eager QAT, fbgemm W8A8 | $(/usr/bin/python3 bench/qat_peer.py --threads 2) | | |"
