"""The tools follow the training scripts' rules: bad input is one line `error: ...` and exit code
2 before anything is written; a file the tool did not write is never overwritten; what means
nothing (an unknown table, a folder without runs, an empty or repeated selection) is refused.
And the optional dependencies: a training run that needs matplotlib or tensorboard and cannot
import it is refused at its start; the tools that do not draw import without matplotlib."""
import importlib.util
import os
import shutil
import sys

import pytest

import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
from conftest import ROOT, files_under
from tools import benchmark_speed, drawing, export_labels, figures, label_figures, paper_cells
from utils.cli import run_cli

MEASURED = os.path.join(ROOT, 'results', 'authors_setting', 'cifar10_0.5_sym')


def command(main, argv):
    """The exit code of `main` run as a command (argparse's own errors end in SystemExit)."""
    try:
        return run_cli(main, argv)
    except SystemExit as e:
        return e.code


def one_line(capsys, code, *parts):
    """The command ended with exit code 2 and one error line holding every part: `error: ...`,
    or `<prog>: error: ...` for what argparse refuses itself (a choice, a type)."""
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and 'error: ' in err, err
    for part in parts:
        assert part in err, err
    return err


@pytest.fixture
def run_dir(tmp_path):
    """A folder holding one measured run (its log and its arguments)."""
    folder = tmp_path / 'run'
    folder.mkdir()
    for suffix in ('.jsonl', '_args.json'):
        shutil.copy(MEASURED + suffix, str(folder))
    return folder


# ---------------------------------------------------------------- tools/paper_cells.py -------

def test_paper_cells_jobs_never_overwrites_a_file(tmp_path, capsys):
    path = tmp_path / 'jobs.txt'
    path.write_text('my own notes\n')
    code = command(paper_cells.main, ['jobs', str(path), '--tables', '3'])
    one_line(capsys, code, '%s exists and is never overwritten' % path, 'another file name')
    assert path.read_text() == 'my own notes\n'


@pytest.mark.parametrize('argv, message', [
    (['list', '--tables', '9'], "--tables: invalid choice: '9'"),
    (['list', '--tables'], '--tables: expected at least one argument'),
    (['list', '--seeds', 'one'], "--seeds: invalid int value: 'one'"),
    (['list', '--seeds', '-1'], '--seeds -1: a seed must be in [0, 4294967295]'),
    (['list', '--seeds', '1', '1'], '--seeds 1 1: a seed given twice'),
    (['list', 'jobs.txt'], 'list takes no paths (jobs.txt)'),
    (['run', '--all'], '--all is for table'),
    (['jobs'], 'jobs writes one file'),
    (['jobs', 'a.txt', 'b.txt'], 'jobs writes one file'),
])
def test_paper_cells_refuses_what_means_nothing(argv, message, tmp_path, capsys):
    code = command(paper_cells.main, argv)
    one_line(capsys, code, message)
    assert os.listdir(tmp_path) == []  # (the test's working directory)


def test_paper_cells_table_refuses_a_missing_or_empty_folder(run_dir, tmp_path, capsys):
    code = command(paper_cells.main, ['table', str(tmp_path / 'missing')])
    one_line(capsys, code, '%s is not a folder' % (tmp_path / 'missing'))
    (tmp_path / 'empty').mkdir()
    code = command(paper_cells.main, ['table', str(run_dir), str(tmp_path / 'empty'), '--all'])
    one_line(capsys, code, '%s holds no run' % (tmp_path / 'empty'))
    assert command(paper_cells.main, ['table', str(run_dir)]) == 0
    assert '| 1 | cifar10 sym 50% DivideMix |' in capsys.readouterr().out


# ---------------------------------------------------------------- tools/figures.py -----------

def test_figures_never_overwrite_a_file_they_did_not_draw(run_dir, tmp_path, capsys):
    out = tmp_path / 'figs'
    out.mkdir()
    foreign = out / 'cifar10_0.5_sym_division.png'
    foreign.write_bytes(b'a picture of my own')
    code = command(figures.main, [str(run_dir), '--out', str(out)])
    one_line(capsys, code, '%s exists and is not a figure drawn here' % foreign, '--out')
    assert files_under(str(out)) == {'cifar10_0.5_sym_division.png': b'a picture of my own'}
    foreign.unlink()
    assert command(figures.main, [str(run_dir), '--out', str(out)]) == 0
    drawn = sorted(os.listdir(out))
    assert drawn == ['cifar10_0.5_sym_accuracy.png', 'cifar10_0.5_sym_division.png']
    assert all(figures.drawn_here(str(out / name)) for name in drawn)
    assert command(figures.main, [str(run_dir), '--out', str(out)]) == 0  # its own: redrawn
    assert sorted(os.listdir(out)) == drawn


