"""The files of a dataset as they come: links to files and folders (followed), folder loops and
images reached twice (refused), list paths outside --data_path (allowed), and the up-front
check of every image (missing, empty, not an image by its first bytes) in the image-folder,
Clothing1M and WebVision loaders; an image damaged past its header fails when decoded, and
Train_clothing1M.py still reports its test accuracy."""
import io
import os
import random

import pytest
from PIL import Image

import Train_clothing1M
import utils.data
from dataloader_clothing1M import Clothing1M
from dataloader_imagefolder import ImageFolderData
from dataloader_webvision import WebVision
from test_clothing1M_data import make_clothing1m
from test_imagefolder_data import make_image_folder, write_list
from test_webvision_data import make_webvision
from utils.cli import InputError, run_cli
from utils.data import check_images

PER_CLASS = 4  # training images per class in `root`; 3 classes


@pytest.fixture
def root(tmp_path):
    """<tmp>/data/train/<cat|dog|fox>/ with PER_CLASS images each."""
    make_image_folder(tmp_path / 'data' / 'train', per_class=PER_CLASS)
    return str(tmp_path / 'data')


def refusal(**kwargs):
    with pytest.raises(InputError) as e:
        ImageFolderData(**kwargs)
    assert '\n' not in str(e.value)
    return str(e.value)


def encoded(fmt):
    """A 4 x 4 image saved in `fmt`, as bytes."""
    buffer = io.BytesIO()
    Image.new('RGB', (4, 4), (10, 200, 30)).save(buffer, fmt)
    return buffer.getvalue()


# ---------------------------------------------------------------- links ----------------------

@pytest.mark.parametrize('target', ['..', '.', os.path.join('..', '..')])
def test_folder_link_to_a_folder_holding_it_is_refused(root, target):
    """A link in a class folder to its parent (train/), to itself, or to data_path: os.walk
    would go round the loop, reading the same images again and again under one class."""
    link = os.path.join(root, 'train', 'cat', 'loop')
    os.symlink(target, link)
    message = refusal(data_path=root)
    assert message.startswith('folder link %s leads to ' % link) and 'remove the link' in message


def test_links_to_files_and_folders_are_followed(root, tmp_path):
    """A class folder that is a link to a folder elsewhere, and a link to an image elsewhere:
    their images count, once each."""
    store = tmp_path / 'store'
    make_image_folder(store, classes=('hen', 'owl'), per_class=3)
    os.symlink(str(store / 'hen'), os.path.join(root, 'train', 'hen'))
    os.symlink(str(store / 'owl' / 'owl_00.png'), os.path.join(root, 'train', 'dog', 'x.png'))
    data = ImageFolderData(root)
    assert data.classes == ['cat', 'dog', 'fox', 'hen']
    assert len(data.train_paths) == 3 * PER_CLASS + 1 + 3
    assert data.train_labels.tolist().count(data.classes.index('hen')) == 3
    assert os.path.join('train', 'dog', 'x.png') in data.train_relpaths


@pytest.mark.parametrize('make_second_path', ['folder link', 'file link', 'hard link'])
def test_an_image_reached_by_two_paths_is_refused_naming_both(root, make_second_path):
    """The same file under two classes (or twice in one) would count twice, with two labels."""
    train = os.path.join(root, 'train')
    if make_second_path == 'folder link':  # not a loop: a link from dog/ to cat/
        os.symlink(os.path.join(train, 'cat'), os.path.join(train, 'dog', 'cats'))
        first, second = 'cat/cat_00.png', 'dog/cats/cat_00.png'
    elif make_second_path == 'file link':
        os.symlink(os.path.join(train, 'cat', 'cat_00.png'), os.path.join(train, 'fox', 'a.png'))
        first, second = 'cat/cat_00.png', 'fox/a.png'
    else:
        os.link(os.path.join(train, 'cat', 'cat_00.png'), os.path.join(train, 'dog', 'z.png'))
        first, second = 'cat/cat_00.png', 'dog/z.png'
    message = refusal(data_path=root)
    assert message.startswith('%s and %s are the same image file' % (
        os.path.join('train', first), os.path.join('train', second)))


