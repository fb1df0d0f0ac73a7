"""Train_cifar.py end to end on tiny data, on CPU: logs, determinism, defaults, bad input."""
import json
import os

import numpy as np
import pytest

import Train_cifar
from conftest import TABLE7
from utils.cli import run_cli

TINY = ['--width', '8', '--num_epochs', '3', '--warm_up', '1', '--batch_size', '16',
        '--num_workers', '0', '--no-figures']


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def without_time(records):
    return [{k: v for k, v in r.items() if k != 'seconds'} for r in records]


@pytest.mark.slow
def test_end_to_end_cifar10_writes_all_logs(cifar10_dir, tmp_path):
    out = str(tmp_path / 'ckpt')
    summary = Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', out] + TINY)
    prefix = os.path.join(out, 'cifar10_0.5_sym')
    acc_lines = open(prefix + '_acc.txt').read().splitlines()
    assert [line.split('   ')[0] for line in acc_lines] == ['Epoch:0', 'Epoch:1', 'Epoch:2']
    assert all(line.startswith('Epoch:') and '   Accuracy:' in line for line in acc_lines)
    stats = open(prefix + '_stats.txt').read().splitlines()
    assert len(stats) == 4  # two divisions per SSL epoch, 2 SSL epochs
    assert all(s.startswith('Numer of labeled samples:') and '   AUC:' in s for s in stats)
    records = read_jsonl(prefix + '.jsonl')
    epochs, final = records[:-1], records[-1]
    assert [r['epoch'] for r in epochs] == [0, 1, 2]
    assert 'warmup_ce' in epochs[0]['net1']
    for net in ('net1', 'net2'):
        r = epochs[2][net]
        assert set(r) >= {'labeled', 'auc', 'precision', 'recall', 'loss_x', 'loss_u'}
        assert 0 <= r['labeled'] <= 200
    # the stats line for net1's training division matches the JSONL
    assert stats[2].split('   ')[0] == 'Numer of labeled samples:%d' % epochs[2]['net1']['labeled']
    accs = [r['test_acc'] for r in epochs]
    assert final['best'] == max(accs) == summary['best']
    assert final['last10'] == pytest.approx(np.mean(accs))
    args = json.load(open(prefix + '_args.json'))
    assert args['lambda_u'] == 25 and args['num_class'] == 10
    # the noise file was written beside the pickles (the authors' <data_path> when it holds them)
    assert os.path.exists(os.path.join(cifar10_dir, 'cifar-10-batches-py', '0.5_sym.json'))


@pytest.mark.slow
def test_end_to_end_cifar100_asym(cifar100_dir, tmp_path):
    out = str(tmp_path / 'ckpt')
    Train_cifar.main(['--dataset', 'cifar100', '--data_path', cifar100_dir, '--r', '0.4',
                      '--noise_mode', 'asym', '--out_dir', out] + TINY)
    records = read_jsonl(os.path.join(out, 'cifar100_0.4_asym.jsonl'))
    assert len(records) == 4 and records[-1]['final']
    noisy = json.load(open(os.path.join(cifar100_dir, 'cifar-100-python', '0.4_asym.json')))
    assert len(noisy) == 300 and max(noisy) < 100


@pytest.mark.slow
def test_same_seed_same_run(cifar10_dir, tmp_path):
    runs = []
    for k in range(2):
        out = str(tmp_path / ('run%d' % k))
        Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', out, '--r', '0.8'] + TINY)
        runs.append(without_time(read_jsonl(os.path.join(out, 'cifar10_0.8_sym.jsonl'))))
    assert runs[0] == runs[1]
    out = str(tmp_path / 'other_seed')
    Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', out, '--r', '0.8',
                      '--seed', '7'] + TINY)
    assert without_time(read_jsonl(os.path.join(out, 'cifar10_0.8_sym.jsonl'))) != runs[0]


@pytest.mark.parametrize('cell', sorted(TABLE7))
def test_table7_defaults(cell):
    dataset, mode, r = cell
    args = Train_cifar.complete_args(Train_cifar.parse_args(
        ['--dataset', dataset, '--noise_mode', mode, '--r', str(r)]))
    assert (args.lambda_u, args.p_threshold) == TABLE7[cell]
    assert args.warm_up == (10 if dataset == 'cifar10' else 30)
    assert args.num_class == (10 if dataset == 'cifar10' else 100)
    assert args.loss_history == (5 if r == 0.9 else 1)  # 5-epoch loss history at 90% noise


