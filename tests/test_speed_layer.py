"""The fast path (Train_cifar.py's default) against the plain one (--plain): same batches in
distribution, same loaders' contract, a network wrapper that changes nothing but precision."""
import copy
import os

import numpy as np
import pytest
import torch
import torch.nn as nn
import torchvision.transforms.functional as TF
from PIL import Image

import Train_cifar
from dataloader_cifar import (CIFARLoaders, DeviceCIFARLoaders, load_cifar, random_crop_flip,
                              transforms_for)
from utils.distributed import unwrap
from utils.speed import FastForward, prepare

CPU = torch.device('cpu')


def all_crops_and_flips(pil, padding=4):
    """Every output RandomCrop(32, padding) + RandomHorizontalFlip + ToTensor + Normalize can
    give for `pil`, built with torchvision's functional ops: (2 * 9 * 9, 3072)."""
    _, normalise = transforms_for('cifar10')
    padded = TF.pad(pil, padding)  # zero fill
    out = []
    for top in range(2 * padding + 1):
        for left in range(2 * padding + 1):
            crop = TF.crop(padded, top, left, 32, 32)
            out += [normalise(crop), normalise(TF.hflip(crop))]
    return torch.stack(out).flatten(1)


def outcome_of(samples, candidates):
    """Index of the candidate each sample equals (to float rounding); fails if none does."""
    dist = torch.cdist(samples.flatten(1).double(), candidates.double())
    best = dist.min(1)
    assert best.values.max() < 1e-3, 'a sample is no crop/flip of the image'
    return best.indices


def test_batched_crop_flip_has_the_pil_transforms_distribution():
    rng = np.random.RandomState(0)
    image = rng.randint(1, 256, (32, 32, 3)).astype(np.uint8)  # no zeros: padding is visible
    candidates = all_crops_and_flips(Image.fromarray(image))
    assert len(torch.unique(candidates, dim=0)) == 162  # all outcomes distinct

    # The plain path (PIL transforms) only ever gives these 162 outcomes...
    train_transform, _ = transforms_for('cifar10')
    torch.manual_seed(0)
    plain = torch.stack([train_transform(Image.fromarray(image)) for _ in range(300)])
    outcome_of(plain, candidates)

    # ...and the fast path gives the same ones, uniformly: offsets and flips independent and
    # uniform, padding zeros (a zero pixel normalises to -mean/std, as in the candidates).
    torch.manual_seed(0)
    n = 162 * 60
    loaders = DeviceCIFARLoaders('cifar10', image[None].repeat(n, 0), [0] * n, image[None],
                                 [0], 64, CPU)
    fast = loaders._views(loaders.train_images, copies=1)[0]
    counts = torch.bincount(outcome_of(fast, candidates), minlength=162).double()
    expected = n / 162
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 214.3  # 0.1% critical value of chi-square with 161 degrees of freedom
    assert counts.min() > 0
    flipped = counts.view(81, 2)[:, 1].sum() / n
    assert abs(flipped - 0.5) < 0.02


def test_crop_flip_reads_columns_backwards_and_pads_with_zeros():
    torch.manual_seed(1)
    img = torch.arange(1, 1 + 2 * 5 * 5).view(1, 2, 5, 5)
    out = random_crop_flip(img.repeat(400, 1, 1, 1), padding=2)
    assert out.shape == (400, 2, 5, 5)
    padded = torch.nn.functional.pad(img[0], (2,) * 4)
    for o in out[:50]:
        # find the crop: the one place the output (or its mirror) sits in the padded image
        found = [(t, l, f) for t in range(5) for l in range(5) for f in (False, True)
                 if torch.equal(padded[:, t:t + 5, l:l + 5].flip(2) if f
                                else padded[:, t:t + 5, l:l + 5], o)]
        assert len(found) == 1
    # both views of a batch are augmented independently
    a, b = out[:200], out[200:]
    assert not torch.equal(a, b)


@pytest.fixture
def tiny_data(cifar10_dir):
    train, clean, test, test_labels = load_cifar(cifar10_dir, 'cifar10', False)
    noisy = (np.asarray(clean) + np.arange(len(clean)) % 2) % 10
    return train[:50], noisy[:50], test[:30], test_labels[:30]


