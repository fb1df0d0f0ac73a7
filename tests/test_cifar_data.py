"""CIFAR reading and the loaders' outputs."""
import os
import pickle

import numpy as np
import pytest
import torch

from PIL import Image

from conftest import write_fake_cifar
from dataloader_cifar import CIFARLoaders, load_cifar
from utils.cli import InputError
from utils.data import ImageArray, ImageFiles, NoisyLabelDataset


def test_reads_folder_or_parent(cifar10_dir):
    a = load_cifar(cifar10_dir, 'cifar10')
    b = load_cifar(os.path.join(cifar10_dir, 'cifar-10-batches-py'), 'cifar10')
    assert a[0].shape == (200, 32, 32, 3) and a[0].dtype == np.uint8
    assert a[2].shape == (50, 32, 32, 3)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_pixel_layout_is_hwc_from_channel_planes(tmp_path):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=10, num_test=5)
    with open(os.path.join(folder, 'data_batch_1'), 'rb') as f:
        raw = pickle.load(f)
    images, labels, _, _ = load_cifar(str(tmp_path), 'cifar10')
    first = raw['data'][0]
    assert images[0, 0, 1, 0] == first[1] and images[0, 0, 0, 2] == first[2048]
    assert labels[0] == raw['labels'][0]


def test_cifar100_fine_labels(cifar100_dir):
    _, labels, _, _ = load_cifar(cifar100_dir, 'cifar100')
    assert len(labels) == 300 and labels.max() < 100


def make_loaders(cifar10_dir, batch=8):
    train_images, clean, test_images, test_labels = load_cifar(cifar10_dir, 'cifar10')
    noisy = (clean + 1) % 10
    return CIFARLoaders('cifar10', train_images, noisy, test_images, test_labels, batch), noisy


def test_loader_modes(cifar10_dir):
    loaders, noisy = make_loaders(cifar10_dir)
    img, label, index = next(iter(loaders.warmup()))
    assert img.shape == (16, 3, 32, 32) and len(label) == 16  # warm-up batch is 2B
    assert torch.equal(label, torch.as_tensor(noisy[index.numpy()]))

    img, label, index = next(iter(loaders.eval_train()))
    assert torch.equal(index, torch.arange(len(index)))  # not shuffled, indexed by position
    assert torch.equal(label, torch.as_tensor(noisy[:len(index)]))

    img, label = next(iter(loaders.test()))
    assert img.shape[1:] == (3, 32, 32)

    pred = np.zeros(200, bool)
    pred[:30] = True
    prob = np.linspace(0, 1, 200)
    labeled, unlabeled = loaders.train(pred, prob)
    assert len(labeled.dataset) == 30 and len(unlabeled.dataset) == 170
    x1, x2, label, w = next(iter(labeled))
    assert x1.shape == x2.shape == (8, 3, 32, 32) and not torch.equal(x1, x2)  # two views
    assert w.dtype == torch.float64 and (w <= prob[29] + 1e-9).all()  # its own clean prob
    u1, u2 = next(iter(unlabeled))
    assert u1.shape == (8, 3, 32, 32) and not torch.equal(u1, u2)
    assert set(labeled.dataset.indices) | set(unlabeled.dataset.indices) == set(range(200))


def test_eval_transform_is_deterministic_and_normalised(cifar10_dir):
    loaders, _ = make_loaders(cifar10_dir)
    a, _, _ = next(iter(loaders.eval_train()))
    b, _, _ = next(iter(loaders.eval_train()))
    assert torch.equal(a, b)
    raw = torch.as_tensor(loaders.train_images[0]).permute(2, 0, 1).float() / 255
    mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(3, 1, 1)
    std = torch.tensor([0.2023, 0.1994, 0.2010]).view(3, 1, 1)
    assert torch.allclose(a[0], (raw - mean) / std, atol=1e-5)


def test_empty_division_gives_no_loader(cifar10_dir):
    loaders, _ = make_loaders(cifar10_dir)
    labeled, unlabeled = loaders.train(np.ones(200, bool), np.ones(200))
    assert unlabeled is None and len(labeled.dataset) == 200
    labeled, unlabeled = loaders.train(np.zeros(200, bool), np.zeros(200))
    assert labeled is None and len(unlabeled.dataset) == 200


# ---------------------------------------------------------------- NoisyLabelDataset ----------

class CountingTransform:
    """Returns the image's first pixel value (which identifies it here) and counts its calls."""

    def __init__(self):
        self.calls = 0

    def __call__(self, img):
        self.calls += 1
        return int(np.asarray(img)[0, 0, 0])


def flat_images():
    """Five 2 x 2 images; image i is filled with the value 10 * i."""
    return ImageArray(np.repeat(np.arange(0, 50, 10, dtype=np.uint8), 12).reshape(5, 2, 2, 3))


