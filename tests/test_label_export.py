"""The labels file (utils/label_export.py, tools/export_labels.py): its columns, values computed
by hand for networks whose logits are set, the co-divide the next epoch would make, a tiny
CIFAR run that writes it, the command on a saved checkpoint, Clothing1M's known true labels."""
import contextlib
import csv
import io
import json
import math
import os
import pickle
import shutil

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import dividemix as dm
import Train_cifar
import Train_clothing1M
from conftest import write_fake_cifar
from dataloader_cifar import CIFAR10_CLASSES, class_names, load_cifar
from dataloader_clothing1M import CLASS_NAMES, CLEAN_KV, Clothing1M, Clothing1MLoaders
from dataloader_webvision import read_class_names
from test_clothing1M_data import make_clothing1m
from tools import export_labels as command
from utils.cli import run_cli
from utils.label_export import (COLUMNS, UNKNOWN, export_labels, flagged_co_divide,
                                flagged_noisy, noise_detection, off_diagonal_counts,
                                relative_to)

HEADER = ['index', 'path', 'given_label', 'clean_prob_net1', 'clean_prob_net2',
          'predicted_label', 'confidence', 'label_quality', 'flagged_noisy', 'flagged_co_divide']


def cifar_args(*argv):
    """Train_cifar.py's arguments for the co-divide of a 50%-noise cell (tau 0.5, no history)."""
    return Train_cifar.parse_args(['--p_threshold', '0.5', '--loss_history', '1'] + list(argv))


def read_csv(path):
    with open(path, newline='') as f:
        rows = list(csv.reader(f))
    return rows[0], [dict(zip(rows[0], row)) for row in rows[1:]]


def linear(weight):
    """A network whose logits are x @ weight.T: logits set by hand."""
    net = torch.nn.Linear(2, 2, bias=False)
    with torch.no_grad():
        net.weight.copy_(torch.tensor(weight, dtype=torch.float32))
    return net


def loader_of(x, labels, batch_size=3):
    """An eval loader as the scripts' eval_train: (images, given labels, position)."""
    x = torch.tensor(x, dtype=torch.float32)
    return DataLoader(TensorDataset(x, torch.tensor(labels), torch.arange(len(x))),
                      batch_size=batch_size)


def sigmoid(z):
    return 1 / (1 + math.exp(-z))


# ---------------------------------------------------------------- values by hand -------------

def test_columns_in_order():
    assert list(COLUMNS) == HEADER


def test_prediction_confidence_and_columns_by_hand(tmp_path):
    # net1's logits are the inputs, net2's the inputs swapped and halved:
    #   image 0: net1 (2, 0), net2 (0, 1)       sum (2, 1)     -> class 0
    #   image 1: net1 (0, 1), net2 (0.5, 0)     sum (0.5, 1)   -> class 1
    #   image 2: net1 (1, 3), net2 (1.5, 0.5)   sum (2.5, 3.5) -> class 1
    #   image 3: net1 (3, -1), net2 (-0.5, 1.5) sum (2.5, 0.5) -> class 0
    # confidence: the mean of the two softmax probabilities of that class; with two classes
    # softmax(a, b)[0] = sigmoid(a - b).
    x = [[2, 0], [0, 1], [1, 3], [3, -1]]
    given = [0, 0, 1, 1]
    nets = [linear([[1, 0], [0, 1]]), linear([[0, 0.5], [0.5, 0]])]
    path = str(tmp_path / 'run_labels.csv')
    labels = export_labels(path, nets, loader_of(x, given), torch.device('cpu'), epoch=7,
                           args=cifar_args(), true=np.array([0, 1, 1, UNKNOWN]),
                           paths=['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg'], class_names=['cat', 'dog'])
    header, rows = read_csv(path)
    assert header == HEADER + ['true_label']
    assert [r['predicted_label'] for r in rows] == ['cat', 'dog', 'dog', 'cat']
    confidence = [(sigmoid(2) + sigmoid(-1)) / 2, (sigmoid(1) + sigmoid(-0.5)) / 2,
                  (sigmoid(2) + sigmoid(-1)) / 2, (sigmoid(4) + sigmoid(-2)) / 2]
    assert [r['confidence'] for r in rows] == ['%.6f' % c for c in confidence]
    assert [r['index'] for r in rows] == ['0', '1', '2', '3']
    assert [r['path'] for r in rows] == ['a.jpg', 'b.jpg', 'c.jpg', 'd.jpg']
    assert [r['given_label'] for r in rows] == ['cat', 'cat', 'dog', 'dog']
    assert [r['true_label'] for r in rows] == ['cat', 'dog', 'dog', '']
    for r in rows:  # probabilities with 6 decimals, a flag 0 or 1
        assert all(len(r[k].split('.')[1]) == 6 for k in ('clean_prob_net1', 'clean_prob_net2',
                                                          'confidence'))
        assert r['flagged_noisy'] in ('0', '1')
    assert labels.record['labels_file'] == 'run_labels.csv'
    assert labels.record['labels_epoch'] == 7 and labels.record['labels_images'] == 4
    assert labels.record['labels_known'] == 3  # image 3's truth is unknown


