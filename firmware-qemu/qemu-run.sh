#!/usr/bin/env bash
# Boots a firmware ELF on QEMU's Cortex-M7 board (cargo's runner, see
# .cargo/config.toml): qemu-run.sh ELF [ARGS...]
#
# -icount shift=0: every guest instruction takes exactly 1 ns of virtual
#   time, so TIMER0 (25 MHz) advances one tick per 40 instructions whatever
#   the host does; counts are deterministic.
# Semihosting: exit code, files (frame stream, flash image) and the
#   command line (ARGS) come from the host.
# UART0 is stdout/stdin: `-serial stdio` without the monitor (what
#   -nographic does, minus the monitor multiplexer, which drops console
#   input piped in before the guest is up). Ctrl-C ends QEMU.
# The outer timeout (QEMU_TIMEOUT seconds, default 120) means a wedged guest
# can never hang a run; it exits 124.
set -euo pipefail
elf="$1"
shift
semi="enable=on,target=native,arg=seaclr-firmware"
for a in "$@"; do
    semi+=",arg=${a//,/,,}"
done
exec timeout "${QEMU_TIMEOUT:-120}" qemu-system-arm -M mps2-an500 \
    -display none -serial stdio -monitor none \
    -icount shift=0 -semihosting-config "$semi" -kernel "$elf"
