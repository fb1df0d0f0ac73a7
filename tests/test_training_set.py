"""A run records what its training set is in each checkpoint (utils/training_set.py), and a
resume on a training set that changed since is refused in one line that says what changed and
leaves the run as it was; a run saved before the record resumes as before."""
import json
import os
import pickle
import re
import shutil

import pytest
import torch

import Train_cifar
import Train_clothing1M
import Train_imagefolder
from dataloader_clothing1M import TRAIN_KEYS
from conftest import write_fake_cifar
from test_clothing1M_data import edit, make_clothing1m
from test_imagefolder_data import make_image_folder, write_image, write_list
from utils.cli import run_cli
from utils.training_set import training_set, training_set_changes


# ---------------------------------------------------------------- what changed ---------------

def changes(old, new):
    """training_set_changes between two {name: label} lists of (name, label) pairs."""
    saved = training_set([n for n, _ in old], [label for _, label in old])
    return training_set_changes(saved, training_set([n for n, _ in new],
                                                    [label for _, label in new]),
                                [n for n, _ in new])


OLD = [('a.jpg', 0), ('b.jpg', 1), ('c.jpg', 2), ('d.jpg', 0)]


def test_the_same_set_or_a_run_saved_before_the_record_is_no_change():
    assert changes(OLD, list(OLD)) is None
    assert training_set_changes(None, training_set(['a'], [0]), ['a']) is None


@pytest.mark.parametrize('new, said', [
    (OLD + [('e.jpg', 1)], '1 image added (e.jpg), of the 4 images the run was started on'),
    (OLD + [('e.jpg', 1), ('f.jpg', 1), ('g.jpg', 2)],
     '3 images added (e.jpg, f.jpg, ...), of the 4'),
    (OLD[:2], '2 images removed, of the 4'),
    ([('a.jpg', 0), ('b.jpg', 2), ('c.jpg', 2), ('d.jpg', 1)],
     '2 images relabelled (b.jpg, d.jpg), of the 4'),
    ([('a.jpg', 1), ('c.jpg', 2), ('x.jpg', 0), ('d.jpg', 0)],
     '1 image added (x.jpg), 1 removed and 1 relabelled (a.jpg), of the 4'),
    ([OLD[1], OLD[0]] + OLD[2:], 'the same images and labels in another order'),
])
def test_what_changed_is_counted_and_named(new, said):
    assert changes(OLD, new).startswith(said)


def test_pixels_name_cifar_images_and_a_record_loads_with_weights_only(tmp_path):
    pixels = [bytes([k]) * 12 for k in range(3)]
    record = training_set(pixels, [0, 1, 1])
    path = tmp_path / 'record.pth'
    torch.save({'training_set': record}, path)
    saved = torch.load(path, weights_only=True)['training_set']
    other = training_set([pixels[0], bytes([9]) * 12, pixels[2]], [0, 1, 1])
    assert training_set_changes(saved, record, ['image 0', 'image 1', 'image 2']) is None
    assert training_set_changes(saved, other, ['image 0', 'image 1', 'image 2']).startswith(
        '1 image added (image 1) and 1 removed')


# ---------------------------------------------------------------- each script ---------------

TINY = ['--width', '8', '--batch_size', '8', '--num_workers', '0', '--no-figures',
        '--warm_up', '1', '--num_epochs', '2']


def snapshot(folder):
    return {name: (folder / name).read_bytes() for name in sorted(os.listdir(folder))
            if (folder / name).is_file()}


def refused(main, argv, out, capsys, pattern):
    """main(argv) with --resume: refused in one line matching pattern, the run untouched."""
    before = snapshot(out)
    code = run_cli(main, argv + ['--resume'])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1, err
    assert re.search(pattern, err), err
    assert 'put the data back as it was' in err and 'another --out_dir' in err
    assert snapshot(out) == before


