"""Strong augmentation (AugDesc-WS: --strong_aug, --strong_warmup) in Train_imagefolder.py,
Train_clothing1M.py and Train_webvision.py: each loader gives two strong views more per SSL item
and warms up on strong views when asked, only the strong views pass through AutoAugment, each
script picks its policy, a run names its files apart from the paper's, and the rule is one
line."""
import json
import os

import numpy as np
import pytest
import torch
import torchvision.transforms as T
from PIL import Image

import dataloader_clothing1M
import dataloader_imagefolder
import dataloader_webvision
import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
import utils.augment
from dataloader_imagefolder import IMAGENET_MEAN, IMAGENET_STD, ImageFolderData, ImageFolderLoaders
from PreResNet import ResNet18
from test_clothing1M_data import make_clothing1m
from test_imagefolder_data import make_image_folder
from test_webvision_data import make_webvision
from utils.cli import run_cli

WHITE = (255, 255, 255)  # no fixture image is white: a white view went through the marker


@pytest.fixture
def policies(monkeypatch):
    """utils.augment.autoaugment replaced by a marker that paints the image white and records
    the policy it was built with, once per image it augments (patched before any loader is
    built: the strong transforms are built with the loaders)."""
    calls = []

    def marker(policy):
        def paint(img):
            calls.append(policy)
            return Image.new('RGB', img.size, WHITE)
        return paint
    monkeypatch.setattr(utils.augment, 'autoaugment', marker)
    return calls


def is_white(view, mean, std):
    white = ((1 - torch.tensor(mean)) / torch.tensor(std)).view(3, 1, 1)
    return torch.allclose(view, white.expand_as(view), atol=1e-5)


# Per script: its loaders on a tiny dataset (built in tmp_path), the mean and std its views are
# normalised with, and train() on a division (pred, prob) of the images eval_train() covers.
def imagefolder_loaders(tmp_path):
    make_image_folder(tmp_path / 'data' / 'train', per_class=4)
    sizes = ('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    loaders = ImageFolderLoaders(
        ImageFolderData(str(tmp_path / 'data')), 4, 0,
        *dataloader_imagefolder.transforms_for(*sizes),
        strong_transform=dataloader_imagefolder.strong_transform_for(*sizes))
    return loaders, (IMAGENET_MEAN, IMAGENET_STD), lambda: loaders.warmup(strong=True), (
        lambda pred, prob, **strong: loaders.train(pred, prob, **strong))


def clothing1m_loaders(tmp_path):
    data = dataloader_clothing1M.Clothing1M(make_clothing1m(tmp_path / 'clothing1m'))
    loaders = dataloader_clothing1M.Clothing1MLoaders(data, batch_size=4, resize=16, crop=12)
    pool = np.arange(len(data.train_paths))
    return loaders, (dataloader_clothing1M.MEAN, dataloader_clothing1M.STD), (
        lambda: loaders.warmup(28, strong=True)), (
        lambda pred, prob, **strong: loaders.train(pred, prob, pool, **strong))


def webvision_loaders(tmp_path):
    root = str(tmp_path / 'webvision')
    make_webvision(root, per_class=4)
    loaders = dataloader_webvision.WebVisionLoaders(dataloader_webvision.WebVision(root, 3),
                                                    batch_size=2, resize=16, crop=12)
    return loaders, dataloader_webvision.IMAGENET_MEAN_STD, (
        lambda: loaders.warmup(strong=True)), (
        lambda pred, prob, **strong: loaders.train(pred, prob, **strong))


LOADERS = {'imagefolder': (imagefolder_loaders, 'cifar10'),
           'clothing1m': (clothing1m_loaders, 'imagenet'),
           'webvision': (webvision_loaders, 'imagenet')}