def test_net1_alone_predicts_when_asked(tmp_path):
    # with predict_with=1 (the test of one-network runs and --test_net1_only) image 2 is
    # net1's class 1 and image 3 net1's class 0; confidence is net1's softmax alone
    nets = [linear([[1, 0], [0, 1]]), linear([[0, 5], [5, 0]])]
    path = str(tmp_path / 'labels.csv')
    export_labels(path, nets, loader_of([[0, 1], [1, 3], [3, -1]], [0, 1, 0]),
                  torch.device('cpu'), epoch=0, args=cifar_args(), predict_with=1)
    header, rows = read_csv(path)
    assert header == HEADER  # no truth given: no true_label column
    assert [r['predicted_label'] for r in rows] == ['1', '1', '0']
    assert [r['confidence'] for r in rows] == ['%.6f' % sigmoid(z) for z in (1, 2, 4)]
    assert all(r['clean_prob_net2'] for r in rows)  # both networks still divide


def test_co_divide_flag_is_mean_clean_probability_not_above_tau():
    clean_probs = [np.array([0.5, 0.6, 0.9, 0.51, 0.2]), np.array([0.5, 0.41, 0.1, 0.5, 0.2])]
    # means 0.5, 0.505, 0.5, 0.505, 0.2: flagged where <= 0.5
    assert flagged_co_divide(clean_probs, cifar_args()).tolist() == [1, 0, 1, 0, 1]
    assert flagged_co_divide(clean_probs[:1], cifar_args('--p_threshold', '0.55')).tolist() == [
        1, 0, 0, 1, 1]


# Three classes; the thresholds are each class's mean probability over the images given it:
# t0 = (0.8 + 0.6 + 0.1) / 3 = 0.5, t1 = (0.7 + 0.45) / 2 = 0.575, t2 = (0.8 + 0.3) / 2 = 0.55
CONFIDENT_JOINT_CASE = (
    np.array([0, 0, 0, 1, 1, 2, 2]),
    np.array([[0.8, 0.1, 0.1],     # given 0, only class 0 reaches its threshold: diagonal
              [0.6, 0.3, 0.1],     # given 0, class 0 reaches (0.6 >= 0.5): diagonal
              [0.1, 0.8, 0.1],     # given 0, class 1 reaches (0.8 >= 0.575): off, row 0
              [0.2, 0.7, 0.1],     # given 1, class 1 reaches: diagonal
              [0.55, 0.45, 0.0],   # given 1, class 0 reaches, its own not: off, row 1
              [0.1, 0.1, 0.8],     # given 2, own class reaches: diagonal
              [0.6, 0.1, 0.3]]))   # given 2, class 0 reaches (0.6 >= 0.5), its own not: off