@pytest.fixture(scope='module')
def folder_run(tmp_path_factory):
    root = tmp_path_factory.mktemp('folder_run')
    make_image_folder(root / 'data' / 'train', per_class=8, size=16)
    out = root / 'out'
    argv = ['--data_path', str(root / 'data'), '--out_dir', str(out)] + TINY
    assert run_cli(Train_imagefolder.main, argv) == 0
    return root


@pytest.fixture
def image_run(folder_run, tmp_path):
    """A copy of a finished 2-epoch image-folder run and its data, for a test to change."""
    shutil.copytree(folder_run, tmp_path / 'run')
    root = tmp_path / 'run'
    argv = ['--data_path', str(root / 'data'), '--out_dir', str(root / 'out')] + TINY
    argv[argv.index('--num_epochs') + 1] = '3'
    return root, argv


@pytest.mark.slow
def test_images_added_to_a_folder(image_run, capsys):
    root, argv = image_run
    for k in range(5):
        write_image(str(root / 'data' / 'train' / 'cat' / ('new_%d.png' % k)), 'RGB',
                    (k, 0, 0), (16, 16))
    refused(Train_imagefolder.main, argv, root / 'out', capsys,
            r'^error: cannot resume \S+imagefolder_last.pth: its training set changed since: '
            r'5 images added \(train/cat/new_0.png, train/cat/new_1.png, \.\.\.\), of the 24 '
            r'images the run was started on;')


@pytest.mark.slow
def test_an_image_moved_to_another_class_folder_is_relabelled(image_run, capsys):
    root, argv = image_run
    train = root / 'data' / 'train'
    moved = sorted(os.listdir(train / 'cat'))[0]
    os.rename(train / 'cat' / moved, train / 'dog' / moved)
    os.remove(train / 'fox' / sorted(os.listdir(train / 'fox'))[0])
    refused(Train_imagefolder.main, argv, root / 'out', capsys,
            r'1 image removed and 1 relabelled \(train/dog/%s\), of the 24' % re.escape(moved))


@pytest.mark.slow
def test_a_reordered_label_list(tmp_path, capsys):
    make_image_folder(tmp_path / 'images', per_class=8, size=16)
    rows = [(os.path.join(c, name), c) for c in ('cat', 'dog', 'fox')
            for name in sorted(os.listdir(tmp_path / 'images' / c))]
    listed = write_list(tmp_path / 'train.csv', rows)
    argv = ['--data_path', str(tmp_path / 'images'), '--train_list', listed,
            '--out_dir', str(tmp_path / 'out')] + TINY
    assert run_cli(Train_imagefolder.main, argv) == 0
    write_list(listed, rows[1:] + rows[:1])
    argv[argv.index('--num_epochs') + 1] = '3'
    refused(Train_imagefolder.main, argv, tmp_path / 'out', capsys,
            'the same images and labels in another order')
    write_list(listed, rows)  # put back: the run goes on
    assert run_cli(Train_imagefolder.main, argv + ['--resume']) == 0


@pytest.mark.slow
def test_a_run_saved_before_the_record_resumes(image_run):
    root, argv = image_run
    path = root / 'out' / 'imagefolder_last.pth'
    checkpoint = torch.load(path, weights_only=True)
    assert set(checkpoint['training_set']) == {'ids', 'labels'}
    del checkpoint['training_set']
    torch.save(checkpoint, path)
    assert run_cli(Train_imagefolder.main, argv + ['--resume']) == 0
    with open(root / 'out' / 'imagefolder.jsonl') as f:
        assert [json.loads(line).get('epoch') for line in f][:3] == [0, 1, 2]
    # the resumed run records it from then on
    assert 'training_set' in torch.load(path, weights_only=True)


