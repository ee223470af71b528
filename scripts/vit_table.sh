#!/usr/bin/env bash
# Reproduces the README's table for the demo vision transformer (resources/models/fashion_vit.onnx):
# float, W8A8 per tensor, W8A8 with SmoothQuant, W8 with per-token dynamic activations and W4A8
# per channel, on all 10,000 Fashion-MNIST test images (calibrated on 512 training images), the
# simulation and the int8 engine side by side. Prints a Markdown table.
#   scripts/vit_table.sh [build-dir] [images]
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
LIMIT=${2:-10000}
DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
MODEL=resources/models/fashion_vit.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| configuration | simulation top-1 | int8 engine top-1 | engine = simulation | output SQNR (dB) | layers in integers | size (KiB) |"
echo "|---|---:|---:|---:|---:|---:|---:|"
row() {  # label weight-bits activations-json extra-flags...
  local label=$1 bits=$2 activations=$3
  shift 3
  cat > "$tmp/c.json" <<JSON
{ "format": "quantexplorer-config", "version": 1,
  "calibration": { "images": 512, "method": "minmax" },
  "default": { "weights": { "scheme": "symmetric", "bits": $bits, "granularity": "per_channel" },
               "activations": $activations } }
JSON
  "$CLI" eval --model "$MODEL" --data "$DATA" --limit "$LIMIT" --config "$tmp/c.json" --engine int8 --json "$@" 2>/dev/null |
    /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| $label | {100*r['simulated_top1']:.2f}% | {100*r['top1']:.2f}% | {100*r['agreement_with_simulation']:.2f}% | {r['output_sqnr_db']:.1f} | {r['integer_layers']} of {len(r['layers'])} | {r['size_bytes']/1024:.1f} |\")
"
}
"$CLI" eval --model "$MODEL" --data "$DATA" --limit "$LIMIT" --json 2>/dev/null |
  /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| float | {100*r['top1']:.2f}% | | | | | |\")
"
PER_TENSOR='{ "scheme": "affine", "bits": 8 }'
row "W8A8, activations per tensor" 8 "$PER_TENSOR"
row "W8A8 per tensor + SmoothQuant (alpha 0.5)" 8 "$PER_TENSOR" --smoothquant
row "W8, activations per token (dynamic)" 8 '{ "scheme": "affine", "bits": 8, "dynamic": true, "granularity": "per_token" }'
row "W4A8, weights per channel" 4 "$PER_TENSOR"