def test_off_diagonal_counts_by_hand():
    given, probs = CONFIDENT_JOINT_CASE
    assert off_diagonal_counts(probs, given).tolist() == [1, 1, 1]
    # no class reaches its threshold: the image is not counted at all
    assert off_diagonal_counts(np.array([[0.9, 0.1], [0.4, 0.6], [0.2, 0.5]]),
                               np.array([0, 1, 1])).tolist() == [0, 0]
    # two classes reach: the more probable decides (own class: diagonal; another: off)
    given = np.array([0, 0, 1, 1, 2])
    probs = np.array([[0.5, 0.4, 0.1],    # t0 = (0.5 + 0.3) / 2 = 0.4: classes 0 and 1 reach,
                      [0.3, 0.3, 0.4],    # 0 the more probable: diagonal; image 1: none
                      [0.35, 0.45, 0.2],  # t1 = (0.45 + 0.35) / 2 = 0.4: class 1 reaches
                      [0.1, 0.35, 0.55],  # none reaches (t2 = 0.8)
                      [0.1, 0.1, 0.8]])
    assert off_diagonal_counts(probs, given).tolist() == [0, 0, 0]
    probs[2] = [0.5, 0.45, 0.05]  # classes 0 and 1 reach, 0 the more probable: off, row 1
    assert off_diagonal_counts(probs, given).tolist() == [0, 1, 0]
    # a class nobody is given is never reached (its threshold is undefined)
    assert off_diagonal_counts(np.array([[0.1, 0.9]]), np.array([0])).tolist() == [0, 0]


def test_flag_takes_the_lowest_quality_within_each_given_class():
    given, probs = CONFIDENT_JOINT_CASE[0], CONFIDENT_JOINT_CASE[1].copy()  # one off per row
    quality = np.array([0.30, 0.20, 0.25, 0.10, 0.90, 0.05, 0.40])
    # class 0: the lowest of 0.30, 0.20, 0.25 is image 1 (not image 2, the one off the
    # diagonal: the count comes from the joint, the choice from the ranking); class 1: image 3;
    # class 2: image 5
    assert flagged_noisy(quality, probs, given).tolist() == [0, 1, 0, 1, 0, 1, 0]
    # a class whose row has nothing off the diagonal keeps all its images, however low
    probs[6] = [0.1, 0.1, 0.8]
    assert flagged_noisy(quality, probs, given).tolist() == [0, 1, 0, 1, 0, 0, 0]
    # ties: the earlier image
    assert flagged_noisy(np.full(7, 0.5), CONFIDENT_JOINT_CASE[1], given).tolist() == [
        1, 0, 0, 1, 0, 1, 0]


def test_noise_detection_by_hand():
    given = [0, 1, 2, 3, 4, 5]
    true = [0, 0, 2, 0, UNKNOWN, 5]   # wrong labels: images 1 and 3 (image 4 unknown)
    flagged = [1, 1, 0, 0, 1, 0]      # flags among the known: 0 (right) and 1 (wrong)
    precision, recall, known = noise_detection(flagged, given, true)
    assert (precision, recall, known) == (0.5, 0.5, 5)
    assert math.isnan(noise_detection([0] * 6, given, true)[0])  # nothing flagged


