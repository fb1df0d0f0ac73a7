#!/usr/bin/env bash
# With --plain (PIL transforms in loader workers, fp32), Train_imagefolder.py and Train_cifar.py
# compute the same run to the bit on the same images and noisy labels: the first 256 training
# images of the data made by prepare.py, every 50th test image of the list (200, both scripts in
# the same order), width 8, 2 warm-up + 2 DivideMix epochs, batch 32, seed 1. Prints both runs'
# per-epoch records without the seconds, and "identical" or the differences.
#   W=/tmp/ifc bash results/imagefolder_vs_cifar/plain_identity.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
W=${W:-/tmp/ifc}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
head -256 "$W/train.csv" > "$T/train.csv"
head -256 "$W/clean.csv" > "$T/clean.csv"
awk 'NR % 50 == 1' "$W/test.csv" > "$T/test.csv"
python3 -c "import json, sys
json.dump(json.load(open(sys.argv[1]))[:256], open(sys.argv[2], 'w'))" \
  "$W/noise.json" "$T/noise.json"  # the noisy labels of those 256
# the same test images as CIFAR pickles for Train_cifar.py, beside a copy of the training batches
python3 - "$W" "$T" <<'PY'
import os, pickle, shutil, sys
import numpy as np
from PIL import Image
from dataloader_cifar import CIFAR10_CLASSES
W, T = sys.argv[1:]
rows = [line.strip().split(',') for line in open(T + '/test.csv')]
images = np.stack([np.asarray(Image.open(W + '/jpeg/' + path).convert('RGB')) for path, _ in rows])
os.makedirs(T + '/cifar-10-batches-py')
for k in range(1, 6):
    shutil.copy(W + '/cifar-10-batches-py/data_batch_%d' % k, T + '/cifar-10-batches-py')
with open(T + '/cifar-10-batches-py/test_batch', 'wb') as f:
    pickle.dump({'data': images.transpose(0, 3, 1, 2).reshape(len(images), -1),
                 'labels': [CIFAR10_CLASSES.index(label) for _, label in rows]}, f)
PY
export OMP_NUM_THREADS=1
SAME=(--plain --width 8 --num_epochs 4 --warm_up 2 --batch_size 32 --num_workers 0 --seed 1
      --no-figures)
python3 Train_cifar.py --data_path "$T/cifar-10-batches-py" --no-download --num_train 256 \
  --noise_file "$T/noise.json" "${SAME[@]}" --out_dir "$T/cifar" > /dev/null
python3 Train_imagefolder.py --data_path "$W/jpeg" --train_list "$T/train.csv" \
  --test_list "$T/test.csv" --clean_list "$T/clean.csv" --no-warmup_penalty \
  --mean 0.4914 0.4822 0.4465 --std 0.2023 0.1994 0.2010 "${SAME[@]}" --out_dir "$T/folder" \
  > /dev/null
python3 - "$T" <<'PY'
import json, sys
T = sys.argv[1]
def records(path):
    out = []
    for line in open(path):
        r = json.loads(line)
        if 'epoch' in r and 'final' not in r:
            out.append({k: v for k, v in r.items() if k not in ('seconds', 'noise_rate')})
    return out
a = records(T + '/cifar/cifar10_0.5_sym.jsonl')
b = records(T + '/folder/imagefolder.jsonl')
for x in a:
    print(json.dumps(x))
print('identical' if a == b else 'DIFFERENT:\n' + '\n'.join(json.dumps(y) for y in b))
PY
