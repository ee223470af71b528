#!/usr/bin/env bash
# Our fp32 and int8 engines beside ONNX Runtime (fp32, int8 QDQ) and OpenCV DNN (fp32) on the
# models of ../shared/bench (LeNet, MobileNetV1 and ResNet-18 size), in one run, with one table
# of medians and ratios at the end (bench/compare_engines.py).
#
#   bench/run_peers.sh                 # threads 1,2 x batch 1,32 (about 15 minutes on 2 cores)
#   QUICK=1 bench/run_peers.sh         # batch 1, fewer runs (about 3 minutes)
#   MAX_BG=0 bench/run_peers.sh        # do not wait for a quiet machine
#   ROUNDS=3 bench/run_peers.sh        # then ONNX Runtime's int8 and ours twice more, alternating;
#                                      # the table takes each figure's median over the rounds
# Environment: SHARED_BENCH (default ../shared/bench), BUILD (default build), OUT (result folder),
#              ORTPEER_DIR (where onnxruntime-node is or gets installed; default $BUILD/peer-bench/ortpeer).
set -euo pipefail
cd "$(dirname "$0")/.."
SHARED_BENCH=${SHARED_BENCH:-../shared/bench}
BUILD=${BUILD:-build}
WORK=$BUILD/peer-bench
OUT=${OUT:-$WORK/results/$(date +%Y%m%d-%H%M%S)}
PY=/usr/bin/python3
if [ ! -f "$SHARED_BENCH/peers.js" ]; then
  echo "run_peers: needs the peers in $SHARED_BENCH (set SHARED_BENCH)" >&2
  exit 3
fi

BUILD="$BUILD" scripts/build.sh >/dev/null
mkdir -p "$WORK" "$OUT"
OUT=$(cd "$OUT" && pwd)
# The peers write models/ and results/ beside themselves: run a copy inside the build folder.
cp "$SHARED_BENCH"/*.py "$SHARED_BENCH"/*.js "$WORK"/
[ -f "$WORK/models/manifest.json" ] || (cd "$WORK" && "$PY" make_models.py)

. bench/ort_peer.sh

MAX_BG=${MAX_BG:-0.3}
if [ "${QUICK:-0}" = 1 ]; then
  ARGS=(--batches 1 --runs 10 --min-time 0.2)
else
  ARGS=(--batches 1,32)
fi
echo "# $(date -Is) $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | xargs), $(nproc) cpus, loadavg $(cut -d' ' -f1-3 /proc/loadavg)" | tee "$OUT/env.txt"
echo "== ONNX Runtime"
(cd "$WORK" && node peers.js --json "$OUT/ort.jsonl" "${ARGS[@]}" --max-bg "$MAX_BG" 2>&1 | tail -n 3) || true
echo "== OpenCV DNN"
(cd "$WORK" && "$PY" peers_cv.py --json "$OUT/cv.jsonl" --precisions fp32 "${ARGS[@]}" --max-bg "$MAX_BG" 2>&1 | tail -n 3) || true
echo "== Quantization Explorer (fp32 and int8 engines)"
"$BUILD/bench/bench_engines" --models-dir "$WORK/models" --json "$OUT/engine.jsonl" "${ARGS[@]}"
# This machine's speed drifts by 10-20% over minutes: more rounds of the two int8 engines,
# alternating, so that neither is favoured by the moment it ran.
for round in $(seq 2 "${ROUNDS:-1}"); do
  echo "== round $round: ONNX Runtime int8, then ours"
  (cd "$WORK" && node peers.js --json "$OUT/ort.jsonl" --precisions int8_u8s8 "${ARGS[@]}" --max-bg "$MAX_BG" 2>&1 | tail -n 1) || true
  "$BUILD/bench/bench_engines" --models-dir "$WORK/models" --json "$OUT/engine.jsonl" --precisions int8 "${ARGS[@]}" | tail -n 1
done
echo "# loadavg at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/env.txt"
"$PY" bench/compare_engines.py "$OUT" | tee "$OUT/table.md"
echo "table: $OUT/table.md"
