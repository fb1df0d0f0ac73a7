"""Any image classification dataset, in torchvision's ImageFolder layout or in CSV label lists:
reading and checking the files, the transforms of both networks and the loaders, on tiny images
made on the fly. make_image_folder and write_list are for other tests to import."""
import csv
import os
import shutil

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch.utils.data import WeightedRandomSampler

import dataloader_imagefolder
import utils.data
from conftest import files_under
from dataloader_imagefolder import (DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, ImageFolderData,
                                    ImageFolderLoaders, transforms_for)
from utils.cli import InputError, TrainingError
from utils.data import ShardSampler, open_rgb

CLASSES = ('cat', 'dog', 'fox')
# Every mode an image file may come in; each must reach the network as 3 channels.
MODES = ('RGB', 'L', 'LA', 'RGBA', 'P', 'CMYK', 'I;16', '1')
EXTENSION = {'CMYK': '.jpg', '1': '.bmp'}  # CMYK as a JPEG (as printers' files); others PNG


def write_image(path, mode, colour, size):
    """A flat `colour` image of `size` (width, height) saved in `mode`."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == 'I;16':  # 16-bit grayscale, as medical and scientific PNGs
        img = Image.fromarray(np.full(size[::-1], colour[0] * 257, dtype=np.uint16))
    else:
        img = Image.new('RGB', size, colour).convert(mode)
    img.save(path)


def make_image_folder(root, classes=CLASSES, per_class=6, size=12, modes=('RGB',)):
    """Images root/<class>/<class>_<k><ext>, a flat colour per class: image k has mode
    modes[k % len(modes)] and is size wide, size + k % 3 high. RGB images alternate .png and .JPG
    (extensions match in any case). Returns [(path relative to root, class)], sorted."""
    made = []
    for c, name in enumerate(classes):
        for k in range(per_class):
            mode = modes[k % len(modes)]
            ext = EXTENSION.get(mode, '.JPG' if mode == 'RGB' and k % 2 else '.png')
            relpath = os.path.join(name, '%s_%02d%s' % (name, k, ext))
            write_image(os.path.join(str(root), relpath), mode,
                        ((70 * c + 20) % 256, 40 * k % 256, 200), (size, size + k % 3))
            made.append((relpath, name))
    return sorted(made)


def write_list(path, rows, header=False, bom=False):
    """A '<path>,<label>' CSV list (optionally with a 'path,label' header and a UTF-8 BOM)."""
    with open(str(path), 'w', newline='', encoding='utf-8-sig' if bom else 'utf-8') as f:
        writer = csv.writer(f)
        if header:
            writer.writerow(['path', 'label'])
        writer.writerows(rows)
    return str(path)


@pytest.fixture
def root(tmp_path):
    """<tmp>/data/{train,test,val}/<cat|dog|fox>/...: 6 training images per class, 2 test and
    2 validation."""
    root = tmp_path / 'data'
    make_image_folder(root / 'train')
    make_image_folder(root / 'test', per_class=2)
    make_image_folder(root / 'val', per_class=2)
    return str(root)


def as_rows(root, split):
    """The ImageFolder images of `split` as list rows: (path relative to root, class name)."""
    data = ImageFolderData(root)
    paths, labels = getattr(data, split + '_paths'), getattr(data, split + '_labels')
    return [(os.path.relpath(p, root), data.classes[y]) for p, y in zip(paths, labels)]


def error_of(tmp_path, **kwargs):
    """The one-line InputError ImageFolderData(**kwargs) raises, having written nothing."""
    before = files_under(str(tmp_path))
    with pytest.raises(InputError) as e:
        ImageFolderData(**kwargs)
    assert files_under(str(tmp_path)) == before
    message = str(e.value)
    assert '\n' not in message
    return message


# ---------------------------------------------------------------- folder layout --------------

def test_folder_layout(root):
    data = ImageFolderData(root)
    assert data.layout == 'folders'
    assert data.classes == ['cat', 'dog', 'fox'] and data.num_class == 3
    expected = make_image_folder(os.path.join(root, 'elsewhere'))  # same names, listed sorted
    assert data.train_relpaths == [os.path.join('train', p) for p, _ in expected]
    assert data.train_paths == [os.path.join(root, 'train', p) for p, _ in expected]
    assert data.train_labels.dtype == np.int64
    assert data.train_labels.tolist() == [CLASSES.index(c) for _, c in expected]
    assert data.test_labels.tolist() == data.val_labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert data.test_paths[2] == os.path.join(root, 'test', 'dog', 'dog_00.png')
    assert data.val_paths[5] == os.path.join(root, 'val', 'fox', 'fox_01.JPG')
    assert data.clean_labels is None


def test_folder_layout_matches_torchvision_imagefolder(tmp_path):
    """Same classes, images, order and labels as torchvision.datasets.ImageFolder, nested
    folders included."""
    train = tmp_path / 'data' / 'train'
    make_image_folder(train, classes=('b', 'a', 'c'), per_class=3)
    make_image_folder(train / 'a' / 'z_sub', classes=('deeper',), per_class=2)
    make_image_folder(train / 'a', classes=('m_sub',), per_class=2)
    data = ImageFolderData(str(tmp_path / 'data'))
    reference = torchvision.datasets.ImageFolder(str(train))
    assert data.classes == reference.classes == ['a', 'b', 'c']
    assert list(zip(data.train_paths, data.train_labels.tolist())) == reference.samples
    assert len(data.train_paths) == 13


def test_class_order_is_sorted_folder_names(tmp_path):
    make_image_folder(tmp_path / 'data' / 'train', classes=('zebra', 'ant', 'Moose'),
                      per_class=2)
    data = ImageFolderData(str(tmp_path / 'data'))
    assert data.classes == ['Moose', 'ant', 'zebra']  # sorted(): capitals first
    assert [p.split(os.sep)[1] for p in data.train_relpaths] == [
        data.classes[y] for y in data.train_labels]
    assert data.test_paths is data.test_labels is data.val_paths is data.val_labels is None


def test_hidden_and_non_image_files_are_skipped(root):
    count = len(ImageFolderData(root).train_paths)
    train = os.path.join(root, 'train')
    for relpath in ('cat/.hidden.png', 'cat/.cache/x.png', '.ipynb_checkpoints/cat/x.png',
                    'stray.png'):  # an image beside the class folders belongs to no class
        write_image(os.path.join(train, relpath), 'RGB', (0, 0, 0), (8, 8))
    with open(os.path.join(train, 'dog', 'notes.txt'), 'w') as f:
        f.write('not an image')
    data = ImageFolderData(root)
    assert data.classes == list(CLASSES) and len(data.train_paths) == count


# ---------------------------------------------------------------- list layout ----------------

def test_both_layouts_give_the_same_data(root, tmp_path):
    lists = {split: write_list(tmp_path / (split + '.csv'), as_rows(root, split))
             for split in ('train', 'test', 'val')}
    folders = ImageFolderData(root)
    listed = ImageFolderData(root, train_list=lists['train'], test_list=lists['test'],
                             val_list=lists['val'])
    assert listed.layout == 'lists'
    for name in ('classes', 'num_class', 'train_relpaths', 'train_paths', 'test_paths',
                 'val_paths'):
        assert getattr(listed, name) == getattr(folders, name), name
    for name in ('train_labels', 'test_labels', 'val_labels'):
        assert np.array_equal(getattr(listed, name), getattr(folders, name)), name


def test_list_keeps_its_order_and_paths_are_relative_to_its_folder(root):
    rows = [(os.path.relpath(p, 'train'), c) for p, c in as_rows(root, 'train')][::-1]
    path = write_list(os.path.join(root, 'train', 'noisy.csv'), rows)
    data = ImageFolderData(train_list=path)  # no --data_path: relative to the list's folder
    assert data.train_relpaths == [p for p, _ in rows]  # as listed, for exports
    assert data.train_paths == [os.path.join(root, 'train', p) for p, _ in rows]
    assert data.train_labels.tolist() == [CLASSES.index(c) for _, c in rows]
    assert data.test_paths is None and data.val_paths is None


def test_name_labels_give_the_sorted_names_seen(root, tmp_path):
    rows = [(p, {'cat': 'tabby', 'dog': 'Husky', 'fox': 'tabby'}[c])
            for p, c in as_rows(root, 'train')]
    data = ImageFolderData(root, train_list=write_list(tmp_path / 't.csv', rows))
    assert data.classes == ['Husky', 'tabby']
    assert data.train_labels.tolist() == [0 if c == 'Husky' else 1 for _, c in rows]


def test_integer_labels_without_classes_file(root, tmp_path):
    rows = [(p, {'cat': '0', 'dog': '2', 'fox': '2'}[c]) for p, c in as_rows(root, 'train')]
    test_rows = [(p, 1) for p, _ in as_rows(root, 'test')]
    data = ImageFolderData(root, train_list=write_list(tmp_path / 't.csv', rows),
                           test_list=write_list(tmp_path / 'test.csv', test_rows))
    assert data.classes == ['0', '1', '2']  # '0' ... max, class 1 unused
    assert data.train_labels.tolist() == [int(y) for _, y in rows]
    assert data.test_labels.tolist() == [1] * len(test_rows)


def test_integer_labels_with_classes_file(root, tmp_path):
    classes = tmp_path / 'classes.txt'
    classes.write_text('fox\n\ncat\ndog\n')  # blank lines are skipped
    rows = [(p, {'cat': '1', 'dog': 'dog', 'fox': '0'}[c]) for p, c in as_rows(root, 'train')]
    data = ImageFolderData(root, train_list=write_list(tmp_path / 't.csv', rows),
                           classes_file=str(classes))
    assert data.classes == ['fox', 'cat', 'dog']  # the file's order, not sorted
    assert data.train_labels.tolist() == [data.classes.index(c) for _, c in as_rows(root,
                                                                                       'train')]


def test_header_byte_order_mark_and_blank_lines(root, tmp_path):
    rows = as_rows(root, 'train')
    plain = ImageFolderData(root, train_list=write_list(tmp_path / 'plain.csv', rows))
    path = write_list(tmp_path / 'excel.csv', rows[:5] + [()] + rows[5:], header=True, bom=True)
    with open(path, 'a') as f:
        f.write('\n  \n')
    data = ImageFolderData(root, train_list=path)
    assert data.classes == plain.classes and data.train_relpaths == plain.train_relpaths
    assert np.array_equal(data.train_labels, plain.train_labels)


@pytest.mark.parametrize('use_lists', [False, True])
def test_clean_list_covers_some_images(root, tmp_path, use_lists):
    rows = as_rows(root, 'train')
    lists = dict(train_list=write_list(tmp_path / 't.csv', rows)) if use_lists else {}
    clean = write_list(tmp_path / 'clean.csv', [(rows[4][0], 'fox'), (rows[0][0], 2),
                                                ('./' + rows[7][0], 'cat')], header=True)
    data = ImageFolderData(root, clean_list=clean, **lists)
    expected = np.full(len(rows), -1)
    expected[[4, 0, 7]] = [2, 2, 0]
    assert data.clean_labels.dtype == np.int64
    assert data.clean_labels.tolist() == expected.tolist()


def test_keep_train_draws_a_seeded_subset_in_listed_order(root, tmp_path):
    rows = as_rows(root, 'train')
    clean = write_list(tmp_path / 'clean.csv', [(path, 'cat') for path, _ in rows])
    data, again = (ImageFolderData(root, clean_list=clean) for _ in range(2))
    full_paths = list(data.train_paths)
    data.keep_train(7, seed=3)
    again.keep_train(7, seed=3)
    kept = [full_paths.index(p) for p in data.train_paths]
    assert len(kept) == 7 and kept == sorted(kept) and again.train_paths == data.train_paths
    assert [data.classes[y] for y in data.train_labels] == [rows[k][1] for k in kept]
    assert data.train_relpaths == [rows[k][0] for k in kept]
    assert data.clean_labels.tolist() == [0] * 7
    other = ImageFolderData(root)
    other.keep_train(7, seed=4)
    assert other.train_paths != data.train_paths
    assert data.num_class == 3  # the classes stay those of the whole set


def test_keep_train_refuses_more_images_than_there_are(root):
    data = ImageFolderData(root)
    with pytest.raises(InputError, match='--num_train 19 is more than the 18 training images'):
        data.keep_train(19, seed=0)


# ---------------------------------------------------------------- bad input ------------------

def rows_with(root, extra, at=2):
    """The training rows with `extra` rows inserted at `at`."""
    rows = as_rows(root, 'train')
    return rows[:at] + extra + rows[at:]


def test_missing_or_wrong_data_path(tmp_path):
    nowhere = str(tmp_path / 'nowhere')
    assert error_of(tmp_path, data_path=nowhere) == (
        '--data_path %s does not exist: pass the folder that holds train/<class>/ (or the one '
        'the paths in --train_list are relative to)' % nowhere)
    (tmp_path / 'file').write_text('x')
    assert '--data_path %s is a file' % (tmp_path / 'file') in error_of(
        tmp_path, data_path=str(tmp_path / 'file'))
    assert error_of(tmp_path).startswith('no training images: pass --data_path (a folder')
    assert error_of(tmp_path, data_path=str(tmp_path)) == (
        "%s has no train/ folder: put the training images in train/<class>/<image> "
        "(torchvision's ImageFolder layout) or pass --train_list" % tmp_path)


@pytest.mark.parametrize('flag', ['train_list', 'test_list', 'val_list', 'clean_list'])
def test_missing_list_file(root, tmp_path, flag):
    kwargs = dict(train_list=write_list(tmp_path / 't.csv', as_rows(root, 'train')))
    kwargs[flag] = str(tmp_path / 'nowhere.csv')
    assert error_of(tmp_path, data_path=root, **kwargs) == (
        '--%s %s does not exist: pass the path of a CSV file of "<image path>,<label>" rows'
        % (flag, tmp_path / 'nowhere.csv'))
    kwargs[flag] = root
    assert '--%s %s is a folder' % (flag, root) in error_of(tmp_path, data_path=root, **kwargs)


def test_lists_need_train_list_in_the_folder_layout(root, tmp_path):
    path = write_list(tmp_path / 'test.csv', as_rows(root, 'test'))
    assert error_of(tmp_path, data_path=root, test_list=path, val_list=path).startswith(
        '--test_list and --val_list work only with --train_list: in the folder layout')


def test_listed_images_that_do_not_exist(root, tmp_path):
    rows = rows_with(root, [('train/cat/gone.png', 'cat'), ('train/emu/x.jpg', 'dog')])
    path = write_list(tmp_path / 't.csv', rows)
    assert error_of(tmp_path, data_path=root, train_list=path) == (
        '2 of the 20 images listed in %s are missing, e.g. %s: fix their paths (relative to %s) '
        'or restore the images' % (path, os.path.join(root, 'train/cat/gone.png'), root))
    test = write_list(tmp_path / 'test.csv', [('test/cat/gone.png', 'cat')])
    assert error_of(tmp_path, data_path=root, train_list=path,
                    test_list=test).startswith('2 of the 20')  # the training list comes first
    good = write_list(tmp_path / 'good.csv', as_rows(root, 'train'))
    assert error_of(tmp_path, data_path=root, train_list=good, test_list=test).startswith(
        '1 of the 1 images listed in %s are missing' % test)


@pytest.mark.parametrize('row', [('train/cat/x.png',), ('train/cat/x.png', 'cat', 'extra'),
                                 ('', 'cat'), ('train/cat/x.png', ''), ('"unclosed,cat',)])
def test_malformed_row(root, tmp_path, row):
    path = tmp_path / 't.csv'
    write_list(path, rows_with(root, []))
    lines = path.read_text().splitlines()
    path.write_text('\n'.join(lines[:2] + [','.join(row)] + lines[2:]) + '\n')
    message = error_of(tmp_path, data_path=root, train_list=str(path))
    assert message.startswith('%s:3: expected "<image path>,<label>", got' % path)
    assert message.endswith(': fix or delete the line')


def test_path_listed_twice(root, tmp_path):
    rows = as_rows(root, 'train')
    path = write_list(tmp_path / 't.csv', rows + [('./' + rows[1][0], 'fox')], header=True)
    assert error_of(tmp_path, data_path=root, train_list=path) == (
        '%s:20: ./%s is listed twice (first on line 3): keep one line' % (path, rows[1][0]))


def test_label_not_among_the_classes(root, tmp_path):
    classes = tmp_path / 'classes.txt'
    classes.write_text('cat\ndog\nfox\n')
    for label in ('cow', '3', '-1', '1.0'):
        path = write_list(tmp_path / 't.csv', rows_with(root, [('train/cat/cat_00.png', label)],
                                                        at=18)[1:])  # cat_00 moved to line 18
        assert error_of(tmp_path, data_path=root, train_list=path,
                        classes_file=str(classes)) == (
            "%s:18: label '%s' is not among the 3 classes (indices 0 ... 2 or cat, dog, fox): "
            "fix the line, or add the class to %s" % (path, label, classes))


def test_test_or_val_label_the_training_set_lacks(root, tmp_path):
    train = write_list(tmp_path / 't.csv', as_rows(root, 'train'))
    for flag in ('test_list', 'val_list'):
        path = write_list(tmp_path / 'other.csv', [('test/cat/cat_00.png', 'cat'),
                                                   ('test/dog/dog_00.png', 'wolf')])
        assert error_of(tmp_path, data_path=root, train_list=train, **{flag: path}) == (
            "%s:2: label 'wolf' is not among the 3 classes (indices 0 ... 2 or cat, dog, fox): "
            "the training set has no such class; fix the line or delete it" % path)
    integers = write_list(tmp_path / 'int.csv', [(p, '1') for p, _ in as_rows(root, 'train')])
    path = write_list(tmp_path / 'other.csv', [('test/cat/cat_00.png', '2')])
    assert "label '2' is not among the 2 classes (0 ... 1):" in error_of(
        tmp_path, data_path=root, train_list=integers, test_list=path)


def test_negative_or_mixed_labels_without_classes_file(root, tmp_path):
    rows = as_rows(root, 'train')
    path = write_list(tmp_path / 't.csv', [(p, 0) for p, _ in rows[:4]] + [(rows[4][0], -2)])
    assert error_of(tmp_path, data_path=root, train_list=path) == (
        '%s:5: label -2 is negative: labels are class names or class indices 0, 1, ...' % path)
    path = write_list(tmp_path / 't.csv', rows_with(root, [('train/cat/cat_00.png', 1)])[1:])
    assert error_of(tmp_path, data_path=root, train_list=path) == (
        "%s:2: label '1' is an integer but line 1 has a name 'cat': use class names or "
        "integers throughout, or pass --classes_file" % path)


def test_bad_classes_file(root, tmp_path):
    train = write_list(tmp_path / 't.csv', as_rows(root, 'train'))
    classes = tmp_path / 'classes.txt'
    for text, expected in (
            ('cat\ndog\ncat\n', "%s:3: class 'cat' is listed twice: keep one line"),
            ('cat\n7\n', "%s:2: class name '7' is an integer other than its index 1 (integer "
                         "labels are indices into this list): list the classes in order or "
                         "give them names"),
            ('\n \n', '--classes_file %s lists no classes: write one class name per line'),
            ('cat\n', 'the training set has one class (cat, from %s): DivideMix needs at least '
                      '2 classes')):
        classes.write_text(text)
        assert error_of(tmp_path, data_path=root, train_list=train,
                        classes_file=str(classes)) == expected % classes
    assert 'does not exist' in error_of(tmp_path, data_path=root, train_list=train,
                                        classes_file=str(tmp_path / 'none.txt'))


def test_single_class(root, tmp_path):
    path = write_list(tmp_path / 't.csv', [(p, 0) for p, _ in as_rows(root, 'train')])
    assert error_of(tmp_path, data_path=root, train_list=path) == (
        'the training set has one class (0, from %s): DivideMix needs at least 2 classes' % path)
    make_image_folder(tmp_path / 'one' / 'train', classes=('cat',))
    assert error_of(tmp_path, data_path=str(tmp_path / 'one')) == (
        'the training set has one class (cat, from %s): DivideMix needs at least 2 classes'
        % (tmp_path / 'one' / 'train'))


def test_empty_class_folder(root, tmp_path):
    for split in ('train', 'test', 'val'):
        cat = os.path.join(root, split, 'cat')
        for name in os.listdir(cat):
            os.remove(os.path.join(cat, name))
        os.makedirs(os.path.join(cat, 'photos'))  # nested, still no image
        with open(os.path.join(cat, 'readme.txt'), 'w') as f:
            f.write('no images here')
        assert error_of(tmp_path, data_path=root) == (
            'class folder %s holds no images (.jpg .jpeg .png .ppm .bmp .pgm .tif .tiff .webp, '
            'any case): add its images or remove the folder' % cat)
        shutil.rmtree(cat)
        make_image_folder(os.path.join(root, split), classes=('cat',), per_class=1)


@pytest.mark.parametrize('split', ['test', 'val'])
def test_test_or_val_folder_with_a_class_the_training_set_lacks(root, tmp_path, split):
    make_image_folder(os.path.join(root, split), classes=('wolf',), per_class=1)
    assert error_of(tmp_path, data_path=root) == (
        "%s has class folder 'wolf', a class the training set lacks (its classes are the "
        "folders in %s): rename or remove the folder"
        % (os.path.join(root, split), os.path.join(root, 'train')))


def test_no_images_at_all(tmp_path):
    os.makedirs(tmp_path / 'data' / 'train' / '.cache')
    assert error_of(tmp_path, data_path=str(tmp_path / 'data')) == (
        "%s holds no class folders: put each class's images in %s/<class>/ (torchvision's "
        "ImageFolder layout)" % ((tmp_path / 'data' / 'train',) * 2))
    path = write_list(tmp_path / 't.csv', [()], header=True)
    assert error_of(tmp_path, train_list=path) == (
        '--train_list %s lists no images: write one "<image path>,<label>" row per image' % path)


def test_list_that_is_not_text(root, tmp_path):
    path = tmp_path / 't.csv'
    path.write_bytes(bytes(range(128, 256)))
    assert error_of(tmp_path, data_path=root, train_list=str(path)).startswith(
        'cannot read --train_list %s (' % path)


def test_bad_clean_list(root, tmp_path):
    rows = as_rows(root, 'train')
    clean = write_list(tmp_path / 'clean.csv', [(rows[0][0], 'cat'), ('train/cat/x.png', 'cat')])
    assert error_of(tmp_path, data_path=root, clean_list=clean) == (
        '%s:2: train/cat/x.png is not a training image (paths are relative to %s): fix the line '
        'or delete it' % (clean, root))
    clean = write_list(tmp_path / 'clean.csv', [(rows[0][0], 'wolf')])
    assert error_of(tmp_path, data_path=root, clean_list=clean) == (
        "%s:1: label 'wolf' is not among the 3 classes (indices 0 ... 2 or cat, dog, fox): fix "
        "the line or delete it" % clean)
    test_image = write_list(tmp_path / 'clean.csv', [('test/cat/cat_00.png', 'cat')])
    assert 'is not a training image' in error_of(tmp_path, data_path=root, clean_list=test_image)


def test_corrupt_image_is_refused_when_read(root):
    data = ImageFolderData(root)
    with open(data.train_paths[3], 'wb') as f:
        f.write(b'not an image')
    loaders = ImageFolderLoaders(data, 4, 0, *transforms_for('preact18', 8, 8, IMAGENET_MEAN,
                                                             IMAGENET_STD))
    with pytest.raises(TrainingError) as e:  # damaged after the up-front check: mid-run
        next(iter(loaders.eval_train()))
    assert str(e.value).startswith('cannot read image %s (' % data.train_paths[3])
    assert '\n' not in str(e.value)


# ---------------------------------------------------------------- transforms -----------------

def test_defaults_and_constants():
    assert DEFAULTS == {'preact18': dict(image_size=32, resize=32),
                        'resnet50': dict(image_size=224, resize=256)}
    assert IMAGENET_MEAN == (0.485, 0.456, 0.406) and IMAGENET_STD == (0.229, 0.224, 0.225)


def kinds(transform):
    return [type(t).__name__ for t in transform.transforms]


def test_preact18_transforms():
    train, test = transforms_for('preact18', mean=(0.5,) * 3, std=(0.25,) * 3,
                                 **DEFAULTS['preact18'])
    assert kinds(test) == ['Resize', 'CenterCrop', 'ToTensor', 'Normalize']
    assert kinds(train) == ['Resize', 'CenterCrop', 'RandomCrop', 'RandomHorizontalFlip',
                            'ToTensor', 'Normalize']
    assert train.transforms[0].size == test.transforms[0].size == 32
    assert train.transforms[2].size == (32, 32) and train.transforms[2].padding == 4
    img = Image.new('RGB', (50, 40), (128, 128, 128))
    assert train(img).shape == test(img).shape == (3, 32, 32)
    assert test(img).mean().item() == pytest.approx((128 / 255 - 0.5) / 0.25, abs=1e-4)


def test_resnet50_transforms():
    train, test = transforms_for('resnet50', mean=IMAGENET_MEAN, std=IMAGENET_STD,
                                 **DEFAULTS['resnet50'])
    assert kinds(train) == ['Resize', 'RandomCrop', 'RandomHorizontalFlip', 'ToTensor',
                            'Normalize']
    assert kinds(test) == ['Resize', 'CenterCrop', 'ToTensor', 'Normalize']
    assert train.transforms[0].size == test.transforms[0].size == 256
    assert train.transforms[1].size == test.transforms[1].size == (224, 224)
    img = Image.new('RGB', (300, 240), (128, 128, 128))
    assert train(img).shape == test(img).shape == (3, 224, 224)
    expected = [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert test(img).mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-4)


def test_bad_transform_arguments():
    with pytest.raises(InputError, match="unknown network 'vit': use preact18 or resnet50"):
        transforms_for('vit', 32, 32, IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(InputError, match='--resize 200 is smaller than --image_size 224'):
        transforms_for('resnet50', 224, 200, IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('arch, image_size, resize', [('preact18', 8, 8), ('resnet50', 8, 10)])
def test_every_image_mode_reaches_the_network_as_three_channels(tmp_path, mode, arch,
                                                               image_size, resize):
    make_image_folder(tmp_path / 'data' / 'train', per_class=2, size=9, modes=(mode,))
    make_image_folder(tmp_path / 'data' / 'test', per_class=1, size=13, modes=(mode,))
    data = ImageFolderData(str(tmp_path / 'data'))
    assert len(data.train_paths) == 6  # .jpg/.bmp/.png of every mode are found
    loaders = ImageFolderLoaders(data, 2, 0, *transforms_for(arch, image_size, resize,
                                                             IMAGENET_MEAN, IMAGENET_STD))
    for loader in (loaders.warmup(), loaders.eval_train(), loaders.test()):
        img = next(iter(loader))[0]
        assert img.shape[1:] == (3, image_size, image_size) and img.dtype == torch.float32


def test_grayscale_image_is_grey_on_all_three_channels(tmp_path):
    """An 'L' image of value 128 comes out as (128/255 - mean) / std on every channel."""
    make_image_folder(tmp_path / 'data' / 'train', per_class=2, modes=('L',))
    data = ImageFolderData(str(tmp_path / 'data'))
    Image.new('L', (12, 12), 128).save(data.train_paths[0])
    _, test = transforms_for('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    img = ImageFolderLoaders(data, 2, 0, test, test).eval_train().dataset[0][0]
    expected = [(128 / 255 - m) / s for m, s in zip(IMAGENET_MEAN, IMAGENET_STD)]
    assert img.mean(dim=(1, 2)).tolist() == pytest.approx(expected, abs=1e-4)


# ---------------------------------------------------------------- loaders --------------------

@pytest.fixture
def loaders(root):
    torch.manual_seed(0)
    return ImageFolderLoaders(ImageFolderData(root), 4, 0, *transforms_for(
        'preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD))


def test_warmup_loader(loaders):
    loader = loaders.warmup()
    assert loader.batch_size == 8 and len(loader.dataset) == 18  # 2B, every training image
    assert isinstance(loader.sampler, torch.utils.data.RandomSampler)
    img, label, position = next(iter(loader))
    assert img.shape == (8, 3, 8, 8) and img.dtype == torch.float32
    assert label.tolist() == loaders.data.train_labels[position.numpy()].tolist()


def test_eval_train_returns_every_image_in_order(loaders):
    loader = loaders.eval_train()
    assert loader.batch_size == 16  # 4B by default
    positions, labels = [], []
    for img, label, position in loader:
        assert img.shape[1:] == (3, 8, 8)
        positions += position.tolist()
        labels += label.tolist()
    assert positions == list(range(18)) and labels == loaders.data.train_labels.tolist()
    assert torch.equal(loader.dataset[0][0], loader.dataset[0][0])  # no augmentation
    img, label, position = next(iter(loaders.eval_train(indices=[13, 2])))
    assert position.tolist() == [0, 1]  # positions in the subset, as the GMM needs
    assert label.tolist() == loaders.data.train_labels[[13, 2]].tolist()


def test_train_partition(loaders):
    pred = np.arange(18) % 3 == 0
    prob = np.linspace(0.1, 0.9, 18)
    labeled, unlabeled = loaders.train(pred, prob)
    assert labeled.batch_size == unlabeled.batch_size == 4
    assert labeled.dataset.indices.tolist() == [0, 3, 6, 9, 12, 15]
    assert unlabeled.dataset.indices.tolist() == [i for i in range(18) if i % 3]
    view1, view2, label, clean_prob = labeled.dataset[1]  # image 3
    assert view1.shape == view2.shape == (3, 8, 8)
    assert label == loaders.data.train_labels[3] and clean_prob == pytest.approx(prob[3])
    view1, view2, label, clean_prob = next(iter(labeled))
    assert view1.shape == (4, 3, 8, 8) and clean_prob.dtype == torch.float64
    view1, view2 = next(iter(unlabeled))
    assert view1.shape == view2.shape == (4, 3, 8, 8)
    plain, _ = loaders.train(pred, prob, augment=False)
    assert torch.equal(plain.dataset[0][0], plain.dataset[0][1])


def test_train_gives_none_for_an_empty_set(loaders):
    prob = np.full(18, 0.7)
    labeled, unlabeled = loaders.train(np.ones(18, bool), prob)
    assert len(labeled.dataset) == 18 and unlabeled is None
    labeled, unlabeled = loaders.train(np.zeros(18, bool), prob)
    assert labeled is None and len(unlabeled.dataset) == 18
    with pytest.raises(ValueError, match='one value per training image'):
        loaders.train(np.ones(17, bool), prob[:17])


def test_test_and_val_loaders(loaders, tmp_path):
    for loader, labels in ((loaders.test(), [0, 0, 1, 1, 2, 2]),
                           (loaders.val(), [0, 0, 1, 1, 2, 2])):
        assert loader.batch_size == 16
        img, label = next(iter(loader))
        assert img.shape == (6, 3, 8, 8) and label.tolist() == labels
    train, test = transforms_for('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    assert ImageFolderLoaders(loaders.data, 4, 0, train, test,
                              eval_batch_size=5).test().batch_size == 5
    make_image_folder(tmp_path / 'bare' / 'train', per_class=2)
    bare = ImageFolderLoaders(ImageFolderData(str(tmp_path / 'bare')), 2, 0, train, test)
    assert bare.test() is None and bare.val() is None


def test_fewer_images_than_a_batch(loaders):
    train, test = transforms_for('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    with pytest.raises(InputError) as e:
        ImageFolderLoaders(loaders.data, 19, 0, train, test)
    assert str(e.value) == ('the training set has 18 images, fewer than one batch '
                            '(--batch_size 19): lower --batch_size')
    assert ImageFolderLoaders(loaders.data, 18, 0, train, test).warmup().batch_size == 36


@pytest.fixture
def imbalanced(tmp_path):
    """30 images of class 'many', 3 of class 'few'."""
    make_image_folder(tmp_path / 'data' / 'train', classes=('many',), per_class=30, size=8)
    make_image_folder(tmp_path / 'data' / 'train', classes=('few',), per_class=3, size=8)
    return ImageFolderData(str(tmp_path / 'data'))


def draw_classes(loader, data, passes=91):
    """The class of every image the warm-up sampler picks in `passes` passes (91 x 33 = 3003)."""
    return np.concatenate([data.train_labels[list(loader.sampler)] for _ in range(passes)])


def test_balanced_warmup_draws_classes_evenly(imbalanced):
    train, test = transforms_for('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    loader = ImageFolderLoaders(imbalanced, 4, 0, train, test, balanced_warmup=True).warmup()
    assert isinstance(loader.sampler, WeightedRandomSampler) and loader.batch_size == 8
    assert loader.sampler.num_samples == 33 and loader.sampler.replacement
    torch.manual_seed(0)
    draws = draw_classes(loader, imbalanced)
    share_few = np.mean(draws == imbalanced.classes.index('few'))
    assert 0.4 <= share_few <= 0.6
    torch.manual_seed(0)  # torch's global RNG drives it: the same seed, the same draws
    assert np.array_equal(draw_classes(loader, imbalanced), draws)
    img, label, position = next(iter(loader))
    assert img.shape == (8, 3, 8, 8)
    assert label.tolist() == imbalanced.train_labels[position.numpy()].tolist()
    plain = ImageFolderLoaders(imbalanced, 4, 0, train, test).warmup()
    assert isinstance(plain.sampler, torch.utils.data.RandomSampler)  # each image once


def test_balanced_warmup_is_ignored_under_torch_distributed(imbalanced, monkeypatch):
    """Each process keeps make_loader's shard of a shuffled pass."""
    for module in (dataloader_imagefolder, utils.data):
        monkeypatch.setattr(module, 'distributed', lambda: (1, 2))
    train, test = transforms_for('preact18', 8, 8, IMAGENET_MEAN, IMAGENET_STD)
    loader = ImageFolderLoaders(imbalanced, 4, 0, train, test, balanced_warmup=True).warmup()
    assert isinstance(loader.sampler, ShardSampler) and len(loader.sampler) == 17


@pytest.mark.parametrize('array, mode', [
    (np.full((8, 8), 32896, np.uint16), 'I;16'),   # 16-bit grey: 32896 / 257 = 128
    (np.full((8, 8), 0.5, np.float32), 'F'),        # float grey in [0, 1]
    (np.full((8, 8), 128, np.int32), 'I'),          # 32-bit holding 8-bit values
])
def test_deep_grey_images_are_scaled_not_clipped(array, mode, tmp_path):
    path = str(tmp_path / ('grey.png' if mode == 'I;16' else 'grey.tiff'))
    Image.fromarray(array).save(path)
    assert Image.open(path).mode == mode
    assert np.asarray(open_rgb(path)).tolist() == [[[128] * 3] * 8] * 8