def test_device_loaders_follow_the_plain_loaders_contract(tiny_data):
    train, noisy, test, test_labels = tiny_data
    plain = CIFARLoaders('cifar10', train, noisy, test, test_labels, 8, eval_batch_size=16)
    fast = DeviceCIFARLoaders('cifar10', train, noisy, test, test_labels, 8, CPU,
                              eval_batch_size=16)
    # unaugmented loaders: identical batches, in order
    for make in ('eval_train', 'test'):
        p_batches, f_batches = list(getattr(plain, make)()), list(getattr(fast, make)())
        assert len(f_batches) == len(p_batches) == len(getattr(fast, make)())
        for p, f in zip(p_batches, f_batches):
            assert torch.allclose(p[0], f[0], atol=1e-5)
            for pi, fi in zip(p[1:], f[1:]):
                assert torch.equal(torch.as_tensor(pi), fi)
    # warm-up: every image once per epoch, shuffled, with its noisy label and index
    warm = fast.warmup()
    assert len(warm) == len(plain.warmup()) and len(warm.dataset) == 50
    seen = torch.cat([idx for _, _, idx in warm])
    assert sorted(seen.tolist()) == list(range(50)) and seen.tolist() != list(range(50))
    for x, labels, idx in warm:
        assert torch.equal(labels, torch.as_tensor(noisy)[idx]) and x.shape[1:] == (3, 32, 32)

    # training loaders: labeled rows carry their label and clean probability
    pred = np.arange(50) % 3 != 0
    prob = np.linspace(0, 1, 50)
    labeled, unlabeled = fast.train(pred, prob)
    p_labeled, p_unlabeled = plain.train(pred, prob)
    assert (len(labeled), len(unlabeled)) == (len(p_labeled), len(p_unlabeled))
    assert labeled.batch_size == p_labeled.batch_size and len(labeled.dataset) == pred.sum()
    pairs = sorted((int(y), round(float(w), 6)) for _, _, ys, ws in labeled
                   for y, w in zip(ys, ws))
    p_pairs = sorted((int(y), round(float(w), 6)) for _, _, ys, ws in p_labeled
                     for y, w in zip(ys, ws))
    assert pairs == p_pairs
    x1, x2, _, _ = next(iter(labeled))
    assert not torch.equal(x1, x2)  # two independent views
    assert sum(len(u1) for u1, _ in unlabeled) == (~pred).sum()
    # without augmentation both views are the normalised image
    x1, x2, _, _ = next(iter(fast.train(pred, prob, augment=False)[0]))
    assert torch.equal(x1, x2)
    # an empty side gives None, as in the plain loaders
    assert fast.train(np.ones(50, bool), prob)[1] is None


def test_fast_forward_changes_precision_only():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).eval()
    x = torch.randn(5, 3, 8, 8)
    reference = net(x)
    keys = list(net.state_dict())
    exact = FastForward(net, CPU, bf16=False)
    assert torch.allclose(exact(x), reference, atol=1e-5)  # channels_last alone: same numbers
    low = FastForward(net, CPU, bf16=True)
    out = low(x)
    assert out.dtype == torch.float32  # logits come back fp32 for the losses
    assert torch.allclose(out, reference, atol=0.05, rtol=0.05)
    assert not torch.equal(out, reference)  # it did run in bf16
    wrapped = prepare(net, CPU, fast=True)
    assert unwrap(wrapped) is net and list(unwrap(wrapped).state_dict()) == keys
    assert prepare(net, CPU, fast=False) is net


