#!/usr/bin/env bash
# CMSIS-NN as the peer of SeaCLR's int8 encoder on an emulated Cortex-M7.
#
#   bench/peers/cmsis_nn/run.sh [--peer-only] [MODEL.seaclr] [IMAGE_OR_CLASS_DIR]
#   bench/peers/cmsis_nn/run.sh --synthetic [IMAGE_OR_CLASS_DIR]
#
# --synthetic runs a small seeded random blob instead (written by the
# exporter into the build folder) with what the committed model lacks:
# linear layers (arm_fully_connected_wrapper_s8), odd channel counts, zero
# points other than -128, ReLU clamps and a left shift.
#
# Defaults: models/seaclr-s.seaclr and the first image of the first class of
# ../shared/data/planktonset/train. Steps:
#   1. export/ (a standalone Rust program on seaclr-shared and seaclr-edge)
#      writes the blob's layers, the preprocessed image and every layer's
#      expected int8 output (host engine = i32 reference) as a C header;
#   2. harness/Makefile builds CMSIS-NN (../shared/peers/cmsis-nn, never
#      copied here) and the harness with arm-none-eabi-gcc for Cortex-M7;
#   3. QEMU mps2-an500 with -icount shift=0 runs it (outer timeout
#      QEMU_TIMEOUT seconds, default 120): per layer the CMSIS-NN call, its
#      instruction count from TIMER0 and a byte-for-byte comparison;
#   4. unless --peer-only, or the model is not the one the firmware embeds
#      (payload CRCs differ): builds and runs the project's own firmware
#      self-check (firmware-qemu, `cargo run --release`: same board, same
#      counting) for seaclr-edge's per-layer counts on the same layers;
#   5. prints the table. Exit status 0 only if every layer matched.
#
# Needs: cargo, arm-none-eabi-gcc (Debian gcc-arm-none-eabi, with
# libnewlib-arm-none-eabi), qemu-system-arm (Debian qemu-system-arm).
# CMSIS_OPT (default -O2) sets the C optimisation flags of CMSIS-NN and the
# harness. Everything built goes to bench/peers/cmsis_nn/build (git-ignored) and the
# exporter's cargo target folder ($CARGO_TARGET_DIR, default
# ~/.cache/seaclr-bench-target).
set -euo pipefail

peer_only=0
synthetic=0
while [ $# -gt 0 ]; do
    case "$1" in
        --peer-only) peer_only=1; shift ;;
        --synthetic) synthetic=1; peer_only=1; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d'; exit 0 ;;
        *) break ;;
    esac
