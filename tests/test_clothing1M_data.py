"""Clothing1M annotation files, balanced subsets and loaders on a tiny
synthetic folder in the official layout."""
import os
import random
from collections import Counter

import numpy as np
import pytest
import torch
from PIL import Image

from dataloader_clothing1M import ANNOTATIONS, Clothing1M, Clothing1MLoaders, balanced_subset
from utils.cli import InputError, TrainingError, run_cli
from utils.data import ImageFiles, NoisyLabelDataset

NUM_CLASS = 14
# Noisy-pool images per class: class 0 is small, so balanced subsets can come out short.
POOL_SIZES = [1] + [4] * (NUM_CLASS - 1)


def write_image(path, colour, size=12):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new('RGB', (size, size), colour).save(path, 'JPEG')


def write_lines(path, lines):
    with open(path, 'w') as f:
        f.write(''.join(line + '\n' for line in lines))


@pytest.fixture
def root(tmp_path):
    return make_clothing1m(tmp_path / 'clothing1m')


def make_clothing1m(root, size=12):
    """Images in <root>/<folder>/<name>.jpg, annotation paths prefixed with "images/".
    Noisy labels are (class + 1) % 14, so they differ from the clean ones."""
    noisy_kv, clean_kv, train, val, test = [], [], [], [], []
    for c, size in enumerate(POOL_SIZES):
        for j in range(size):
            key = 'images/%d/train_%d_%d.jpg' % (j % 3, c, j)
            write_image(str(root / key[7:]), (c * 18, j * 60, 0), size)
            noisy_kv.append('%s %d' % (key, (c + 1) % NUM_CLASS))
            train.append(key)
        for split, keys in (('val', val), ('test', test)):
            key = 'images/9/%s_%d.jpg' % (split, c)
            write_image(str(root / key[7:]), (c * 18, 0, 255), size)
            clean_kv.append('%s %d' % (key, c))
            keys.append(key)
    noisy_kv.append('images/5/not_in_the_pool.jpg 3')  # the real kv files hold extra entries
    files = dict(zip(ANNOTATIONS, (noisy_kv, clean_kv, train, val, test)))
    for name, lines in files.items():
        write_lines(str(root / name), lines)
    return str(root)


def edit(root, name, change):
    """Rewrite one annotation file: change(list of lines) -> new list of lines."""
    path = os.path.join(root, name)
    with open(path) as f:
        lines = f.read().splitlines()
    write_lines(path, change(lines))
    return path


def error_of(root):
    with pytest.raises(InputError) as e:
        Clothing1M(root)
    message = str(e.value)
    assert '\n' not in message
    return message


# ---------------------------------------------------------------- parsing --------------------