def test_all_mode_returns_positions_not_image_indices():
    labels = np.array([5, 6, 7, 8, 9])
    transform = CountingTransform()
    ds = NoisyLabelDataset(flat_images(), labels, transform, 'all', indices=[3, 1])
    assert len(ds) == 2
    assert ds[0] == (30, 8, 0) and ds[1] == (10, 6, 1)  # image 3 at position 0, image 1 at 1
    assert transform.calls == 2
    full = NoisyLabelDataset(flat_images(), labels, transform, 'all')
    assert [full[k] for k in range(5)] == [(0, 5, 0), (10, 6, 1), (20, 7, 2), (30, 8, 3),
                                           (40, 9, 4)]  # no subset: position = image index


def test_labeled_prob_is_aligned_with_indices():
    labels = np.array([5, 6, 7, 8, 9])
    transform = CountingTransform()
    ds = NoisyLabelDataset(flat_images(), labels, transform, 'labeled', indices=[4, 0, 2],
                           prob=np.array([0.25, 0.5, 0.75]))
    assert [ds[k] for k in range(3)] == [(40, 40, 9, 0.25), (0, 0, 5, 0.5), (20, 20, 7, 0.75)]
    assert type(ds[0][3]) is float and transform.calls == 8  # two views per item
    with pytest.raises(ValueError, match='one clean prob per item'):
        NoisyLabelDataset(flat_images(), labels, transform, 'labeled', [4, 0, 2],
                          prob=np.ones(5))  # indexed like the images: refused


def test_unlabeled_and_test_modes():
    labels = np.array([5, 6, 7, 8, 9])
    transform = CountingTransform()
    unlabeled = NoisyLabelDataset(flat_images(), labels, transform, 'unlabeled', [1, 3])
    assert unlabeled[1] == (30, 30) and transform.calls == 2
    test = NoisyLabelDataset(flat_images(), labels, transform, 'test')
    assert test[2] == (20, 7) and transform.calls == 3
    with pytest.raises(ValueError, match="mode 'train'"):
        NoisyLabelDataset(flat_images(), labels, transform, 'train')


def test_image_sequences_pickle_and_open_rgb(tmp_path):
    path = str(tmp_path / 'gray.png')
    Image.new('L', (3, 2), 77).save(path)
    files = pickle.loads(pickle.dumps(ImageFiles([path])))  # DataLoader workers get a copy
    assert len(files) == 1 and files[0].mode == 'RGB' and files[0].size == (3, 2)
    assert np.asarray(files[0]).tolist() == [[[77] * 3] * 3] * 2
    images = pickle.loads(pickle.dumps(flat_images()))
    assert len(images) == 5 and np.asarray(images[2]).tolist() == [[[20] * 3] * 2] * 2
    with open(path, 'wb') as f:
        f.write(b'not a png')
    with pytest.raises(InputError, match='cannot read image %s' % path) as e:
        files[0]
    assert '\n' not in str(e.value)


def test_missing_data_folder(tmp_path):
    with pytest.raises(InputError, match='no cifar10 data in .*set --data_path'):
        load_cifar(str(tmp_path / 'nowhere'), 'cifar10')


def test_truncated_pickle(tmp_path):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=20, num_test=5)
    path = os.path.join(folder, 'data_batch_3')
    with open(path, 'rb') as f:
        blob = f.read()
    with open(path, 'wb') as f:
        f.write(blob[:len(blob) // 2])
    with pytest.raises(InputError, match='data_batch_3 is not a readable CIFAR batch'):
        load_cifar(str(tmp_path), 'cifar10')


class Evil:
    def __reduce__(self):
        return (os.system, ('touch /tmp/dividemix_pwned',))


def test_pickle_that_runs_code_is_refused(tmp_path):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=20, num_test=5)
    with open(os.path.join(folder, 'test_batch'), 'wb') as f:
        pickle.dump({'data': Evil(), 'labels': [0]}, f)
    if os.path.exists('/tmp/dividemix_pwned'):
        os.remove('/tmp/dividemix_pwned')
    with pytest.raises(InputError, match='forbidden global'):
        load_cifar(str(tmp_path), 'cifar10')
    assert not os.path.exists('/tmp/dividemix_pwned')


def test_labels_out_of_range_for_dataset(tmp_path):
    write_fake_cifar(str(tmp_path), 'cifar100', num_train=200, num_test=20)
    os.rename(tmp_path / 'cifar-100-python', tmp_path / 'cifar-10-batches-py')
    folder = tmp_path / 'cifar-10-batches-py'
    with open(folder / 'train', 'rb') as f:
        batch = pickle.load(f)
    for k in range(1, 6):  # CIFAR-100 images and labels dressed up as CIFAR-10
        with open(folder / ('data_batch_%d' % k), 'wb') as f:
            pickle.dump({'data': batch['data'], 'labels': batch['fine_labels']}, f)
    with open(folder / 'test', 'rb') as f:
        test = pickle.load(f)
    with open(folder / 'test_batch', 'wb') as f:
        pickle.dump({'data': test['data'], 'labels': test['fine_labels']}, f)
    with pytest.raises(InputError, match='cifar10 has 10 classes'):
        load_cifar(str(tmp_path), 'cifar10')
