"""CIFAR reading and the loaders' outputs; every bad input file refused in one line, before
anything is written."""
import csv
import os
import pickle

import numpy as np
import pytest
import torch

from PIL import Image

import Train_cifar
from conftest import files_under, script_args, write_fake_cifar
from dataloader_cifar import (CIFARLoaders, class_names, default_noise_file, load_cifar,
                              noisy_labels_for, read_cifar_n, read_noise_file, training_subset)
from tools import export_labels
from utils.cli import InputError, TrainingError, run_cli
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
    with pytest.raises(TrainingError, match='cannot read image %s' % path) as e:
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


# ---------------------------------------------------------------- refused input files --------

def refused(call, match):
    """The InputError `call()` raises: its message matches `match` and is one line."""
    with pytest.raises(InputError, match=match) as e:
        call()
    assert '\n' not in str(e.value)
    return str(e.value)


@pytest.fixture
def no_download(monkeypatch):
    """Any download attempt fails the test: refusals come before the network."""
    import torchvision

    def download(*args, **kwargs):
        raise AssertionError('tried to download')
    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', download)
    monkeypatch.setattr(torchvision.datasets, 'CIFAR100', download)


@pytest.mark.parametrize('dataset, removed', [
    ('cifar10', ['test_batch']), ('cifar10', ['data_batch_2', 'data_batch_5']),
    ('cifar100', ['test'])])
def test_partial_folder_names_the_missing_pickles(tmp_path, no_download, dataset, removed):
    folder = write_fake_cifar(str(tmp_path), dataset, num_train=20, num_test=5)
    for name in removed:
        os.remove(os.path.join(folder, name))
    before = files_under(str(tmp_path))
    message = refused(lambda: load_cifar(str(tmp_path), dataset, download=True),
                      '%s lacks %s of the %s files: re-extract'
                      % (folder, ', '.join(removed), dataset))
    assert 'data_batch_1' not in message and files_under(str(tmp_path)) == before


def test_folder_in_place_of_a_pickle_is_missing(tmp_path, no_download):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=20, num_test=5)
    os.remove(os.path.join(folder, 'test_batch'))
    os.mkdir(os.path.join(folder, 'test_batch'))
    refused(lambda: load_cifar(str(tmp_path), 'cifar10'), 'lacks test_batch of the cifar10')


@pytest.mark.parametrize('stored, asked, hint', [
    ('cifar100', 'cifar10', 'this looks like CIFAR-100: add --dataset cifar100'),
    ('cifar10', 'cifar100', 'this looks like CIFAR-10: add --dataset cifar10')])
def test_the_other_cifar_gets_a_hint(tmp_path, no_download, stored, asked, hint):
    folder = write_fake_cifar(str(tmp_path), stored, num_train=20, num_test=5)
    before = files_under(str(tmp_path))
    for path in (str(tmp_path), folder):  # the parent, or the pickles' own folder
        refused(lambda: load_cifar(path, asked, download=True),
                'no %s data in .*%s' % (asked, hint))
    assert files_under(str(tmp_path)) == before
    renamed = str(tmp_path / 'renamed')  # a folder of another name, holding the meta file
    os.rename(folder, renamed)           # and only some of the pickles, gives it away too
    open(os.path.join(renamed, 'meta' if stored == 'cifar100' else 'batches.meta'), 'w').close()
    os.remove(os.path.join(renamed, 'train' if stored == 'cifar100' else 'test_batch'))
    refused(lambda: load_cifar(renamed, asked), hint)


def test_data_path_that_is_a_file(tmp_path, no_download):
    (tmp_path / 'cifar').write_text('not a folder')
    refused(lambda: load_cifar(str(tmp_path / 'cifar'), 'cifar10', download=True),
            '--data_path .*cifar is a file')
    assert (tmp_path / 'cifar').read_text() == 'not a folder'


def rewrite_batch(folder, name, **fields):
    with open(os.path.join(folder, name), 'rb') as f:
        batch = pickle.load(f)
    batch.update(fields)
    with open(os.path.join(folder, name), 'wb') as f:
        pickle.dump(batch, f)


