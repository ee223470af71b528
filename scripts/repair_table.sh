#!/usr/bin/env bash
# Reproduces the README's repairs table (issue 14): top-1 of every model in resources/models and
# ../shared/models at W8A8 per-tensor, W8A8 per-channel, W4A8 per-channel and W3A8 per-channel,
# with nearest rounding, + equalization, + equalization + bias correction, bias correction alone
# and AdaRound alone (its defaults). Prints a Markdown table on stdout, each row as it is measured,
# with the seconds AdaRound's whole `eval` took; progress on stderr.
#   scripts/repair_table.sh [build-dir]
#   MODELS="demo resnet8" CONFIGS="w4a8_per_channel" ADAROUND=0 scripts/repair_table.sh
set -euo pipefail
cd "$(dirname "$0")/.."
CLI=${1:-build}/app/quantexplorer-cli
SHARED=${SHARED:-../shared}
MODELS=${MODELS:-"demo mnist8 resnet8 vww mobilenet025 mobilenet05"}
CONFIGS=${CONFIGS:-"w8a8_per_tensor w8a8 w4a8_per_channel w3a8_per_channel"}
ADAROUND=${ADAROUND:-1}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# Nothing quantized: with the equalization flags, the float top-1 of the graph equalization sees.
cat > "$tmp/float.json" <<'JSON'
{ "format": "quantexplorer-config", "version": 1,
  "default": { "weights": { "float": true }, "activations": { "float": true } } }
JSON

# Per model: its evaluation command (the MANIFEST's preprocessing) and the flags equalization
# needs. The ImageNet MobileNets' ReLU6 are made ReLUs so that equalization finds its pairs (their
# float top-1 changes, and the table's float column says by how much); the VWW model's activations
# are plain ReLUs already, so equalization needs no flag there.
# The MobileNets calibrate and learn AdaRound on the first 64 of their 300 images.
model_args() {
  case $1 in
    demo) echo "--model resources/models/fashion_cnn.onnx --data /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz" ;;
    mnist8) echo "--model $SHARED/models/mnist-8.onnx --data $SHARED/data/mnist/t10k-images-idx3-ubyte.gz --scale 0.00392156862745098" ;;
    resnet8) echo "--model $SHARED/models/resnet8_cifar10.onnx --data $SHARED/data/cifar10_mlperf_tiny_200/test_200.bin" ;;
    vww) echo "--model $SHARED/models/vww_96_mobilenetv1_025.onnx --data $SHARED/data/vww_coco_96_200 --scale 0.00392156862745098" ;;
    mobilenet025|mobilenet05)
      local m=mobilenet_v1_0.25_128_float.onnx
      [ "$1" = mobilenet05 ] && m=mobilenet_v1_0.5_160_float.onnx
      echo "--model $SHARED/models/$m --data $SHARED/data/imagenet_val_227_300 --label-column label_1001 --scale 1 --mean 128 --std 128 --crop-fraction 0.875 --calib-count 64" ;;
  esac
}
equalization_args() {
  case $1 in
    mobilenet025|mobilenet05) echo "--equalization --relu6-as-relu" ;;
    *) echo "--equalization" ;;
  esac
}
adaround_args() {
  case $1 in
    mobilenet025|mobilenet05) echo "--adaround --adaround-images 64" ;;
    *) echo "--adaround" ;;
  esac
}

# Prints "top1 float_top1 seconds" of one eval.
measure() {
  local start=$SECONDS
  # shellcheck disable=SC2086,SC2068
  if ! "$CLI" eval $@ --json > "$tmp/eval.json" 2> "$tmp/eval.err"; then
    echo "failed: $* ($(tail -1 "$tmp/eval.err"))" >&2
    echo "nan nan 0"
    return
  fi
  /usr/bin/python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(r['top1'], r['float_top1'], $SECONDS-$start)" "$tmp/eval.json"
}
pct() { /usr/bin/python3 -c "import sys; v=float(sys.argv[1]); print('n/a' if v!=v else f'{100*v:.2f}%')" "$1"; }

echo "| model | float | weights | nearest | + equalization | + equalization + bias correction | bias correction alone | AdaRound alone | AdaRound's eval (s) |"
echo "|---|---:|---|---:|---:|---:|---:|---:|---:|"
for model in $MODELS; do
  args=$(model_args "$model")
  if [ "$model" != demo ] && [ ! -d "$SHARED/models" ]; then
    echo "skipping $model: $SHARED/models is absent" >&2
    continue
  fi
  floatnote=
  if [[ $(equalization_args "$model") == *relu6-as-relu* ]]; then
    read -r relufloat _ _ < <(measure "$args --config $tmp/float.json $(equalization_args "$model")")
    floatnote=" ($(pct "$relufloat") with ReLU for ReLU6)"
  fi
  for config in $CONFIGS; do
    c="--config resources/configs/$config.json"
    echo "$model $config ..." >&2
    read -r near float _ < <(measure "$args $c")
    read -r eq _ _ < <(measure "$args $c $(equalization_args "$model")")
    read -r eqbc _ _ < <(measure "$args $c $(equalization_args "$model") --bias-correction")
    read -r bc _ _ < <(measure "$args $c --bias-correction")
    ada=nan; adatime=
    if [ "$ADAROUND" = 1 ]; then
      read -r ada _ adatime < <(measure "$args $c $(adaround_args "$model")")
    fi
    echo "| $model | $(pct "$float")$floatnote | $config | $(pct "$near") | $(pct "$eq") | $(pct "$eqbc") | $(pct "$bc") | $(pct "$ada") | $adatime |"
  done
done