@pytest.mark.parametrize('script', sorted(LOADERS))
def test_strong_views_go_through_autoaugment_and_weak_ones_never(script, policies, tmp_path):
    make, policy = LOADERS[script]
    loaders, (mean, std), strong_warmup, train = make(tmp_path)
    n = len(loaders.data.train_paths)
    pred, prob = np.arange(n) % 2 == 0, np.full(n, 0.75)

    labeled, unlabeled = train(pred, prob, strong=True)
    weak1, weak2, strong1, strong2, label, clean_prob = labeled.dataset[0]
    assert policies == [policy] * 2  # one AutoAugment per strong view, with the script's policy
    assert is_white(strong1, mean, std) and is_white(strong2, mean, std)
    assert not is_white(weak1, mean, std) and not is_white(weak2, mean, std)
    assert label == loaders.data.train_labels[0] and clean_prob == pytest.approx(0.75)
    views = unlabeled.dataset[0]
    assert len(views) == 4 and len(policies) == 4
    assert [is_white(v, mean, std) for v in views] == [False, False, True, True]
    batch = next(iter(labeled))  # the strong views travel in the batch, after the weak ones
    assert len(batch) == 6 and batch[2].shape == batch[0].shape

    warmup = strong_warmup().dataset
    assert all(is_white(warmup[k][0], mean, std) for k in range(3))
    del policies[:]
    # without strong=True, and in co-divide's pass, nothing is strongly augmented
    labeled, unlabeled = train(pred, prob)
    assert len(labeled.dataset[0]) == 4 and len(unlabeled.dataset[0]) == 2
    assert not is_white(loaders.warmup(*([28] if script == 'clothing1m' else [])).dataset[0][0],
                        mean, std)
    assert not is_white(loaders.eval_train().dataset[0][0], mean, std)
    assert policies == []


def test_imagefolder_loaders_need_a_strong_transform_for_strong_views(tmp_path):
    make_image_folder(tmp_path / 'data' / 'train', per_class=2)
    transforms = dataloader_imagefolder.transforms_for('preact18', 8, 8, IMAGENET_MEAN,
                                                       IMAGENET_STD)
    loaders = ImageFolderLoaders(ImageFolderData(str(tmp_path / 'data')), 2, 0, *transforms)
    with pytest.raises(ValueError, match='strong_transform'):
        loaders.warmup(strong=True)


def kinds(transform):
    return [type(t).__name__ for t in transform.transforms]


@pytest.mark.parametrize('weak, strong, policy', [
    (dataloader_imagefolder.transforms_for('preact18', 32, 32, IMAGENET_MEAN, IMAGENET_STD)[0],
     dataloader_imagefolder.strong_transform_for('preact18', 32, 32, IMAGENET_MEAN,
                                                 IMAGENET_STD), T.AutoAugmentPolicy.CIFAR10),
    (dataloader_imagefolder.transforms_for('resnet50', 224, 256, IMAGENET_MEAN, IMAGENET_STD)[0],
     dataloader_imagefolder.strong_transform_for('resnet50', 224, 256, IMAGENET_MEAN,
                                                 IMAGENET_STD), T.AutoAugmentPolicy.IMAGENET),
    (dataloader_clothing1M.transforms_for()[0], dataloader_clothing1M.strong_transform_for(),
     T.AutoAugmentPolicy.IMAGENET),
    (dataloader_webvision.transforms_for(320, 299)[0],
     dataloader_webvision.strong_transform_for(320, 299), T.AutoAugmentPolicy.IMAGENET),
], ids=['imagefolder_preact18', 'imagefolder_resnet50', 'clothing1m', 'webvision'])
def test_strong_transform_is_the_weak_one_with_autoaugment_before_to_tensor(weak, strong,
                                                                          policy):
    pil_steps = kinds(weak)[:-2]
    assert kinds(weak)[-2:] == ['ToTensor', 'Normalize']
    assert kinds(strong) == pil_steps + ['AutoAugment', 'ToTensor', 'Normalize']
    auto = strong.transforms[len(pil_steps)]
    assert auto.policy == policy and tuple(auto.fill) == (utils.augment.FILL,) * 3


def test_clothing1m_transforms_are_the_authors():
    train, test = dataloader_clothing1M.transforms_for()
    assert kinds(train) == ['Resize', 'RandomCrop', 'RandomHorizontalFlip', 'ToTensor',
                            'Normalize']
    assert kinds(test) == ['Resize', 'CenterCrop', 'ToTensor', 'Normalize']
    assert train.transforms[0].size == test.transforms[0].size == 256
    assert train.transforms[1].size == test.transforms[1].size == (224, 224)
    assert train.transforms[-1].mean == dataloader_clothing1M.MEAN


@pytest.mark.parametrize('main, data_flag', [(Train_cifar.main, '--data_path'),
                                             (Train_imagefolder.main, '--data_path'),
                                             (Train_clothing1M.main, '--data_path'),
                                             (Train_webvision.main, '--data_path')])
