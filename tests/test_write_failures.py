"""A write that fails (disk full, a file size limit) stops a run or a tool with one line naming
the file, leaves the last checkpoint and no temporary file, and --resume then ends exactly as
an uninterrupted run. The failures are real: a driver process lowers its file size limit
(RLIMIT_FSIZE, no privileges needed) just before the write under test, so the write itself
fails (EFBIG) inside torch.save, numpy, PIL, csv or a log append."""
import json
import os
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from conftest import ROOT, write_fake_cifar
from utils.cli import WriteError
from utils.snapshots import TensorBoardLog

RUN = 'cifar10_0.5_sym'
NOISE_FILE = '0.5_sym_first100.json'

# The driver runs each step in one process (its own imports once): it lowers the file size
# limit when the step's main opens, for writing, the N-th file whose path holds TARGET, to
# ROOM bytes past that file's end (room for a part of a large file: torch.save then fails
# in its zip writer, a RuntimeError; with none, it fails at its first write, an OSError)
# (utils.checkpoint.open: every whole file and log goes through that module) and lifts it as
# soon as that write has failed; it records what the step printed and left.
DRIVER = r'''
import contextlib, io, json, os, resource, sys
sys.path.insert(0, %(root)r)
import torch
import Train_cifar, utils.checkpoint
from tools import export_labels, figures, paper_cells
from utils.cli import run_cli
from utils.snapshots import save_unlabeled_examples

steps, out_dir, results_path = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
UNLIMITED = (resource.RLIM_INFINITY, resource.RLIM_INFINITY)
trigger = {'target': None, 'left': 0}
real_open, real_background = open, Train_cifar.saves_in_background
real_write_error = utils.checkpoint.write_error


def limited_open(path, mode='r', *args, **kwargs):
    if 'r' not in mode and trigger['target'] and trigger['target'] in str(path):
        trigger['left'] -= 1
        if trigger['left'] == 0:  # no file may grow past ROOM bytes beyond this one's end
            size = os.path.getsize(path) if 'a' in mode and os.path.exists(path) else 0
            resource.setrlimit(resource.RLIMIT_FSIZE,
                               (size + trigger['room'], resource.RLIM_INFINITY))
    return real_open(path, mode, *args, **kwargs)


def write_error_then_space(path, error):  # only the write under test fails (a background
    resource.setrlimit(resource.RLIMIT_FSIZE, UNLIMITED)  # one's failure is reported later)
    return real_write_error(path, error)


def epoch_of(path):
    with contextlib.suppress(FileNotFoundError):
        return torch.load(path, weights_only=True)['epoch']


utils.checkpoint.open, utils.checkpoint.write_error = limited_open, write_error_then_space
MAINS = {'train': Train_cifar.main, 'export': export_labels.main, 'figures': figures.main,
         'jobs': paper_cells.main,
         'examples': lambda argv: save_unlabeled_examples(argv[0], 'run', 0, ['a.png'], [1],
                                                          [2], [0.3])}
results = []
for step in steps:
    trigger.update(target=step['target'], left=step['nth'], room=step['room'])
    Train_cifar.saves_in_background = ((lambda device, fast: True) if step.get('background')
                                       else real_background)
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = run_cli(MAINS[step['main']], step['argv'])
    resource.setrlimit(resource.RLIMIT_FSIZE, UNLIMITED)
    prefix = os.path.join(out_dir, %(run)r)
    results.append({'code': code, 'out': out.getvalue(), 'err': err.getvalue(),
                    'reached': trigger['left'] <= 0,
                    'last': epoch_of(prefix + '_last.pth'), 'best': epoch_of(prefix + '_best.pth'),
                    'tmp': [os.path.join(folder, name) for top in (out_dir, sys.argv[4])
                            for folder, _, names in os.walk(top) for name in names
                            if name.endswith('.tmp')]})
with real_open(results_path, 'w') as f:
    json.dump(results, f)
'''

