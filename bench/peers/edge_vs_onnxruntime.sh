#!/usr/bin/env bash
# Batch-1, single-thread encode latency: SeaCLR edge engine vs onnxruntime
# (QDQ int8 export of the same blob), interleaved round by round so both see
# the same machine state. Also the instruction count per inference
# (callgrind), which a noisy machine does not change.
#
#   bench/peers/edge_vs_onnxruntime.sh [MODEL.seaclr] [ROUNDS]
#
# Without MODEL the bench's synthetic seaclr-s blob is used (written to the
# target dir). Each round runs 200 encodes of each runtime back to back and
# takes their medians; the summary gives, per runtime, the median of round
# medians and the fastest round's median, and the median over rounds of
# onnxruntime's median / ours (the paired ratio: on a VM whose speed
# changes from second to second, only runs next to each other compare).
# Needs: pip install onnxruntime onnx numpy; valgrind.
#
# It prints the CPU and the flags that pick the engine's x86-64 kernels at
# run time (avx2: GEMM and Winograd; avx512_vnni with avx512bw/vl: the VNNI
# kernel). Valgrind hides AVX-512 from the program (its cpuid) and cannot
# decode AVX-512 instructions, so on an AVX-512 host the default build's
# count is of its AVX2 kernels and the native build is not counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores; flags: $(grep -m1 -o -w -E 'avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx_vnni|amx_int8' /proc/cpuinfo | tr '\n' ' ')"
ROUNDS="${2:-20}"
T_PORT="${CARGO_TARGET_DIR:-$HOME/.cache/seaclr-target-edge}"
T_NATIVE="${T_PORT}-native"
cargo build --release -q -p seaclr-edge --example encode_bench --target-dir "$T_PORT"
RUSTFLAGS="-C target-cpu=native" cargo build --release -q -p seaclr-edge --example encode_bench --target-dir "$T_NATIVE"
PORT="$T_PORT/release/examples/encode_bench"
NATIVE="$T_NATIVE/release/examples/encode_bench"
MODEL="${1:-$T_PORT/synthetic-seaclr-s.seaclr}"
if [ -z "${1:-}" ]; then "$PORT" --iters 1 --warmup 0 --write-blob "$MODEL" >/dev/null; fi
OUT="$(mktemp)"
trap 'rm -f "$OUT"' EXIT
for r in $(seq "$ROUNDS"); do
  echo "edge-x86-64 $("$PORT" "$MODEL" --iters 200)" >>"$OUT"
  echo "edge-native $("$NATIVE" "$MODEL" --iters 200)" >>"$OUT"
  echo "onnxruntime $(python3 bench/peers/onnxruntime_int8.py "$MODEL" --iters 200)" >>"$OUT"
done
python3 - "$OUT" <<'PY'
import json, statistics, sys
rounds, peer = {}, None
for line in open(sys.argv[1]):
    name, js = line.split(" ", 1)
    row = json.loads(js)
    rounds.setdefault(name, []).append(row["median_ns"] / 1e3)
    peer = row.get("peer", peer)
print(f"peer: {peer}")
ort = rounds["onnxruntime"]
for name, meds in rounds.items():
    line = f"{name:12s} median of {len(meds)} round medians {statistics.median(meds):6.1f} us, fastest round {min(meds):6.1f} us"
    if name != "onnxruntime":
        ratios = [o / m for o, m in zip(ort, meds)]
        line += f", onnxruntime / this per round: median {statistics.median(ratios):.2f}x (range {min(ratios):.2f} - {max(ratios):.2f})"
    print(line)
PY
collected() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null "$@" 2>&1 | sed -n 's/.*Collected : //p'
}
for bin in "$PORT" "$NATIVE"; do
  if base=$(collected "$bin" "$MODEL" --iters 0) && ten=$(collected "$bin" "$MODEL" --iters 10 --warmup 0) &&
    [ -n "$base" ] && [ -n "$ten" ]; then
    echo "callgrind $bin: $(( (ten - base) / 10 )) instructions per encode (the kernels valgrind's cpuid selects)"
  else
    echo "callgrind $bin: not counted (valgrind cannot run this build's instructions)"
  fi
done
