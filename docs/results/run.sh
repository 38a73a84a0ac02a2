#!/usr/bin/env bash
# Reproduces docs/results: the paper's Table 1 on the real RAVDESS, with sertune's own commands.
# Usage: docs/results/run.sh [RAVDESS_DIR] [WORK_DIR]   (about 1 hour on 2 CPU cores)
set -euo pipefail
DATA=${1:-../shared/data/ravdess-speech-16k}
WORK=${2:-sertune-repro}
EXP=$WORK/experiment
mkdir -p "$WORK"
{
  echo "host: $(uname -n), $(nproc) CPUs, $(python -c 'import torch;print("torch", torch.__version__, "cuda" if torch.cuda.is_available() else "cpu")')"
  echo "start: $(date -u +%FT%TZ)"
} > "$WORK/times.txt"
t() { local s=$(date +%s); "$@"; echo "$1 $2: $(( $(date +%s) - s )) s" >> "$WORK/times.txt"; }
t sertune prepare --data "$DATA" --store "$WORK/store"
t sertune tune --store "$WORK/store" --experiment-dir "$EXP" --num-samples 30 --epochs 60 \
  --grace-period 10 --reduction-factor 3 --search-seed 0
t sertune sweep --store "$WORK/store" --experiment-dir "$EXP" --seeds 10 --n-att 1,2,4,8,16,32,64
t sertune report --experiment-dir "$EXP" --out "$WORK/report"
echo "end: $(date -u +%FT%TZ)" >> "$WORK/times.txt"

# Random-split protocol (speakers shared between train/val/test), at the same tuned configuration.
EXP_R=$WORK/experiment-random
t sertune sweep --store "$WORK/store" --experiment-dir "$EXP_R" --config "$EXP/tune/best_config.json" \
  --split random --seeds 10 --n-att 1,2,4,8,16,32,64
t sertune report --experiment-dir "$EXP_R" --out "$WORK/report-random"
echo "end (random split): $(date -u +%FT%TZ)" >> "$WORK/times.txt"