@pytest.mark.parametrize('argv, message', [
    (['--epochs', '-1'], "--epochs: invalid epoch_number value: '-1'"),
    (['--epochs', 'last'], "--epochs: invalid epoch_number value: 'last'"),
    (['--prefix', 'other'], 'no run other in'),
    (['--out', 'FILE'], 'is a file: pass a folder'),
])
def test_figures_refuse_bad_options(argv, message, run_dir, tmp_path, capsys):
    (tmp_path / 'FILE').write_text('x')
    argv = [str(tmp_path / a) if a == 'FILE' else a for a in argv]
    before = files_under(str(tmp_path))
    one_line(capsys, command(figures.main, [str(run_dir)] + argv), message)
    assert files_under(str(tmp_path)) == before


def test_figures_refuse_epochs_without_a_snapshot(tmp_path, capsys):
    run_dir = tmp_path / 'run'
    (run_dir / 'cifar10_0.5_sym_division').mkdir(parents=True)
    for suffix in ('.jsonl', '_args.json'):
        shutil.copy(MEASURED + suffix, str(run_dir))
    (run_dir / 'cifar10_0.5_sym_division' / 'epoch_010.npz').write_bytes(b'')
    code = command(figures.main, [str(run_dir), '--epochs', '3', '7'])
    one_line(capsys, code, '--epochs 3 7: cifar10_0.5_sym saved no loss snapshot at these '
                           'epochs (saved: 10)')
    assert not (run_dir / 'figures').exists()


# ---------------------------------------------------------------- the other tools ------------

@pytest.mark.parametrize('argv, message', [
    (['--num_workers', '-1'], '--num_workers -1: it must be >= 0'),
    (['--gpuid', '-2'], '--gpuid -2: it must be >= 0'),
    (['--gpuid', 'x'], "--gpuid: invalid int value: 'x'"),
])
def test_export_labels_refuses_bad_options(argv, message, tmp_path, capsys):
    code = command(export_labels.main, [str(tmp_path / 'run_last.pth')] + argv)
    one_line(capsys, code, message)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize('argv, message', [
    (['--num_train', '1'], '--num_train 1: it must be >= 2'),
    (['--width', '0'], '--width 0: it must be >= 1'),
    (['--r', '1.5'], '--r 1.5: it must be in [0, 1]'),
    (['--paths', 'fast', 'fast'], '--paths fast fast: a path named twice'),
    (['--paths', 'fastest'], "--paths: invalid choice: 'fastest'"),
    (['--data_path', 'MISSING'], '--data_path MISSING is not a folder'),
])
def test_benchmark_refuses_bad_options(argv, message, tmp_path, capsys):
    (tmp_path / 'data').mkdir()
    code = command(benchmark_speed.main, ['--data_path', str(tmp_path / 'data')] + argv)
    one_line(capsys, code, message)
    assert os.listdir(tmp_path) == ['data']


def test_benchmark_never_overwrites_its_json(tmp_path, capsys):
    (tmp_path / 'data').mkdir()
    numbers = tmp_path / 'numbers.json'
    numbers.write_text('{"mine": 1}')
    code = command(benchmark_speed.main, ['--data_path', str(tmp_path / 'data'), '--json',
                                          str(numbers)])
    one_line(capsys, code, '%s exists and is never overwritten' % numbers)
    assert numbers.read_text() == '{"mine": 1}'