def test_co_divide_is_the_next_epochs_and_the_run_is_untouched(tmp_path):
    rng = np.random.RandomState(0)
    x, given = rng.randn(40, 2), rng.randint(0, 2, 40)
    nets = [linear([[1, 0], [0, 1]]), linear([[0.3, -1], [2, 0.5]])]
    earlier = [[torch.rand(40)], [torch.rand(40)]]  # one earlier epoch's normalised losses
    histories = [list(h) for h in earlier]
    np.random.seed(5)
    torch.manual_seed(5)
    labels = export_labels(str(tmp_path / 'labels.csv'), nets, loader_of(x, given),
                           torch.device('cpu'), epoch=3, args=cifar_args('--loss_history', '2'),
                           loss_histories=histories)
    after = np.random.randint(2 ** 31), torch.rand(1)
    # the run's histories and random streams are as they were
    assert all(len(h) == 1 and torch.equal(h[0], e[0]) for h, e in zip(histories, earlier))
    np.random.seed(5)
    torch.manual_seed(5)
    assert after == (np.random.randint(2 ** 31), torch.rand(1))
    # the clean probabilities are what the next epoch's co-divide makes with these networks
    np.random.seed(5)
    expected = [dm.co_divide(net, loader_of(x, given), [h[0]], torch.device('cpu'),
                             cifar_args('--loss_history', '2')) for net, h in zip(nets, earlier)]
    _, rows = read_csv(str(tmp_path / 'labels.csv'))
    for k, division in enumerate(expected):
        assert [r['clean_prob_net%d' % (k + 1)] for r in rows] == [
            '%.6f' % p for p in division.clean_prob]
    assert labels.record['labels_loss_history'] == 2


# ---------------------------------------------------------------- class names, truth ---------

def test_class_names(tmp_path):
    assert class_names(str(tmp_path), 'cifar10') == list(CIFAR10_CLASSES) == [
        'airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship',
        'truck']
    folder = write_fake_cifar(str(tmp_path / 'c100'), 'cifar100', num_train=10, num_test=5)
    assert class_names(str(tmp_path / 'c100'), 'cifar100') is None  # no meta: integers
    names = ['class%d' % c for c in range(100)]
    with open(os.path.join(folder, 'meta'), 'wb') as f:
        pickle.dump({'fine_label_names': names, 'coarse_label_names': ['x'] * 20}, f)
    assert class_names(str(tmp_path / 'c100'), 'cifar100') == names
    synsets = tmp_path / 'synsets.txt'
    synsets.write_text('n01440764 tench, Tinca tinca\nn01443537 goldfish, Carassius auratus\n'
                       'n01484850 great white shark, white shark\n')
    assert read_class_names(str(synsets), 3) == ['tench', 'goldfish', 'great white shark']
    assert read_class_names(str(synsets), 4) is None  # does not name every class
    assert read_class_names(str(tmp_path / 'none.txt'), 3) is None


def test_clothing1m_whole_pool_with_its_known_true_labels(tmp_path):
    root = make_clothing1m(tmp_path / 'clothing1m')
    # two training images that clean_label_kv also covers: one labeled right, one wrong
    noisy_kv = open(os.path.join(root, 'noisy_label_kv.txt')).read().splitlines()
    first, second = noisy_kv[1].split()[0], noisy_kv[2].split()[0]
    with open(os.path.join(root, CLEAN_KV), 'a') as f:
        f.write('%s %s\n%s 13\n' % (first, noisy_kv[1].split()[1], second))
    data = Clothing1M(root)
    known = np.flatnonzero(data.train_clean_labels != UNKNOWN)
    assert known.tolist() == [1, 2] and data.class_names == list(CLASS_NAMES)
    assert data.train_clean_labels[1] == data.train_labels[1]
    assert data.train_clean_labels[2] == 13 != data.train_labels[2]
    loader = Clothing1MLoaders(data, batch_size=4, resize=12, crop=12).eval_train()
    assert loader.dataset.indices.tolist() == list(range(len(data.train_paths)))  # all, in order
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(),
                              torch.nn.Linear(3, 14))
    path = str(tmp_path / 'clothing1m_labels.csv')
    labels = export_labels(path, [net, net], loader, torch.device('cpu'), epoch=0,
                           args=Train_clothing1M.parse_args([]), true=data.train_clean_labels,
                           paths=relative_to(data.root, data.train_paths),
                           class_names=data.class_names)
    _, rows = read_csv(path)
    assert len(rows) == len(data.train_paths)
    assert [r['path'] for r in rows][:3] == [key[len('images/'):] for key in
                                             (noisy_kv[0].split()[0], first, second)]
    assert [r['true_label'] for r in rows][:4] == ['', rows[1]['given_label'], 'Underwear', '']
    flagged = [int(r['flagged_noisy']) for r in rows]
    assert labels.record['labels_known'] == 2
    assert labels.record['labels_recall'] == flagged[2]  # image 2 is the one wrong label


