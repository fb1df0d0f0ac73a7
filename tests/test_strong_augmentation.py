"""Strong augmentation (--strong_aug, AugDesc-WS; utils/augment.py): which view gets which
augmentation on both CIFAR paths, which views the SSL step takes its targets from and which it
trains on, the device path's AutoAugment against torchvision's (the same draws in distribution,
the same operations with the same results), exact resume, and the argument rule."""
import json
import math
import os
from collections import Counter

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.transforms as T
import torchvision.transforms.autoaugment as tv_autoaugment
from PIL import Image
from torch.utils.data import DataLoader, TensorDataset

import dataloader_cifar
import dividemix as dm
import Train_cifar
import utils.augment
from conftest import script_args, write_fake_cifar
from dataloader_cifar import MEAN_STD, CIFARLoaders, DeviceCIFARLoaders
from test_resume import assert_same, outcome, tiny_args
from utils.augment import FILL, BatchAutoAugment, autoaugment
from utils.cli import run_cli
from utils.data import ssl_batches

# ---------------------------------------------------------------- a. which view gets what -----

IMAGE_VALUE = 200  # every training image is this grey: a weak view holds it and the crop's 0s
PAINT = 77  # what the marker AutoAugment paints: no crop or flip of those images holds it


def grey_images(n, value=IMAGE_VALUE):
    return np.full((n, 32, 32, 3), value, dtype=np.uint8)


def pixel_values(views):
    """The uint8 values of normalised CIFAR-10 views (B, 3, 32, 32), as a set."""
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in MEAN_STD['cifar10'])
    return set(torch.round(255 * (views * std + mean)).int().unique().tolist())


def assert_weak(view):
    assert pixel_values(view) <= {0, IMAGE_VALUE}  # cropped and flipped, never AutoAugment's


def assert_strong(view):
    assert pixel_values(view) == {PAINT}  # every image went through AutoAugment


class PaintPIL:
    """Stands in for autoaugment(policy) on the PIL path: paints the image PAINT, counts calls."""
    def __init__(self, policy):
        self.policy, self.calls = policy, 0

    def __call__(self, img):
        self.calls += 1
        return Image.new('RGB', img.size, (PAINT,) * 3)


class PaintBatch:
    """Stands in for BatchAutoAugment on the device path: paints the batch, counts images."""
    def __init__(self):
        self.images = 0

    def __call__(self, images):
        assert images.dtype == torch.uint8  # after the crop and flip, before normalising
        self.images += len(images)
        return torch.full_like(images, PAINT)


def pil_loaders(monkeypatch, n=12, batch=4):
    markers = []
    monkeypatch.setattr(dataloader_cifar, 'autoaugment',
                        lambda policy: markers.append(PaintPIL(policy)) or markers[-1])
    loaders = CIFARLoaders('cifar10', grey_images(n), np.arange(n) % 10, grey_images(4),
                           np.zeros(4, int), batch, num_workers=0)
    assert [m.policy for m in markers] == ['cifar10']
    return loaders, lambda: markers[0].calls


def device_loaders(monkeypatch, n=12, batch=4):
    loaders = DeviceCIFARLoaders('cifar10', grey_images(n), np.arange(n) % 10, grey_images(4),
                                 np.zeros(4, int), batch, torch.device('cpu'))
    marker = PaintBatch()
    monkeypatch.setattr(loaders, 'autoaugment', marker)
    return loaders, lambda: marker.images


