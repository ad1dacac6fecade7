#!/usr/bin/env bash
# Batch-1, single-thread encode latency: SeaCLR edge engine vs onnxruntime
# (QDQ int8 export of the same blob), interleaved in one run so both see the
# same machine load. Also the instruction count per inference (callgrind).
#
#   bench/peers/edge_vs_onnxruntime.sh [MODEL.seaclr] [ROUNDS]
#
# Without MODEL the bench's synthetic seaclr-s blob is used (written to
# target dir). Needs: pip install onnxruntime onnx numpy; valgrind.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${2:-3}"
T_PORT="${CARGO_TARGET_DIR:-$HOME/.cache/seaclr-target-edge}"
T_NATIVE="${T_PORT}-native"
cargo build --release -q -p seaclr-edge --example encode_bench --target-dir "$T_PORT"
RUSTFLAGS="-C target-cpu=native" cargo build --release -q -p seaclr-edge --example encode_bench --target-dir "$T_NATIVE"
PORT="$T_PORT/release/examples/encode_bench"
NATIVE="$T_NATIVE/release/examples/encode_bench"
MODEL="${1:-$T_PORT/synthetic-seaclr-s.seaclr}"
if [ -z "${1:-}" ]; then "$PORT" --iters 1 --warmup 0 --write-blob "$MODEL" >/dev/null; fi
for r in $(seq "$ROUNDS"); do
  echo "round $r"
  echo "  edge (x86-64 baseline): $("$PORT" "$MODEL" --iters 300)"
  echo "  edge (target-cpu=native): $("$NATIVE" "$MODEL" --iters 300)"
  echo "  onnxruntime: $(python3 bench/peers/onnxruntime_int8.py "$MODEL" --iters 300)"
done
for bin in "$PORT" "$NATIVE"; do
  base=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$MODEL" --iters 0 2>&1 | sed -n 's/.*Collected : //p')
  ten=$(valgrind --tool=callgrind --callgrind-out-file=/dev/null "$bin" "$MODEL" --iters 10 --warmup 0 2>&1 | sed -n 's/.*Collected : //p')
  echo "callgrind $bin: $(( (ten - base) / 10 )) instructions per encode"
done
