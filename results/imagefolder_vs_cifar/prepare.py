"""The data of the Train_imagefolder.py against Train_cifar.py comparison: the shared CIFAR-10
images twice, as the standard pickles (for Train_cifar.py) and as JPEG files with label lists
(for Train_imagefolder.py), with the same symmetric noise on the first N training images.

    python results/imagefolder_vs_cifar/prepare.py WORK [--num_train 4000] [--r 0.5]

writes into WORK:
  cifar-10-batches-py/   the pickles (../shared/tools/make_cifar10.py), original training order
  jpeg/                  train/<class>/NNNN.jpg, test/<class>/NNNN.jpg (the same images)
  noise.json             the noisy labels of the first N training images, drawn as
                         Train_cifar.py draws them (seed 123), for its --noise_file
  train.csv              those N images as jpeg/ paths with the same noisy labels (class names)
  clean.csv              their true labels, test.csv the 10,000 test images
"""
import argparse
import csv
import json
import os
import pickle
import subprocess
import sys
import tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SHARED = os.path.join(ROOT, '..', 'shared')
sys.path.insert(0, ROOT)
from dataloader_cifar import load_cifar, make_noisy_labels  # noqa: E402

CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
           'truck']


def filenames(folder, name):
    with open(os.path.join(folder, name), 'rb') as f:
        return pickle.load(f, encoding='latin1')['filenames']


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('work')
    ap.add_argument('--num_train', type=int, default=4000)
    ap.add_argument('--r', type=float, default=0.5)
    args = ap.parse_args()
    os.makedirs(args.work, exist_ok=True)
    pickles = os.path.join(args.work, 'cifar-10-batches-py')
    if not os.path.isdir(pickles):
        subprocess.run([sys.executable, os.path.join(SHARED, 'tools', 'make_cifar10.py'),
                        args.work], check=True)
    jpeg = os.path.join(args.work, 'jpeg')
    if not os.path.isdir(jpeg):
        with tarfile.open(os.path.join(SHARED, 'data', 'cifar10-jpeg.tar.gz')) as tar:
            tar.extractall(jpeg)
    _, clean, _, _ = load_cifar(pickles, 'cifar10')
    clean = clean[:args.num_train]
    noisy = make_noisy_labels(clean, args.r, 'sym', 10, seed=123)
    with open(os.path.join(args.work, 'noise.json'), 'w') as f:
        json.dump(noisy, f)
    # the pickles name each image's JPEG: training image i is paths[i]
    paths = [p for k in range(1, 6) for p in filenames(pickles, 'data_batch_%d' % k)]
    rows = {'train.csv': [(paths[i], CLASSES[noisy[i]]) for i in range(args.num_train)],
            'clean.csv': [(paths[i], CLASSES[clean[i]]) for i in range(args.num_train)],
            'test.csv': [('test/%s/%04d.jpg' % (c, k), c) for c in CLASSES for k in range(1000)]}
    for name, table in rows.items():
        with open(os.path.join(args.work, name), 'w', newline='') as f:
            csv.writer(f).writerows(table)
    wrong = sum(a != b for a, b in zip(noisy, clean))
    print('%d training images, %d noisy labels (%.1f%%), lists in %s'
          % (args.num_train, wrong, 100 * wrong / args.num_train, args.work))


if __name__ == '__main__':
    main()
