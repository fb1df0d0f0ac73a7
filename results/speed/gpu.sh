#!/bin/bash
# The GPU measurements in docs/speed.md, in one call on a GPU machine:
#   bash results/speed/gpu.sh OUT_DIR
# Needs the shared data copied to .gpu/ (tools/make_cifar10.py, data/cifar10-jpeg.tar.gz,
# data/cifar-n/CIFAR-10_human.pt). Writes logs and JSON to OUT_DIR.
out=${1:-/tmp/speed}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu.txt"
python3 -c "import torch, torchvision; print(torch.__version__, torchvision.__version__)" | tee -a "$out/gpu.txt"
python3 .gpu/tools/make_cifar10.py /tmp/c10 > /dev/null || exit 1
# 1. plain vs fast, all 50,000 images, full width
timeout 330 python3 tools/benchmark_speed.py --data_path /tmp/c10 --num_train 50000 --num_test 10000 \
    --paths plain fast --num_workers 8 --json "$out/bench_plain_fast.json" 2>&1 | grep -v Warning | tee "$out/bench_plain_fast.log"
# 2. real epochs of Train_cifar.py (fast path): 10 warm-up + 3 SSL epochs, per-epoch seconds in the JSONL
timeout 150 python3 Train_cifar.py --data_path /tmp/c10 --no-download --num_epochs 13 \
    --out_dir /tmp/run 2>&1 | grep -v Warning | tee "$out/train.log"
cp /tmp/run/*.jsonl "$out/" 2>/dev/null
# 3. fast vs fast + torch.compile
timeout 200 python3 tools/benchmark_speed.py --data_path /tmp/c10 --num_train 50000 --num_test 10000 \
    --paths fast compile --json "$out/bench_compile.json" 2>&1 | grep -v Warning | tee "$out/bench_compile.log"
