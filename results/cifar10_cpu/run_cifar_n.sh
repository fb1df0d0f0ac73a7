#!/usr/bin/env bash
# The CIFAR-10N "worst" pair of results/cifar10_cpu/run.sh (same scale), run beside it in a
# second process with one thread, so both finish sooner on the 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=results/cifar10_cpu/cifar_n
DATA=${DATA:-/tmp/cifar10_shared}
SCALE="--data_path $DATA/cifar-10-batches-py --num_train 2000 --num_test 2000 --width 16
       --num_epochs 40 --warm_up 10 --lr_drop_epoch 25 --num_workers 2"
NOISE="--noise_mode cifar-n --cifar_n_label worse_label --cifar_n_file ../shared/data/cifar-n/CIFAR-10_human.pt"
TIMEFORMAT='%R s wall, %U s user, %S s system'
for method in dividemix ce; do
  echo "== $NOISE --method $method"
  time OMP_NUM_THREADS=1 python3 Train_cifar.py $SCALE $NOISE --method $method --out_dir $OUT \
    > "$OUT/cifar_n_worse_label_$method.log" 2>&1
done
