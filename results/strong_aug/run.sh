#!/bin/bash
# The paper's augmentation against AugDesc-WS (--strong_aug) at CPU scale, on real CIFAR-10
# (the shared JPEG copy), sym 80%, 4,000 training images, width 16, the full test set,
# 15 epochs (10 warm-up, 5 SSL) unless EPOCHS says otherwise, the same seeds for both; two runs
# at a time, one thread each:
#   python3 ../shared/tools/make_cifar10.py /tmp/c10 && bash results/strong_aug/run.sh /tmp/c10
#   python3 results/strong_aug/table.py > results/strong_aug/table.md
# SEEDS="4 5 6" for other seeds; EPOCHS=40 OUT=results/strong_aug/40_epochs for a longer run.
data=${1:-/tmp/c10}; here=$(dirname "$0"); seeds=${SEEDS:-1 2 3}; epochs=${EPOCHS:-15}
out=${OUT:-$here}; mkdir -p "$out"
lane() {  # one augmentation, every seed, one after another
  for seed in $seeds; do
    OMP_NUM_THREADS=1 python3 Train_cifar.py --data_path "$data" --no-download --r 0.8 \
      --num_train 4000 --width 16 --num_epochs $epochs --seed $seed --no-figures $2 \
      --out_dir "$out/$1_seed$seed" > "$out/$1_seed$seed.log" 2>&1
  done
}
lane paper "" & lane strong --strong_aug & wait
