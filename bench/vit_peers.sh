#!/usr/bin/env bash
# The demo vision transformer (resources/models/fashion_vit.onnx) beside ONNX Runtime, on the very
# same QDQ file: quantexplorer-cli exports it at W8A8 (per-channel int8 weights, per-tensor uint8
# activations, min-max on 512 training images), ONNX Runtime runs that file (and the float model),
# our int8 engine opens it as the window does (its own scales) and our fp32 engine runs the float
# model; one table at the end (bench/compare_engines.py).
#
#   bench/vit_peers.sh              # threads 1,2 x batch 1,32 (about 3 minutes on 2 cores)
#   MAX_BG=0 bench/vit_peers.sh     # do not wait for a quiet machine
# Environment: SHARED_BENCH (default ../shared/bench, for peers.js), BUILD (default build),
#              OUT (result folder), ORTPEER_DIR (as bench/run_peers.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED_BENCH=${SHARED_BENCH:-../shared/bench}
BUILD=${BUILD:-build}
WORK=$BUILD/peer-bench-vit
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
PY=/usr/bin/python3
DATA=/usr/share/datasets/fashion-mnist
if [ ! -f "$SHARED_BENCH/peers.js" ]; then
  echo "vit_peers: needs ONNX Runtime's timing script $SHARED_BENCH/peers.js (set SHARED_BENCH)" >&2
  exit 3
fi

BUILD="$BUILD" scripts/build.sh >/dev/null
mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)
cp "$SHARED_BENCH/peers.js" "$WORK/"
cp resources/models/fashion_vit.onnx "$WORK/fashion_vit_fp32.onnx"
cat > "$WORK/w8a8.json" <<JSON
{ "format": "quantexplorer-config", "version": 1,
  "calibration": { "images": 512, "method": "minmax" },
  "default": { "weights": { "scheme": "symmetric", "bits": 8, "granularity": "per_channel" },
               "activations": { "scheme": "affine", "bits": 8 } } }
JSON
"$BUILD/app/quantexplorer-cli" export --model resources/models/fashion_vit.onnx --config "$WORK/w8a8.json" \
  --out "$WORK/fashion_vit_int8_u8s8.onnx" --calib-data "$DATA/train-images-idx3-ubyte.gz" 2>"$WORK/export.log" ||
  { cat "$WORK/export.log" >&2; exit 1; }
"$PY" bench/make_vit_manifest.py "$WORK" fashion_vit_fp32.onnx fashion_vit_int8_u8s8.onnx int8_u8s8

. bench/ort_peer.sh

MAX_BG=${MAX_BG:-0.3}
ARGS=(--models fashion_vit --batches 1,32)
echo "# $(date -Is) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/env.txt"
echo "== ONNX Runtime (float model and the QDQ export)"
(cd "$WORK" && node peers.js --models-dir . --json "$OUT/ort.jsonl" --precisions fp32,int8_u8s8 "${ARGS[@]}" --max-bg "$MAX_BG" 2>&1 | grep -v '^#' | tail -n 8)
echo "== Quantization Explorer (fp32 engine on the float model, int8 engine on the QDQ export)"
"$BUILD/bench/bench_engines" --models-dir "$WORK" --json "$OUT/engine.jsonl" --int8-from-qdq int8_u8s8 "${ARGS[@]}"
echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
"$PY" bench/compare_engines.py "$OUT" | tee "$OUT/table.md"
echo "table: $OUT/table.md"