@pytest.mark.parametrize('fields, match', [
    ({'labels': [0.5] * 4}, "test_batch is not a readable CIFAR batch .*'labels' is not a list "
                            "of integer labels"),
    ({'labels': [True] * 4}, "'labels' is not a list of integer labels"),
    ({'data': np.zeros((0, 3072), np.uint8), 'labels': []}, 'test_batch holds no images'),
    ({'data': np.zeros((4, 1000), np.uint8)}, 'test_batch is not a readable CIFAR batch'),
    ({'labels': [1, 2, 3]}, 'test_batch has 4 images but 3 labels')])
def test_batch_of_the_wrong_form(tmp_path, fields, match):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=20, num_test=4)
    rewrite_batch(folder, 'test_batch', **fields)
    refused(lambda: load_cifar(str(tmp_path), 'cifar10'), match)


@pytest.mark.parametrize('label', [-1, 10])
def test_batch_label_outside_the_classes(tmp_path, label):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=20, num_test=4)
    rewrite_batch(folder, 'test_batch', labels=[0, 1, label, 2])
    refused(lambda: load_cifar(str(tmp_path), 'cifar10'), 'test labels in .* reach %d' % label)


def offline_after(make):
    """A torchvision dataset class whose download makes what `make(root)` makes, then fails as
    an offline machine does."""
    import urllib.error

    def download(root, train=True, download=False):
        make(root)
        raise urllib.error.URLError('[Errno -2] Name or service not known')
    return download


def partial_download(root):
    os.makedirs(os.path.join(root, 'cifar-10-batches-py'), exist_ok=True)
    with open(os.path.join(root, 'cifar-10-python.tar.gz'), 'wb') as f:
        f.write(b'\x1f\x8b half an archive')
    with open(os.path.join(root, 'cifar-10-batches-py', 'data_batch_1'), 'wb') as f:
        f.write(b'half a pickle')