def test_parses_official_layout(root, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    data = Clothing1M('clothing1m')  # a relative root still gives absolute paths
    assert len(data.train_paths) == sum(POOL_SIZES) == len(data.train_labels)
    assert data.train_paths[0] == os.path.join(root, '0', 'train_0_0.jpg')  # "images/" stripped
    assert data.train_paths[2] == os.path.join(root, '1', 'train_1_1.jpg')  # key-list order
    assert all(os.path.isabs(p) and os.path.isfile(p) for p in data.train_paths)
    assert data.train_labels.dtype == np.int64
    assert data.train_labels[0] == 1 and data.train_labels[-1] == 0  # noisy: (c + 1) % 14
    assert data.val_paths[3] == os.path.join(root, '9', 'val_3.jpg')
    assert data.test_paths[3] == os.path.join(root, '9', 'test_3.jpg')
    assert data.val_labels.tolist() == data.test_labels.tolist() == list(range(NUM_CLASS))


def test_blank_lines_are_skipped(root):
    edit(root, ANNOTATIONS[0], lambda lines: [''] + lines + ['   '])
    assert len(Clothing1M(root).train_paths) == sum(POOL_SIZES)


# ---------------------------------------------------------------- errors ---------------------

def test_missing_root(tmp_path):
    assert 'does not exist' in error_of(str(tmp_path / 'nowhere'))


@pytest.mark.parametrize('name', ANNOTATIONS)
def test_missing_annotation_file(root, name):
    os.remove(os.path.join(root, name))
    message = error_of(root)
    assert name in message and 'annotations.zip' in message


@pytest.mark.parametrize('bad_line', ['images/0/x.jpg', 'images/0/x.jpg 3 4', 'images/0/x.jpg a',
                                      'images/0/x.jpg 2.0'])
def test_line_that_does_not_parse(root, bad_line):
    path = edit(root, 'clean_label_kv.txt', lambda lines: lines[:2] + [bad_line] + lines[2:])
    assert '%s:3:' % path in error_of(root)


@pytest.mark.parametrize('label', [-1, NUM_CLASS])
def test_label_out_of_range(root, label):
    path = edit(root, 'noisy_label_kv.txt', lambda lines: lines + ['images/0/x.jpg %d' % label])
    message = error_of(root)
    assert '%s:%d:' % (path, sum(POOL_SIZES) + 2) in message and 'outside [0, 14)' in message


def test_num_class_bounds_labels(root):
    with pytest.raises(InputError, match='outside'):
        Clothing1M(root, num_class=10)


@pytest.mark.parametrize('name', ['noisy_train_key_list.txt', 'clean_test_key_list.txt'])
def test_key_without_label(root, name):
    path = edit(root, name, lambda lines: lines + ['images/3/unknown.jpg'])
    message = error_of(root)
    assert '%s:%d:' % (path, len(open(path).readlines())) in message
    assert 'images/3/unknown.jpg has no label' in message


def test_key_list_line_with_two_fields(root):
    path = edit(root, 'clean_val_key_list.txt', lambda lines: ['images/9/val_0.jpg 0'] + lines)
    assert '%s:1:' % path in error_of(root)


def test_path_without_images_prefix(root):
    path = edit(root, 'clean_val_key_list.txt', lambda lines: ['9/val_0.jpg'] + lines)
    assert "%s:1: path '9/val_0.jpg' does not start with 'images/'" % path in error_of(root)


def test_empty_key_list(root):
    edit(root, 'clean_test_key_list.txt', lambda lines: [])
    assert 'lists no images' in error_of(root)


def test_root_that_is_a_file(tmp_path):
    (tmp_path / 'clothing1m').write_text('not a folder')
    assert 'clothing1m is a file: pass --data_path' in error_of(str(tmp_path / 'clothing1m'))


def test_annotation_file_that_is_a_folder(root):
    os.remove(os.path.join(root, 'clean_val_key_list.txt'))
    os.mkdir(os.path.join(root, 'clean_val_key_list.txt'))
    assert 'lacks clean_val_key_list.txt: unpack the official annotations.zip' in error_of(root)


@pytest.mark.parametrize('content', [b'', b'\n  \n'])
def test_empty_label_file(root, content):
    with open(os.path.join(root, 'clean_label_kv.txt'), 'wb') as f:
        f.write(content)
    assert 'clean_label_kv.txt holds no labels: restore it' in error_of(root)


def test_byte_order_mark_is_dropped(root):
    path = os.path.join(root, 'noisy_label_kv.txt')
    with open(path, 'rb') as f:
        blob = f.read()
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + blob)  # as some Windows editors save
    assert Clothing1M(root).train_labels[0] == 1


def test_binary_annotation_file(root):
    with open(os.path.join(root, 'noisy_train_key_list.txt'), 'wb') as f:
        f.write(bytes(range(128, 256)))
    assert 'cannot read %s' % os.path.join(root, 'noisy_train_key_list.txt') in error_of(root)


@pytest.mark.parametrize('split, name', [('train', 'noisy_train_key_list.txt'),
                                         ('val', 'clean_val_key_list.txt'),
                                         ('test', 'clean_test_key_list.txt')])
def test_missing_images_are_refused_up_front(root, split, name):
    paths = getattr(Clothing1M(root), split + '_paths')
    for path in paths[2:4]:
        os.remove(path)
    message = error_of(root)
    assert message.startswith('2 of the %d images listed in %s are missing, e.g. %s: put the '
                              'image folders 0/ ... 9/' % (len(paths), os.path.join(root, name),
                                                           paths[2]))