@pytest.mark.parametrize('make', [pil_loaders, device_loaders])
def test_weak_views_never_pass_autoaugment_strong_ones_always(make, monkeypatch):
    torch.manual_seed(0)
    loaders, augmented = make(monkeypatch)
    pred = np.arange(12) < 8  # 8 labeled, 4 unlabeled images
    labeled, unlabeled = loaders.train(pred, np.linspace(0.5, 1, 12), strong=True)
    for *views, labels, prob in labeled:
        assert len(views) == 4 and labels.shape == prob.shape == (len(views[0]),)
        assert_weak(views[0]), assert_weak(views[1])
        assert_strong(views[2]), assert_strong(views[3])
        assert set(labels.tolist()) <= set(range(8))  # the labeled images' noisy labels
    for views in unlabeled:
        assert len(views) == 4
        assert_weak(views[0]), assert_weak(views[1])
        assert_strong(views[2]), assert_strong(views[3])
    assert augmented() == 2 * 12  # two strong views of each image, no more

    for inputs, _, _ in loaders.warmup(strong=True):
        assert_strong(inputs)
    assert augmented() == 2 * 12 + 12
    for inputs, _, _ in loaders.warmup():
        assert_weak(inputs)
    labeled, unlabeled = loaders.train(pred, np.linspace(0.5, 1, 12))  # strong=False: as ever
    assert all(len(batch) == 4 for batch in labeled) and all(len(b) == 2 for b in unlabeled)
    for x1, x2, _, _ in labeled:
        assert_weak(x1), assert_weak(x2)
    for u1, u2 in unlabeled:
        assert_weak(u1), assert_weak(u2)
    assert augmented() == 3 * 12  # nothing more went through AutoAugment


def test_device_strong_views_leave_the_weak_draws_as_they_were():
    # The strong views are drawn after the weak ones: a batch's weak views are the same with
    # and without --strong_aug (the first batch; later ones follow other draws).
    images = np.random.RandomState(0).randint(0, 256, (12, 32, 32, 3)).astype(np.uint8)
    loaders = DeviceCIFARLoaders('cifar10', images, np.zeros(12, int), images[:4],
                                 np.zeros(4, int), 4, torch.device('cpu'))
    pred, prob = np.arange(12) < 8, np.ones(12)
    firsts = []
    for strong in (False, True):
        torch.manual_seed(0)
        firsts.append(next(iter(loaders.train(pred, prob, strong=strong)[0])))
    for weak, same in zip(firsts[0], firsts[1][:2] + firsts[1][4:]):
        assert torch.equal(weak, same)
    assert not torch.equal(firsts[1][0], firsts[1][2])  # a strong view is another image


def test_both_paths_use_autoaugment_with_the_cifar10_policy_and_grey_fill():
    pil = dataloader_cifar.strong_transform_for('cifar100').transforms
    assert [type(t) for t in pil] == [T.RandomCrop, T.RandomHorizontalFlip, T.AutoAugment,
                                      T.ToTensor, T.Normalize]
    assert pil[2].policy == T.AutoAugmentPolicy.CIFAR10 and pil[2].fill == (FILL,) * 3
    batch = DeviceCIFARLoaders('cifar100', grey_images(2), [0, 1], grey_images(2), [0, 1], 2,
                               torch.device('cpu')).autoaugment
    assert isinstance(batch, BatchAutoAugment) and batch.sub_policies == pil[2].policies


# ---------------------------------------------------------------- b. the SSL step -------------

C = 3


class Seen(nn.Module):
    """A tiny network that records each input it gets, with whether gradients were on."""
    def __init__(self, seen):
        super().__init__()
        self.seen, self.body = seen, nn.Linear(4, C)

    def forward(self, x):
        self.seen.append((x.detach().clone(), torch.is_grad_enabled()))
        return self.body(x)


def constant_view(value, rows=4):
    return torch.full((rows, 4), float(value))