def test_strong_warmup_without_a_warm_up_is_one_line(main, data_flag, tmp_path, capsys):
    out = tmp_path / 'out'
    code = run_cli(main, [data_flag, str(tmp_path / 'none'), '--out_dir', str(out),
                          '--strong_warmup', '--warm_up', '0'])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    assert err.startswith('error: --strong_warmup warms up on strongly augmented images, and '
                          '--warm_up 0 has no warm-up')
    assert not out.exists()


def test_switches_and_their_help():
    for script in (Train_imagefolder, Train_clothing1M, Train_webvision):
        args = script.parse_args([])
        assert not args.strong_aug and not args.strong_warmup  # off by default
        args = script.parse_args(['--strong_aug', '--strong_warmup'])
        assert script.argument_parser().run_name_parts(args) == '_strong_aug_strong_warmup'
    assert Train_webvision.argument_parser().run_name_parts(
        Train_webvision.parse_args(['--strong_warmup'])) == '_strong_warmup'


# ---------------------------------------------------------------- end to end ------------------

@pytest.fixture
def counted(monkeypatch):
    """The real AutoAugment, counting the images each policy augments."""
    calls = []
    real = utils.augment.autoaugment

    def counting(policy):
        augment = real(policy)

        def apply(img):
            calls.append(policy)
            return augment(img)
        return apply
    monkeypatch.setattr(utils.augment, 'autoaugment', counting)
    return calls


def records(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


STRONG = ['--strong_aug', '--strong_warmup', '--warm_up', '1', '--num_epochs', '2',
          '--num_workers', '0', '--no-figures']


def assert_strong_run(out, prefix, counted, policy, warmup_images):
    files = os.listdir(out)
    assert prefix + '_strong_aug_strong_warmup.jsonl' in files
    assert not any(name.startswith(prefix + '.') or name.startswith(prefix + '_last')
                   for name in files)  # nothing under the paper's prefix
    run = records(os.path.join(out, prefix + '_strong_aug_strong_warmup.jsonl'))
    assert 'warmup_ce' in run[0]['net1'] and 'loss_x' in run[1]['net1']
    with open(os.path.join(out, prefix + '_strong_aug_strong_warmup_args.json')) as f:
        args = json.load(f)
    assert args['strong_aug'] and args['strong_warmup']
    # the warm-up augmented each of its images strongly, and the SSL epoch more
    assert set(counted) == {policy} and len(counted) > warmup_images


@pytest.mark.slow
def test_imagefolder_strong_run(tmp_path, counted):
    make_image_folder(tmp_path / 'data' / 'train', per_class=6, size=16)
    make_image_folder(tmp_path / 'data' / 'test', per_class=2, size=16)
    out = str(tmp_path / 'out')
    Train_imagefolder.main(['--data_path', str(tmp_path / 'data'), '--out_dir', out,
                            '--width', '4', '--batch_size', '6'] + STRONG)
    assert_strong_run(out, 'imagefolder', counted, 'cifar10', warmup_images=2 * 18)


@pytest.mark.slow
def test_clothing1m_strong_run(tmp_path, counted):
    root = make_clothing1m(tmp_path / 'clothing1m', size=40)
    out = str(tmp_path / 'out')
    Train_clothing1M.main(['--data_path', root, '--out_dir', out, '--pretrained', 'none',
                           '--resize', '40', '--crop', '36', '--num_batches', '1',
                           '--batch_size', '4'] + STRONG)
    assert_strong_run(out, 'clothing1m', counted, 'imagenet', warmup_images=2 * 8)


@pytest.mark.slow
def test_webvision_strong_run(tmp_path, counted, monkeypatch):
    root = str(tmp_path / 'webvision')
    make_webvision(root, per_class=4)
    # Inception-ResNet-v2 needs 299-px images: the loop runs a small network on 32-px crops
    monkeypatch.setattr(Train_webvision, 'create_model',
                        lambda args: ResNet18(args.num_class, width=4))
    monkeypatch.setattr(Train_webvision, 'INPUT_SIZE', 32)  # what --crop must be
    out = str(tmp_path / 'out')
    Train_webvision.main(['--data_path', root, '--out_dir', out, '--num_class', '3',
                          '--resize', '36', '--crop', '32', '--batch_size', '4'] + STRONG)
    assert_strong_run(out, 'webvision', counted, 'imagenet', warmup_images=2 * 12)
