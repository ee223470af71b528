#!/usr/bin/env bash
# Reproduces the README's accuracy table: the demo model on all 10,000 Fashion-MNIST test images,
# per-channel symmetric weights at 8, 4 and 2 bits, affine uint8 activations, calibrated on 512
# training images with each calibration method. Prints a Markdown table.
#   scripts/quant_table.sh [build-dir]
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
DATA=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
MODEL=resources/models/fashion_cnn.onnx
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| weights | activations | calibration | top-1 | float top-1 | agreement | output SQNR (dB) | size (KiB) | bits/weight |"
echo "|---|---|---|---:|---:|---:|---:|---:|---:|"
row() {  # scheme bits method label
  cat > "$tmp/c.json" <<JSON
{ "format": "quantexplorer-config", "version": 1,
  "calibration": { "images": 512, "method": "$3", "percentile": 99.99 },
  "default": { "weights": { "scheme": "$1", "bits": $2, "granularity": "per_channel" },
               "activations": { "scheme": "affine", "bits": 8 } } }
JSON
  "$CLI" eval --model "$MODEL" --data "$DATA" --config "$tmp/c.json" --json 2>/dev/null |
    /usr/bin/python3 -c "
import json, sys
r = json.load(sys.stdin)
print(f\"| $4 | uint8 affine | $3 | {100*r['top1']:.2f}% | {100*r['float_top1']:.2f}% | {100*r['agreement']:.2f}% | {r['output_sqnr_db']:.1f} | {r['size_bytes']/1024:.1f} | {r['bits_per_weight']:.2f} |\")
"
}
for bits in 8 4 2; do
  for method in minmax moving_average percentile mse entropy; do
    row symmetric "$bits" "$method" "int$bits per-channel symmetric"
  done
done
# Non-uniform weights at the same low bit widths, for contrast.
row kmeans 4 mse "k-means 4-bit per-channel"
row kmeans 2 mse "k-means 2-bit per-channel"
row log2 4 mse "log2 4-bit per-channel"