# ---------------------------------------------------------------- a run, and the command -----

TINY = ['--width', '8', '--warm_up', '1', '--batch_size', '16', '--num_workers', '0',
        '--no-figures']
PREFIX = 'cifar10_0.5_sym'


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
    """A finished tiny CIFAR-10 run (200 images, 2 epochs): its folder, data and console."""
    root = tmp_path_factory.mktemp('labels')
    data = str(root / 'data')
    write_fake_cifar(data)
    console = io.StringIO()
    with contextlib.redirect_stdout(console):
        Train_cifar.main(['--data_path', data, '--out_dir', str(root / 'run'),
                          '--num_epochs', '2'] + TINY)
    return str(root / 'run'), data, console.getvalue()


@pytest.mark.slow
def test_a_run_writes_its_labels(finished):
    out, data, console = finished
    header, rows = read_csv(os.path.join(out, PREFIX + '_labels.csv'))
    assert header == HEADER + ['true_label'] and len(rows) == 200
    _, clean_labels, _, _ = load_cifar(data, 'cifar10')
    assert [r['true_label'] for r in rows] == [CIFAR10_CLASSES[c] for c in clean_labels]
    assert all(r['path'] == '' and r['clean_prob_net2'] for r in rows)
    with open(os.path.join(data, 'cifar-10-batches-py', '0.5_sym.json')) as f:
        noisy = [int(v) for v in f.read().strip('[]\n').split(',')]
    assert [r['given_label'] for r in rows] == [CIFAR10_CLASSES[c] for c in noisy]
    flagged = [r for r in rows if r['flagged_noisy'] == '1']
    wrong = [r for r in rows if r['given_label'] != r['true_label']]
    caught = [r for r in flagged if r['given_label'] != r['true_label']]
    assert all(r['flagged_co_divide'] == ('1' if mean <= 0.5 else '0') for r, mean in
               ((r, (float(r['clean_prob_net1']) + float(r['clean_prob_net2'])) / 2)
                for r in rows) if abs(mean - 0.5) > 1e-6)  # (rounding)
    for name in CIFAR10_CLASSES:  # within a given class, the flagged are the lowest quality
        quality = [(float(r['label_quality']), r['flagged_noisy']) for r in rows
                   if r['given_label'] == name]
        assert max([q for q, f in quality if f == '1'], default=0) <= min(
            [q for q, f in quality if f == '0'], default=1)
    with open(os.path.join(out, PREFIX + '.jsonl')) as f:
        final = json.loads(f.read().splitlines()[-1])
    assert final['final'] and final['labels_file'] == PREFIX + '_labels.csv'
    assert (final['labels_epoch'], final['labels_p_threshold'],
            final['labels_loss_history']) == (1, 0.5, 1)
    assert final['labels_flagged'] == len(flagged) and final['labels_images'] == 200
    assert final['labels_flagged_co_divide'] == sum(r['flagged_co_divide'] == '1' for r in rows)
    assert final['labels_precision'] == pytest.approx(len(caught) / len(flagged))
    assert final['labels_recall'] == pytest.approx(len(caught) / len(wrong))
    line, = [line for line in console.splitlines() if line.startswith('labels: ')]
    assert line == ('labels: %d of 200 training images flagged as noisy (%d by the co-divide) '
                    'in %s; as noise detection on the 200 with known true labels: '
                    'precision %.3f, recall %.3f'
                    % (len(flagged), final['labels_flagged_co_divide'],
                       os.path.join(out, PREFIX + '_labels.csv'),
                       len(caught) / len(flagged), len(caught) / len(wrong)))