def test_given_settings_override_the_cell_defaults():
    args = Train_cifar.complete_args(Train_cifar.parse_args(
        ['--r', '0.9', '--lambda_u', '7', '--p_threshold', '0.3', '--loss_history', '2']))
    assert (args.lambda_u, args.p_threshold, args.loss_history) == (7, 0.3, 2)
    args = Train_cifar.complete_args(Train_cifar.parse_args(['--r', '0.3']))  # off-table
    assert (args.lambda_u, args.p_threshold) == (25, 0.5)


@pytest.mark.parametrize('argv, message', [
    (['--r', '1.5'], '--r 1.5: it must be in [0, 1]'),
    (['--num_class', '100'], '--num_class 100 disagrees with --dataset cifar10'),
    (['--num_train', '5000'], '--num_train 5000 is more than the 200 images'),
    (['--noise_file', 'NOISE'], 'has 2 labels but the training set has 200'),
])
def test_bad_input_one_line_exit_2(argv, message, cifar10_dir, tmp_path, capsys):
    noise = tmp_path / 'noise.json'
    noise.write_text('[1, 2]')
    argv = [str(noise) if a == 'NOISE' else a for a in argv]
    out = tmp_path / 'ckpt'
    code = run_cli(Train_cifar.main, ['--data_path', cifar10_dir, '--out_dir', str(out)]
                   + TINY + argv)
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing was written before the input was checked


def test_bad_choice_is_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        Train_cifar.parse_args(['--noise_mode', 'pairflip'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and len(err.strip().splitlines()) == 1 and 'pairflip' in err


def test_missing_data_is_one_line(tmp_path, capsys):
    code = run_cli(Train_cifar.main, ['--data_path', str(tmp_path / 'none'), '--no-download']
                   + TINY)
    err = capsys.readouterr().err
    assert code == 2 and 'no cifar10 data in' in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / 'none').exists()


def test_offline_download_is_one_line(tmp_path, capsys, monkeypatch):
    import urllib.error
    import torchvision

    def offline(root, train=True, download=False):
        raise urllib.error.URLError('[Errno -2] Name or service not known')
    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', offline)
    code = run_cli(Train_cifar.main, ['--data_path', str(tmp_path / 'none')] + TINY)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert 'could not download cifar10' in err and 'kriz/cifar.html' in err


@pytest.mark.slow
def test_real_cifar10_small_run(real_cifar10, tmp_path):
    """Real CIFAR-10 ($DIVIDEMIX_CIFAR10 or ../shared): labels line up with the official order,
    the injected noise has the expected rate, and a narrow net learns well above chance in a
    few epochs."""
    out = str(tmp_path / 'ckpt')
    noise_file = str(tmp_path / 'noise.json')
    summary = Train_cifar.main(
        ['--data_path', real_cifar10, '--out_dir', out, '--noise_file', noise_file,
         '--create_noise_file', '--num_train', '2000', '--num_test', '1000', '--width', '16',
         '--num_epochs', '4', '--warm_up', '3', '--r', '0.2', '--num_workers', '0', '--no-figures'])
    from dataloader_cifar import load_cifar
    _, clean, _, _ = load_cifar(real_cifar10, 'cifar10')
    assert clean[:10].tolist() == [6, 9, 9, 4, 1, 1, 2, 7, 8, 3]  # data_batch_1's first ten
    noisy = np.array(json.load(open(noise_file)))
    assert abs((noisy != clean[:2000]).mean() - 0.2 * 0.9) < 0.02
    assert summary['best'] > 25  # chance is 10%
    records = read_jsonl(os.path.join(out, 'cifar10_0.2_sym.jsonl'))
    assert records[3]['net1']['auc'] > 0.6  # co-divide already separates clean from noisy


@pytest.mark.slow
def test_real_cifar10_fast_and_plain_paths_learn_alike(real_cifar10, tmp_path):
    """The same short warm-up on the fast path (device-side augmentation, bf16 where the CPU has
    it) and on --plain: both learn, and end close. (Full DivideMix runs of both paths, 3 seeds:
    results/fast_vs_plain; a few SSL epochs at this scale are too noisy to compare here.)"""
    best = {}
    for path in ('fast', 'plain'):
        summary = Train_cifar.main(
            ['--data_path', real_cifar10, '--out_dir', str(tmp_path / path),
             '--noise_file', str(tmp_path / 'noise.json'), '--create_noise_file',
             '--num_train', '1000',
             '--num_test', '1000', '--width', '16', '--num_epochs', '4', '--warm_up', '4',
             '--r', '0.2',
             '--num_workers', '0', '--no-figures'] + (['--plain'] if path == 'plain' else []))
        best[path] = summary['best']
    assert min(best.values()) > 15  # chance is 10%
    assert abs(best['fast'] - best['plain']) < 8, best
