#!/bin/bash
# Loader workers on a CPU-only machine: the same seeded runs of Train_imagefolder.py with
# --num_workers 0 and with as many workers as CPUs, side by side; prints each epoch's seconds.
#   bash results/cpu_workers/measure.sh DATA_DIR [OUT_DIR]
# DATA_DIR: an image folder (train/<class>/...; test/ optional). OUT_DIR must not exist.
set -e
data=${1:?usage: measure.sh DATA_DIR [OUT_DIR]}
out=${2:-cpu_workers_measure}
cpus=$(python -c "import os; print(len(os.sched_getaffinity(0)))")
cd "$(dirname "$0")/../.."
for shape in "--width 16 --warm_up 1 --num_epochs 2" "--width 64 --warm_up 1 --num_epochs 1"; do
  for workers in 0 "$cpus"; do
    name="$out/w$workers$(echo $shape | tr -d ' -')"
    python Train_imagefolder.py --data_path "$data" --out_dir "$name" --no-figures \
      --num_workers $workers $shape 2>/dev/null \
      | grep -o 'Epoch \[ *[0-9]*/ *[0-9]*\].*test acc [0-9.]*%  [0-9.]* s' \
      | sed "s|^|workers $workers, $shape: |"
  done
done
