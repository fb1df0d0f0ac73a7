#!/bin/bash
# Second GPU call (CUDA graphs), see docs/speed.md:  bash results/speed/gpu2.sh OUT_DIR
out=${1:-/tmp/speed}; mkdir -p "$out"
export PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$out/gpu2.txt"
python3 .gpu/tools/make_cifar10.py /tmp/c10 > /dev/null || exit 1
timeout 60 python3 results/speed/graph_check.py --data_path /tmp/c10 --num_train 10000 2>&1 | grep -v Warning | tee "$out/graph_check.log"
timeout 100 python3 tools/benchmark_speed.py --data_path /tmp/c10 --num_train 50000 --num_test 10000 \
    --paths eager fast --no_breakdown --json "$out/bench_graphs.json" 2>&1 | grep -v Warning | tee "$out/bench_graphs.log"
timeout 70 python3 Train_cifar.py --data_path /tmp/c10 --no-download --num_epochs 12 --no-figures \
    --out_dir /tmp/run 2>&1 | grep -v Warning | tee "$out/train_graphs.log"
cp /tmp/run/*.jsonl "$out/train_graphs.jsonl" 2>/dev/null