done
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
abs() { case "$1" in /*) printf '%s\n' "$1" ;; *) printf '%s\n' "$PWD/$1" ;; esac; }
if [ "$synthetic" -eq 1 ]; then
    model="$here/build/synthetic.seaclr"
    image="$(abs "${1:-$root/../shared/data/planktonset/train}")"
else
    model="$(abs "${1:-$root/models/seaclr-s.seaclr}")"
    image="$(abs "${2:-$root/../shared/data/planktonset/train}")"
fi
# Paths below the project root's parent are shown relative to the root.
cd "$root"
model="${model#"$root"/}"
image="${image#"$root"/}"
cmsis_nn="${CMSIS_NN:-$root/../shared/peers/cmsis-nn}"
build="$here/build"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/seaclr-bench-target}"

for tool in cargo arm-none-eabi-gcc qemu-system-arm make timeout; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool not found" >&2; exit 2; }
done
[ -f "$cmsis_nn/Include/arm_nnfunctions.h" ] || {
    echo "run.sh: CMSIS-NN sources not found at $cmsis_nn (set CMSIS_NN)" >&2
    exit 2
}
mkdir -p "$build"

if [ "$synthetic" -eq 1 ]; then
    echo "== synthetic blob: $model" >&2
    cargo run --quiet --release --locked \
        --manifest-path "$here/export/Cargo.toml" -- --synthetic-blob "$model"
fi
echo "== export: $model" >&2
cargo run --quiet --release --locked \
    --manifest-path "$here/export/Cargo.toml" -- \
    --model "$model" --image "$image" --out "$build/model_data.h"

echo "== build: CMSIS-NN and the harness (arm-none-eabi-gcc, Cortex-M7)" >&2
opt="${CMSIS_OPT:--O2}"
if [ "$(cat "$build/opt" 2>/dev/null)" != "$opt" ]; then
    # Other flags than the last build: rebuild everything.
    rm -rf "$build/cmsis-nn" "$build/libcmsis-nn.a" "$build"/*.o
    printf '%s\n' "$opt" >"$build/opt"
fi
make -s -C "$here/harness" -j"${JOBS:-2}" BUILD="$build" CMSIS_NN="$cmsis_nn" OPT="$opt" >&2

echo "== run: qemu-system-arm -M mps2-an500 -icount shift=0" >&2
set +e
timeout "${QEMU_TIMEOUT:-120}" qemu-system-arm -M mps2-an500 -nographic \
    -icount shift=0 -semihosting-config enable=on,target=native \
    -kernel "$build/harness.elf" >"$build/qemu.log" 2>&1
rc=$?
set -e
if [ "$rc" -eq 124 ]; then
    echo "run.sh: QEMU did not finish within ${QEMU_TIMEOUT:-120} s" >&2
fi

# seaclr-edge on the same board: the firmware's self-check prints per-layer
# counts ("  layer  N:  FIRST  MEAN") for the blob it embeds.
: >"$build/ours.log"
if [ "$peer_only" -eq 0 ]; then
    echo "== ours: firmware-qemu self-check (cargo run --release)" >&2
    if (cd "$root/firmware-qemu" && cargo run --quiet --release) >"$build/ours.log" 2>&1 \
        && grep -q '^PASS' "$build/ours.log"; then
        peer_crc="$(sed -n 's/^#define SEACLR_PAYLOAD_CRC32 0x\([0-9a-f]*\)u$/\1/p' "$build/model_data.h")"
        if ! grep -q "payload crc $peer_crc\b" "$build/ours.log"; then
            echo "run.sh: the firmware embeds another model; no seaclr-edge column" >&2
            : >"$build/ours.log"
        fi
    else
        echo "run.sh: the firmware self-check failed (log: $build/ours.log); no seaclr-edge column" >&2
        : >"$build/ours.log"
    fi
fi

gcc_version="$(arm-none-eabi-gcc --version | head -1)"
qemu_version="$(qemu-system-arm --version | head -1)"
cmsis_commit="$(grep -o 'commit [0-9a-f]\{40\}[^`.]*' "$cmsis_nn/PROVENANCE.md" | head -1 || true)"
tree="$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [ -n "$(git -C "$root" status --porcelain -- shared edge firmware-qemu 2>/dev/null)" ]; then
    tree="$tree + uncommitted changes in shared/, edge/ or firmware-qemu/"
fi

awk -v opt="$opt" -v tree="$tree" -v gcc="$gcc_version" -v qemu="$qemu_version" -v nn="$cmsis_commit" '
function sep() { print "|---|---|---|---:|---:|---:|---:|---:|---|" }
BEGIN { n = 0 }
FILENAME == ours_log {
    if ($1 == "layer" && $2 ~ /^[0-9]+:$/) { ours[$2 + 0] = $3; have_ours = 1 }
    next
}
/^model / { model = $2 }
/^image instructions/ { image_instr = $3; layers_sum = $7; match_all = $9; next }
/^image / { image = $2 }
/^cmsis-nn path:/ { path = substr($0, 16) }
/^calibration/ { calib = $NF }
/^  first mismatch/ { detail[n - 1] = $0 }
/^layer [0-9]+ / {
    kind[n] = $3; in_s[n] = $4; out_s[n] = $5; stride[n] = $7; macs[n] = $9
    instr[n] = $13; mism[n] = $15; maxd[n] = $17; n++
}
END {
    if (n == 0) { print "run.sh: no layer results (see build/qemu.log)"; exit 1 }
    print "model: " model "   image: " image
    print "CMSIS-NN " nn ", " path
    print gcc ", -mcpu=cortex-m7 -mthumb -mfloat-abi=hard -mfpu=fpv5-d16 " opt
    print qemu ", -M mps2-an500 -icount shift=0 (TIMER0: 40 instructions a tick; calibration loop of 2000000: " calib ")"
    print ""
    print "| layer | kind (CMSIS-NN function) | shape (in -> out, stride) | MACs | CMSIS-NN instructions | instructions / MAC | seaclr-edge instructions | seaclr-edge / CMSIS-NN | match |"
    sep()
    total_macs = 0; total_ours = 0
    for (i = 0; i < n; i++) {
        per = macs[i] > 0 ? sprintf("%.2f", instr[i] / macs[i]) : "-"
        ok = mism[i] == 0 ? "yes" : sprintf("no (%d bytes, max diff %d)", mism[i], maxd[i])
        fn = kind[i] == "conv3x3" ? "arm_convolve_wrapper_s8" : (kind[i] == "linear" ? "arm_fully_connected_wrapper_s8" : "sum + arm_nn_requantize")
        o = (i in ours) ? ours[i] : "-"
        r = (i in ours) ? sprintf("%.2f", ours[i] / instr[i]) : "-"
        if (i in ours) total_ours += ours[i]
        printf "| %d | %s (%s) | %s -> %s, s%s | %d | %d | %s | %s | %s | %s |\n", i, kind[i], fn, in_s[i], out_s[i], stride[i], macs[i], instr[i], per, o, r, ok
        total_macs += macs[i]
    }
    o = have_ours ? total_ours : "-"
    r = have_ours ? sprintf("%.2f", total_ours / image_instr) : "-"
    printf "| total | per image (CMSIS-NN: one timed span; seaclr-edge: sum of layers) | | %d | %d | %.2f | %s | %s | %s |\n", total_macs, image_instr, image_instr / total_macs, o, r, match_all
    print ""
    printf "CMSIS-NN, sum of the per-layer spans: %d instructions\n", layers_sum
    if (have_ours) {
        print "seaclr-edge (tree " tree "): firmware-qemu self-check, first fixture frame, per layer from Engine::encode_observed"
        print "(layer 0 includes the input encoding, every layer decoding its record from the blob)."
    } else {
        print "seaclr-edge column empty: --peer-only, another model, or the firmware self-check failed."
    }
    for (i = 0; i < n; i++) if (i in detail) print "layer " i ":" detail[i]
    if (match_all != "yes") exit 1
}' ours_log="$build/ours.log" "$build/ours.log" "$build/qemu.log" || { echo "run.sh: outputs differ or the run failed; QEMU log: $build/qemu.log" >&2; exit 1; }

if [ "$rc" -ne 0 ]; then
    echo "run.sh: QEMU exited $rc; log: $build/qemu.log" >&2
    exit 1
fi