def test_a_folder_that_cannot_be_listed_is_refused(root, monkeypatch):
    """os.walk skips a folder it cannot list, silently: its images would be missing."""
    hidden = os.path.join(root, 'train', 'cat', 'more')
    os.makedirs(hidden)
    scandir = os.scandir

    def refuse_one(path='.'):
        if os.fspath(path) == hidden:
            raise PermissionError(13, 'Permission denied', hidden)
        return scandir(path)
    monkeypatch.setattr(os, 'scandir', refuse_one)
    assert refusal(data_path=root) == ('cannot list folder %s (Permission denied): make it '
                                       'readable or remove it' % hidden)


def test_list_paths_outside_data_path_are_allowed(root, tmp_path):
    """Lists often point into a shared image store: absolute paths and '..' are kept as they
    are, and every image counts once."""
    make_image_folder(tmp_path / 'store', classes=('cat', 'dog'), per_class=2)
    rows = [(os.path.join('train', 'cat', 'cat_00.png'), 'cat'),
            (str(tmp_path / 'store' / 'dog' / 'dog_00.png'), 'dog'),
            (os.path.join('..', 'store', 'cat', 'cat_01.JPG'), 'cat')]
    data = ImageFolderData(root, train_list=write_list(tmp_path / 'train.csv', rows))
    assert len(data.train_paths) == 3
    assert data.train_paths[1] == str(tmp_path / 'store' / 'dog' / 'dog_00.png')
    assert os.path.isfile(data.train_paths[2]) and data.train_labels.tolist() == [0, 1, 0]


def test_a_list_reaching_one_file_by_two_paths_is_refused(root, tmp_path):
    train = os.path.join(root, 'train')
    os.symlink(os.path.join(train, 'cat'), os.path.join(root, 'cats'))
    rows = [('train/cat/cat_00.png', 'cat'), ('train/dog/dog_00.png', 'dog'),
            ('cats/cat_00.png', 'dog')]
    message = refusal(data_path=root, train_list=write_list(tmp_path / 'l.csv', rows))
    assert message.startswith('%s and %s are the same image file' % (
        os.path.join(train, 'cat', 'cat_00.png'), os.path.join(root, 'cats', 'cat_00.png')))


def test_webvision_imagenet_folder_image_reached_twice_is_refused(tmp_path):
    root = str(tmp_path / 'webvision')
    make_webvision(root)
    imagenet = os.path.join(root, 'imagenet', 'val')
    os.symlink(os.path.join(imagenet, '0', 'a.JPEG'), os.path.join(imagenet, '1', 'c.JPEG'))
    with pytest.raises(InputError, match='a.JPEG and .*/1/c.JPEG are the same image file'):
        WebVision(root, num_class=3)


# ---------------------------------------------------------------- the up-front check ---------

@pytest.mark.parametrize('fmt', ['JPEG', 'PNG', 'GIF', 'BMP', 'WEBP', 'TIFF', 'PPM'])
def test_every_format_is_recognised_by_its_first_bytes(fmt, tmp_path):
    path = tmp_path / ('x.' + fmt.lower())
    path.write_bytes(encoded(fmt))
    check_images([str(path)], 'images', 'fix')  # refuses nothing
    assert utils.data.image_format(encoded(fmt)[:16]) is not None


@pytest.mark.parametrize('content, problem', [
    (b'', 'is empty'),
    (b'\x00' * 40, "is not an image file: it begins with b'%s'" % ('\\x00' * 8)),
    (b'<html>\n<body>404</body>', "is not an image file: it begins with b'<html>\\n<'"),
    (None, 'is a folder')])
def test_bad_files_are_named_and_counted(tmp_path, content, problem):
    paths = []
    for k in range(5):
        path = tmp_path / ('%d.png' % k)
        path.write_bytes(encoded('PNG'))
        paths.append(str(path))
    for path in paths[1:3]:
        os.remove(path)
        if content is None:
            os.mkdir(path)
        else:
            with open(path, 'wb') as f:
                f.write(content)
    os.remove(paths[4])  # a missing one is counted with them
    with pytest.raises(InputError) as e:
        check_images(paths, 'images listed in L', 'restore them')
    assert str(e.value) == ('3 of the 5 images listed in L are missing, empty or not images, '
                            'e.g. %s %s: restore them'
                            % (paths[1], problem + (", no image format's first bytes"
                                                    if 'begins' in problem else '')))


