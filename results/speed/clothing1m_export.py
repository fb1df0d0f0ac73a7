"""How long Train_clothing1M.py's final labels-file pass takes: utils.label_export.export_labels
on generated images in Clothing1M's layout (JPEG photos-like noise at a given size, quality 90),
two ImageNet-size ResNet-50s, the script's eval loader (decoding in workers, resize 256, centre
crop 224, batches of 4 x 32), on the GPU when there is one. Prints images/s of the whole pass
(decoding, both networks, the GMMs, the file) and of the networks alone on tensors, and the
projection to the 1M images of Clothing1M's noisy pool.

    python results/speed/clothing1m_export.py --images 20000 --workers 16
"""
import argparse
import multiprocessing
import os
import sys
import tempfile
import time

import numpy as np
import torch
from PIL import Image

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import Train_clothing1M  # noqa: E402
from dataloader_clothing1M import ANNOTATIONS, Clothing1M, Clothing1MLoaders  # noqa: E402
from utils.distributed import pick_device  # noqa: E402
from utils.label_export import export_labels, relative_to  # noqa: E402
from utils.models import resnet50  # noqa: E402
from utils.speed import prepare  # noqa: E402

POOL = 1_000_000  # Clothing1M's noisy training pool, about
CLASSES = 14


def write_jpeg(job):
    path, seed, size = job
    rng = np.random.default_rng(seed)
    w, h = size
    # smooth colour fields plus grain: decodes like a photo, not like pure noise
    base = rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(base).resize((w, h), Image.BILINEAR)
    grain = rng.normal(0, 8, (h, w, 3))
    pixels = np.clip(np.asarray(image, dtype=float) + grain, 0, 255).astype(np.uint8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(pixels).save(path, 'JPEG', quality=90)


def make_folder(root, count, size, workers):
    keys = ['images/%d/%07d.jpg' % (k % 10, k) for k in range(count)]
    extra = ['images/val/%d.jpg' % c for c in range(CLASSES)]
    with multiprocessing.Pool(workers) as pool:
        pool.map(write_jpeg, [(os.path.join(root, key[7:]), k, size)
                              for k, key in enumerate(keys + extra)], chunksize=64)
    lines = {ANNOTATIONS[0]: ['%s %d' % (key, k % CLASSES) for k, key in enumerate(keys)],
             ANNOTATIONS[1]: ['%s %d' % (key, c) for c, key in enumerate(extra)],
             ANNOTATIONS[2]: keys, ANNOTATIONS[3]: extra, ANNOTATIONS[4]: extra}
    for name, rows in lines.items():
        with open(os.path.join(root, name), 'w') as f:
            f.write(''.join(row + '\n' for row in rows))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--images', type=int, default=20000)
    p.add_argument('--size', type=int, nargs=2, default=[300, 400], metavar=('W', 'H'))
    p.add_argument('--workers', type=int, default=os.cpu_count())
    p.add_argument('--batch_size', type=int, default=32, help="the script's B (eval: 4B)")
    args = p.parse_args()
    device = pick_device(0)
    with tempfile.TemporaryDirectory() as root:
        start = time.time()
        make_folder(root, args.images, tuple(args.size), args.workers)
        print('%d JPEGs of %dx%d written in %.0f s' % (args.images, *args.size,
                                                       time.time() - start))
        data = Clothing1M(root, CLASSES)
        loaders = Clothing1MLoaders(data, args.batch_size, args.workers)
        nets = [prepare(resnet50(CLASSES, 'none').to(device), device) for _ in range(2)]
        x = torch.randn(4 * args.batch_size, 3, 224, 224, device=device)
        with torch.inference_mode():  # the networks alone, warm
            for net in nets:
                net.eval()(x)
            if device.type == 'cuda':
                torch.cuda.synchronize()
            start = time.time()
            for _ in range(5):
                for net in nets:
                    net(x)
            if device.type == 'cuda':
                torch.cuda.synchronize()
        alone = 5 * len(x) / (time.time() - start)  # images/s through both networks
        defaults = Train_clothing1M.parse_args([])  # the run's co-divide settings
        start = time.time()
        exported = export_labels(os.path.join(root, 'clothing1m_labels.csv'), nets,
                                 loaders.eval_train(), device, epoch=0, args=defaults,
                                 paths=relative_to(data.root, data.train_paths),
                                 class_names=data.class_names)
        seconds = time.time() - start
    name = torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU'
    print('%s, %d workers, torch %s' % (name, args.workers, torch.__version__))
    print('whole pass (decode, both networks, GMMs, file): %.0f images/s; networks alone on '
          'tensors: %.0f images/s' % (args.images / seconds, alone))
    print('projected for the %d-image noisy pool: %.1f min' % (POOL, POOL / args.images
                                                               * seconds / 60))
    print(exported.line)


if __name__ == '__main__':
    main()