def corrupt_first_image(data):
    with open(data.val_paths[0], 'wb') as f:
        f.write(b'not a jpeg')
    return data.val_paths[0]


def test_corrupt_image_names_the_file(root):
    data = Clothing1M(root)
    path = corrupt_first_image(data)
    with pytest.raises(TrainingError) as e:
        next(iter(Clothing1MLoaders(data, resize=16, crop=12).val()))
    assert path in str(e.value) and '\n' not in str(e.value)


def test_missing_image_names_the_file(root):
    data = Clothing1M(root)
    os.remove(data.train_paths[5])
    ds = NoisyLabelDataset(ImageFiles(data.train_paths), data.train_labels, lambda img: img,
                           'all')
    with pytest.raises(TrainingError, match='cannot read image %s' % data.train_paths[5]):
        ds[5]


def test_corrupt_image_in_a_worker_stays_one_line(root, capsys):
    """A DataLoader worker re-raises with its whole traceback as the message; the command
    still reports the one-line message and exits with 2."""
    data = Clothing1M(root)
    path = corrupt_first_image(data)

    def main(argv):
        next(iter(Clothing1MLoaders(data, num_workers=1, resize=16, crop=12).val()))
    assert run_cli(main, []) == 2  # still a TrainingError after crossing the worker boundary
    err = capsys.readouterr().err
    assert err.startswith('error: cannot read image %s (' % path)
    assert err.count('\n') == 1


# ---------------------------------------------------------------- balanced sampling ----------

def test_balanced_subset_caps_classes_and_total():
    labels = np.repeat(np.arange(NUM_CLASS), 10)
    for num_samples in (14, 28, 30, 100):
        random.seed(num_samples)
        subset = balanced_subset(labels, num_samples, NUM_CLASS)
        counts = Counter(labels[subset].tolist())
        assert len(subset) == num_samples and len(set(subset.tolist())) == num_samples
        assert max(counts.values()) <= np.ceil(num_samples / NUM_CLASS)
    # 30 / 14 = 2.14: a class may hold 3, and the first 30 images found are kept.


def test_balanced_subset_is_short_when_classes_are_small():
    labels = np.asarray(sum(([c] * n for c, n in enumerate(POOL_SIZES)), []))
    subset = balanced_subset(labels, 28, NUM_CLASS)  # 2 per class, class 0 has only 1 image
    assert len(subset) == 27
    assert Counter(labels[subset].tolist()) == {c: 1 if c == 0 else 2 for c in range(14)}
    everything = balanced_subset(labels, 10 ** 6, NUM_CLASS)
    assert sorted(everything.tolist()) == list(range(len(labels)))


def test_balanced_subset_keeps_the_first_images_of_one_shuffle():
    """The authors' walk: shuffle the pool, keep each class's first images in that order."""
    labels = np.repeat(np.arange(NUM_CLASS), 10)
    random.seed(5)
    order = list(range(len(labels)))
    random.shuffle(order)
    expected = {c: [i for i in order if labels[i] == c][:3] for c in range(NUM_CLASS)}
    random.seed(5)
    subset = balanced_subset(labels, 42, NUM_CLASS)  # 42 / 14 = 3 per class
    assert {c: [i for i in order if i in set(subset.tolist()) and labels[i] == c]
            for c in range(NUM_CLASS)} == expected
    assert subset.tolist() != sorted(subset.tolist(), key=order.index)  # shuffled again


def test_balanced_subset_uses_global_random():
    labels = np.repeat(np.arange(NUM_CLASS), 10)
    random.seed(1)
    a = balanced_subset(labels, 28, NUM_CLASS)
    b = balanced_subset(labels, 28, NUM_CLASS)  # the state moved on: a fresh subset
    random.seed(1)
    assert np.array_equal(balanced_subset(labels, 28, NUM_CLASS), a)
    assert not np.array_equal(a, b)
    assert a.dtype == np.int64


# ---------------------------------------------------------------- loaders --------------------

