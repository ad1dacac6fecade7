#!/usr/bin/env bash
# The buoy on the Cortex-M7 image under QEMU, as the host simulator runs it:
#   firmware-qemu/run-buoy.sh DATA OUT [FRAMES]
# DATA: an image folder (class subfolders) or an IFCB bin; OUT: a folder.
# 1. the host writes DATA as a frame stream, the simulated operator's
#    console script (3 labels per class) and the folder labels;
# 2. a flash image with the committed model (kept across runs, like the
#    simulator's: a second run starts with the first run's labels);
# 3. the firmware runs them under QEMU, its UART log in OUT/uart.log;
# 4. the host scores the log against the folder labels.
# Run from anywhere; needs qemu-system-arm and the thumbv7em target.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
data="$(realpath "${1:?usage: run-buoy.sh DATA OUT [FRAMES]}")"
out="$(mkdir -p "${2:?usage: run-buoy.sh DATA OUT [FRAMES]}" && realpath "$2")"
limit=()
[ -n "${3:-}" ] && limit=(--limit "$3")

# The host tools build in the workspace's target folder, not the firmware's.
host_target="${CARGO_TARGET_DIR:-$HOME/.cache/seaclr-target}"
host() {
    (cd "$root" && CARGO_TARGET_DIR="$host_target" \
        cargo run --release -q -p seaclr-firmware-sim --bin seaclr-buoy -- "$@")
}

host frames --data "$data" --out "$out/frames.bin" --script "$out/operator.txt" \
    --truth "$out/truth.csv" "${limit[@]}"
[ -f "$out/flash.img" ] || host flash --out "$out/flash.img"

export CARGO_TARGET_DIR="${SEACLR_FIRMWARE_TARGET:-$HOME/.cache/seaclr-firmware-target}"
(cd "$here" && cargo build --release -q)
elf="$CARGO_TARGET_DIR/thumbv7em-none-eabihf/release/seaclr-firmware-qemu"
status=0
QEMU_TIMEOUT="${QEMU_TIMEOUT:-1800}" "$here/qemu-run.sh" "$elf" buoy "$out/flash.img" \
    "$out/frames.bin" "$out/operator.txt" </dev/null | tee "$out/uart.log" || status=$?
echo
echo "== score (host, against the folder labels) =="
host score --log "$out/uart.log" --truth "$out/truth.csv"
exit "$status"
