#!/usr/bin/env bash
# DivideMix against the cross-entropy baseline on real CIFAR-10 (../shared, JPEG q75) at a CPU
# scale: the first 2,000 training images, the first 2,000 test images, PreAct-ResNet18 at width
# 16, 40 epochs (warm-up 10, lr / 10 at epoch 25), seed 123, Table 7 settings per cell.
# Usage, from the repository root:  bash results/cifar10_cpu/run.sh  (then python tools/paper_cells.py
# table results/cifar10_cpu > results/cifar10_cpu/table.md)
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/cifar10_cpu
DATA=${DATA:-/tmp/cifar10_shared}
[ -d "$DATA/cifar-10-batches-py" ] || python3 ../shared/tools/make_cifar10.py "$DATA"
SCALE="--data_path $DATA/cifar-10-batches-py --num_train 2000 --num_test 2000 --width 16
       --num_epochs 40 --warm_up 10 --lr_drop_epoch 25 --num_workers 2"
TIMEFORMAT='%R s wall, %U s user, %S s system'
for noise in "--r 0.5 --noise_mode sym" "--r 0.8 --noise_mode sym" \
             "--noise_mode cifar-n --cifar_n_label worse_label --cifar_n_file ../shared/data/cifar-n/CIFAR-10_human.pt"; do
  for method in dividemix ce; do
    echo "== $noise --method $method"
    time python3 Train_cifar.py $SCALE $noise --method $method --out_dir $OUT \
      > "$OUT/$(echo "$noise $method" | tr -c 'a-z0-9.\n' '_').log" 2>&1
  done
done
