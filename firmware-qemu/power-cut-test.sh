#!/usr/bin/env bash
# Power-cut check of the label store on the semihosting NOR flash: QEMU is
# killed (SIGKILL, no warning) while the firmware writes label records,
# then a fresh boot mounts the store and must hold every acknowledged one.
# Four cuts in a row on the same flash file, each at a random moment.
#
#   ./power-cut-test.sh            (builds the release ELF first)
set -euo pipefail
cd "$(dirname "$0")"
cargo build --release --quiet
elf="${CARGO_TARGET_DIR:-target}/thumbv7em-none-eabihf/release/seaclr-firmware-qemu"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
flash="$work/flash.img"
acked=0 # examples 0..acked-1 were acknowledged

for round in 1 2 3 4; do
    log="$work/write-$round.log"
    # The writer adds up to 400 examples (about 1.8 s); kill it 0..899 ms
    # after its first acknowledgement. It spends most of its time inside
    # flash writes (programmed word by word), so the cut usually tears one.
    setsid ./qemu-run.sh "$elf" labels-write "$flash" $((acked + 400)) >"$log" 2>&1 </dev/null &
    pid=$!
    for _ in $(seq 1 1000); do
        if grep -q '^ack \|^done\|^FAIL' "$log" || ! kill -0 "$pid" 2>/dev/null; then break; fi
        sleep 0.01
    done
    sleep "$(printf '0.%03d' $((RANDOM % 900)))"
    kill -KILL -- "-$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
    if grep -q '^FAIL' "$log"; then
        echo "round $round: the writer failed:"; cat "$log"; exit 1
    fi
    last=$( (grep '^ack ' "$log" || true) | tail -n 1 | cut -d' ' -f2)
    if [ -n "$last" ]; then acked=$((last + 1)); fi
    cut="killed after $acked acknowledged"
    if grep -q '^done:' "$log"; then cut="writer finished before the kill ($acked)"; fi

    check="$work/check-$round.log"
    if ! ./qemu-run.sh "$elf" labels-check "$flash" >"$check" 2>&1 </dev/null; then
        echo "round $round: the check failed:"; cat "$check"; exit 1
    fi
    have=$(sed -n 's/^store ok: \([0-9]*\) examples.*/\1/p' "$check")
    mounted=$(grep '^mounted' "$check")
    echo "round $round: $cut; reboot finds $have ($mounted)"
    # Every acknowledged example is there; at most the one in flight more.
    if [ "$have" -lt "$acked" ] || [ "$have" -gt $((acked + 1)) ]; then
        echo "FAIL: $acked acknowledged, $have on flash"; exit 1
    fi
    acked=$have
done
echo "PASS: every acknowledged label survived 4 power cuts"
