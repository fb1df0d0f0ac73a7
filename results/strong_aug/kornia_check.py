"""Is kornia's AutoAugment a drop-in for the fast path's strong augmentation? Measured on this
machine's CPU, one thread: (1) does kornia.augmentation.auto.AutoAugment (policy 'cifar10') draw
its sub-policy per image or once per batch, (2) how fast is it on 256 CIFAR-sized images against
utils.augment.BatchAutoAugment and torchvision's AutoAugment on PIL images one at a time.

Run from the repository root with kornia importable (it is not a dependency of the project):
  PYTHONPATH=/path/to/kornia python results/strong_aug/kornia_check.py > kornia_check.txt
"""
import os
import sys
import time
from collections import Counter

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
import kornia  # noqa: E402
from kornia.augmentation.auto import AutoAugment as KorniaAutoAugment  # noqa: E402
from PIL import Image  # noqa: E402

from utils.augment import BatchAutoAugment, autoaugment  # noqa: E402

BATCH, SIZE, REPEATS, CALLS = 256, 32, 5, 50
NOT_MAGNITUDES = ('batch_prob', 'center', 'forward_input_shape')  # in kornia's parameters


def images(n, seed=0):
    """Photo-like uint8 images (n, 3, SIZE, SIZE): smooth random colour fields plus noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 255
    smooth = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode='bilinear')
    return (smooth + 12 * torch.randn(n, 3, SIZE, SIZE, generator=g)).clamp(0, 255).round().to(
        torch.uint8)


def best_of(fn):
    times = []
    for _ in range(REPEATS):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    torch.set_num_threads(1)
    torch.manual_seed(0)
    print('kornia %s, torch %s, one CPU thread' % (kornia.__version__, torch.__version__))
    kornia_aa, batch_aa = KorniaAutoAugment('cifar10'), BatchAutoAugment('cifar10', (SIZE, SIZE))
    one = images(1)
    same = one.repeat(BATCH, 1, 1, 1)  # 256 copies of one image

    print('\n1. Draws of one call on a batch of %d images, over %d calls' % (BATCH, CALLS))
    kornia_subpolicies, ours_subpolicies, spread = Counter(), Counter(), {}
    for _ in range(CALLS):
        params = kornia_aa.forward_parameters(same.shape)  # what one call of kornia draws
        kornia_subpolicies[len(params)] += 1  # one ParamItem per sub-policy applied
        for op in params[0].data:  # that sub-policy's operations, per image
            for name, value in op.data.items():
                values = value.flatten() if torch.is_tensor(value) else torch.zeros(1)
                if name not in NOT_MAGNITUDES and values.abs().max() > 0:
                    spread.setdefault('%s.%s' % (op.name.rsplit('_', 1)[0], name), []).append(
                        (len(values.unique()), float(values.min()), float(values.max())))
        out = kornia_aa(same.float() / 255, params=params)
        assert out.shape == same.shape
        choice, _, _ = batch_aa.draw(BATCH)
        ours_subpolicies[len(choice.unique())] += 1
    print('kornia AutoAugment: sub-policies applied per call (number: calls) %s'
          % dict(kornia_subpolicies))
    print('BatchAutoAugment:   distinct sub-policies among the %d images of a call '
          '(number: calls) %s' % (BATCH, dict(sorted(ours_subpolicies.items()))))
    print('kornia, magnitudes within one call (distinct values over %d images, min, max), '
          'first call drawing each operation:' % BATCH)
    for name, draws in sorted(spread.items()):
        print('  %-26s %3d values in [%.3f, %.3f]' % ((name,) + draws[0]))
        signs = Counter(('+' if low >= 0 else '') + ('-' if high <= 0 else '') or '+-'
                        for _, low, high in draws)
        print('  %-26s signs within a call, over the %d calls that drew it: %s'
              % ('', len(draws), dict(signs)))
    print('(torchvision and BatchAutoAugment: one magnitude per operation of the policy, '
          '+/- for signed ones)')

    print('\n2. Speed: %d images of %dx%d, best of %d, one thread' % (BATCH, SIZE, SIZE, REPEATS))
    batch = images(BATCH, seed=1)
    as_float = batch.float() / 255
    pil_images = [Image.fromarray(img) for img in batch.permute(0, 2, 3, 1).numpy()]
    pil_aa = autoaugment('cifar10')
    seconds = {
        'utils.augment.BatchAutoAugment (uint8 batch)': best_of(lambda: batch_aa(batch)),
        'kornia AutoAugment (float batch)': best_of(lambda: kornia_aa(as_float)),
        'torchvision AutoAugment, PIL, one image at a time': best_of(
            lambda: [pil_aa(img) for img in pil_images]),
    }
    ours = seconds['utils.augment.BatchAutoAugment (uint8 batch)']
    for name, s in seconds.items():
        print('%-52s %8.2f ms  %5.2fx BatchAutoAugment\'s time' % (name, 1000 * s, s / ours))


if __name__ == '__main__':
    main()