@pytest.mark.slow
def test_plain_switch_turns_every_speed_up_off(cifar10_dir, tmp_path, monkeypatch):
    made = []
    for name in ('CIFARLoaders', 'DeviceCIFARLoaders', 'prepare'):
        real = getattr(Train_cifar, name)
        monkeypatch.setattr(Train_cifar, name,
                            lambda *a, _real=real, _name=name, **k: made.append(
                                (_name, a[2] if _name == 'prepare' else None)) or _real(*a, **k))

    def tiny(epochs, out):
        return ['--data_path', cifar10_dir, '--width', '8', '--num_epochs', str(epochs),
                '--warm_up', '1', '--batch_size', '16', '--num_workers', '0', '--no-figures',
                '--num_train', '64',
                '--num_test', '32', '--out_dir', str(tmp_path / out)]
    Train_cifar.main(tiny(2, 'plain') + ['--plain'])
    assert made == [('CIFARLoaders', None), ('prepare', False), ('prepare', False)]
    made.clear()
    Train_cifar.main(tiny(2, 'fast'))
    assert made == [('DeviceCIFARLoaders', None), ('prepare', True), ('prepare', True)]
    # a run may be resumed with the other path (same method, other arithmetic)
    Train_cifar.main(tiny(3, 'fast') + ['--resume', '--plain'])
    assert len(open(os.path.join(tmp_path, 'fast', 'cifar10_0.5_sym_acc.txt')).readlines()) == 3


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='CUDA graphs need a GPU')
def test_cuda_graph_step_trains_like_eager_steps():
    device = torch.device('cuda')
    from utils.speed import CUDAGraphStep
    torch.manual_seed(0)
    start = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4)).to(device)
    batches = [(torch.randn(16, 3, 8, 8, device=device), torch.randint(0, 4, (16,), device=device))
               for _ in range(8)] + [(torch.randn(5, 3, 8, 8, device=device),
                                      torch.randint(0, 4, (5,), device=device))]
    results = []
    for graphed in (False, True):
        net = copy.deepcopy(start)
        opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)

        def step(x, y):
            loss = nn.functional.cross_entropy(net(x), y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            return loss.detach()
        run = CUDAGraphStep(step) if graphed else step
        losses = [run(x, y).item() for x, y in batches]  # the last, partial batch runs eagerly
        results.append((losses, torch.cat([p.flatten() for p in net.parameters()])))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-4)
    assert torch.allclose(results[0][1], results[1][1], rtol=1e-3, atol=1e-5)


def test_speed_ups_say_what_prepare_set():
    from PreResNet import ResNet18
    from utils.speed import has_bf16, prepare, speed_ups
    cpu = torch.device('cpu')
    assert speed_ups(prepare(ResNet18(10, 8), cpu, fast=True)) == (has_bf16(cpu), True)
    assert speed_ups(prepare(ResNet18(10, 8), cpu, fast=False)) == (False, False)


def views_and_nets(bf16=False):
    """Four views unlike each other (each its own BatchNorm statistics), and the same
    PreAct-ResNet18 in train mode behind FastForward twice: one call per view, and one call."""
    from PreResNet import ResNet18
    torch.manual_seed(0)
    start = ResNet18(10, 8)
    views = [torch.randn(16, 3, 32, 32) * (1 + k) + k for k in range(4)]
    separate = FastForward(copy.deepcopy(start), CPU, bf16, views_in_one_call=False).train()
    batched = FastForward(copy.deepcopy(start).to(memory_format=torch.channels_last), CPU, bf16,
                          views_in_one_call=True).train()
    return views, separate, batched


def test_views_in_one_call_compute_what_one_call_per_view_computes():
    from utils.speed import per_view
    views, separate, batched = views_and_nets()
    with torch.no_grad():
        merged = copy.deepcopy(separate)(torch.cat(views)).chunk(4)  # no BatchNorm per view
        expected, got = per_view(separate, *views), per_view(batched, *views)
    for e, g, m in zip(expected, got, merged):
        assert torch.allclose(g, e, atol=1e-4) and not torch.allclose(m, e, atol=0.1)
    # the running statistics took the four updates in order, as four calls make them
    want, have = separate.module.state_dict(), batched.module.state_dict()
    assert want['bn1.num_batches_tracked'] == have['bn1.num_batches_tracked'] == 4
    for key in want:
        assert torch.allclose(have[key].float(), want[key].float(), rtol=1e-5, atol=1e-5), key
    assert not any('forward' in vars(m) for m in batched.modules())  # the class's forward again


def test_views_in_one_call_in_bf16_and_in_eval_mode():
    from utils.speed import per_view
    views, separate, batched = views_and_nets(bf16=True)
    with torch.no_grad():
        for e, g in zip(per_view(separate, *views), per_view(batched, *views)):
            assert g.dtype == torch.float32 and torch.allclose(g, e, atol=0.1, rtol=0.05)
        separate.eval(), batched.eval()
        for e, g in zip(per_view(separate, *views), per_view(batched, *views)):
            assert torch.allclose(g, e, atol=0.1, rtol=0.05)


