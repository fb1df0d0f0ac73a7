#!/bin/bash
# Fast path (default) vs --plain on real CIFAR-10 (shared JPEG copy), CPU, 3 seeds each:
#   python3 ../shared/tools/make_cifar10.py /tmp/c10 && bash results/fast_vs_plain/run.sh /tmp/c10
data=${1:-/tmp/c10}; here=$(dirname "$0")
for seed in 1 2 3; do
  for path in fast plain; do
    extra=""; [ $path = plain ] && extra="--plain --num_workers 2"
    python3 Train_cifar.py --data_path "$data" --no-download --num_train 2000 --num_test 2000 \
      --width 16 --num_epochs 16 --warm_up 10 --seed $seed $extra \
      --out_dir "$here/${path}_seed$seed" > "$here/${path}_seed$seed.log" 2>&1
  done
done