@pytest.mark.parametrize('with_unlabeled', [True, False])
def test_ssl_step_targets_from_weak_views_trains_on_strong_ones(with_unlabeled):
    torch.manual_seed(0)
    np.random.seed(0)
    net_seen, partner_seen = [], []
    net, partner = Seen(net_seen), Seen(partner_seen)
    x1, x2, xs1, xs2 = map(constant_view, (1, 2, 5, 6))  # weak views 1-4, strong ones 5-8
    u1, u2, us1, us2 = map(constant_view, (3, 4, 7, 8)) if with_unlabeled else [None] * 4
    strong = [v for v in (xs1, xs2, us1, us2) if v is not None]
    lam, perm = dm.draw_mix(4 * len(strong), 4, torch.device('cpu'))
    args = script_args(Train_cifar, num_class=C, T=0.5)
    Train_cifar.ssl_step(net, partner, torch.optim.SGD(net.parameters(), lr=0.1), x1, x2,
                         torch.tensor([0, 1, 2, 0]), torch.full((4,), 0.7), u1, u2, lam, perm,
                         torch.tensor(1.), xs1, xs2, us1, us2, args=args)
    *guesses, (trained, grad) = net_seen
    weak = [v for v in (u1, u2, x1, x2) if v is not None]  # co-guessing, then co-refinement
    assert len(guesses) == len(weak) and not any(g for _, g in guesses)
    assert all(torch.equal(seen, view) for (seen, _), view in zip(guesses, weak))
    if with_unlabeled:
        assert len(partner_seen) == 1 and torch.equal(partner_seen[0][0], torch.cat([u1, u2]))
    else:
        assert partner_seen == []
    mixed = torch.cat(strong)
    assert grad and torch.equal(trained, lam * mixed + (1 - lam) * mixed[perm])
    assert trained.min() >= 5  # a weak view would pull a mixed row below 5


def test_ssl_batches_hand_the_strong_views_over_after_the_weak_ones():
    def view(value, n=4):
        return torch.full((n, 2), float(value))
    labeled = DataLoader(TensorDataset(view(1), view(2), view(5), view(6), torch.arange(4),
                                       torch.ones(4)), batch_size=4)
    unlabeled = DataLoader(TensorDataset(view(3), view(4), view(7), view(8)), batch_size=4)
    x1, x2, labels, prob, u1, u2, strong = next(ssl_batches(labeled, unlabeled, 'cpu'))
    assert [v[0, 0].item() for v in (x1, x2, u1, u2) + strong] == [1, 2, 3, 4, 5, 6, 7, 8]
    *_, strong = next(ssl_batches(labeled, None, 'cpu'))
    assert [v[0, 0].item() for v in strong[:2]] == [5, 6] and strong[2:] == (None, None)
    weak_only = DataLoader(TensorDataset(view(1), view(2), torch.arange(4), torch.ones(4)))
    *_, strong = next(ssl_batches(weak_only, None, 'cpu'))
    assert strong == ()


# ---------------------------------------------------------------- c. the draws ----------------

def key(name, magnitude):
    return name, round(magnitude, 4) + 0.  # + 0. makes -0. (an unsigned 0) one key with 0.


def expected_sequences(policy, image_size):
    """{the operations an image gets, in order, as ((name, signed magnitude), ...): probability},
    from the policy table: a sub-policy w.p. 1/25, each of its operations w.p. its probability,
    a signed one with either sign w.p. 1/2."""
    reference = autoaugment(policy)
    space = reference._augmentation_space(10, image_size)
    expected = Counter()
    for sub_policy in reference.policies:
        outcomes = [((), 1. / len(reference.policies))]
        for name, p, magnitude_bin in sub_policy:
            magnitudes, signed = space[name]
            m = float(magnitudes[magnitude_bin]) if magnitude_bin is not None else 0.
            fired = [(key(name, s * m), p / 2) for s in (1, -1)] if signed else [
                (key(name, m), p)]
            outcomes = [(ops + (op,), q * r) for ops, q in outcomes for op, r in fired] + [
                (ops, q * (1 - p)) for ops, q in outcomes]
        for ops, q in outcomes:
            expected[ops] += q
    return expected


