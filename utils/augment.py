"""Strong augmentation as AugDesc-WS defines it (Nishi et al., "Augmentation Strategies for
Learning with Noisy Labels", CVPR 2021): the weak crop and flip, then AutoAugment (Cubuk et al.,
CVPR 2019) with the CIFAR-10 policy for CIFAR and the ImageNet policy for larger images, grey
fill 128 where a geometric operation uncovers the border.

  autoaugment(policy)            torchvision's AutoAugment on PIL images (DataLoader workers)
  autoaugmented(train, policy)   a weak train transform made strong: AutoAugment after its crop
                                 and flip, before ToTensor
  BatchAutoAugment(policy, hw)   the same per-image draws on a uint8 batch on any device
  add_strong_arguments(parser)   --strong_aug and --strong_warmup as Train_cifar.py has them
                                 (the other scripts)

Both draw, per image, one sub-policy uniformly, then fire each of its two operations with its
probability and give a signed operation a random sign; both apply torchvision's operations with
its magnitudes, so the two paths draw from one distribution (tests/test_strong_augmentation.py
counts it). What differs from AugDesc's own AutoAugment code (same policy tables): shear uses
nearest-neighbour interpolation (theirs bicubic), solarize's thresholds run from 255 (theirs
256, which leaves the image unchanged), rotate takes a random sign (theirs is always
counter-clockwise) and translate whole pixels (docs/beyond_the_paper.md lists it all).
"""
import torch
import torchvision.transforms as T
from torchvision.transforms import InterpolationMode
from torchvision.transforms.autoaugment import _apply_op  # what T.AutoAugment applies per op

from utils.cli import STRONG_WARMUP_NEEDS_WARM_UP

FILL = 128  # AugDesc's grey for the pixels a rotation, shear or translation uncovers
MAGNITUDE_BINS = 10  # T.AutoAugment's: magnitude bins 0..9 of its policies
POLICIES = {'cifar10': T.AutoAugmentPolicy.CIFAR10, 'imagenet': T.AutoAugmentPolicy.IMAGENET}


def autoaugment(policy):
    """torchvision's AutoAugment with AugDesc's fill, for PIL images: policy 'cifar10' (CIFAR-10
    and CIFAR-100, as AugDesc) or 'imagenet' (Clothing1M, WebVision, large images)."""
    return T.AutoAugment(POLICIES[policy], fill=(FILL,) * 3)


def autoaugmented(train_transform, policy):
    """The strong transform of a weak one (a T.Compose of PIL steps, then ToTensor and
    Normalize): the same steps with autoaugment(policy) after the PIL ones (the crop and flip),
    before ToTensor."""
    steps = list(train_transform.transforms)
    to_tensor = next(i for i, step in enumerate(steps) if isinstance(step, T.ToTensor))
    return T.Compose(steps[:to_tensor] + [autoaugment(policy)] + steps[to_tensor:])


def add_strong_arguments(parser, policy_help):
    """--strong_aug and --strong_warmup as Train_cifar.py has them (each names the run);
    `policy_help` says which AutoAugment policy the script's images get."""
    parser.add_argument('--strong_aug', action='store_true', names_run=True,
                        help='AugDesc-WS (Nishi et al., CVPR 2021): two more views per image '
                             'with AutoAugment (%s); the targets come from the weak views, the '
                             'strong ones are mixed and trained on' % policy_help)
    parser.add_argument('--strong_warmup', action='store_true', names_run=True,
                        rule=STRONG_WARMUP_NEEDS_WARM_UP,
                        help='warm up on strongly augmented images (AugDesc\'s "SAW")')


class BatchAutoAugment:
    """autoaugment(policy) on a batch: images (B, C, H, W) uint8 on any device -> the batch with
    each image augmented by its own draws. The draws come from torch's CPU generator (a few
    numbers per image), so the images are grouped by the operation and magnitude they drew
    without waiting on the device; each group is one call of torchvision's operation."""

    def __init__(self, policy, image_size):
        reference = autoaugment(policy)
        self.sub_policies = reference.policies  # [((name, probability, magnitude bin), x2)]
        self.space = reference._augmentation_space(MAGNITUDE_BINS, image_size)
        self.interpolation = reference.interpolation

    def draw(self, count):
        """Per image: the sub-policy (count,), whether each of its two operations fires
        (count, 2) and each operation's sign (count, 2; 0 = negative), as torchvision draws."""
        choice = torch.randint(len(self.sub_policies), (count,))
        fires = torch.rand(count, 2) <= torch.tensor(
            [[p for _, p, _ in sub] for sub in self.sub_policies])[choice]
        return choice, fires, torch.randint(2, (count, 2))

    def __call__(self, images):
        choice, fires, signs = self.draw(len(images))
        fill = [float(FILL)] * images.shape[1]
        out = images.clone()
        for slot in range(2):  # each image's first operation, then its second
            for k, sub_policy in enumerate(self.sub_policies):
                name, _, magnitude_bin = sub_policy[slot]
                magnitudes, signed = self.space[name]
                magnitude = float(magnitudes[magnitude_bin]) if magnitude_bin is not None else 0.
                chosen = (choice == k) & fires[:, slot]
                for sign in ((-1, 1) if signed else (1,)):
                    rows = chosen & (signs[:, slot] == int(sign > 0)) if signed else chosen
                    if rows.any():
                        idx = rows.nonzero()[:, 0].to(images.device)
                        out[idx] = _apply_op(out[idx], name, sign * magnitude,
                                             self.interpolation, fill)
        return out