# (name, main, extra arguments, TARGET, N, ROOM, what the step leaves: exit code, the line's advice,
# the epochs of _last.pth and _best.pth (ABSENT: no such file; None: not checked)). The run has
# two epochs, 0 warm-up and 1 co-divide and SSL; the first three steps start it anew.
RESUME, AGAIN, ABSENT = ', then continue with --resume', ', then run it again', 'absent'
K = 1024  # room for a part of the file
STEPS = [
    ('noise file', 'train', [], NOISE_FILE, 1, 0, 2, None, ABSENT, ABSENT),
    ('args before the first epoch', 'train', [], '_args.json', 1, K, 2, AGAIN, ABSENT, ABSENT),
    ('best checkpoint', 'train', [], '_best.pth', 1, K, 2, RESUME, 0, ABSENT),
    ('acc log', 'train', ['--resume'], '_acc.txt', 1, 0, 2, RESUME, 0, 0),
    ('stats log', 'train', ['--resume'], '_stats.txt', 2, 0, 2, RESUME, 0, 0),
    ('jsonl log', 'train', ['--resume'], RUN + '.jsonl', 1, 0, 2, RESUME, 0, 0),
    ('division snapshot', 'train', ['--resume'], '_division', 1, K, 2, RESUME, 0, 0),
    ('checkpoint', 'train', ['--resume'], '_last.pth', 1, K, 2, RESUME, 0, 0),
    ('checkpoint in the background', 'train', ['--resume'], '_last.pth', 1, K, 2, RESUME, 0, 0),
    ('labels file', 'train', ['--resume'], '_labels.csv', 1, K, 2, RESUME, 1, None),
    ('features', 'train', ['--resume'], '_features.npz', 1, K, 2, RESUME, 1, None),
    ('figure after the run', 'train', ['--resume'], 'figures', 1, K, 0, None, 1, None),
    # the tools, on the finished run, into a folder of their own (made by the first)
    ('paper_cells jobs', 'jobs', None, 'tools_out', 1, K, 2, AGAIN, 1, None),
    ('figures', 'figures', None, 'tools_out', 1, K, 2, AGAIN, 1, None),
    ('label figures', 'figures', None, 'tools_out', 1, K, 2, AGAIN, 1, None),
    ('export_labels', 'export', None, 'tools_out', 1, K, 2, AGAIN, 1, None),
    ('unlabeled examples', 'examples', None, 'tools_out', 1, 0, 2, AGAIN, 1, None),
]

def tiny_args(data, out):
    return ['--data_path', data, '--out_dir', out, '--width', '2', '--num_epochs', '2',
            '--warm_up', '1', '--batch_size', '16', '--num_workers', '0', '--num_train', '100',
            '--num_test', '40']


def tool_args(name, out, tools):
    last = os.path.join(out, RUN + '_last.pth')
    return {'export_labels': [last, '--out', os.path.join(tools, 'labels.csv')],
            'figures': [out, '--prefix', RUN, '--out', os.path.join(tools, 'figures')],
            'label figures': ['labels', os.path.join(out, RUN + '_labels.csv'), '--out',
                              os.path.join(tools, 'label_figures')],
            'paper_cells jobs': ['jobs', os.path.join(tools, 'jobs.txt')],
            'unlabeled examples': [tools]}[name]


