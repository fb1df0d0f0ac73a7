"""More DataLoader workers than CPUs: one warning line per run, however many epochs and passes
(torch's own warning came back at every epoch), and none at all before a start-up refusal."""
import os
import subprocess
import sys
import warnings

import pytest
import torch
from torch.utils.data import TensorDataset

import utils.data
from conftest import write_fake_cifar
from test_clothing1M_data import make_clothing1m
from test_imagefolder_data import make_image_folder
from utils.data import make_loader, usable_cpus

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOO_MANY = usable_cpus() + 2  # more workers than this machine's CPUs, whatever it has


def run_script(script, argv):
    """The script as a command: (exit code, stdout, stderr)."""
    # run from the test's own working directory (tmp_path: tests/conftest.py), not the checkout
    done = subprocess.run([sys.executable, os.path.join(ROOT, script)] + argv,
                          capture_output=True, text=True,
                          env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=600)
    return done.returncode, done.stdout, done.stderr


def test_loader_says_it_once_and_torch_not_at_all(monkeypatch, capsys):
    monkeypatch.setattr(utils.data, '_workers_said', [])
    data = TensorDataset(torch.arange(8.0))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        loaders = [make_loader(data, 4, shuffle=False, num_workers=TOO_MANY) for _ in range(2)]
        assert capsys.readouterr().err == ''  # made, not started: nothing yet
        for loader in loaders + loaders:
            assert [len(x) for x, in loader] == [4, 4]
    assert not [w for w in caught if 'worker' in str(w.message)]
    err = capsys.readouterr().err.splitlines()
    assert err == ['warning: --num_workers %d is more than the %d CPUs this process may use, '
                   "which can slow data loading down: lower it (a seeded run's augmentations "
                   'depend on the number of workers)' % (TOO_MANY, usable_cpus())]


def test_loader_within_the_cpus_says_nothing(monkeypatch, capsys):
    monkeypatch.setattr(utils.data, '_workers_said', [])
    loader = make_loader(TensorDataset(torch.arange(4.0)), 2, shuffle=False,
                         num_workers=min(1, usable_cpus()))
    assert len(list(loader)) == 2
    assert capsys.readouterr().err == ''


@pytest.mark.slow
def test_several_epochs_warn_once(tmp_path):
    """Warm-up and SSL epochs, each with its GMM fits (whose input checks reset Python's record
    of the warnings already shown) and fresh loaders: one line in all."""
    data = write_fake_cifar(str(tmp_path / 'data'), num_train=64, num_test=16)
    code, out, err = run_script('Train_cifar.py', [
        '--data_path', data, '--out_dir', str(tmp_path / 'out'), '--plain', '--num_workers',
        str(TOO_MANY), '--width', '4', '--batch_size', '8', '--num_epochs', '3', '--warm_up',
        '1', '--no-figures'])
    assert code == 0, err
    assert out.count('| Epoch [') == 3
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith('warning: --num_workers %d is more than the'
                                                   % TOO_MANY), err


@pytest.mark.slow
@pytest.mark.parametrize('script', ['Train_imagefolder.py', 'Train_clothing1M.py'])
def test_refused_run_prints_its_error_alone(script, tmp_path):
    """The loaders are made before the networks, whose weights file is refused: the error line
    is all stderr holds, and nothing is written."""
    if script == 'Train_imagefolder.py':
        for split, count in (('train', 4), ('test', 2)):
            make_image_folder(tmp_path / 'data' / split, per_class=count, size=16)
        data, extra = str(tmp_path / 'data'), ['--arch', 'resnet50', '--batch_size', '4']
    else:
        data, extra = make_clothing1m(tmp_path / 'data', size=40), ['--resize', '40', '--crop',
                                                                    '33']
    missing = str(tmp_path / 'missing.pth')
    code, out, err = run_script(script, ['--data_path', data, '--out_dir', str(tmp_path / 'out'),
                                         '--num_workers', str(TOO_MANY), '--pretrained', missing,
                                         '--no-figures'] + extra)
    assert code == 2
    assert err.splitlines() == [err.strip()] and err.startswith('error: %s cannot be loaded'
                                                                % missing)
    assert 'warning' not in out.lower() and 'worker' not in out
    assert not os.path.exists(tmp_path / 'out')

