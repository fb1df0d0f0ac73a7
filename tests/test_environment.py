"""The machine a run meets: an optional package installed but broken is refused at the start
in one line with its error and the fix; sizes that cannot fit in memory are refused before
anything is written, with the estimate and the memory there is; memory that runs out mid-run
is one line, the last checkpoint kept."""
import os
import subprocess
import sys

import pytest
import torch

import dividemix as dm
import Train_cifar
import Train_clothing1M
import Train_imagefolder
from conftest import ROOT, write_fake_cifar
from test_clothing1M_data import make_clothing1m
from test_imagefolder_data import make_image_folder
from utils.cli import import_problem, run_cli
from utils.models import cifar_net, training_memory

TINY = ['--width', '8', '--num_epochs', '2', '--warm_up', '1', '--batch_size', '16',
        '--num_workers', '0', '--no-figures']


def one_error_line(capsys, code):
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
    return err


@pytest.fixture
def broken_package(tmp_path, monkeypatch):
    """make(name): a package `name` that is installed, but raises at import."""
    def make(name):
        folder = tmp_path / 'site' / name
        folder.mkdir(parents=True)
        (folder / '__init__.py').write_text("raise RuntimeError('half-installed wheel')\n")
        monkeypatch.syspath_prepend(str(tmp_path / 'site'))
        for module in [m for m in sys.modules if m == name or m.startswith(name + '.')]:
            monkeypatch.delitem(sys.modules, module)
    return make


@pytest.fixture(scope='module')
def cifar(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('cifar'))
    write_fake_cifar(root, 'cifar10', num_train=64)
    return root


# ---------------------------------------------------------------- optional packages ------------

def test_a_broken_matplotlib_is_refused_at_the_start(broken_package, cifar, tmp_path, capsys):
    broken_package('matplotlib')
    assert import_problem('matplotlib.figure') == (
        'installed but fails to import here (RuntimeError: half-installed wheel)')
    out = tmp_path / 'out'
    err = one_error_line(capsys, run_cli(Train_cifar.main, ['--data_path', cifar,
                                                            '--out_dir', str(out)]))
    assert err == ('error: --figures (the default) draws the figures with matplotlib, which is '
                   'installed but fails to import here (RuntimeError: half-installed wheel): '
                   'repair it (pip install --force-reinstall matplotlib), or pass '
                   '--no-figures\n')
    assert not out.exists()


def test_a_broken_tensorboard_is_refused_at_the_start(broken_package, cifar, tmp_path, capsys,
                                                      monkeypatch):
    broken_package('tensorboard')
    for module in [m for m in sys.modules if m.startswith('torch.utils.tensorboard')]:
        monkeypatch.delitem(sys.modules, module)  # imported afresh, restored after
    err = one_error_line(capsys, run_cli(Train_cifar.main, [
        '--data_path', cifar, '--out_dir', str(tmp_path / 'out'), '--tensorboard']))
    assert '--tensorboard logs with tensorboard, which is installed but fails to import' in err
    assert 'drop --tensorboard' in err


def test_the_drawing_tools_with_a_broken_matplotlib_say_it_in_one_line(broken_package,
                                                                         monkeypatch):
    import tools.drawing as drawing
    broken_package('matplotlib')
    # what tools/drawing.py finds when it is imported with this matplotlib
    monkeypatch.setattr(drawing, 'MATPLOTLIB_PROBLEM', import_problem('matplotlib.figure'))
    monkeypatch.setattr(drawing, 'Figure', None)
    with pytest.raises(Exception, match=r'^drawing needs matplotlib, which is installed but '
                                        r'fails to import here \(RuntimeError: half-installed '
                                        r'wheel\): repair it'):
        drawing.refuse_without_matplotlib()


@pytest.mark.slow
def test_the_drawing_tools_import_whatever_matplotlib_raises(tmp_path):
    site = tmp_path / 'site' / 'matplotlib'
    site.mkdir(parents=True)
    (site / '__init__.py').write_text("raise RuntimeError('half-installed wheel')\n")
    done = subprocess.run([sys.executable, '-c', 'import tools.drawing as d; print(d.Figure)'],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(tmp_path / 'site')))
    assert done.returncode == 0 and done.stdout == 'None\n', done.stderr


@pytest.mark.slow
def test_a_bad_mplbackend_is_named_with_its_fix(cifar, tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, 'Train_cifar.py'), '--data_path',
                           cifar, '--out_dir', str(tmp_path / 'out')], capture_output=True,
                          text=True, env=dict(os.environ, MPLBACKEND='nonsense'), timeout=300)
    assert done.returncode == 2 and done.stderr.count('\n') == 1, done.stderr
    assert "(ValueError: Key backend: 'nonsense' is not a valid value" in done.stderr
    assert done.stderr.endswith(': unset MPLBACKEND or set it to agg, or pass --no-figures\n')