def id_images(n, size):
    """n images (n, H, W, 3) whose first two channels spell their number."""
    images = np.zeros((n,) + size + (3,), dtype=np.uint8)
    images[..., 0], images[..., 1] = (np.arange(n) % 256)[:, None, None], (
        np.arange(n) // 256)[:, None, None]
    return images


def record_pil_path(monkeypatch, policy, images):
    """The operations torchvision's AutoAugment (PIL) applies to each image, in order."""
    ops = [[] for _ in images]

    def record(img, name, magnitude, interpolation, fill):
        r, g = np.asarray(img)[0, 0, :2]
        ops[int(r) + 256 * int(g)].append(key(name, magnitude))
        return img
    monkeypatch.setattr(tv_autoaugment, '_apply_op', record)
    transform = autoaugment(policy)
    for img in images:
        transform(Image.fromarray(img))
    return [tuple(o) for o in ops]


def record_batch_path(monkeypatch, policy, images):
    """The operations BatchAutoAugment applies to each row of a batch, in order."""
    ops = [[] for _ in images]

    def record(batch, name, magnitude, interpolation, fill):
        for r, g in batch[:, :2, 0, 0].tolist():
            ops[r + 256 * g].append(key(name, magnitude))
        return batch
    monkeypatch.setattr(utils.augment, '_apply_op', record)
    BatchAutoAugment(policy, images.shape[1:3])(torch.from_numpy(images).permute(0, 3, 1, 2))
    return [tuple(o) for o in ops]


def assert_frequencies(counts, probabilities, n, sigmas=5):
    """Each count within `sigmas` binomial standard errors of n p; none where p is 0."""
    for cell in sorted(set(counts) | set(probabilities), key=repr):  # the same order each run
        p, count = probabilities.get(cell, 0.), counts.get(cell, 0)
        assert p > 0 or count == 0, ('never drawn by the policy', cell, count)
        assert abs(count - n * p) <= sigmas * math.sqrt(n * p * (1 - p)) + 1, (
            cell, count, n * p)


def assert_drawn_as_the_policy_says(sequences, policy, image_size):
    n = len(sequences)
    probabilities = expected_sequences(policy, image_size)
    assert_frequencies(Counter(sequences), probabilities, n)  # each image's operations, in order
    per_op = Counter()  # and how often each operation fires with each magnitude
    for ops, p in probabilities.items():
        for op in ops:
            per_op[op] += p
    assert_frequencies(Counter(op for ops in sequences for op in ops), per_op, n)


@pytest.mark.parametrize('policy, size, n', [('cifar10', (32, 32), 4000),
                                             ('imagenet', (64, 96), 1500)])
def test_both_paths_draw_as_the_policy_says(policy, size, n, monkeypatch):
    # (64, 96): not square, so a height taken for a width would change TranslateX's magnitudes
    torch.manual_seed(0)
    images = id_images(n, size)
    assert_drawn_as_the_policy_says(record_pil_path(monkeypatch, policy, images), policy, size)
    assert_drawn_as_the_policy_says(record_batch_path(monkeypatch, policy, images), policy, size)


def test_the_draw_check_fails_when_signs_are_not_drawn(monkeypatch):
    # The check above can fail: BatchAutoAugment with every sign positive is caught.
    draw = BatchAutoAugment.draw
    monkeypatch.setattr(BatchAutoAugment, 'draw', lambda self, count: (
        *draw(self, count)[:2], torch.ones(count, 2, dtype=torch.long)))
    torch.manual_seed(0)
    sequences = record_batch_path(monkeypatch, 'cifar10', id_images(2000, (32, 32)))
    with pytest.raises(AssertionError):  # the all-positive cells are twice as frequent
        assert_drawn_as_the_policy_says(sequences, 'cifar10', (32, 32))


# ---------------------------------------------------------------- d. the same results ---------

def smooth_images(n, size=(32, 32), seed=0):
    """Photo-like test images: coarse random colour fields blown up smoothly, plus noise."""
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, 3, 4, 4, generator=g) * 255
    images = nn.functional.interpolate(coarse, size=size, mode='bilinear', align_corners=False)
    images = images + torch.randn(n, 3, *size, generator=g) * 12
    return images.clamp(0, 255).round().to(torch.uint8)


