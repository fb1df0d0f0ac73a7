#!/usr/bin/env bash
# Train_imagefolder.py against Train_cifar.py on the same 4,000 CIFAR-10 training images with the
# same 50% symmetric noise (45% of labels wrong), tested on the 10,000 CIFAR-10 test images;
# width 16, 5 warm-up + 10 DivideMix epochs, on the CPU, two runs at a time (one thread each).
# Data: python results/imagefolder_vs_cifar/prepare.py "$W" first. Each argument is one run,
# SCRIPT:SEED (SCRIPT: cifar, imagefolder, or cifar_plain, imagefolder_plain with --plain and
# one data worker); the runs are shared out between two lanes in order.
#   W=/tmp/ifc bash results/imagefolder_vs_cifar/run.sh cifar:1 imagefolder:1 cifar:2 ...
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${W:-/tmp/ifc}
OUT=results/imagefolder_vs_cifar
COMMON=(--width 16 --num_epochs 15 --warm_up 5 --no-figures)
cifar() {  # SEED [NAME EXTRA...]
  local seed=$1 name=${2:-cifar}; shift; shift || true
  python3 Train_cifar.py --data_path "$W/cifar-10-batches-py" --no-download --num_train 4000 \
    --noise_file "$W/noise.json" "${COMMON[@]}" --seed "$seed" \
    --out_dir "$OUT/${name}_seed$seed" "$@" > "$OUT/${name}_seed$seed.log" 2>&1
}
imagefolder() {  # SEED [NAME EXTRA...]
  local seed=$1 name=${2:-imagefolder}; shift; shift || true
  # the same settings as Train_cifar.py's 50% cell: no warm-up penalty, CIFAR-10's mean and std
  python3 Train_imagefolder.py --data_path "$W/jpeg" --train_list "$W/train.csv" \
    --test_list "$W/test.csv" --clean_list "$W/clean.csv" "${COMMON[@]}" --no-warmup_penalty \
    --mean 0.4914 0.4822 0.4465 --std 0.2023 0.1994 0.2010 --num_workers 1 --seed "$seed" \
    --out_dir "$OUT/${name}_seed$seed" "$@" > "$OUT/${name}_seed$seed.log" 2>&1
}
cifar_plain() { cifar "$1" cifar_plain --plain --num_workers 1; }
imagefolder_plain() { imagefolder "$1" imagefolder_plain --plain; }
export OMP_NUM_THREADS=1
lane() { for job in "$@"; do "${job%%:*}" "${job##*:}"; done; }
runs=("$@")
(lane $(for i in "${!runs[@]}"; do (( i % 2 == 0 )) && echo "${runs[i]}"; done)) &
(lane $(for i in "${!runs[@]}"; do (( i % 2 == 1 )) && echo "${runs[i]}"; done)) &
wait