def quick_look_measure():
    spec = importlib.util.spec_from_file_location(
        'quick_look_measure', os.path.join(ROOT, 'results', 'quick_look', 'measure.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize('argv, message', [
    (['--out', 'OUT'], 'OUT exists and is never overwritten'),
    (['--data_path', 'MISSING'], '--data_path MISSING is not a folder'),
    (['--args', '--r "0.5'], "cannot be split into arguments"),
    (['--args', '--out_dir elsewhere'], '--args names --data_path or --out_dir'),
])
def test_quick_look_measure_refuses_bad_options(argv, message, tmp_path, capsys):
    (tmp_path / 'OUT').mkdir()
    (tmp_path / 'data').mkdir()
    before = files_under(str(tmp_path))
    argv = ['--data_path', 'data', '--out', 'new'] + argv  # the working directory: tmp_path
    code = command(quick_look_measure().main, argv)
    one_line(capsys, code, message)
    assert files_under(str(tmp_path)) == before


# ---------------------------------------------------------------- optional dependencies ------

SCRIPTS = [(Train_cifar, []), (Train_clothing1M, []), (Train_webvision, []),
           (Train_imagefolder, [])]


@pytest.mark.parametrize('module, argv', SCRIPTS, ids=lambda m: getattr(m, '__name__', ''))
def test_a_run_without_matplotlib_is_refused_at_its_start(module, argv, tmp_path, capsys,
                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)  # `import matplotlib` fails
    out = tmp_path / 'out'
    base = ['--out_dir', str(out), '--data_path', str(tmp_path / 'data')] + argv
    code = command(module.main, base)
    one_line(capsys, code, 'matplotlib, which is not installed: pip install matplotlib, or pass '
                           '--no-figures')
    assert not out.exists()
    # without figures, matplotlib is not needed: the run goes on (to the missing data)
    code = command(module.main, base + ['--no-figures'])
    err = one_line(capsys, code, 'data')
    assert 'pip install matplotlib' not in err and not out.exists()


@pytest.mark.parametrize('module', [Train_cifar, Train_clothing1M],
                         ids=lambda m: m.__name__)
def test_tensorboard_asked_for_and_missing_is_refused_at_the_start(module, tmp_path, capsys,
                                                                   monkeypatch):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)
    out = tmp_path / 'out'
    code = command(module.main, ['--out_dir', str(out), '--data_path', str(tmp_path / 'data'),
                                 '--tensorboard'])
    one_line(capsys, code, '--tensorboard logs with tensorboard, which is not installed: pip '
                           'install tensorboard, or drop --tensorboard')
    assert not out.exists()


@pytest.mark.parametrize('tool', ['tools.export_labels', 'tools.paper_cells',
                                  'tools.benchmark_speed', 'utils.runs'])
def test_the_tools_that_do_not_draw_import_without_matplotlib(tool, monkeypatch):
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    for name in [n for n in sys.modules if n.startswith(('tools', 'utils.runs'))]:
        monkeypatch.delitem(sys.modules, name)  # imported afresh below, restored after
    importlib.import_module(tool)
    assert 'tools.figures' not in sys.modules  # (which would import matplotlib)


@pytest.mark.parametrize('main, argv', [
    (figures.main, ['RUN']), (label_figures.main, ['labels.csv']),
    (figures.main, ['labels', 'labels.csv']),
])
def test_the_drawing_tools_without_matplotlib_say_so_in_one_line(main, argv, run_dir, capsys,
                                                                 monkeypatch):
    monkeypatch.setattr(drawing, 'Figure', None)  # as when `import matplotlib` failed
    monkeypatch.setitem(sys.modules, 'matplotlib', None)
    argv = [str(run_dir) if a == 'RUN' else a for a in argv]
    one_line(capsys, command(main, argv), 'drawing needs matplotlib, which is not installed: '
                                          'pip install matplotlib')
    assert sorted(os.listdir(run_dir)) == ['cifar10_0.5_sym.jsonl', 'cifar10_0.5_sym_args.json']


@pytest.mark.slow
@pytest.mark.parametrize('command', [
    'tools/paper_cells.py list',
    'tools/paper_cells.py list --tables 2 5',
])
def test_a_closed_pipe_ends_quietly(command, tmp_path):
    # `... | head -1`: the reader leaves after one line; no traceback, no error line
    import subprocess
    import sys
    from conftest import ROOT
    script, *args = command.split()
    shell = '%s %s %s | head -1' % (sys.executable, os.path.join(ROOT, script), ' '.join(args))
    done = subprocess.run(['bash', '-c', 'set -o pipefail; ' + shell], cwd=str(tmp_path),
                          capture_output=True, text=True, timeout=120)
    assert done.stdout.count('\n') == 1 and done.stderr == '', done.stderr
