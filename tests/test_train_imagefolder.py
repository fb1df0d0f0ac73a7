"""Train_imagefolder.py end to end on small generated image folders: both layouts give the same
run, a resumed run equals an uninterrupted one, known true labels give the division's AUC,
imbalanced classes train with a balanced warm-up, bad input writes nothing, and with --plain a run
equals Train_cifar.py --plain on the same images to the bit."""
import csv
import json
import os

import pytest

import Train_imagefolder
from conftest import files_under
from test_imagefolder_data import make_image_folder, write_list
from utils.cli import run_cli

pytestmark = pytest.mark.slow  # trains end to end (seconds each)

TINY = ['--width', '8', '--batch_size', '8', '--num_workers', '0', '--no-figures',
        '--warm_up', '1']


def records(out, prefix='imagefolder'):
    with open(os.path.join(out, prefix + '.jsonl')) as f:
        return [{k: v for k, v in json.loads(line).items() if k != 'seconds'} for line in f]


@pytest.fixture(scope='module')
def dataset(tmp_path_factory):
    """data/{train,test,val}/<cat|dog|fox>/...: 12 training images per class (the folder is
    the given label), 4 test and 3 validation images per class."""
    root = tmp_path_factory.mktemp('images')
    made = {}
    for split, count in (('train', 12), ('test', 4), ('val', 3)):
        made[split] = make_image_folder(root / 'data' / split, per_class=count, size=16)
    return root, made


@pytest.fixture(scope='module')
def folder_run(dataset):
    root, _ = dataset
    out = str(root / 'folders')
    summary = Train_imagefolder.main(['--data_path', str(root / 'data'), '--out_dir', out,
                                      '--num_epochs', '3'] + TINY)
    return out, summary


def test_folder_layout_trains_tests_and_validates(folder_run):
    out, summary = folder_run
    got = records(out)
    assert [r['epoch'] for r in got[:3]] == [0, 1, 2]
    for r in got[:3]:
        assert 0 <= r['test_acc'] <= 100 and 0 <= r['val_acc'] <= 100
        assert {'net1_acc', 'net2_acc', 'net1_val_acc', 'net2_val_acc'} <= set(r)
    assert 0 <= got[1]['net1']['labeled'] <= 36 and 'loss_x' in got[1]['net1']
    # the best checkpoint is the best validation epoch (ties: the later one)
    assert summary['best'] == max(r['val_acc'] for r in got[:3])
    with open(os.path.join(out, 'imagefolder_args.json')) as f:
        args = json.load(f)
    assert args['num_class'] == 3 and args['arch'] == 'preact18' and args['lambda_u'] == 25
    with open(os.path.join(out, 'imagefolder_stats.txt')) as f:  # no truth: no AUC to give
        assert [line for line in f if 'labeled samples' in line] == [
            'Numer of labeled samples:%d\n' % got[epoch][net]['labeled']
            for epoch in (1, 2) for net in ('net1', 'net2')]


def test_lists_give_the_same_run_and_resume_exactly(dataset, folder_run, tmp_path):
    # The same images as label lists, in the same order: the same run. Stopped after two
    # epochs and resumed, it ends as the uninterrupted one.
    root, made = dataset
    lists = {split: write_list(tmp_path / (split + '.csv'),
                               [(os.path.join(split, path), label) for path, label in rows])
             for split, rows in made.items()}
    out = str(tmp_path / 'lists')
    argv = ['--data_path', str(root / 'data'), '--train_list', lists['train'], '--test_list',
            lists['test'], '--val_list', lists['val'], '--out_dir', out] + TINY
    assert run_cli(Train_imagefolder.main, argv + ['--num_epochs', '2']) == 0
    assert run_cli(Train_imagefolder.main, argv + ['--num_epochs', '3', '--resume']) == 0
    assert records(out) == records(folder_run[0])


def test_known_true_labels_give_the_division_auc_and_the_labels_file(dataset, tmp_path,
                                                                     capsys):
    # Flip the given labels of a third of the cats to dog in a list; the clean list knows them.
    root, made = dataset
    rows = [(os.path.join('train', path), label) for path, label in made['train']]
    noisy = [(path, 'dog' if label == 'cat' and k % 3 == 0 else label)
             for k, (path, label) in enumerate(rows)]
    argv = ['--data_path', str(root / 'data'),
            '--train_list', write_list(tmp_path / 'noisy.csv', noisy),
            '--clean_list', write_list(tmp_path / 'clean.csv', rows),
            '--out_dir', str(tmp_path / 'out'), '--num_epochs', '2'] + TINY
    assert run_cli(Train_imagefolder.main, argv) == 0
    division = records(str(tmp_path / 'out'))[1]['net1']
    assert 0 <= division['auc'] <= 1 and 0 <= division['precision'] <= 1
    with open(tmp_path / 'out' / 'imagefolder_stats.txt') as f:
        assert 'Numer of labeled samples:%d   AUC:%.3f\n' % (
            division['labeled'], division['auc']) in f.read()
    assert 'test_acc' not in records(str(tmp_path / 'out'))[1]  # lists: no test set given
    # the label errors, as a file: paths as listed, given and true labels as class names
    labels = tmp_path / 'out' / 'imagefolder_labels.csv'
    with open(labels) as f:
        table = list(csv.DictReader(f))
    assert [(r['path'], r['given_label'], r['true_label']) for r in table] == [
        (path, given, true) for (path, given), (_, true) in zip(noisy, rows)]
    assert records(str(tmp_path / 'out'))[-1]['labels_file'] == labels.name
    assert 'precision' in capsys.readouterr().out


