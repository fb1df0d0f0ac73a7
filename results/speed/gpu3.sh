#!/bin/bash
# The GPU measurements of the trained network's four views in one call (utils.speed.per_view),
# of the 15-epoch accuracy check, of background checkpoints and of Clothing1M's labels-file
# pass, in two parts on a GPU machine; part 1 holds what matters most. Command time at most
# (the sums of their time limits): part 1 6 minutes, part 2 6.5 (6 where part 1 ran on the same
# machine just before, so that the data is there):
#   bash results/speed/gpu3.sh OUT_DIR 1
#   bash results/speed/gpu3.sh OUT_DIR 2
# Needs the shared data copied to .gpu/ (tools/make_cifar10.py, data/cifar10-jpeg.tar.gz,
# data/cifar-n/CIFAR-10_human.pt), an ignored folder that travels with the working tree:
#   mkdir -p .gpu/tools .gpu/data/cifar-n && cp ../shared/tools/make_cifar10.py .gpu/tools/ \
#     && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/data/ \
#     && cp ../shared/data/cifar-n/CIFAR-10_human.pt .gpu/data/cifar-n/
# and carried as .gpu/tools and .gpu/data (not .gpu: the CIFAR-10 pickles part 1 writes to
# .gpu/c10 then stay for part 2 on the same machine).
# Writes logs and JSON to OUT_DIR. Part 1:
#   gpu_tests.log   the GPU tests of the suite (pytest -m gpu)
#   bench_views.*   views_apart (the fast path as before: four calls) against fast (one call),
#                   full width, all 50,000 images, 50% sym: warm-up epoch and SSL epoch
#   train_fast.*    Train_cifar.py, 10 warm-up + 5 SSL epochs, seed 1, on the fast path:
#                   per-epoch seconds (the 300-epoch projection), accuracy, labeled-set sizes, AUC
#   checkpoint_cost.log   writing a full-width checkpoint (and the copy to CPU memory)
#   clothing1m_export.log   the labels-file pass of Train_clothing1M.py on 10,000 generated
#                   300x400 JPEGs, projected to the 1M-image noisy pool
# Part 2:
#   bench_eager.*   the eager path's stage breakdown (no CUDA graphs)
#   train_eager.*   as train_fast with --no-cuda_graphs: the same-accuracy check against part 1's
#                   run (epochs 10-14 within 3 points, the labeled-set size within 3%, AUC 0.01)
#   train_strong.*   one warm-up and one SSL epoch with --strong_aug (AugDesc-WS; the SSL
#                   epoch's seconds are its timing, not an accuracy check)
out=${1:-/tmp/speed}; part=${2:?give the part, 1 or 2}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader \
  | tee "$out/gpu3_part$part.txt"
python3 -c "import torch; print(torch.__version__)" | tee -a "$out/gpu3_part$part.txt"
data=.gpu/c10  # inside the working tree: a second call on the same machine finds it
# (batches.meta is the file make_cifar10.py writes last: an interrupted build is redone)
[ -f $data/cifar-10-batches-py/batches.meta ] || timeout 40 python3 .gpu/tools/make_cifar10.py $data > /dev/null \
  || exit 1
bench() {  # NAME SECONDS PATHS...
  local name=$1 limit=$2; shift 2
  timeout "$limit" python3 tools/benchmark_speed.py --data_path $data --num_train 50000 \
    --num_test 10000 --paths "$@" --json "$out/bench_$name.json" 2>&1 | grep -v Warning \
    | tee "$out/bench_$name.log"
}
train() {  # NAME SECONDS EXTRA...
  local name=$1 limit=$2 start=$SECONDS; shift 2
  timeout "$limit" python3 Train_cifar.py --data_path $data --no-download --num_epochs 15 \
    --seed 1 --no-figures --out_dir "/tmp/run_$name" "$@" 2>&1 | grep -v Warning \
    | tee "$out/train_$name.log"
  cp "/tmp/run_$name"/*.jsonl "$out/train_$name.jsonl" 2>/dev/null
  # wall time of the whole command: start-up, 15 epochs, their checkpoints, the labels file
  echo "train_$name: $((SECONDS - start)) s wall" | tee -a "$out/train_$name.log"
}
if [ "$part" = 1 ]; then  # time limits: 40 + 40 + 100 + 100 + 25 + 55 = 360 s
  timeout 40 python3 -m pytest -q tests -m gpu 2>&1 | tail -5 | tee "$out/gpu_tests.log"
  bench views 100 views_apart fast --no_breakdown
  train fast 100
  timeout 25 python3 results/speed/checkpoint_cost.py 2>&1 | tee "$out/checkpoint_cost.log"
  timeout 55 python3 results/speed/clothing1m_export.py --images 10000 2>&1 | grep -v Warning \
    | tee "$out/clothing1m_export.log"
else  # time limits: 40 (the data, if not there) + 95 + 210 + 40 = 385 s (the eager run's
  #     last epochs took 5-8 s warm-up and 19-26 s SSL)
  bench eager 95 eager
  train eager 210 --no-cuda_graphs
  train strong 40 --num_epochs 2 --warm_up 1 --strong_aug  # (the later --num_epochs wins)
fi