@pytest.fixture
def loaders(root):
    random.seed(0)
    torch.manual_seed(0)
    return Clothing1MLoaders(Clothing1M(root), batch_size=4, resize=16, crop=12)


def test_warmup_loader(loaders):
    loader = loaders.warmup(28)
    assert loader.batch_size == 8 and len(loader.dataset) == 27  # 2B; class 0 has 1 image
    img, label, position = next(iter(loader))
    assert img.shape == (8, 3, 12, 12) and img.dtype == torch.float32
    pool = loader.dataset.indices[position.numpy()]
    assert torch.equal(label, torch.as_tensor(loaders.data.train_labels[pool]))


def test_eval_train_returns_positions(loaders):
    loader = loaders.eval_train(28)
    assert loader.batch_size == 16  # 4B by default
    positions, labels = [], []
    for img, label, position in loader:
        assert img.shape[1:] == (3, 12, 12)
        positions += position.tolist()
        labels += label.tolist()
    assert positions == list(range(27))  # not pool indices, and every slot filled
    pool = loader.dataset.indices
    assert labels == loaders.data.train_labels[pool].tolist()
    # test transform: the same image gives the same tensor every time
    assert torch.equal(loader.dataset[0][0], loader.dataset[0][0])


def test_two_draws_differ(loaders):
    a, b = loaders.eval_train(28), loaders.eval_train(28)
    assert not np.array_equal(a.dataset.indices, b.dataset.indices)


def test_train_partition(loaders):
    pool = loaders.eval_train(28).dataset.indices
    pred = np.arange(len(pool)) % 3 == 0
    prob = np.linspace(0.1, 0.9, len(pool))
    labeled, unlabeled = loaders.train(pred, prob, pool)
    assert labeled.batch_size == unlabeled.batch_size == 4
    assert labeled.dataset.indices.tolist() == pool[pred].tolist()
    assert unlabeled.dataset.indices.tolist() == pool[~pred].tolist()
    view1, view2, label, clean_prob = labeled.dataset[1]  # item 1 = pool[pred][1]
    assert view1.shape == view2.shape == (3, 12, 12)
    assert label == loaders.data.train_labels[pool[pred][1]]
    assert clean_prob == pytest.approx(prob[pred][1])
    view1, view2, label, clean_prob = next(iter(labeled))
    assert view1.shape == (4, 3, 12, 12) and clean_prob.dtype == torch.float64
    assert set(clean_prob.tolist()) <= set(prob[pred].tolist())
    view1, view2 = next(iter(unlabeled))
    assert view1.shape == view2.shape == (4, 3, 12, 12)


def test_train_gives_none_for_an_empty_set(loaders):
    pool = loaders.eval_train(28).dataset.indices
    prob = np.full(len(pool), 0.7)
    labeled, unlabeled = loaders.train(np.ones(len(pool), bool), prob, pool)
    assert len(labeled.dataset) == len(pool) and unlabeled is None
    labeled, unlabeled = loaders.train(np.zeros(len(pool), bool), prob, pool)
    assert labeled is None and len(unlabeled.dataset) == len(pool)


def test_val_and_test_loaders(loaders):
    for loader, labels in ((loaders.val(), loaders.data.val_labels),
                           (loaders.test(), loaders.data.test_labels)):
        assert loader.batch_size == 1000
        img, label = next(iter(loader))
        assert img.shape == (NUM_CLASS, 3, 12, 12)
        assert label.tolist() == labels.tolist()
    assert Clothing1MLoaders(loaders.data, eval_batch_size=5).test().batch_size == 5


def test_normalisation(root):
    """A grey-128 image comes out as (128/255 - mean) / std per channel."""
    data = Clothing1M(root)
    Image.new('RGB', (20, 30), (128, 128, 128)).save(data.test_paths[0], 'PNG')
    img, _ = Clothing1MLoaders(data, resize=16, crop=12).test().dataset[0]
    assert img.shape == (3, 12, 12)  # shorter side to 16, centre crop 12
    expected = [(128 / 255 - m) / s for m, s in ((0.6959, 0.3113), (0.6537, 0.3192),
                                                 (0.6371, 0.3214))]
    assert img.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-4)
