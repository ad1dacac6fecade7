#!/usr/bin/env bash
# Full SimCLR training step of seaclr-s on the CPU (two views, forward,
# NT-Xent, backward, Adam; synthetic 64 x 64 images): `seaclr bench train`
# with the fused CPU blocks and with burn's generic operations, against the
# PyTorch peer on the same network, batch and threads, in paired rounds
# (peer, fused, generic, peer, ...), so all of them see the same machine
# state. On a shared VM whose speed drifts by 10-20 % from minute to minute
# only runs next to each other compare; the summary gives each one's median
# over rounds and the median of the per-round ratios fused / PyTorch (the
# mean of the two peer runs around it).
#
#   bench/peers/train_step.sh [ROUNDS] [BATCH] [STEPS]
#
# Then, when ../shared/data/planktonset is there, the real training loop
# (`seaclr train`: decoding, augmentation on worker threads, the step,
# validation) for 40 steps of batch 256 with the default recipe, against
# `bench train --batch 256` run just before and just after it: the median
# of the loop's per-step views/s (steps.csv, first 5 steps left out) over
# the mean of the two bench runs.
#
# Needs: pip install torch (PyPI wheel), python3; builds `seaclr` in release.
set -euo pipefail
cd "$(dirname "$0")/../.."
ROUNDS="${1:-3}"
BATCH="${2:-128}"
STEPS="${3:-6}"
THREADS=2
echo "cpu: $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1), $(nproc) cores; flags: $(grep -m1 -o -w -E 'avx2|fma|avx512f|avx512_vnni' /proc/cpuinfo | sort -u | tr '\n' ' ')"
T="${CARGO_TARGET_DIR:-$HOME/.cache/seaclr-target}"
cargo build --release -q -p seaclr-trainer --bin seaclr --target-dir "$T"
SEACLR="$T/release/seaclr"
OUT="$(mktemp -d)"
trap 'rm -rf "$OUT"' EXIT
torch_run() {
    python3 bench/peers/simclr_torch.py --threads "$THREADS" --batch "$BATCH" --steps "$STEPS" --json
}
ours_run() {
    RAYON_NUM_THREADS="$THREADS" "$SEACLR" -q bench train --batch "$BATCH" --steps "$STEPS" --block "$1" --json
}
torch_run > "$OUT/torch-0.json"
for r in $(seq 1 "$ROUNDS"); do
    ours_run fused > "$OUT/fused-$r.json"
    ours_run generic > "$OUT/generic-$r.json"
    torch_run > "$OUT/torch-$r.json"
done
python3 - "$OUT" "$ROUNDS" "$BATCH" <<'EOF'
import json, statistics, sys
out, rounds, batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rate = lambda name: json.load(open(f"{out}/{name}.json"))["views_per_s"]
torch = [rate(f"torch-{r}") for r in range(rounds + 1)]
fused = [rate(f"fused-{r}") for r in range(1, rounds + 1)]
generic = [rate(f"generic-{r}") for r in range(1, rounds + 1)]
first = json.load(open(f"{out}/fused-1.json"))
print(f"batch {batch} ({2 * batch} views), {first['threads']} threads, features {' '.join(first['cpu_features'])}")
print(f"pytorch runs (views/s): {', '.join(f'{v:.0f}' for v in torch)}")
print(f"fused runs:             {', '.join(f'{v:.0f}' for v in fused)}")
print(f"generic runs:           {', '.join(f'{v:.0f}' for v in generic)}")
ratios = [f / ((torch[i] + torch[i + 1]) / 2) for i, f in enumerate(fused)]
generic_ratios = [g / ((torch[i] + torch[i + 1]) / 2) for i, g in enumerate(generic)]
print(f"median views/s: pytorch {statistics.median(torch):.0f}, fused {statistics.median(fused):.0f}, generic {statistics.median(generic):.0f}")
print(f"paired ratio to pytorch, median over rounds: fused {statistics.median(ratios):.2f}x, generic {statistics.median(generic_ratios):.2f}x")
EOF

DATA=../shared/data/planktonset/train
if [ -d "$DATA" ]; then
    sed -e 's/^max_steps = .*/max_steps = 40/' -e 's/^checkpoint_every = .*/checkpoint_every = 1000/' \
        configs/seaclr-s.toml > "$OUT/loop.toml"
    bench256() {
        RAYON_NUM_THREADS="$THREADS" "$SEACLR" -q bench train --batch 256 --steps 4 --json |
            python3 -c 'import json,sys; print(json.load(sys.stdin)["views_per_s"])'
    }
    before=$(bench256)
    RAYON_NUM_THREADS="$THREADS" "$SEACLR" -q train --data "$DATA" --split splits/planktonset.csv \
        --config "$OUT/loop.toml" --out "$OUT/loop" --no-progress > /dev/null
    after=$(bench256)
    python3 - "$OUT/loop/steps.csv" "$before" "$after" <<'PY'
import csv, statistics, sys
rates = [float(r["views_per_s"]) for r in csv.DictReader(open(sys.argv[1]))][5:]
before, after = float(sys.argv[2]), float(sys.argv[3])
loop = statistics.median(rates)
print(f"batch 256: bench train {before:.0f} before / {after:.0f} after, real loop (seaclr train) "
      f"{loop:.0f} views/s median: {loop / ((before + after) / 2):.2f}x")
PY
fi
