"""A run survives SIGKILL and SIGTERM at any point: resuming gives the same weights and logs as
an uninterrupted run. Bad input and unsafe checkpoints are refused before anything changes."""
import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

import dividemix as dm
import Train_cifar
from conftest import ROOT, write_fake_cifar
from utils.cli import run_cli

pytestmark = pytest.mark.slow  # every test here trains end to end

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = 'cifar10_0.5_sym'


def tiny_args(data, out, *extra):
    return ['--data_path', data, '--out_dir', out, '--width', '8', '--num_epochs', '3',
            '--warm_up', '1', '--batch_size', '16', '--num_workers', '0',
            '--no-figures'] + list(extra)


def train(argv, point=None, n=0):
    """Run training in a fresh process (optionally stopped at a point) in a process group of
    its own; return the process."""
    cmd = ([sys.executable, os.path.join(HERE, 'kill_run.py'), point, str(n)] if point else
           [sys.executable, os.path.join(ROOT, 'Train_cifar.py')])
    # in the caller's working directory: the test's own tmp_path (tests/conftest.py)
    return subprocess.run(cmd + argv, capture_output=True, text=True, timeout=300,
                          start_new_session=True)


def outcome(out, prefix=PREFIX):
    """Final weights and the JSONL without wall-clock times."""
    ckpt = torch.load(os.path.join(out, prefix + '_last.pth'), weights_only=True)
    with open(os.path.join(out, prefix + '.jsonl')) as f:
        records = [json.loads(line) for line in f]
    records = [{k: v for k, v in r.items() if k != 'seconds'} for r in records]
    with open(os.path.join(out, prefix + '_acc.txt')) as f, \
            open(os.path.join(out, prefix + '_stats.txt')) as g:
        return ckpt['net1'], ckpt['net2'], records, f.read(), g.read()


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    write_fake_cifar(root, 'cifar10')
    return root


@pytest.fixture(scope='module')
def reference_dir(data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('reference'))
    proc = train(tiny_args(data, out))
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope='module')
def reference(reference_dir):
    return outcome(reference_dir)


def assert_same(a, b):
    for net_a, net_b in zip(a[:2], b[:2]):
        assert net_a.keys() == net_b.keys()
        for k in net_a:
            assert torch.equal(net_a[k], net_b[k]), k
    assert a[2:] == b[2:]


@pytest.mark.parametrize('point, n', [
    ('ssl_step', 7),            # mid SSL epoch
    ('log_written', 2),         # logs of epoch 1 written, its checkpoint not
    ('checkpoint_write', 3),    # half-written checkpoint file
])  # and between epochs: test_sigkill_between_last_and_best_checkpoint_is_repaired
def test_sigkill_then_resume_equals_uninterrupted(point, n, data, reference, tmp_path):
    out = str(tmp_path / 'run')
    killed = train(tiny_args(data, out), point, n)
    assert killed.returncode == -signal.SIGKILL
    resumed = train(tiny_args(data, out, '--resume'))
    assert resumed.returncode == 0, resumed.stderr
    assert 'resuming after epoch' in resumed.stdout
    assert_same(outcome(out), reference)


def test_sigkill_between_last_and_best_checkpoint_is_repaired(data, reference_dir, reference,
                                                              tmp_path):
    # Killed after the checkpoint of the run's best epoch, before its copy to _best.pth: the
    # resumed run must end with the same best checkpoint as an uninterrupted one.
    with open(os.path.join(reference_dir, PREFIX + '.jsonl')) as f:
        scores = [r['test_acc'] for r in map(json.loads, f) if 'test_acc' in r]
    copies = sum(score >= max(scores[:k + 1]) for k, score in enumerate(scores))
    out = str(tmp_path / 'run')
    killed = train(tiny_args(data, out), 'before_best', copies)  # before the last copy
    assert killed.returncode == -signal.SIGKILL
    assert train(tiny_args(data, out, '--resume')).returncode == 0
    got, want = (torch.load(os.path.join(d, PREFIX + '_best.pth'), weights_only=True)
                 for d in (out, reference_dir))
    assert got['epoch'] == want['epoch'] == max(k for k, s in enumerate(scores)
                                                if s == max(scores))
    assert all(torch.equal(got['net1'][k], want['net1'][k]) for k in want['net1'])
    assert_same(outcome(out), reference)  # and the run as a whole


def stop_line(stopped):
    """The one line a run stopped by SIGTERM said; it exited with 128 + SIGTERM."""
    assert stopped.returncode == 128 + signal.SIGTERM, stopped.stderr
    message = stopped.stderr.strip().splitlines()
    assert len(message) == 1 and 'stopped by SIGTERM' in message[0], stopped.stderr
    return message[0]


def test_sigterm_stops_cleanly_and_resumes_exactly(data, reference, tmp_path):
    out = str(tmp_path / 'run')
    assert stop_line(train(tiny_args(data, out), 'sigterm', 7)).endswith('--resume')
    assert os.path.exists(os.path.join(out, PREFIX + '_last.pth'))
    resumed = train(tiny_args(data, out, '--resume'))
    assert resumed.returncode == 0, resumed.stderr
    assert_same(outcome(out), reference)