# Colour operations blend in floats: PIL rounds the blend to the nearest integer, torchvision's
# tensor version truncates it (and Contrast's grey mean is PIL's rounded integer histogram mean
# against a float mean; AutoContrast's and Sharpness' lookups round the same way), so these
# differ by at most 1 where they differ; the lookup-table ones are exact.
OFF_BY_ONE = {'Brightness', 'Color', 'Contrast', 'Sharpness', 'AutoContrast'}
# Geometric operations (nearest neighbour, fill 128) sample each output pixel at a point
# computed in floats; where that point falls (up to rounding) halfway between two pixels, PIL
# and torch's grid_sample may round it to different neighbours. At 32 x 32 with the CIFAR-10
# policy's angles and shears no point does (exact); at other sizes and angles (Rotate at 10
# degrees on 64 x 64) a fraction of a percent of the pixels take a neighbour's value.
GEOMETRIC = {'Rotate', 'ShearX', 'ShearY', 'TranslateX', 'TranslateY'}


@pytest.mark.parametrize('policy, size, ties', [('cifar10', (32, 32), 0.),
                                                ('imagenet', (40, 56), 0.02)])
def test_each_operation_gives_torchvision_pil_result(policy, size, ties, monkeypatch):
    """Each operation of the policy at the magnitude it uses, with both signs: BatchAutoAugment
    on a batch against torchvision's AutoAugment on each PIL image, with the same draws."""
    images = smooth_images(6, size)
    batch_aa, pil_aa = BatchAutoAugment(policy, size), autoaugment(policy)
    checked = set()
    for k, sub_policy in enumerate(batch_aa.sub_policies):
        for slot, (name, _, magnitude_bin) in enumerate(sub_policy):
            for sign in (0, 1):
                fires = torch.zeros(len(images), 2, dtype=torch.bool)
                fires[:, slot] = True  # this operation alone
                signs = torch.full((len(images), 2), sign)
                monkeypatch.setattr(batch_aa, 'draw', lambda count: (
                    torch.full((count,), k), fires, signs))
                got = batch_aa(images)
                probs = torch.tensor([0., 2.]) if slot == 0 else torch.tensor([2., 0.])
                monkeypatch.setattr(pil_aa, 'get_params', lambda count: (k, probs, signs[0]))
                pil = np.stack([np.asarray(pil_aa(Image.fromarray(img)))
                                for img in images.permute(0, 2, 3, 1).numpy()])
                diff = np.abs(got.permute(0, 2, 3, 1).numpy().astype(int) - pil)
                allowed = 1 if name in OFF_BY_ONE else 0
                moved = (diff > allowed).any(-1).mean()  # pixels that differ more
                assert moved <= (ties if name in GEOMETRIC else 0), (name, sign, moved)
                checked.add(name)
    assert checked == {name for sub in batch_aa.sub_policies for name, _, _ in sub}


THRESHOLDED = {'Equalize', 'Solarize', 'Posterize'}  # a 1 apart in, maybe far apart out


def test_whole_sub_policies_match_pil(monkeypatch):
    """Both operations of each CIFAR-10 sub-policy in turn: within 1 of PIL's result, except
    where a colour operation's off-by-one feeds a thresholded one (Color then Equalize: a value
    1 apart can fall into another bin of the equalising histogram); there a few percent of the
    pixels differ more."""
    images = smooth_images(4)
    batch_aa, pil_aa = BatchAutoAugment('cifar10', (32, 32)), autoaugment('cifar10')
    fires = torch.ones(len(images), 2, dtype=torch.bool)
    signs = torch.tensor([[1, 0]] * len(images))
    for k, ((first, _, _), (second, _, _)) in enumerate(batch_aa.sub_policies):
        monkeypatch.setattr(batch_aa, 'draw', lambda count: (torch.full((count,), k), fires,
                                                             signs))
        got = batch_aa(images)
        monkeypatch.setattr(pil_aa, 'get_params', lambda count: (k, torch.zeros(2), signs[0]))
        pil = np.stack([np.asarray(pil_aa(Image.fromarray(img)))
                        for img in images.permute(0, 2, 3, 1).numpy()])
        far = (np.abs(got.permute(0, 2, 3, 1).numpy().astype(int) - pil) > 1).mean()
        amplified = first in OFF_BY_ONE and second in THRESHOLDED
        assert far <= (0.1 if amplified else 0), (k, first, second, far)


