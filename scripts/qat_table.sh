#!/usr/bin/env bash
# Reproduces the README's quantization-aware training table (issue 15): the demo model on all
# 10,000 Fashion-MNIST test images, trained on the 60,000 training images beside them, at W8A8,
# W4A8, W4A4 and W2A8 per-channel: float, post-training and QAT top-1, with the training time.
# Prints a Markdown table on stdout, a row as each is measured.
#   scripts/qat_table.sh [build-dir]
#   CONFIGS="w4a4_per_channel" EPOCHS=3 LR=1e-3 scripts/qat_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
CONFIGS=${CONFIGS:-"w8a8 w4a8_per_channel w4a4_per_channel w2a8_per_channel"}
EPOCHS=${EPOCHS:-3}
LR=${LR:-1e-3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "| configuration | float | post-training | QAT | QAT epochs | QAT time (s) |"
echo "|---|---:|---:|---:|---:|---:|"
for config in $CONFIGS; do
  echo "$config ..." >&2
  "$CLI" qat --model resources/models/fashion_cnn.onnx \
    --data /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz \
    --config "resources/configs/$config.json" --epochs "$EPOCHS" --lr "$LR" \
    --out "$tmp/model.onnx" --save-config "$tmp/config.json" --json > "$tmp/qat.json"
  /usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(f\"| {sys.argv[2]} | {100*r['float_top1']:.2f}% | {100*r['ptq_top1']:.2f}% | {100*r['top1']:.2f}% | {sys.argv[3]} | {r['seconds']:.0f} |\")
" "$tmp/qat.json" "$config" "$EPOCHS"
done