@pytest.mark.parametrize('point, n', [
    ('group_sigterm', 7),    # to the run and its workers at once, as a scheduler or `timeout`
    ('sigterm_in_fork', 9),  # inside a fork hook, as a loader starts a worker (epoch 1)
])
def test_a_stop_with_loader_workers_is_one_line(point, n, data, tmp_path):
    # Sent to the process group, torch's SIGCHLD handler raised "DataLoader worker ... is
    # killed by signal" over the stop (a traceback, exit code 1); raised in a fork hook, Python
    # dropped the stop ("Exception ignored") and the run went on to its end.
    out = str(tmp_path / 'run')
    line = stop_line(train(tiny_args(data, out, '--plain', '--num_workers', '2'), point, n))
    assert line.endswith('--resume')


def test_sigterm_while_a_checkpoint_is_written_stops_once_it_is_whole(data, tmp_path):
    # A stop raised inside torch.save's writer came out as torch's RuntimeError with a
    # traceback; held until the file is whole, it is the stop's one line, and the checkpoint of
    # the epoch it arrived in is kept whole (a whole checkpoint resumes exactly: the tests above).
    out = str(tmp_path / 'run')
    stop_line(train(tiny_args(data, out), 'sigterm_in_save', 2))  # in epoch 1's checkpoint
    assert not any(name.endswith('.tmp') for name in os.listdir(out))
    assert torch.load(os.path.join(out, PREFIX + '_last.pth'), weights_only=True)['epoch'] == 1


def snapshot(folder):
    return {name: open(os.path.join(folder, name), 'rb').read()
            for name in sorted(os.listdir(folder))}


@pytest.fixture(scope='module')
def finished_template(data, tmp_path_factory):
    out = str(tmp_path_factory.mktemp('finished') / 'run')
    assert run_cli(Train_cifar.main, tiny_args(data, out, '--num_epochs', '2')) == 0
    return out


@pytest.fixture
def finished_run(finished_template, tmp_path):
    """A copy of a finished 2-epoch run, for a test to change."""
    out = str(tmp_path / 'run')
    shutil.copytree(finished_template, out)
    return out


@pytest.mark.parametrize('extra, message', [
    ([], 'already holds the run cifar10_0.5_sym, with the same settings: add --resume'),
    (['--resume', '--seed', '5'], 'cannot resume .* with other settings: --seed 5 \\(was 123\\)'),
    (['--resume', '--lambda_u', '3'], 'other settings: --lambda_u 3.0 \\(was 25\\)'),
    (['--resume', '--width', '16'], 'other settings: --width 16 \\(was 8\\)'),
])
def test_refusals_leave_the_run_untouched(extra, message, data, finished_run, capsys):
    before = snapshot(finished_run)
    code = run_cli(Train_cifar.main, tiny_args(data, finished_run, '--num_epochs', '2', *extra))
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    import re
    assert re.search(message, err), err
    assert snapshot(finished_run) == before


def test_resume_extends_a_finished_run(data, finished_run, reference):
    assert run_cli(Train_cifar.main, tiny_args(data, finished_run, '--resume')) == 0
    assert_same(outcome(finished_run), reference)


def test_a_run_saved_before_args_named_their_script_resumes(data, finished_run, reference):
    # Runs saved before the arguments held 'script' resume as the script's own.
    path = os.path.join(finished_run, PREFIX + '_last.pth')
    checkpoint = torch.load(path, weights_only=True)
    del checkpoint['args']['script']
    torch.save(checkpoint, path)
    assert run_cli(Train_cifar.main, tiny_args(data, finished_run, '--resume')) == 0
    assert_same(outcome(finished_run), reference)


def test_unwritable_out_dir(data, tmp_path, capsys):
    blocker = tmp_path / 'file'
    blocker.write_text('not a folder')
    code = run_cli(Train_cifar.main, tiny_args(data, str(blocker / 'out')))
    err = capsys.readouterr().err
    assert code == 2 and 'which is a file: pass a folder' in err
    assert blocker.read_text() == 'not a folder'


def test_noise_file_that_is_not_json(data, tmp_path, capsys):
    noise = tmp_path / 'noise.json'
    noise.write_text('not json')
    out = tmp_path / 'out'
    code = run_cli(Train_cifar.main, tiny_args(data, str(out), '--noise_file', str(noise)))
    err = capsys.readouterr().err
    assert code == 2 and 'is not readable JSON' in err and len(err.strip().splitlines()) == 1
    assert noise.read_text() == 'not json' and not out.exists()


def test_non_finite_loss_keeps_last_good_checkpoint(data, finished_run, monkeypatch, capsys):
    monkeypatch.setattr(dm, 'labeled_loss', lambda logits, targets: logits.sum() * float('nan'))
    before = torch.load(os.path.join(finished_run, PREFIX + '_last.pth'), weights_only=True)
    code = run_cli(Train_cifar.main, tiny_args(data, finished_run, '--resume'))
    err = capsys.readouterr().err
    assert code == 2 and 'non-finite SSL loss' in err
    after = torch.load(os.path.join(finished_run, PREFIX + '_last.pth'), weights_only=True)
    assert after['epoch'] == before['epoch'] == 1
    assert all(torch.equal(before['net1'][k], after['net1'][k]) for k in before['net1'])
