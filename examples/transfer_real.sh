#!/usr/bin/env bash
# Transfer to new neurons of the same animal on the real Lurz 2020 scan (20457-5-9):
# the neurons are split in two halves A and B by a seeded permutation; a core trained on half A
# (all images) is frozen and reused for half B, against direct training on half B, over
# training-image counts. The scan has no repeated test images, so fits are scored by the mean
# single-trial correlation on the validation tier (results.csv says so in its `metric` column).
#
#   bash examples/transfer_real.sh [DATA] [WORK_DIR]
#
# A full-size lurz2020 epoch (all training images) takes ~40 s on 2 idle cores and ~75 s on one:
# the whole script is a job of a few hours (use MINUTES / fewer image counts / one seed for a
# first look).
set -euo pipefail
DATA=${1:-../shared/data/lurz2020_static20457-5-9}
W=${2:-/tmp/cortexfit-transfer-real}
CF=${CORTEXFIT:-cortexfit}
SPLIT_SEED=${SPLIT_SEED:-7}
SEEDS=${SEEDS:-1}
THREADS=${THREADS:-2}
MINUTES=${MINUTES:-60}
mkdir -p "$W"
# Half A trains the core (data.neuron_split.half = a), half B is the new population.
[ -f "$W/core_half_a/summary.json" ] || "$CF" train --preset lurz2020 --data "$DATA" \
    --out "$W/core_half_a" --seed 1 --threads "$THREADS" --quiet --max-minutes "$MINUTES" \
    --set data.neuron_split.half=a --set data.neuron_split.seed="$SPLIT_SEED"
"$CF" experiment data-efficiency --config lurz2020 --data "$DATA" \
    --images 500,1000,2000,all --conditions direct,transfer --core "$W/core_half_a" \
    --seeds "$SEEDS" --threads "$THREADS" --max-minutes "$MINUTES" --out "$W/data_efficiency" \
    --set data.neuron_split.half=b --set data.neuron_split.seed="$SPLIT_SEED"
echo "figure: $W/data_efficiency/data_efficiency.png"
