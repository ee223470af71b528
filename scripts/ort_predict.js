// Runs an ONNX model in ONNX Runtime (npm's onnxruntime-node) on raw float32 inputs and prints
// each image's top-1 class as JSON: {"predictions": [...]}. Used by the export tests to check
// that exported QDQ models run elsewhere with the accuracy the explorer showed.
//
//   node scripts/ort_predict.js MODEL.onnx INPUT.bin N C H W [BATCH]
// onnxruntime-node is looked up in $ORTPEER_DIR/node_modules (npm --prefix $ORTPEER_DIR install
// onnxruntime-node@1.30.0, with ONNXRUNTIME_NODE_INSTALL=skip when offline).
'use strict';
const fs = require('fs');
const path = require('path');

async function main() {
  const [model, input, n, c, h, w, batchArg] = process.argv.slice(2);
  if (!w) {
    console.error('usage: node ort_predict.js MODEL.onnx INPUT.bin N C H W [BATCH]');
    process.exit(2);
  }
  const dir = process.env.ORTPEER_DIR || '';
  const ort = require(dir ? path.join(dir, 'node_modules', 'onnxruntime-node') : 'onnxruntime-node');
  const [N, C, H, W] = [n, c, h, w].map(Number);
  const batch = Number(batchArg || 100);
  const bytes = fs.readFileSync(input);
  const data = new Float32Array(bytes.buffer, bytes.byteOffset, bytes.length / 4);
  if (data.length !== N * C * H * W) {
    console.error(`${input}: ${data.length} floats, expected ${N}x${C}x${H}x${W}`);
    process.exit(2);
  }
  const session = await ort.InferenceSession.create(model, { intraOpNumThreads: 2, graphOptimizationLevel: 'all' });
  const inputName = session.inputNames[0];
  const predictions = [];
  for (let first = 0; first < N; first += batch) {
    const count = Math.min(batch, N - first);
    const slice = data.subarray(first * C * H * W, (first + count) * C * H * W);
    const out = await session.run({ [inputName]: new ort.Tensor('float32', Float32Array.from(slice), [count, C, H, W]) });
    const scores = out[session.outputNames[0]].data;
    const classes = scores.length / count;
    for (let i = 0; i < count; ++i) {
      let best = 0;
      for (let k = 1; k < classes; ++k) if (scores[i * classes + k] > scores[i * classes + best]) best = k;
      predictions.push(best);
    }
  }
  process.stdout.write(JSON.stringify({ predictions }) + '\n');
}

main().catch((e) => {
  console.error(String(e && e.message ? e.message : e));
  process.exit(1);
});
