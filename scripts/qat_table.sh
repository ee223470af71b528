#!/usr/bin/env bash
# Reproduces the README's quantization-aware training table (issue 15): the demo model on all
# 10,000 Fashion-MNIST test images, trained on the 60,000 training images beside them, at W8A8,
# W4A8, W4A4 and W2A8 per-channel: float, post-training and QAT top-1, with the training time.
# MODEL=resnet8: the CIFAR-10 ResNet-8 of ../shared on its 200 CIFAR-10 test images. There are
# no CIFAR-10 training images on this machine, so it trains by distillation from the float model
# on 500 unlabelled natural images that are not CIFAR-10 (the 300 ImageNet and 200 COCO images of
# ../shared/data, copied into one folder without labels), which also calibrate both the
# post-training and the QAT model; 20 epochs of Adam at 1e-4, batch 32, BatchNormalization frozen.
# Prints a Markdown table on stdout, a row as each is measured.
#   scripts/qat_table.sh [build-dir]
#   CONFIGS="w4a4_per_channel" EPOCHS=3 LR=1e-3 scripts/qat_table.sh
#   MODEL=resnet8 SHARED=../shared scripts/qat_table.sh
#   LSQ=1 scripts/qat_table.sh     # learned activation ranges (--learn-ranges)
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
CONFIGS=${CONFIGS:-"w8a8 w4a8_per_channel w4a4_per_channel w2a8_per_channel"}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
case "${MODEL:-demo}" in
  demo)
    model=resources/models/fashion_cnn.onnx
    data=/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz
    EPOCHS=${EPOCHS:-3}; LR=${LR:-1e-3}
    extra=() ;;
  resnet8)
    SHARED=${SHARED:-../shared}
    model=$SHARED/models/resnet8_cifar10.onnx
    data=$SHARED/data/cifar10_mlperf_tiny_200/test_200.bin
    mkdir "$tmp/unlabelled"
    cp "$SHARED"/data/imagenet_val_227_300/*.JPEG "$SHARED"/data/vww_coco_96_200/*.png "$tmp/unlabelled/"
    EPOCHS=${EPOCHS:-20}; LR=${LR:-1e-4}
    # Its BatchNormalization statistics stay frozen (BN_EPOCHS=1 updates them in the first
    # epoch): updated on images that are not CIFAR-10, they would describe the wrong data.
    extra=(--train-data "$tmp/unlabelled" --calib-data "$tmp/unlabelled" --batch 32 --freeze-bn-after "${BN_EPOCHS:-0}") ;;
  *) echo "MODEL must be demo or resnet8" >&2; exit 2 ;;
esac
[ "${LSQ:-0}" = 1 ] && extra+=(--learn-ranges)

echo "| configuration | float | post-training | QAT | QAT epochs | QAT time (s) |"
echo "|---|---:|---:|---:|---:|---:|"
for config in $CONFIGS; do
  echo "$config ..." >&2
  "$CLI" qat --model "$model" --data "$data" "${extra[@]}" \
    --config "resources/configs/$config.json" --epochs "$EPOCHS" --lr "$LR" \
    --out "$tmp/model.onnx" --save-config "$tmp/config.json" --json > "$tmp/qat.json"
  /usr/bin/python3 -c "
import json, sys
r = json.load(open(sys.argv[1]))
print(f\"| {sys.argv[2]} | {100*r['float_top1']:.2f}% | {100*r['ptq_top1']:.2f}% | {100*r['top1']:.2f}% | {sys.argv[3]} | {r['seconds']:.0f} |\")
" "$tmp/qat.json" "$config" "$EPOCHS"
done