def test_failed_download_removes_the_folders_it_made(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', offline_after(partial_download))
    data_path = tmp_path / 'new' / 'cifar-10'
    refused(lambda: load_cifar(str(data_path), 'cifar10', download=True),
            'could not download cifar10 into .*kriz/cifar.html')
    assert os.listdir(tmp_path) == []  # both new/ and new/cifar-10 are gone


def test_failed_download_keeps_what_was_there(tmp_path, monkeypatch):
    import torchvision
    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', offline_after(partial_download))
    (tmp_path / 'notes.txt').write_text('mine')
    (tmp_path / 'cifar-10-batches-py').mkdir()  # empty, but the user's: kept
    before = files_under(str(tmp_path))
    refused(lambda: load_cifar(str(tmp_path), 'cifar10', download=True), 'could not download')
    assert files_under(str(tmp_path)) == before  # the archive and the half pickle are gone


# ---- noise files

def noise_args(data_path, **changes):
    """Train_cifar.py's arguments for its default noise (sym 50%) on the data in data_path."""
    return script_args(Train_cifar, data_path=data_path, num_class=10, **changes)


def test_default_noise_file_is_generated_beside_the_pickles(cifar10_dir):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    labels, path = noisy_labels_for(clean, noise_args(cifar10_dir))
    folder = os.path.join(cifar10_dir, 'cifar-10-batches-py')
    assert path == default_noise_file(folder, 0.5, 'sym') and os.path.isfile(path)
    assert read_noise_file(path, 200, 10) == labels
    assert noisy_labels_for(clean, noise_args(cifar10_dir)) == (labels, path)  # then reused


def test_mistyped_noise_file_is_refused(cifar10_dir, tmp_path):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    before = files_under(str(tmp_path))
    typo = str(tmp_path / 'noise_0.5.jsn')
    without_flag = noise_args(cifar10_dir, noise_file=typo)
    del without_flag.create_noise_file  # arguments from before the flag existed
    for args in (noise_args(cifar10_dir, noise_file=typo), without_flag):
        refused(lambda: noisy_labels_for(clean, args),
                'noise file %s does not exist: check the path, or add --create_noise_file to '
                'generate labels there' % typo)
    assert files_under(str(tmp_path)) == before


def test_create_noise_file_generates_there(cifar10_dir, tmp_path):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    path = str(tmp_path / 'noise.json')
    labels, got = noisy_labels_for(clean, noise_args(cifar10_dir, noise_file=path,
                                                     create_noise_file=True))
    assert got == path and read_noise_file(path, 200, 10) == labels
    default, _ = noisy_labels_for(clean, noise_args(cifar10_dir))
    assert labels == default  # the same draw as at the default path


def test_create_noise_file_in_a_missing_folder(cifar10_dir, tmp_path):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    path = str(tmp_path / 'nowhere' / 'noise.json')
    refused(lambda: noisy_labels_for(clean, noise_args(cifar10_dir, noise_file=path,
                                                       create_noise_file=True)),
            'the folder of noise file %s does not exist' % path)
    assert not (tmp_path / 'nowhere').exists()


def test_noise_file_that_is_a_folder(cifar10_dir, tmp_path):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    (tmp_path / 'noise.json').mkdir()
    refused(lambda: noisy_labels_for(clean, noise_args(cifar10_dir, create_noise_file=True,
                                                       noise_file=str(tmp_path / 'noise.json'))),
            'noise file .*noise.json is a folder')
    assert os.listdir(tmp_path / 'noise.json') == []


@pytest.mark.parametrize('content, match', [
    ('{"0": 1, "1": 2}', 'must be a JSON list of integer labels, not a JSON object'),
    ('"0 1"', 'not a JSON string'),
    ('7', 'not a JSON number'),
    ('null', 'not a JSON null'),
    ('[0, 1.0, 2]', 'item 1 is 1.0'),
    ('[0, 1, true]', 'item 2 is true'),
    ('[0, 1, "2"]', 'item 2 is "2"'),
    ('[0, 1, null]', 'item 2 is null'),
    ('', 'not readable JSON'),
    (b'\xff\xfe\x00garbage', 'not readable JSON'),
    ('[0, 1, 2, 3]', 'has 4 labels but the training set has 3 images'),
    ('[0, -1, 2]', 'label -1 outside'),
])
def test_noise_file_of_the_wrong_form(tmp_path, content, match):
    path = tmp_path / 'noise.json'
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    refused(lambda: read_noise_file(str(path), 3, 10), 'noise file %s .*%s' % (path, match))


# ---- CIFAR-N files

def write_cifar_n(path, **labels):
    torch.save(labels, path)


@pytest.mark.parametrize('bad', [10, -1])
def test_cifar_n_label_outside_the_classes(tmp_path, bad):
    clean = np.arange(50000) % 10
    worst = clean.copy()
    worst[1234] = bad
    path = str(tmp_path / 'CIFAR-10_human.pt')
    write_cifar_n(path, clean_label=clean, worse_label=worst)
    refused(lambda: read_cifar_n(path, 'worse_label', clean[:100], 10),
            r"%s: 'worse_label' holds label %d \(image 1234\), outside \[0, 10\)" % (path, bad))
    refused(lambda: read_cifar_n(path, 'worse_label', clean[:100]), 'outside \\[0, 10\\)')


def test_cifar_n_label_range_follows_the_dataset(tmp_path):
    clean = np.arange(50000) % 100
    path = str(tmp_path / 'CIFAR-100_human.pt')
    write_cifar_n(path, clean_label=clean, noisy_label=clean)
    assert read_cifar_n(path, 'noisy_label', clean[:5]) == [0, 1, 2, 3, 4]  # 100 classes
    refused(lambda: read_cifar_n(path, 'noisy_label', clean[:5], 10), 'holds label 10')


@pytest.mark.parametrize('labels, match', [
    ({'worse_label': np.arange(50000) % 10 + 0.5}, "'worse_label' is not a list of integer"),
    ({'worse_label': 'all cats'}, "'worse_label' is not a list of integer"),
    ({'worse_label': np.zeros((50000, 2), np.int64)}, "'worse_label' is not a list of integer"),
    ({'worse_label': np.zeros(50000, np.int64), 'clean_label': 'x'}, 'do not match'),
])
def test_cifar_n_labels_of_the_wrong_form(tmp_path, labels, match):
    path = str(tmp_path / 'CIFAR-10_human.pt')
    write_cifar_n(path, **labels)
    refused(lambda: read_cifar_n(path, 'worse_label', np.zeros(5, np.int64)), match)


def test_cifar_n_file_missing_or_a_folder(tmp_path):
    path = tmp_path / 'CIFAR-10_human.pt'
    refused(lambda: read_cifar_n(str(path), 'worse_label', np.zeros(5)),
            'CIFAR-N file .* does not exist: get CIFAR-10_human.pt')
    path.mkdir()
    refused(lambda: read_cifar_n(str(path), 'worse_label', np.zeros(5)), 'is a folder')


def test_cifar_n_needs_the_official_training_set(tmp_path):
    path = str(tmp_path / 'CIFAR-10_human.pt')
    write_cifar_n(path, worse_label=np.zeros(50000, np.int64))
    refused(lambda: read_cifar_n(path, 'worse_label', np.zeros(50001, np.int64)),
            'has 50001 images, more than the 50000 CIFAR-N labels')


# ---- a random subset of the training images (--num_train N --subset_seed S)

def test_training_subset_is_the_first_images_or_a_seeded_draw_in_order():
    assert training_subset(200) == slice(None, None)
    assert training_subset(200, 50) == slice(None, 50)
    drawn = training_subset(200, 50, subset_seed=3)
    assert len(drawn) == len(set(drawn)) == 50 and list(drawn) == sorted(drawn)
    assert drawn.min() >= 0 and drawn.max() < 200 and not np.array_equal(drawn, np.arange(50))
    assert np.array_equal(drawn, training_subset(200, 50, subset_seed=3))  # the same draw
    assert not np.array_equal(drawn, training_subset(200, 50, subset_seed=4))


def test_cifar_n_labels_follow_the_chosen_images(tmp_path):
    clean = np.arange(50000) % 10
    worse = (clean + np.arange(50000) % 3) % 10
    path = str(tmp_path / 'CIFAR-10_human.pt')
    write_cifar_n(path, clean_label=clean, worse_label=worse)
    chosen = training_subset(50000, 30, subset_seed=1)
    assert read_cifar_n(path, 'worse_label', clean[chosen], 10, chosen) == worse[chosen].tolist()
    refused(lambda: read_cifar_n(path, 'worse_label', clean[:30], 10, chosen), 'do not match')


def test_a_run_on_a_random_subset(cifar10_dir, tmp_path):
    out = str(tmp_path / 'run')
    argv = ['--data_path', cifar10_dir, '--out_dir', out, '--num_train', '100', '--subset_seed',
            '5', '--width', '8', '--num_epochs', '2', '--warm_up', '1', '--batch_size', '16',
            '--num_workers', '0', '--no-figures']
    Train_cifar.main(argv)
    # the noise is drawn for these images, into a file of their own
    noise = os.path.join(cifar10_dir, 'cifar-10-batches-py', '0.5_sym_random100_subset5.json')
    assert read_noise_file(noise, 100, 10)
    clean = load_cifar(cifar10_dir, 'cifar10')[1][training_subset(200, 100, 5)]
    with open(os.path.join(out, 'cifar10_0.5_sym_labels.csv')) as f:
        rows = list(csv.DictReader(f))
    names = class_names(cifar10_dir, 'cifar10')
    assert [r['true_label'] for r in rows] == [names[c] for c in clean]
    assert [r['given_label'] for r in rows] == [names[c] for c in read_noise_file(noise, 100, 10)]
    # tools/export_labels.py rebuilds the same subset from the saved arguments
    exported = str(tmp_path / 'exported.csv')
    assert run_cli(export_labels.main, [os.path.join(out, 'cifar10_0.5_sym_last.pth'), '--out',
                                        exported]) == 0
    with open(exported) as f:
        assert list(csv.DictReader(f)) == rows
    with pytest.raises(InputError, match='--subset_seed draws --num_train images at random'):
        Train_cifar.main(['--subset_seed', '5', '--out_dir', str(tmp_path / 'other')])