# ---------------------------------------------------------------- sizes that cannot fit --------

def test_training_memory_counts_the_weights_and_the_largest_layer_without_allocating():
    net = cifar_net('preact18', 10, 8)
    weights = sum(p.numel() for p in net.parameters())
    # the largest layer output of preact18 at width 8: the first convolution's, 8 x 32 x 32
    rows = 16
    assert training_memory(lambda: cifar_net('preact18', 10, 8), rows, 32) == 4 * (
        6 * weights + rows * 8 * 32 * 32 + rows * 3 * 32 * 32)
    # a million-wide network is counted, not built: 4 x 6 x ~11e6 x (1e6 / 64)^2 bytes
    assert training_memory(lambda: cifar_net('preact18', 10, 10 ** 6), 4, 32) > 6e16


@pytest.mark.parametrize('script, argv, said', [
    (Train_cifar, ['--width', '100000'], 'error: --width 100000 and --batch_size 64 need at '
                                         'least 654 TB of memory to train, more than the '),
    (Train_cifar, ['--batch_size', '10000000000'], 'error: --width 64 and --batch_size '
                                                   '10000000000 need at least 11 PB'),
    (Train_imagefolder, ['--resize', '2000000'], 'error: --resize 2000000, --image_size 32, '
                                                 '--width 64 and --batch_size 64 need at least '),
    (Train_clothing1M, ['--resize', '900000', '--crop', '224'], 'error: --resize 900000, --crop '
                                                                '224 and --batch_size 32 need'),
])
def test_sizes_that_cannot_fit_are_refused_before_anything_is_written(
        script, argv, said, cifar, tmp_path, capsys):
    if script is Train_imagefolder:
        make_image_folder(tmp_path / 'data' / 'train', per_class=2)
        data = str(tmp_path / 'data')
    elif script is Train_clothing1M:
        data = make_clothing1m(tmp_path / 'clothing1m', size=72)
    else:
        data = cifar
    out = tmp_path / 'out'
    err = one_error_line(capsys, run_cli(script.main, ['--data_path', data, '--out_dir', str(out),
                                                       '--num_workers', '0'] + argv))
    assert err.startswith(said) and 'free on this machine: lower ' in err, err
    assert not out.exists()


# ---------------------------------------------------------------- memory that runs out ---------

def test_memory_running_out_mid_run_is_one_line_and_keeps_the_checkpoint(cifar, tmp_path,
                                                                         monkeypatch, capsys):
    out = tmp_path / 'out'
    argv = ['--data_path', cifar, '--out_dir', str(out)] + TINY

    def exhausted(*_):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: "
                           "can't allocate memory: you tried to allocate 999999999 bytes.")
    monkeypatch.setattr(dm, 'labeled_loss', exhausted)  # in the first SSL epoch, epoch 1
    err = one_error_line(capsys, run_cli(Train_cifar.main, argv))
    assert err == ('error: out of memory here: lower --batch_size (or the size of the network '
                   'or of the images); finished epochs are saved: continue with --resume\n')
    saved = torch.load(out / 'cifar10_0.5_sym_last.pth', weights_only=True)
    assert saved['epoch'] == 0
    monkeypatch.undo()
    assert run_cli(Train_cifar.main, argv + ['--resume']) == 0  # as it said


def test_memory_running_out_before_the_first_epoch_leaves_nothing(cifar, tmp_path, monkeypatch,
                                                                  capsys):
    def exhausted(*_, **__):
        raise torch.OutOfMemoryError('CUDA out of memory. Tried to allocate 2.00 GiB')
    monkeypatch.setattr(Train_cifar, 'warmup_step', exhausted)
    out = tmp_path / 'out'
    err = one_error_line(capsys, run_cli(Train_cifar.main, ['--data_path', cifar, '--out_dir',
                                                            str(out)] + TINY))
    assert err.startswith('error: out of memory on the GPU: lower --batch_size')
    assert err.endswith('nothing was kept: run it again\n') and not out.exists()


def test_another_runtime_error_is_not_called_out_of_memory(cifar, tmp_path, monkeypatch):
    def broken(*_, **__):
        raise RuntimeError('a bug')
    monkeypatch.setattr(Train_cifar, 'warmup_step', broken)
    with pytest.raises(RuntimeError, match='a bug'):
        run_cli(Train_cifar.main, ['--data_path', cifar, '--out_dir', str(tmp_path / 'o')] + TINY)
