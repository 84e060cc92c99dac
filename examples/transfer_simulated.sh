#!/usr/bin/env bash
# Transfer learning on simulated animals (Lurz et al. 2020, Fig. 5 in miniature):
# a core trained on animals 1-3 is frozen and reused for animal 4, against training directly on
# animal 4, over training-image counts. Expected: transfer beats direct training at small image
# counts (<= 500) and matches it with all images.
#
#   bash examples/transfer_simulated.sh [WORK_DIR]      (default /tmp/cortexfit-transfer-sim)
#
# Sizes are small enough for a 2-core laptop (roughly an hour); scale NEURONS/TRAIN/SEEDS up for
# smoother curves. Set CORTEXFIT to use another binary.
set -euo pipefail
W=${1:-/tmp/cortexfit-transfer-sim}
CF=${CORTEXFIT:-cortexfit}
NEURONS=${NEURONS:-150}
TRAIN=${TRAIN:-2000}
SEEDS=${SEEDS:-1,2,3}
IMAGES=${IMAGES:-100,250,500,1000,all}
THREADS=${THREADS:-2}
EPOCHS=${EPOCHS:-30}
# A small lurz2020-type model (the demo's quick settings).
MODEL=(--set model.core.hidden_channels=16 --set model.core.layers=3
       --set model.core.input_kern=9 --set model.core.hidden_kern=5
       --set trainer.lr=0.01 --set trainer.max_epochs=$EPOCHS --set trainer.lr_decay_steps=2
       --set trainer.patience=3)
mkdir -p "$W"
for a in 1 2 3 4; do
  [ -d "$W/animal$a" ] || "$CF" simulate --animal "$a" --seed "$a" --neurons "$NEURONS" \
      --train-images "$TRAIN" --out "$W/animal$a"
done
# 1. One core, one readout per animal (round-robin over the three datasets).
[ -f "$W/core123/summary.json" ] || "$CF" train --preset lurz2020 \
    --data "$W/animal1" --data "$W/animal2" --data "$W/animal3" \
    --out "$W/core123" --seed 1 --threads "$THREADS" --quiet "${MODEL[@]}"
# 2. Direct training on animal 4 vs the frozen core with new readouts, per image count and seed.
"$CF" experiment data-efficiency --config lurz2020 --data "$W/animal4" \
    --images "$IMAGES" --conditions direct,transfer --core "$W/core123" \
    --seeds "$SEEDS" --threads "$THREADS" --out "$W/data_efficiency" "${MODEL[@]}"
echo "figure: $W/data_efficiency/data_efficiency.png"
