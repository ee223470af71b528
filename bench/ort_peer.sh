# Sourced by bench/run_peers.sh and bench/vit_peers.sh: ONNX Runtime for node in $ORTPEER_DIR
# (default: the build folder's peer-bench/ortpeer), installed once, the one pinned version.
export ORTPEER_DIR=${ORTPEER_DIR:-$PWD/$BUILD/peer-bench/ortpeer}
if [ ! -d "$ORTPEER_DIR/node_modules/onnxruntime-node" ]; then
  # The tarball carries the CPU binaries; its install script only fetches CUDA ones (offline: skip).
  mkdir -p "$ORTPEER_DIR"
  ONNXRUNTIME_NODE_INSTALL=skip npm --prefix "$ORTPEER_DIR" install onnxruntime-node@1.30.0 >/dev/null
fi