@pytest.mark.slow
def test_cifar_relabelled_by_another_noise_file_or_other_pixels(tmp_path, capsys):
    data = tmp_path / 'data'
    write_fake_cifar(str(data), 'cifar10')
    out = tmp_path / 'out'
    argv = ['--data_path', str(data), '--out_dir', str(out), '--num_train', '40'] + TINY
    assert run_cli(Train_cifar.main, argv) == 0
    argv[argv.index('--num_epochs') + 1] = '3'
    noise, = [p for p in data.rglob('*.json')]
    labels = json.loads(noise.read_text())
    kept = noise.read_text()
    labels[3] = (labels[3] + 1) % 10
    noise.write_text(json.dumps(labels))
    refused(Train_cifar.main, argv, out, capsys,
            r'1 image relabelled \(training image 3\), of the 40 images')
    noise.write_text(kept)
    # other pixels in the place of training image 0: that image is another one
    batch = data / 'cifar-10-batches-py' / 'data_batch_1'
    with open(batch, 'rb') as f:
        images = pickle.load(f)
    images['data'][0] = 255 - images['data'][0]
    with open(batch, 'wb') as f:
        pickle.dump(images, f)
    refused(Train_cifar.main, argv, out, capsys,
            r'1 image added \(training image 0\) and 1 removed, of the 40 images')


@pytest.mark.slow
def test_clothing1m_with_an_image_gone_from_the_noisy_list(tmp_path, capsys):
    root = make_clothing1m(tmp_path / 'clothing1m', size=72)
    out = tmp_path / 'out'
    argv = ['--data_path', root, '--out_dir', str(out), '--pretrained', 'none', '--resize',
            '72', '--crop', '64', '--num_batches', '2', '--batch_size', '4', '--num_epochs', '2',
            '--num_workers', '0', '--no-figures']
    assert run_cli(Train_clothing1M.main, argv) == 0
    argv[argv.index('--num_epochs') + 1] = '3'
    edit(root, TRAIN_KEYS, lambda lines: lines[1:])
    refused(Train_clothing1M.main, argv, out, capsys, r'1 image removed, of the \d+ images')


@pytest.mark.slow
def test_export_labels_refuses_a_changed_training_set(image_run, capsys):
    import tools.export_labels
    root, _ = image_run
    checkpoint = str(root / 'out' / 'imagefolder_last.pth')
    os.remove(sorted((root / 'data' / 'train' / 'dog').iterdir())[0])
    before = snapshot(root / 'out')
    assert run_cli(tools.export_labels.main, [checkpoint, '--data_path',
                                              str(root / 'data')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith(
        'error: the training set of %s changed since it was saved: 1 image removed, of the 24 '
        'images the run was started on; put the data back as it was' % checkpoint), err
    assert snapshot(root / 'out') == before


@pytest.mark.slow
def test_export_labels_of_a_run_on_part_of_a_folder_takes_its_images(tmp_path):
    # --num_train: the run trained on images drawn from the folder; the export takes the same
    import csv
    import tools.export_labels
    make_image_folder(tmp_path / 'data' / 'train', per_class=8, size=16)
    out = tmp_path / 'out'
    argv = ['--data_path', str(tmp_path / 'data'), '--out_dir', str(out),
            '--num_train', '16'] + TINY
    assert run_cli(Train_imagefolder.main, argv) == 0
    tools.export_labels.main([str(out / 'imagefolder_last.pth')])
    with open(out / 'imagefolder_labels.csv') as f, \
            open(out / 'imagefolder_labels_epoch1.csv') as g:
        assert [row['path'] for row in csv.DictReader(f)] == [
            row['path'] for row in csv.DictReader(g)]


@pytest.mark.slow
def test_a_run_on_part_of_a_folder_records_the_whole_folder(image_run, capsys):
    # --num_train draws from every image there: two added would change the whole draw, and
    # they are what the refusal names, not the images drawn differently
    root, argv = image_run
    out = root / 'part'
    part = ['--data_path', str(root / 'data'), '--out_dir', str(out), '--num_train', '16'] + TINY
    assert run_cli(Train_imagefolder.main, part) == 0
    for k in range(2):
        write_image(str(root / 'data' / 'train' / 'fox' / ('new_%d.png' % k)), 'RGB',
                    (k, 0, 0), (16, 16))
    part[part.index('--num_epochs') + 1] = '3'
    refused(Train_imagefolder.main, part, out, capsys,
            r'2 images added \(train/fox/new_0.png, train/fox/new_1.png\), of the 24 images')