# ---------------------------------------------------------------- e. resume -------------------

STRONG_PREFIX = 'cifar10_0.5_sym_strong_aug_strong_warmup'


def small_args(data, out, *extra):
    return tiny_args(data, out, '--width', '4', '--num_train', '48', '--num_test', '32',
                     *extra)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    write_fake_cifar(root, 'cifar10')
    return root


@pytest.mark.slow
@pytest.mark.parametrize('path', [[], ['--plain']])
def test_resume_with_strong_augmentation_is_exact(path, data, tmp_path):
    strong = ['--strong_aug', '--strong_warmup'] + path
    whole, split = str(tmp_path / 'whole'), str(tmp_path / 'split')
    assert run_cli(Train_cifar.main, small_args(data, whole, *strong)) == 0
    assert run_cli(Train_cifar.main, small_args(data, split, '--num_epochs', '2', *strong)) == 0
    assert run_cli(Train_cifar.main, small_args(data, split, '--resume', *strong)) == 0
    assert_same(outcome(split, STRONG_PREFIX), outcome(whole, STRONG_PREFIX))


@pytest.mark.slow
def test_a_run_saved_before_strong_augmentation_resumes(data, tmp_path, capsys):
    # and before C2D's switches (--arch, --pretrained, --lr_drop_every, --warmup_clip_grad_norm)
    out = str(tmp_path / 'run')
    assert run_cli(Train_cifar.main, small_args(data, out, '--num_epochs', '2')) == 0
    prefix = os.path.join(out, 'cifar10_0.5_sym')
    declared = Train_cifar.argument_parser().declared
    later = {switch: declared[switch].before for switch in (
        'strong_aug', 'strong_warmup', 'arch', 'pretrained', 'lr_drop_every',
        'warmup_clip_grad_norm', 'mixture')}  # what the runs saved before them had
    checkpoint = torch.load(prefix + '_last.pth', weights_only=True)
    for switch in later:
        del checkpoint['args'][switch]
    torch.save(checkpoint, prefix + '_last.pth')
    with open(prefix + '_args.json') as f:
        saved = json.load(f)
    assert {switch: saved.pop(switch) for switch in later} == later
    with open(prefix + '_args.json', 'w') as f:
        json.dump(saved, f)
    capsys.readouterr()
    # a new start there names the run as it is: the same settings, not two new ones
    assert run_cli(Train_cifar.main, small_args(data, out, '--num_epochs', '2')) == 2
    assert 'with the same settings: add --resume' in capsys.readouterr().err
    assert run_cli(Train_cifar.main, small_args(data, out, '--resume')) == 0
    assert 'resuming after epoch 1' in capsys.readouterr().out
    assert torch.load(prefix + '_last.pth', weights_only=True)['epoch'] == 2


# ---------------------------------------------------------------- f. the argument rule --------

@pytest.mark.parametrize('conflict', [['--method', 'ce'], ['--no_augmentation']])
def test_strong_aug_needs_dividemix_with_augmentation(conflict, data, tmp_path, capsys):
    out = tmp_path / 'out'
    assert run_cli(Train_cifar.main, small_args(data, str(out), '--strong_aug', *conflict)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('error: --strong_aug') and conflict[0] in err[0]
    assert not out.exists()
