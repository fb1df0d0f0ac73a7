"""WebVision lists, the ILSVRC12 folder and the loaders, on a tiny
synthetic root in the official layout."""
import os

import numpy as np
import pytest
import torch
from PIL import Image

from dataloader_webvision import IMAGENET_MEAN_STD, WebVision, WebVisionLoaders
from utils.cli import InputError, TrainingError

NUM_LISTED = 5  # the lists hold classes 0..4; most tests keep the first 3


def colour(label, k):
    """A flat colour that differs per class and per image."""
    return ((40 * label + 10) % 256, 200 - 15 * k, 60 + 30 * k)


def write_image(path, rgb, size=(12, 12), mode='RGB', ramp=False):
    """A JPEG of flat colour `rgb`, or with a left-to-right ramp (so random crops differ)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    pixels = np.empty((size[1], size[0], 3), np.uint8)
    pixels[:] = rgb
    if ramp:
        pixels[:, :, 1] = np.linspace(0, 255, size[0]).astype(np.uint8)
    Image.fromarray(pixels).convert(mode).save(path, 'JPEG', quality=95)


def make_webvision(root, num_listed=NUM_LISTED, per_class=2):
    """Official layout: train list interleaving the classes (so filtering keeps file order),
    val list, val_images_256/ and imagenet/val/<c>/. Returns the expected contents."""
    train, val = [], []
    for k in range(per_class):
        for c in range(num_listed):
            rel = 'google/q%04d/%06d.jpg' % (c + 1, k)
            write_image(os.path.join(root, rel), colour(c, k), size=(12, 16), ramp=True)
            train.append((rel, c))
            name = 'val%03d_%d.jpg' % (c, k)
            write_image(os.path.join(root, 'val_images_256', name), colour(c, k),
                        mode='L' if k == 0 else 'RGB')  # grayscale files exist in the wild
            val.append((name, c))
    for c in range(num_listed):
        for name in ('b.JPEG', 'a.JPEG'):  # written out of order: reading must sort
            write_image(os.path.join(root, 'imagenet', 'val', str(c), name), colour(c, 0))
    os.makedirs(os.path.join(root, 'info'), exist_ok=True)
    write_list(os.path.join(root, 'info', 'train_filelist_google.txt'), train)
    write_list(os.path.join(root, 'info', 'val_filelist.txt'), val)
    return train, val


def write_list(path, entries):
    with open(path, 'w') as f:
        f.writelines('%s %d\n' % entry for entry in entries)


@pytest.fixture
def root(tmp_path):
    make_webvision(str(tmp_path / 'webvision'))
    return str(tmp_path / 'webvision')


# ---------------------------------------------------------------- reading --------------------

def test_lists_and_paths(root):
    data = WebVision(root, num_class=3)
    assert data.train_labels.dtype == np.int64
    assert data.train_labels.tolist() == [0, 1, 2, 0, 1, 2]  # file order, labels >= 3 dropped
    assert data.train_paths[1] == os.path.join(root, 'google', 'q0002', '000000.jpg')
    assert data.val_labels.tolist() == [0, 1, 2, 0, 1, 2]
    assert data.val_paths[2] == os.path.join(root, 'val_images_256', 'val002_0.jpg')
    slash = WebVision(root + '/', num_class=3)  # the authors' code needs the '/', ours not
    for name in ('train', 'val', 'imagenet'):
        assert getattr(slash, name + '_paths') == getattr(data, name + '_paths')
        assert np.array_equal(getattr(slash, name + '_labels'), getattr(data, name + '_labels'))
    assert all(os.path.isfile(p) for p in data.train_paths + data.val_paths)


def test_imagenet_folder_labels_and_order(root):
    hidden = os.path.join(root, 'imagenet', 'val', '1', '.DS_Store')
    open(hidden, 'w').close()
    data = WebVision(root, num_class=3)
    assert data.imagenet_labels.dtype == np.int64
    assert data.imagenet_labels.tolist() == [0, 0, 1, 1, 2, 2]  # folders 3, 4 are not read
    folder = os.path.join(root, 'imagenet', 'val', '1')
    assert data.imagenet_paths[2:4] == [os.path.join(folder, 'a.JPEG'),
                                        os.path.join(folder, 'b.JPEG')]


def test_first_50_classes_of_a_longer_list(tmp_path):
    """The default keeps labels 0..49 of the official 1000-class lists; lines of later classes
    are dropped unread (their images need not exist)."""
    root = str(tmp_path)
    make_webvision(root, num_listed=50, per_class=1)
    train_list = os.path.join(root, 'info', 'train_filelist_google.txt')
    val_list = os.path.join(root, 'info', 'val_filelist.txt')
    with open(train_list, 'a') as f:
        f.write('google/q0051/000000.jpg 50\ngoogle/q0999/000000.jpg 999\n')
    with open(val_list, 'a') as f:
        f.write('val050_0.jpg 50\n')
    data = WebVision(root)
    assert data.train_labels.tolist() == list(range(50))
    assert data.val_labels.tolist() == list(range(50))
    assert data.imagenet_labels.tolist() == sorted(list(range(50)) * 2)


# ---------------------------------------------------------------- loaders --------------------

def make_loaders(root, batch_size=2):
    data = WebVision(root, num_class=3)
    return data, WebVisionLoaders(data, batch_size=batch_size, resize=16, crop=12)


def test_loader_modes_and_shapes(root):
    data, loaders = make_loaders(root)
    assert loaders.eval_batch_size == 40  # the authors' 20 * batch_size

    img, label, index = next(iter(loaders.warmup()))
    assert img.shape == (4, 3, 12, 12)  # warm-up batch is 2B
    assert torch.equal(label, torch.as_tensor(data.train_labels[index.numpy()]))

    img, label, index = next(iter(loaders.eval_train()))
    assert img.shape == (6, 3, 12, 12)
    assert torch.equal(index, torch.arange(6))  # not shuffled, indexed by position
    assert torch.equal(label, torch.as_tensor(data.train_labels))

    img, label = next(iter(loaders.webvision_val()))  # half of these files are grayscale
    assert img.shape == (6, 3, 12, 12) and torch.equal(label, torch.as_tensor(data.val_labels))

    img, label = next(iter(loaders.imagenet_val()))
    assert img.shape == (6, 3, 12, 12)
    assert torch.equal(label, torch.as_tensor(data.imagenet_labels))


def test_eval_transform_is_deterministic_and_normalised(root):
    data, loaders = make_loaders(root)
    a, _, _ = next(iter(loaders.eval_train()))
    b, _, _ = next(iter(loaders.eval_train()))
    assert torch.equal(a, b)
    # A flat image stays flat through Resize and CenterCrop: (rgb / 255 - mean) / std.
    img, label = next(iter(loaders.imagenet_val()))
    assert label[2] == 1
    mean, std = (torch.tensor(v).view(3, 1, 1) for v in IMAGENET_MEAN_STD)
    expected = (torch.tensor(colour(1, 0), dtype=torch.float32).view(3, 1, 1) / 255 - mean) / std
    assert torch.allclose(img[2], expected.expand(3, 12, 12), atol=0.05)  # JPEG rounding


def test_train_partition(root):
    data, loaders = make_loaders(root)
    pred = np.array([True, False, True, True, False, False])
    prob = np.array([0.9, 0.1, 0.8, 0.7, 0.2, 0.3])
    labeled, unlabeled = loaders.train(pred, prob)
    assert labeled.batch_size == unlabeled.batch_size == 2
    assert labeled.dataset.indices.tolist() == [0, 2, 3]
    assert unlabeled.dataset.indices.tolist() == [1, 4, 5]
    seen = []
    for x1, x2, label, clean_prob in labeled:
        assert x1.shape[1:] == x2.shape[1:] == (3, 12, 12) and not torch.equal(x1, x2)
        seen += zip(label.tolist(), clean_prob.tolist())
    assert sorted(seen) == sorted([(0, 0.9), (2, 0.8), (0, 0.7)])  # each row its own label/prob
    u1, u2 = next(iter(unlabeled))
    assert u1.shape == u2.shape == (2, 3, 12, 12)


def test_empty_division_gives_no_loader(root):
    _, loaders = make_loaders(root)
    labeled, unlabeled = loaders.train(np.ones(6, bool), np.ones(6))
    assert unlabeled is None and len(labeled.dataset) == 6
    labeled, unlabeled = loaders.train(np.zeros(6, bool), np.zeros(6))
    assert labeled is None and len(unlabeled.dataset) == 6
    with pytest.raises(ValueError, match='one entry per training image'):
        loaders.train(np.ones(5, bool), np.ones(5))


# ---------------------------------------------------------------- errors ---------------------

def one_line_error(root, match, num_class=3):
    with pytest.raises(InputError, match=match) as e:
        WebVision(root, num_class=num_class)
    assert '\n' not in str(e.value)
    return str(e.value)


def append(path, text):
    with open(path, 'a') as f:
        f.write(text)


def test_missing_root(tmp_path):
    one_line_error(str(tmp_path / 'nowhere'), 'nowhere does not exist: set --data_path')


@pytest.mark.parametrize('name', ['train_filelist_google.txt', 'val_filelist.txt'])
def test_missing_list(root, name):
    os.remove(os.path.join(root, 'info', name))
    one_line_error(root, 'no list file .*%s: extract .*"info"' % name)


def test_missing_imagenet_class_folder(root):
    folder = os.path.join(root, 'imagenet', 'val', '2')
    for name in os.listdir(folder):
        os.remove(os.path.join(folder, name))
    one_line_error(root, 'ImageNet folder .*val/2 holds no images')
    os.rmdir(folder)
    message = one_line_error(root, 'no ImageNet folder .*val/2: build')
    assert 'synsets' in message and 'docs/data.md' in message


@pytest.mark.parametrize('line, match', [
    ('google/q0001/000009.jpg\n', 'expected "<image path> <label>"'),
    ('google/q0001/000009.jpg one\n', 'expected "<image path> <label>"'),
    ('google/q0001/000009.jpg -1\n', 'negative label -1'),
])
def test_bad_line_names_file_and_line(root, line, match):
    train_list = os.path.join(root, 'info', 'train_filelist_google.txt')
    append(train_list, '\n' + line)  # a blank line is skipped, but still counted
    one_line_error(root, 'train_filelist_google.txt:%d: %s' % (2 * NUM_LISTED + 2, match))


def test_bad_line_in_val_list(root):
    val_list = os.path.join(root, 'info', 'val_filelist.txt')
    write_image(os.path.join(root, 'val_images_256', 'a b.jpg'), colour(2, 0))
    append(val_list, 'a b.jpg 2\n')  # the label is the last field; a name may hold spaces
    data = WebVision(root, num_class=3)
    assert data.val_paths[-1] == os.path.join(root, 'val_images_256', 'a b.jpg')
    append(val_list, 'val000_0.jpg 0.5\n')
    one_line_error(root, 'val_filelist.txt:%d: expected' % (2 * NUM_LISTED + 2))


def test_root_that_is_a_file(tmp_path):
    (tmp_path / 'webvision').write_text('not a folder')
    one_line_error(str(tmp_path / 'webvision'), 'webvision is a file: set --data_path')


def test_byte_order_mark_is_dropped(root):
    path = os.path.join(root, 'info', 'train_filelist_google.txt')
    with open(path, 'rb') as f:
        blob = f.read()
    with open(path, 'wb') as f:
        f.write(b'\xef\xbb\xbf' + blob)  # as some Windows editors save
    assert WebVision(root, num_class=3).train_paths == WebVision(root + '/', 3).train_paths
    assert WebVision(root, num_class=3).train_paths[0].endswith('q0001/000000.jpg')


def test_list_that_is_binary(root):
    with open(os.path.join(root, 'info', 'val_filelist.txt'), 'wb') as f:
        f.write(bytes(range(128, 256)))
    one_line_error(root, 'cannot read list file .*val_filelist.txt')


def test_val_list_without_the_first_classes(root):
    write_list(os.path.join(root, 'info', 'val_filelist.txt'), [('val000_0.jpg', 4)])
    one_line_error(root, 'val_filelist.txt lists no validation image of the first 3 classes')


def test_class_without_training_image(root):
    one_line_error(root, 'no training image of class 5 .*is --num_class right', num_class=6)


def test_missing_image_file(root):
    os.remove(os.path.join(root, 'google', 'q0002', '000001.jpg'))
    one_line_error(root, '1 of the 6 training images .* missing, e.g. .*q0002/000001.jpg')


def test_corrupt_image_names_the_file(root):
    path = os.path.join(root, 'google', 'q0002', '000000.jpg')
    with open(path, 'wb') as f:
        f.write(b'not a jpeg at all')
    one_line_error(root, '1 of the 6 training images .* e.g. .*q0002/000000.jpg is not an '
                   'image file')  # its first bytes are no image format's: refused up front


def test_truncated_image_names_the_file(root):
    path = os.path.join(root, 'val_images_256', 'val001_1.jpg')
    with open(path, 'rb') as f:
        blob = f.read()
    with open(path, 'wb') as f:
        f.write(blob[:len(blob) // 2])
    _, loaders = make_loaders(root)
    with pytest.raises(TrainingError, match='cannot read image .*val001_1.jpg') as e:
        next(iter(loaders.webvision_val()))  # its header is fine: found when decoded
    assert '\n' not in str(e.value)