def train(argv):
    return [sys.executable, os.path.join(ROOT, 'Train_cifar.py')] + argv


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
    """The uninterrupted run, the steps (one failed write each) and the --resume after them."""
    root = tmp_path_factory.mktemp('writes')
    data, reference_data = str(root / 'data'), str(root / 'reference_data')
    for folder in (data, reference_data):  # each gets its own (identical) noise file
        write_fake_cifar(folder, 'cifar10')
    out, reference, tools = str(root / 'run'), str(root / 'reference'), str(root / 'tools_out')
    uninterrupted = subprocess.Popen(train(tiny_args(reference_data, reference)),
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    steps = [{'main': main, 'target': target, 'nth': nth, 'room': room,
              'background': 'background' in name,
              'argv': (tiny_args(data, out) + extra if extra is not None else
                       tool_args(name, out, tools))}
             for name, main, extra, target, nth, room, *_ in STEPS]
    (root / 'steps.json').write_text(json.dumps(steps))
    (root / 'driver.py').write_text(DRIVER % {'root': ROOT, 'run': RUN})
    driver = subprocess.run([sys.executable, str(root / 'driver.py'), str(root / 'steps.json'),
                             out, str(root / 'results.json'), data],
                            capture_output=True, text=True, timeout=300)
    assert driver.returncode == 0 and not driver.stderr, driver.stderr
    resumed = subprocess.run(train(tiny_args(data, out) + ['--resume']), capture_output=True,
                             text=True, timeout=300)
    assert uninterrupted.wait(timeout=300) == 0, uninterrupted.stderr.read()
    return {'results': json.loads((root / 'results.json').read_text()), 'out': out,
            'reference': reference, 'resumed': resumed, 'data': data, 'tools': tools}


@pytest.mark.slow  # trains end to end in subprocesses
@pytest.mark.parametrize('step', STEPS, ids=[s[0] for s in STEPS])
def test_a_failed_write_is_one_line_naming_the_file(step, runs):
    name, _, _, target, _, _, code, advice, last, best = step
    result = runs['results'][[s[0] for s in STEPS].index(name)]
    assert result['reached'], 'the step never wrote %s' % target
    assert result['code'] == code, result
    assert result['tmp'] == []  # no temporary file left, here or beside the data
    for saved, want in zip((result['last'], result['best']), (last, best)):
        if want is not None:  # the last checkpoint loads, at the epoch before the failure
            assert (ABSENT if saved is None else saved) == want, result
    if code == 0:  # a figure after the run: the run is complete, the figure is noted
        assert result['err'] == ''
        assert [line for line in result['out'].splitlines() if 'figures not drawn' in line] == [
            'figures not drawn (cannot write %s (File too large): free some space or make the '
            'folder writable): try  python tools/figures.py %s --prefix %s'
            % (os.path.join(runs['out'], 'figures', RUN + '_accuracy.png'), runs['out'], RUN)]
        return
    lines = result['err'].splitlines()
    assert len(lines) == 1 and 'Traceback' not in result['err'], result['err']
    assert lines[0].startswith('error: cannot write ') and '(File too large)' in lines[0]
    assert target in lines[0].split(' (')[0], lines[0]  # the file it names
    if advice:
        assert lines[0].endswith(advice), lines[0]
    else:  # the noise file: before the run starts, which is refused as bad input
        assert 'pass --noise_file a writable path' in lines[0]


@pytest.mark.slow
def test_the_first_failures_leave_no_run_behind(runs):
    # the noise file and the _args.json failed before the first epoch: nothing was kept
    assert [r['code'] for r in runs['results'][:2]] == [2, 2]
    assert 'cannot write the noise file %s' % os.path.join(
        runs['data'], 'cifar-10-batches-py', NOISE_FILE) in runs['results'][0]['err']


def outcome(out):
    """Final weights, the logs (without wall-clock times), the labels file and snapshots."""
    prefix = os.path.join(out, RUN)
    checkpoint = torch.load(prefix + '_last.pth', weights_only=True)
    with open(prefix + '.jsonl') as f:
        records = [{k: v for k, v in json.loads(line).items() if k != 'seconds'} for line in f]
    texts = [open(prefix + suffix).read() for suffix in ('_acc.txt', '_stats.txt', '_labels.csv')]
    arrays = [dict(np.load(path)) for path in (prefix + '_features.npz',
                                               prefix + '_division/epoch_001.npz')]
    return checkpoint, records, texts, arrays


@pytest.mark.slow
def test_resume_after_the_failures_equals_an_uninterrupted_run(runs):
    assert runs['resumed'].returncode == 0, runs['resumed'].stderr
    got, want = outcome(runs['out']), outcome(runs['reference'])
    for key in ('net1', 'net2', 'optimizer1', 'optimizer2'):
        assert torch.equal(torch.cat([v.flatten().float() for v in _tensors(got[0][key])]),
                           torch.cat([v.flatten().float() for v in _tensors(want[0][key])])), key
    assert got[1] == want[1]
    assert got[2] == want[2]
    for a, b in zip(got[3], want[3]):
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
    best = torch.load(os.path.join(runs['out'], RUN + '_best.pth'), weights_only=True)
    reference_best = torch.load(os.path.join(runs['reference'], RUN + '_best.pth'),
                                weights_only=True)
    assert best['epoch'] == reference_best['epoch']


def _tensors(state):
    """Every tensor of a state_dict (an optimizer's too), in a fixed order."""
    if torch.is_tensor(state):
        return [state]
    if isinstance(state, dict):
        return [t for k in sorted(state, key=str) for t in _tensors(state[k])]
    if isinstance(state, (list, tuple)):
        return [t for v in state for t in _tensors(v)]
    return []


@pytest.mark.parametrize('stage', ['epoch', 'close'])
def test_a_failed_tensorboard_write_is_one_line(stage, tmp_path, monkeypatch):
    # tensorboard is optional: a stand-in writer whose write fails as a full disk makes it fail
    class FullDisk:
        def __init__(self, log_dir):
            pass

        def add_scalar(self, *args):
            if stage == 'epoch':
                raise OSError(28, 'No space left on device')

        flush = add_scalar

        def close(self):
            raise OSError(28, 'No space left on device')
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard',
                        types.SimpleNamespace(SummaryWriter=FullDisk))
    log = TensorBoardLog(str(tmp_path / 'run_tb'), enabled=True)
    with pytest.raises(WriteError, match='cannot write .*run_tb \\(No space left on device\\)'):
        log.epoch({'epoch': 0, 'test_acc': 50.0})
        log.close()