def test_slow_files_are_checked_in_threads_with_the_same_result(tmp_path, monkeypatch):
    paths = []
    for k in range(40):
        path = tmp_path / ('%02d.png' % k)
        path.write_bytes(encoded('PNG') if k != 33 else b'')
        paths.append(str(path))
    monkeypatch.setattr(utils.data, 'CHECK_CHUNK', 4)
    monkeypatch.setattr(utils.data, 'THREAD_CHUNK', 3)
    monkeypatch.setattr(utils.data, 'WAITING_FILE_SECONDS', 0)  # as if every file were slow
    results = utils.data._inspect_all(paths)
    assert [r[0] for r in results] == [None] * 33 + ['empty'] + [None] * 6
    assert len({r[1] for r in results}) == 40  # each its own file, in order
    with pytest.raises(InputError, match='1 of the 40 .* e.g. %s is empty' % paths[33]):
        check_images(paths, 'images', 'fix')


def test_an_empty_image_in_a_class_folder_is_refused_up_front(root):
    os.makedirs(os.path.join(root, 'test', 'cat'))
    open(os.path.join(root, 'test', 'cat', 'a.jpg'), 'w').close()
    assert refusal(data_path=root) == (
        '1 of the 1 images in %s are missing, empty or not images, e.g. test/cat/a.jpg is '
        'empty: replace it with a good copy or remove it' % os.path.join(root, 'test'))


def test_clothing1m_zero_byte_jpeg_is_refused_up_front(tmp_path):
    root = make_clothing1m(tmp_path / 'clothing1m')
    data = Clothing1M(root)
    for path in data.train_paths[7:9]:
        open(path, 'w').close()
    with pytest.raises(InputError) as e:
        Clothing1M(root)
    assert str(e.value).startswith(
        '2 of the %d images listed in %s are missing, empty or not images, e.g. %s is empty: '
        % (len(data.train_paths), os.path.join(root, 'noisy_train_key_list.txt'),
           data.train_paths[7]))


def test_webvision_empty_validation_image_is_refused_up_front(tmp_path):
    root = str(tmp_path / 'webvision')
    make_webvision(root)
    path = os.path.join(root, 'val_images_256', 'val001_1.jpg')
    with open(path, 'wb') as f:
        f.write(random.Random(0).randbytes(64).replace(b'\xff', b'\x00'))
    with pytest.raises(InputError, match='1 of the 6 validation images .* e.g. %s is not an '
                                         'image file' % path):
        WebVision(root, num_class=3)


@pytest.mark.slow
def test_clothing1m_reports_its_test_accuracy_when_the_labels_pass_meets_a_bad_image(
        tmp_path, monkeypatch, capsys):
    """An image whose header is fine but whose data is cut off, met first by the end-of-run
    labels pass (it reads the whole pool, which no epoch's subset covers): the test accuracy is
    still printed and logged, the run fails in one line, its checkpoint is kept."""
    root = make_clothing1m(tmp_path / 'clothing1m', size=72)
    data = Clothing1M(root)
    damaged = data.train_paths[-1]
    export_labels = Train_clothing1M.export_labels

    def damage_then_export(*args, **kwargs):
        with open(damaged, 'rb') as f:
            blob = f.read()
        with open(damaged, 'wb') as f:
            f.write(blob[:len(blob) // 2])
        return export_labels(*args, **kwargs)
    monkeypatch.setattr(Train_clothing1M, 'export_labels', damage_then_export)
    out = str(tmp_path / 'ckpt')
    code = run_cli(Train_clothing1M.main, [
        '--data_path', root, '--out_dir', out, '--pretrained', 'none', '--resize', '72',
        '--crop', '64', '--num_batches', '1', '--batch_size', '2', '--num_epochs', '1',
        '--num_workers', '0', '--no-figures'])
    captured = capsys.readouterr()
    assert code == 2
    errors = [line for line in captured.err.splitlines() if line.startswith('error: ')]
    assert errors == captured.err.splitlines()[-1:]  # one line, the last (a warning comes first)
    assert errors[0].startswith('error: cannot read image %s (' % damaged)
    assert 'test accuracy' in captured.out
    with open(os.path.join(out, 'clothing1m.txt')) as f:
        assert f.read().splitlines()[-1].startswith('Test Accuracy:')
    assert os.path.isfile(os.path.join(out, 'clothing1m_last.pth'))
    assert not os.path.exists(os.path.join(out, 'clothing1m_labels.csv'))
