#!/bin/bash
# The GPU measurements of the trained network's four views in one call (utils.speed.per_view),
# of background checkpoints and of Clothing1M's labels-file pass, in one call of about 6.5
# minutes on a GPU machine:
#   bash results/speed/gpu3.sh OUT_DIR
# Needs the shared data copied to .gpu/ (tools/make_cifar10.py, data/cifar10-jpeg.tar.gz,
# data/cifar-n/CIFAR-10_human.pt), an ignored folder that travels with the working tree:
#   mkdir -p .gpu/tools .gpu/data/cifar-n && cp ../shared/tools/make_cifar10.py .gpu/tools/ \
#     && cp ../shared/data/cifar10-jpeg.tar.gz .gpu/data/ \
#     && cp ../shared/data/cifar-n/CIFAR-10_human.pt .gpu/data/cifar-n/
# Writes logs and JSON to OUT_DIR:
#   gpu_tests.log   the GPU tests of the suite (pytest -m gpu)
#   bench_views.*   views_apart (the fast path as before: four calls) against fast (one call),
#                   full width, all 50,000 images, 50% sym: warm-up epoch and SSL epoch
#   bench_eager.*   the eager path's stage breakdown (no CUDA graphs)
#   train_fast.*, train_eager.*   Train_cifar.py, 10 warm-up + 5 SSL epochs, seed 1, on the fast
#                   path and with --no-cuda_graphs: per-epoch seconds, accuracy, labeled-set
#                   sizes and AUC (the same-accuracy check: epochs 10-14 within 3 points, 3%, 0.01)
#   train_strong.*   one warm-up and one SSL epoch with --strong_aug (AugDesc-WS; the SSL
#                   epoch's seconds are its timing, not an accuracy check)
#   checkpoint_cost.log   writing a full-width checkpoint (and the copy to CPU memory)
#   clothing1m_export.log   the labels-file pass of Train_clothing1M.py on 10,000 generated
#                   300x400 JPEGs, projected to the 1M-image noisy pool
out=${1:-/tmp/speed}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu3.txt"
python3 -c "import torch; print(torch.__version__)" | tee -a "$out/gpu3.txt"
timeout 60 python3 -m pytest -q tests -m gpu 2>&1 | tail -5 | tee "$out/gpu_tests.log"
python3 .gpu/tools/make_cifar10.py /tmp/c10 > /dev/null || exit 1
bench() {  # NAME PATHS...
  local name=$1; shift
  timeout 100 python3 tools/benchmark_speed.py --data_path /tmp/c10 --num_train 50000 \
    --num_test 10000 --paths "$@" --json "$out/bench_$name.json" 2>&1 | grep -v Warning \
    | tee "$out/bench_$name.log"
}
bench views views_apart fast --no_breakdown
bench eager eager
train() {  # NAME SECONDS EXTRA...
  local name=$1 limit=$2 start=$SECONDS; shift 2
  timeout "$limit" python3 Train_cifar.py --data_path /tmp/c10 --no-download --num_epochs 15 \
    --seed 1 --no-figures --out_dir "/tmp/run_$name" "$@" 2>&1 | grep -v Warning \
    | tee "$out/train_$name.log"
  cp "/tmp/run_$name"/*.jsonl "$out/train_$name.jsonl" 2>/dev/null
  # wall time of the whole command: start-up, 15 epochs, their checkpoints, the labels file
  echo "train_$name: $((SECONDS - start)) s wall" | tee -a "$out/train_$name.log"
}
train fast 100
train eager 130 --no-cuda_graphs
train strong 45 --num_epochs 2 --warm_up 1 --strong_aug  # (the later --num_epochs wins)
timeout 30 python3 results/speed/checkpoint_cost.py 2>&1 | tee "$out/checkpoint_cost.log"
timeout 60 python3 results/speed/clothing1m_export.py --images 10000 2>&1 | grep -v Warning \
  | tee "$out/clothing1m_export.log"
