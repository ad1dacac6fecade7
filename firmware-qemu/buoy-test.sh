#!/usr/bin/env bash
# The buoy program (seaclr-device on the Cortex-M7 under QEMU) against
# faults, as CI runs it: buoy-test.sh ELF
#   1. 12 FlowCam frames, the operator labels one per class: 6 labels acked;
#   2. reboot: the 6 labels are back;
#   3. console garbage on the UART (a 100 kB line, non-UTF-8): error lines,
#      nothing executed, nothing lost;
#   4. one damaged partition-table copy: repaired from the other, labels kept;
#   5. a torn record after the last label: ignored with a message, labels kept;
#   6. a corrupt model slot: refused by name, exit 1, label store untouched;
#   7. a corrupt frame stream: the bad record named, exit 1, labels kept;
#   8. QEMU killed during label writes: every acknowledged label survives.
# Host tools: seaclr-buoy from the workspace (debug build).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/.."
elf="$(realpath "${1:?usage: buoy-test.sh ELF}")"
work="$(mktemp -d)"
trap '[ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

# The host tools build in the workspace's target folder, not the firmware's.
host_target="${HOST_TARGET_DIR:-$HOME/.cache/seaclr-target}"
host() { (cd "$root" && CARGO_TARGET_DIR="$host_target" cargo run -q -p seaclr-firmware-sim --bin seaclr-buoy -- "$@"); }
fw() { QEMU_TIMEOUT=300 "$here/qemu-run.sh" "$elf" buoy "$@"; }
fail() { echo "FAIL: $*" >&2; exit 1; }
expect() { grep -qF -- "$2" "$1" || fail "$1 lacks '$2'"; }
# Offsets of the default layout (seaclr_shared::partition).
model_at=8192
store_at=$((8192 + 636 * 1024))
flash="$work/flash.img"

host frames --data "$root/../shared/data/flowcam-demo" --limit 12 --auto-label 1 \
    --out "$work/frames.bin" --script "$work/operator.txt" --truth "$work/truth.csv"
host flash --out "$flash"

echo "1. a labelling run"
fw "$flash" "$work/frames.bin" "$work/operator.txt" >"$work/1.log" </dev/null || fail "run 1 failed"
expect "$work/1.log" "labelled examples in the flash store: 6"

echo "2. reboot"
fw "$flash" "$work/frames.bin" >"$work/2.log" </dev/null || fail "run 2 failed"
expect "$work/2.log" "6 classes, 6 labelled examples in the store"

echo "3. console garbage"
python3 -c 'import sys; sys.stdout.buffer.write(b"x" * 100000 + b"\n\xff\xfe label 1 x\nstatus\n")' >"$work/garbage.txt"
fw "$flash" "$work/frames.bin" >"$work/3.log" <"$work/garbage.txt" || fail "run 3 failed"
expect "$work/3.log" "error: line longer than 160 bytes ignored"
expect "$work/3.log" "error: line ignored: not UTF-8 text"
expect "$work/3.log" "ok model"
expect "$work/3.log" "labelled examples in the flash store: 6"
[ "$(wc -c <"$work/3.log")" -lt 60000 ] || fail "the garbage was echoed"

echo "4. a damaged partition-table copy"
python3 - "$flash" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(4096 + 20)            # copy B, inside its checksummed bytes
    b = f.read(1); f.seek(4096 + 20); f.write(bytes([b[0] ^ 0x04]))
EOF
fw "$flash" "$work/frames.bin" >"$work/4.log" </dev/null || fail "run 4 failed"
expect "$work/4.log" "partition table copy was damaged (CRC mismatch"
expect "$work/4.log" "6 classes, 6 labelled examples in the store"

echo "5. a torn record after the last label"
python3 - "$flash" "$store_at" <<'EOF'
import sys
path, start = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
half = 192 * 1024
# The live half is the one with the most programmed bytes; tear after its end.
ends = [max((i for i in range(start + h * half, start + (h + 1) * half) if data[i] != 0xFF), default=0) for h in (0, 1)]
end = max(ends)
at = (end + 4) // 4 * 4
data[at:at + 6] = b"\x11\x00\x22\x00\x33\x00"
open(path, "wb").write(data)
EOF
fw "$flash" "$work/frames.bin" >"$work/5.log" </dev/null || fail "run 5 failed"
expect "$work/5.log" "a torn or damaged record after the last good one was ignored"
expect "$work/5.log" "6 classes, 6 labelled examples in the store"

echo "6. a corrupt model slot"
cp "$flash" "$work/bad-model.img"
python3 - "$work/bad-model.img" "$model_at" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    at = int(sys.argv[2]) + 1000
    f.seek(at); b = f.read(1); f.seek(at); f.write(bytes([b[0] ^ 0x10]))
EOF
if fw "$work/bad-model.img" "$work/frames.bin" >"$work/6.log" </dev/null; then
    fail "a corrupt model slot exited 0"
fi
expect "$work/6.log" "refusing to classify: model region corrupt"
cmp <(tail -c +$((store_at + 1)) "$flash") <(tail -c +$((store_at + 1)) "$work/bad-model.img") \
    || fail "the label store changed under a corrupt model"

echo "7. a corrupt frame stream"
cp "$work/frames.bin" "$work/bad-frames.bin"
python3 - "$work/bad-frames.bin" <<'EOF'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(40000); b = f.read(1); f.seek(40000); f.write(bytes([b[0] ^ 1]))
EOF
if fw "$flash" "$work/bad-frames.bin" >"$work/7.log" </dev/null; then
    fail "a corrupt frame stream exited 0"
fi
expect "$work/7.log" "CRC"
expect "$work/7.log" "labelled examples in the flash store: 6"

echo "8. QEMU killed during label writes"
host frames --data "$root/../shared/data/flowcam-demo" --limit 60 --auto-label 10 \
    --out "$work/many.bin" --script "$work/many.txt" >/dev/null
for delay in 0.3 0.6 0.9; do
    before=$(fw "$flash" "$work/frames.bin" </dev/null | sed -n 's/^labelled examples in the flash store: //p')
    set +e
    fw "$flash" "$work/many.bin" "$work/many.txt" >"$work/8.log" </dev/null &
    pid=$!
    sleep "$delay"
    pkill -KILL -f "qemu-system-arm.*$work/many.bin" || true
    wait "$pid" 2>/dev/null
    set -e
    acked=$(grep -c "^ok frame .* labelled " "$work/8.log" || true)
    after=$(fw "$flash" "$work/frames.bin" </dev/null | sed -n 's/^labelled examples in the flash store: //p')
    echo "   killed after ${delay} s: ${before} before, ${acked} acknowledged, ${after} after reboot"
    [ "$after" -ge $((before + acked)) ] || fail "acknowledged labels lost"
    [ "$after" -le $((before + acked + 1)) ] || fail "more labels than written"
done
echo "PASS"