def test_imbalanced_classes_train_with_a_balanced_warm_up(tmp_path):
    data = tmp_path / 'data'
    make_image_folder(data / 'train', classes=('many',), per_class=20, size=16)
    make_image_folder(data / 'train', classes=('few', 'rare'), per_class=3, size=16)
    out = str(tmp_path / 'out')
    argv = ['--data_path', str(data), '--out_dir', out, '--num_epochs', '2',
            '--balanced_warmup'] + TINY
    assert run_cli(Train_imagefolder.main, argv) == 0
    second = records(out)[1]
    assert 0 <= second['net1']['labeled'] <= 26 and 0 <= second['net2']['labeled'] <= 26


@pytest.mark.parametrize('make, message', [
    (lambda d: make_image_folder(d / 'train', classes=('only',), per_class=8, size=8),
     'DivideMix needs at least 2 classes'),
    (lambda d: make_image_folder(d / 'train', per_class=2, size=8),
     'fewer than one batch (--batch_size 8): lower --batch_size'),
    (lambda d: (make_image_folder(d / 'train', per_class=4, size=8),
                make_image_folder(d / 'test', classes=('wolf',), per_class=1, size=8)),
     "class folder 'wolf', a class the training set lacks"),
])
def test_bad_dataset_is_one_line_and_writes_nothing(make, message, tmp_path, capsys):
    data = tmp_path / 'data'
    make(data)
    before = files_under(str(tmp_path))
    code = run_cli(Train_imagefolder.main, ['--data_path', str(data), '--out_dir',
                                            str(tmp_path / 'out')] + TINY)
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and message in err, err
    assert files_under(str(tmp_path)) == before


def test_plain_run_is_train_cifar_plain_bit_for_bit(tmp_path):
    """The same CIFAR-format images (lossless PNG files here), the same noisy labels and the
    same settings: Train_imagefolder.py --plain and Train_cifar.py --plain take the same random
    draws in the same order and compute the same numbers, to the bit; so the default paths
    differ only where Train_cifar.py augments batches as tensors (other random draws)."""
    import numpy as np
    import torch
    from PIL import Image
    import Train_cifar
    from conftest import write_fake_cifar
    from dataloader_cifar import CIFAR10_CLASSES, MEAN_STD, load_cifar
    folder = write_fake_cifar(str(tmp_path / 'cifar'), num_train=96, num_test=32)
    train, clean, test, test_labels = load_cifar(folder, 'cifar10')
    noisy = [int(c) if k % 3 else (int(c) + 1 + k % 9) % 10 for k, c in enumerate(clean)]
    with open(tmp_path / 'noise.json', 'w') as f:
        json.dump(noisy, f)
    lists = {}
    for split, images, labels in (('train', train, noisy), ('clean', train, clean),
                                  ('test', test, test_labels)):
        rows = []
        for k, (image, label) in enumerate(zip(images, labels)):
            path = '%s/%04d.png' % ('test' if split == 'test' else 'train', k)
            if split != 'clean':
                os.makedirs(tmp_path / 'images' / os.path.dirname(path), exist_ok=True)
                Image.fromarray(image).save(tmp_path / 'images' / path)
            rows.append((path, int(label)))
        lists[split] = write_list(tmp_path / (split + '.csv'), rows)
    (tmp_path / 'classes.txt').write_text('\n'.join(CIFAR10_CLASSES) + '\n')
    mean, std = MEAN_STD['cifar10']
    same = ['--plain', '--width', '8', '--batch_size', '16', '--num_workers', '0',
            '--no-figures', '--num_epochs', '3', '--warm_up', '1', '--seed', '1']
    Train_cifar.main(['--data_path', folder, '--noise_file', str(tmp_path / 'noise.json'),
                      '--out_dir', str(tmp_path / 'cifar_run')] + same)
    Train_imagefolder.main(
        ['--data_path', str(tmp_path / 'images'), '--train_list', lists['train'],
         '--clean_list', lists['clean'], '--test_list', lists['test'], '--classes',
         str(tmp_path / 'classes.txt'), '--no-warmup_penalty', '--mean', *map(str, mean),
         '--std', *map(str, std), '--out_dir', str(tmp_path / 'folder_run')] + same)

    cifar = records(str(tmp_path / 'cifar_run'), 'cifar10_0.5_sym')
    folder_records = records(str(tmp_path / 'folder_run'))
    for a, b in zip(cifar[:3], folder_records[:3]):
        a.pop('noise_rate')  # CIFAR's own record of the injected noise
        assert a == b  # CE, division sizes, AUC, precision, recall, Lx, Lu, test accuracy
    assert folder_records[1]['net1']['labeled'] > 0 and 'auc' in folder_records[2]['net2']
    last = [torch.load(tmp_path / run, weights_only=True) for run in
            ('cifar_run/cifar10_0.5_sym_last.pth', 'folder_run/imagefolder_last.pth')]
    for net in ('net1', 'net2'):
        assert all(torch.equal(last[0][net][k], last[1][net][k]) for k in last[0][net])
    labels = []
    for name in ('cifar_run/cifar10_0.5_sym_labels.csv', 'folder_run/imagefolder_labels.csv'):
        with open(tmp_path / name) as f:
            labels.append([{k: v for k, v in row.items() if k != 'path'}
                           for row in csv.DictReader(f)])
    assert labels[0] == labels[1] and len(labels[0]) == 96
    assert np.mean([r['given_label'] != r['true_label'] for r in labels[0]]) > 0.3