@pytest.mark.slow
def test_the_command_on_the_last_checkpoint_writes_the_runs_file_and_never_overwrites(
        finished, capsys):
    out, _, _ = finished
    written = os.path.join(out, PREFIX + '_labels_epoch1.csv')
    assert run_cli(command.main, [os.path.join(out, PREFIX + '_last.pth')]) == 0
    with open(written, 'rb') as f, open(os.path.join(out, PREFIX + '_labels.csv'), 'rb') as g:
        assert f.read() == g.read()  # the checkpoint's loss history and random state: the same
    capsys.readouterr()
    os.utime(written, (0, 0))
    assert run_cli(command.main, [os.path.join(out, PREFIX + '_last.pth')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'exists' in err and '--out' in err
    assert os.stat(written).st_mtime == 0  # untouched


@pytest.mark.slow
def test_the_command_refuses_bad_input_in_one_line(finished, tmp_path, capsys):
    out, data, _ = finished
    not_a_checkpoint = os.path.join(out, PREFIX + '.jsonl')
    assert run_cli(command.main, [not_a_checkpoint]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'cannot be loaded' in err
    # the data moved: one line that says to pass --data_path; then passing it works
    moved = str(tmp_path / 'moved')
    shutil.copytree(data, moved)
    checkpoint = torch.load(os.path.join(out, PREFIX + '_best.pth'), weights_only=True)
    checkpoint['args']['data_path'] = str(tmp_path / 'gone')
    torch.save(checkpoint, str(tmp_path / 'run_best.pth'))
    assert run_cli(command.main, [str(tmp_path / 'run_best.pth')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'pass --data_path' in err
    assert run_cli(command.main, [str(tmp_path / 'run_best.pth'), '--data_path', moved]) == 0
    header, rows = read_csv(str(tmp_path / ('run_labels_epoch%d.csv' % checkpoint['epoch'])))
    assert header[-1] == 'true_label' and len(rows) == 200


@pytest.mark.slow
def test_a_one_network_run_leaves_net2_empty(finished, tmp_path):
    _, data, _ = finished
    out = str(tmp_path / 'ce')
    with contextlib.redirect_stdout(io.StringIO()):
        Train_cifar.main(['--data_path', data, '--out_dir', out, '--method', 'ce',
                          '--num_epochs', '1'] + TINY)
    _, rows = read_csv(os.path.join(out, PREFIX + '_ce_labels.csv'))
    assert len(rows) == 200 and all(r['clean_prob_net2'] == '' for r in rows)
    assert all(r['flagged_co_divide'] == ('1' if float(r['clean_prob_net1']) <= 0.5 else '0')
               for r in rows if abs(float(r['clean_prob_net1']) - 0.5) > 1e-6)  # (rounding)


@pytest.mark.slow
def test_the_command_on_a_clothing1m_checkpoint_writes_the_runs_file(tmp_path):
    import Train_clothing1M
    root = make_clothing1m(tmp_path / 'clothing1m', size=72)
    out = tmp_path / 'run'
    Train_clothing1M.main(['--data_path', root, '--out_dir', str(out), '--pretrained', 'none',
                           '--resize', '72', '--crop', '64', '--num_batches', '2',
                           '--batch_size', '4', '--num_workers', '0', '--num_epochs', '1',
                           '--no-figures'])
    assert run_cli(command.main, [str(out / 'clothing1m_last.pth')]) == 0
    written = (out / 'clothing1m_labels_epoch0.csv').read_bytes()
    assert written == (out / 'clothing1m_labels.csv').read_bytes()  # the whole pool, as the run
    assert written.count(b'\n') == 1 + len(Clothing1M(root).train_paths)