def test_per_view_skips_missing_views_and_calls_unequal_ones_apart(monkeypatch):
    from utils.speed import per_view
    views, separate, batched = views_and_nets()
    shapes = []
    monkeypatch.setattr(batched.module, 'forward',
                        lambda x, _f=batched.module.forward: shapes.append(len(x)) or _f(x))
    with torch.no_grad():
        out = per_view(batched, None, views[0], None, views[1])
        assert out[0] is None and out[2] is None and shapes == [32]  # one call of two views
        uneven = per_view(batched, views[0], views[1][:5])  # a last, partial batch
        assert shapes == [32, 16, 5]
        expected = per_view(separate, views[0], views[1], views[0], views[1][:5])
    assert torch.allclose(out[1], expected[0], atol=1e-4)
    assert torch.allclose(out[3], expected[1], atol=1e-4)
    assert torch.allclose(uneven[1], expected[3], atol=1e-4)


def test_ssl_step_with_views_in_one_call_trains_like_one_call_per_view():
    views, separate, batched = views_and_nets()
    partner = FastForward(copy.deepcopy(separate.module), CPU, False).eval()
    args = Train_cifar.parse_args(['--width', '8'])
    args.num_class, args.no_label_refinement = 10, False
    labels = torch.arange(16) % 10
    clean_prob = torch.linspace(0, 1, 16)
    lam, perm = torch.tensor(0.7), torch.randperm(64)
    results = []
    for net in (separate, batched):
        optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
        losses = Train_cifar.ssl_step(net, partner, optimizer, views[2], views[3], labels,
                                      clean_prob, views[0], views[1], lam, perm,
                                      torch.tensor(25.0), args=args)
        results.append((torch.stack(losses), torch.cat([p.flatten() for p in
                                                        net.module.parameters()])))
    assert torch.allclose(results[0][0], results[1][0], rtol=1e-4)
    assert torch.allclose(results[0][1], results[1][1], atol=1e-5)


def test_views_in_one_call_only_on_one_gpu():
    from PreResNet import ResNet18
    assert not prepare(ResNet18(10, 8), CPU, fast=True).views_in_one_call  # CPU: as it was
    if torch.cuda.is_available():
        gpu = torch.device('cuda')
        assert prepare(ResNet18(10, 8).to(gpu), gpu, fast=True).views_in_one_call
        assert not prepare(ResNet18(10, 8).to(gpu), gpu, True, True).views_in_one_call


@pytest.mark.parametrize('affine', [True, False])
def test_batch_norm_per_view_keeps_memory_format_and_takes_any_batch_norm(affine):
    from utils.speed import batch_norm_per_view
    torch.manual_seed(0)
    x = torch.randn(16, 8, 6, 6).contiguous(memory_format=torch.channels_last) * 3 + 1
    bn, separate = nn.BatchNorm2d(8, affine=affine), nn.BatchNorm2d(8, affine=affine)
    if affine:
        with torch.no_grad():
            for m in (bn, separate):
                m.weight.copy_(torch.linspace(0.5, 2, 8))
                m.bias.copy_(torch.linspace(-1, 1, 8))
    out = batch_norm_per_view(bn, 4, x)
    expected = torch.cat([separate(view) for view in x.chunk(4)])
    assert out.is_contiguous(memory_format=torch.channels_last)  # the next conv's layout
    assert torch.allclose(out, expected, atol=1e-5)
    assert torch.allclose(bn.running_var, separate.running_var, atol=1e-6)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
def test_views_in_one_call_on_the_gpu_inside_a_cuda_graph():
    from PreResNet import ResNet18
    from utils.speed import CUDAGraphStep, per_view
    gpu = torch.device('cuda')
    torch.manual_seed(0)
    start = ResNet18(10, 8).to(gpu)
    views = [torch.randn(16, 3, 32, 32, device=gpu) * (1 + k) + k for k in range(4)]
    separate = prepare(copy.deepcopy(start), gpu)
    separate.views_in_one_call = False
    batched = prepare(copy.deepcopy(start), gpu)
    assert batched.views_in_one_call
    outputs = []
    for net in (separate, batched):
        net.train()
        step = CUDAGraphStep(lambda *v, _net=net: tuple(per_view(_net, *v)))
        with torch.no_grad():
            for _ in range(5):  # eager calls, the capture, then replays
                out = step(*views)
        outputs.append((out, net.module.state_dict()))
    for e, g in zip(outputs[0][0], outputs[1][0]):
        assert torch.allclose(g, e, atol=0.1, rtol=0.05)  # bf16
    for key, value in outputs[0][1].items():
        assert torch.allclose(outputs[1][1][key].float(), value.float(), rtol=1e-2,
                              atol=1e-3), key
