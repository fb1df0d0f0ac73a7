"""No state of a run folder makes a command overwrite a run: a folder with any of a run's files
refuses a new start, --resume without a usable checkpoint is refused with what to do, a start
that fails leaves nothing behind, and a failed write keeps the last checkpoint."""
import errno
import json
import os
import signal

import pytest
import torch

import Train_cifar
import Train_imagefolder
import utils.checkpoint
import utils.progress
import utils.runlog
from conftest import files_under, write_fake_cifar
from test_imagefolder_data import make_image_folder
from utils.cli import InputError, Interrupted, run_cli
from utils.runlog import RunLog

PREFIX = 'cifar10_0.5_sym'


def tiny(data, out, *extra):
    return ['--data_path', data, '--out_dir', out, '--width', '8', '--num_epochs', '2',
            '--warm_up', '1', '--batch_size', '16', '--num_workers', '0',
            '--no-figures'] + list(extra)


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    write_fake_cifar(root, 'cifar10')
    return root


def refused(argv, capsys, folder):
    """Run, expect exit 2 with one line and `folder` unchanged; return the line."""
    before = files_under(folder)
    code = run_cli(Train_cifar.main, argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'Traceback' not in err
    assert files_under(folder) == before
    return err.strip()


@pytest.mark.parametrize('leftover', ['_acc.txt', '_stats.txt', '.jsonl', '_args.json',
                                      '_last.pth', '_best.pth', '_last.pth.tmp', '_division/',
                                      '_tb/', '_features.npz', '_labels.csv'])
def test_any_file_of_a_run_refuses_a_new_start(leftover, data, tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    if leftover.endswith('/'):
        (out / (PREFIX + leftover)).mkdir()
    else:
        (out / (PREFIX + leftover)).write_text('kept')
    line = refused(tiny(data, str(out)), capsys, str(out))
    assert 'already holds files of the run %s (%s' % (PREFIX, PREFIX + leftover.rstrip('/')) \
        in line and 'add --resume to continue it, or pass another --out_dir' in line


# ---------------------------------------------------------------- what a refusal says ---------

@pytest.fixture(scope='module')
def image_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp('images')
    for split, count in (('train', 6), ('test', 2)):
        make_image_folder(root / split, per_class=count, size=16)
    return str(root)


def start(script, data, image_folder, out, *extra):
    """The command line of a tiny run of `script` (cifar or imagefolder) in `out`."""
    if script == 'cifar':
        return Train_cifar, tiny(data, out, *extra)
    return Train_imagefolder, ['--data_path', image_folder, '--out_dir', out, '--width', '8',
                               '--batch_size', '4', '--num_epochs', '2', '--warm_up', '1',
                               '--num_workers', '0', '--no-figures'] + list(extra)


def settings_saved_by(module, argv, monkeypatch):
    """The arguments `module` would save for the run `argv` starts, without training: those
    its RunLog is given to check."""
    class Stop(Exception):
        pass

    class Recording(utils.runlog.RunLog):
        def check(self, args):
            Recording.args = dict(vars(args))
            raise Stop
    with monkeypatch.context() as m:
        m.setattr(module, 'RunLog', Recording)
        with pytest.raises(Stop):
            module.main(argv)
    return Recording.args


def refused_start(script, data, image_folder, out, there, now, monkeypatch, capsys):
    """Leave in `out` the arguments file of a run started with `there`, then start one with
    `now`: refused with one line and nothing written; return that line."""
    module, argv = start(script, data, image_folder, str(out), *there)
    saved = settings_saved_by(module, argv, monkeypatch)
    prefix = 'imagefolder' if script == 'imagefolder' else PREFIX
    out.mkdir()
    (out / (prefix + '_args.json')).write_text(json.dumps(saved))
    capsys.readouterr()
    before = files_under(str(out))
    code = run_cli(module.main, start(script, data, image_folder, str(out), *now)[1])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
    assert files_under(str(out)) == before
    return err.strip().removeprefix('error: ')


@pytest.mark.parametrize('script', ['cifar', 'imagefolder'])
def test_a_new_start_names_the_settings_that_differ(script, data, image_folder, tmp_path,
                                                   monkeypatch, capsys):
    out = tmp_path / 'run'
    name = 'imagefolder' if script == 'imagefolder' else PREFIX
    line = refused_start(script, data, image_folder, out, [], ['--lr', '0.05'], monkeypatch,
                         capsys)
    assert line == ('%s already holds the run %s, with other settings: --lr 0.02 (there) vs '
                    "0.05 (now); pass another --out_dir to start this one, or --resume with "
                    "that run's settings to continue it" % (out, name))


@pytest.mark.parametrize('script', ['cifar', 'imagefolder'])
def test_a_new_start_with_the_same_settings_says_so(script, data, image_folder, tmp_path,
                                                    monkeypatch, capsys):
    out = tmp_path / 'run'
    name = 'imagefolder' if script == 'imagefolder' else PREFIX
    line = refused_start(script, data, image_folder, out, [], [], monkeypatch, capsys)
    assert line == ('%s already holds the run %s, with the same settings: add --resume to '
                    'continue it, or pass another --out_dir' % (out, name))


def test_settings_resume_may_change_point_to_resume(data, tmp_path, monkeypatch, capsys):
    line = refused_start('cifar', data, None, tmp_path / 'run', [],
                         ['--num_epochs', '5', '--no-download'], monkeypatch, capsys)
    assert line.endswith('with other settings: --download on (there) vs off (now), '
                         '--num_epochs 2 (there) vs 5 (now); add --resume to continue it with '
                         'these settings, or pass another --out_dir')


def test_many_differences_name_a_few_and_count_the_rest(data, tmp_path, monkeypatch, capsys):
    line = refused_start('cifar', data, None, tmp_path / 'run', ['--seed', '1'],
                         ['--seed', '2', '--T', '0.7', '--alpha', '1', '--lr', '0.1',
                          '--width', '16', '--num_epochs', '4'], monkeypatch, capsys)
    # the ones --resume refuses first, in name order; the rest counted
    assert ('with other settings: --alpha 4 (there) vs 1.0 (now), --lr 0.02 (there) vs 0.1 '
            '(now), --seed 1 (there) vs 2 (now) and 3 more; pass another --out_dir') in line


def test_the_latest_checkpoint_says_what_the_run_is_now(data, tmp_path, monkeypatch, capsys):
    # --resume may have raised --num_epochs since _args.json was written at the start
    out = tmp_path / 'run'
    saved = settings_saved_by(Train_cifar, tiny(data, str(out), '--num_epochs', '4'),
                              monkeypatch)
    out.mkdir()
    torch.save({'epoch': 1, 'args': saved, 'net1': {'w': torch.zeros(3)}},
               out / (PREFIX + '_last.pth'))
    (out / (PREFIX + '_args.json')).write_text(json.dumps(dict(saved, num_epochs=2)))
    line = refused(tiny(data, str(out), '--num_epochs', '4'), capsys, str(out))
    assert 'already holds the run %s, with the same settings' % PREFIX in line


def test_resume_without_a_checkpoint_is_refused_not_restarted(data, tmp_path, capsys):
    # e.g. the logs of a run whose _last.pth was deleted: resuming must not start it over
    out = tmp_path / 'run'
    out.mkdir()
    for suffix in ('_acc.txt', '_stats.txt', '.jsonl', '_args.json'):
        (out / (PREFIX + suffix)).write_text('Epoch:0   Accuracy:12.00\n')
    line = refused(tiny(data, str(out), '--resume'), capsys, str(out))
    assert 'holds a run without its latest checkpoint' in line
    assert 'delete its files (%s_acc.txt' % PREFIX in line and 'another --out_dir' in line
    (out / (PREFIX + '_best.pth')).write_bytes(b'best weights')
    line = refused(tiny(data, str(out), '--resume'), capsys, str(out))
    assert 'copy %s to %s to continue from its best epoch' % (
        out / (PREFIX + '_best.pth'), out / (PREFIX + '_last.pth')) in line


@pytest.mark.parametrize('content, reason', [
    (b'PK\x03\x04 half a checkpoint', 'it is damaged, truncated or not a PyTorch file'),
    (b'', 'it is damaged, truncated or not a PyTorch file'),
    ('evil', 'not loaded because loading them could run code'),
    ('foreign', 'is not a checkpoint written by this script'),
])
def test_unusable_checkpoint_is_one_whole_line(content, reason, data, tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    last = out / (PREFIX + '_last.pth')
    if content == 'evil':
        class Evil:
            def __reduce__(self):
                return (os.system, ('touch %s' % (tmp_path / 'pwned'),))
        torch.save({'net1': Evil()}, last)
    elif content == 'foreign':
        torch.save({'state_dict': {'w': torch.ones(2)}}, last)
    else:
        last.write_bytes(content)
    (out / (PREFIX + '_best.pth')).write_bytes(b'an older epoch')
    line = refused(tiny(data, str(out), '--resume'), capsys, str(out))
    assert reason in line and 'weights_only' not in line
    assert line.endswith('copy %s over it to continue from its best epoch, or pass another '
                         '--out_dir' % (out / (PREFIX + '_best.pth')))
    assert not (tmp_path / 'pwned').exists()


def test_checkpoint_without_its_logs_is_refused(data, tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    args = Train_cifar.complete_args(Train_cifar.parse_args(tiny(data, str(out), '--resume')))
    torch.save({'epoch': 0, 'args': vars(args), 'rng': [], 'log_sizes': [30, 0, 80],
                'scores': [10.0], 'net1': {}}, out / (PREFIX + '_last.pth'))
    capsys.readouterr()
    line = refused(tiny(data, str(out), '--resume'), capsys, str(out))
    assert 'log %s of the run in %s is missing' % (out / (PREFIX + '_acc.txt'), out) in line


def test_resume_with_fewer_epochs_than_finished_is_refused(data, tmp_path, capsys):
    out = tmp_path / 'run'
    out.mkdir()
    args = Train_cifar.complete_args(Train_cifar.parse_args(tiny(data, str(out), '--resume')))
    torch.save({'epoch': 4, 'args': vars(args), 'rng': [], 'log_sizes': [0, 0, 0],
                'scores': [10.0] * 5, 'net1': {}}, out / (PREFIX + '_last.pth'))
    capsys.readouterr()
    line = refused(tiny(data, str(out), '--resume'), capsys, str(out))
    assert 'has finished 5 epochs, more than --num_epochs 2: pass --num_epochs 5 or more' in line


def nan_warmup_step(*args, **kwargs):
    return torch.tensor(float('nan'))


def interrupt(*args, **kwargs):
    raise Interrupted(signal.SIGINT)


@pytest.mark.parametrize('failure, code, message', [
    (nan_warmup_step, 2, 'error: non-finite warm-up loss'),
    (interrupt, 128 + signal.SIGINT, 'stopped by SIGINT; before the first epoch finished, so '
                                     'nothing was kept: run it again'),
])
def test_a_start_that_fails_leaves_nothing_behind(failure, code, message, data, tmp_path,
                                                  monkeypatch, capsys):
    monkeypatch.setattr(Train_cifar, 'warmup_step' if failure is nan_warmup_step
                        else 'warmup_epoch', failure)
    out = tmp_path / 'new'
    assert run_cli(Train_cifar.main, tiny(data, str(out))) == code
    assert message in capsys.readouterr().err
    assert not out.exists()  # the folder it made is gone too
    # a folder the user had keeps everything but the failed run's files
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'notes.txt').write_text('mine')
    assert run_cli(Train_cifar.main, tiny(data, str(mine))) == code
    assert files_under(str(mine)) == {'notes.txt': b'mine'}


@pytest.mark.slow  # trains
def test_disk_full_keeps_the_last_checkpoint_and_no_temporary_file(data, tmp_path, monkeypatch,
                                                                  capsys):
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(obj, f):
        calls.append(1)
        if len(calls) == 2:  # the second epoch's checkpoint
            f.write(b'part of a checkpoint')
            raise OSError(errno.ENOSPC, 'No space left on device')
        real_save(obj, f)
    monkeypatch.setattr(utils.checkpoint.torch, 'save', save_until_the_disk_is_full)
    out = tmp_path / 'run'
    code = run_cli(Train_cifar.main, tiny(data, str(out), '--method', 'ce'))
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    last = out / ('cifar10_0.5_sym_ce_last.pth')
    assert err.startswith('error: cannot write %s (No space left on device): free some space'
                          % last) and err.strip().endswith('then continue with --resume')
    assert torch.load(last, weights_only=True)['epoch'] == 0
    assert not [name for name in os.listdir(out) if name.endswith('.tmp')]


@pytest.mark.slow  # trains
def test_resume_removes_leftover_temporary_files(data, tmp_path, monkeypatch, capsys):
    out = tmp_path / 'run'
    argv = tiny(data, str(out), '--method', 'ce')
    assert run_cli(Train_cifar.main, argv + ['--num_epochs', '1']) == 0
    prefix = out / 'cifar10_0.5_sym_ce'
    for name in ('_last.pth.tmp', '_best.pth.tmp'):
        (out / (prefix.name + name)).write_bytes(b'half of a write')
    monkeypatch.setattr(utils.progress, 'LOG_EVERY_S', 0)  # a progress line every step
    monkeypatch.setattr(utils.progress, 'SLOW_EPOCH_S', 0)  # and any CPU epoch is slow
    capsys.readouterr()
    assert run_cli(Train_cifar.main, argv + ['--resume', '--num_epochs', '2']) == 0
    assert torch.load(str(prefix) + '_last.pth', weights_only=True)['epoch'] == 1
    assert not [name for name in os.listdir(out) if name.endswith('.tmp')]
    # and what it printed: where it trains, then progress lines with a rate and time left
    lines = capsys.readouterr().out.splitlines()
    device = [k for k, line in enumerate(lines) if line.startswith(
        'training on the CPU (%d thread' % torch.get_num_threads())]
    steps = [line for line in lines if 'Warmup net1  step' in line]
    assert len(device) == 1 and lines.index(steps[0]) > device[0]
    assert len(steps) == 7  # 200 images in batches of 32: one line per step into a file
    assert all(' img/s  ' in line and ' left  run ' in line for line in steps[1:])
    warnings = [line for line in lines if line.startswith('warning: on the CPU an epoch takes')]
    assert len(warnings) == 1 and ' here: python ' in warnings[0] and warnings[0].endswith(
        '--num_train 200 --width 16 --warm_up 10 --num_epochs 15 --out_dir %s'
        % (out / 'quick_look'))  # the resumed run's command, --resume left out
    assert '--resume' not in warnings[0]


@pytest.mark.slow  # trains
def test_following_the_advice_for_a_lost_checkpoint_resumes(data, tmp_path, capsys):
    # "copy _best.pth to _last.pth to continue from its best epoch"
    out = tmp_path / 'run'
    argv = tiny(data, str(out), '--method', 'ce')
    assert run_cli(Train_cifar.main, argv) == 0
    last, best = (out / ('cifar10_0.5_sym_ce' + suffix) for suffix in ('_last.pth', '_best.pth'))
    best_epoch = torch.load(best, weights_only=True)['epoch']
    last.unlink()
    assert run_cli(Train_cifar.main, argv + ['--resume']) == 2
    assert 'copy %s to %s' % (best, last) in capsys.readouterr().err
    last.write_bytes(best.read_bytes())
    (out / 'cifar10_0.5_sym_ce_args.json').unlink()  # written again on resume
    assert run_cli(Train_cifar.main, argv + ['--resume']) == 0
    assert json.loads((out / 'cifar10_0.5_sym_ce_args.json').read_text())['method'] == 'ce'
    assert 'resuming after epoch %d' % best_epoch in capsys.readouterr().out
    assert torch.load(last, weights_only=True)['epoch'] == 1
    with open(out / 'cifar10_0.5_sym_ce_acc.txt') as f:
        assert [line.split()[0] for line in f] == ['Epoch:0', 'Epoch:1']


def test_two_starts_in_one_folder_one_goes_on(tmp_path):
    # The same command started twice: both find the folder empty while loading their data;
    # the second to create its files is refused and removes nothing of the first.
    args = Train_cifar.parse_args(['--out_dir', str(tmp_path)])
    first, second = (RunLog(str(tmp_path), PREFIX, {'acc': '_acc.txt'}) for _ in range(2))
    assert first.check(args) is None and second.check(args) is None
    first.begin(args)
    first.write('acc', 'Epoch:0   Accuracy:10.00\n')
    before = files_under(str(tmp_path))
    with pytest.raises(InputError, match='started while this one was loading its data'):
        second.begin(args)
    assert files_under(str(tmp_path)) == before


def test_background_save_writes_the_state_as_it_was_at_save(tmp_path, monkeypatch):
    import threading
    import utils.runlog
    trained_on = threading.Event()
    real_save = utils.runlog.atomic_save

    def save_after_training_went_on(state, path):
        assert trained_on.wait(10)
        real_save(state, path)
    monkeypatch.setattr(utils.runlog, 'atomic_save', save_after_training_went_on)
    log = RunLog(str(tmp_path / 'run'), 'r', {'acc': '_acc.txt'})
    log.begin(Train_cifar.parse_args([]))
    log.save_in_background = True
    weights = torch.zeros(1000)
    history = [[1.0]]
    log.epoch({'epoch': 0}, score=1.0)
    log.save({'epoch': 0, 'w': weights, 'history': history})
    weights += 1  # the next epoch trains on while the thread writes
    history[0].append(2.0)
    trained_on.set()
    log.wait()
    saved = torch.load(log.last_path, weights_only=True)
    assert torch.equal(saved['w'], torch.zeros(1000)) and saved['history'] == [[1.0]]
    assert log.saved and os.path.exists(log.best_path)
    log.epoch({'epoch': 1}, score=0.5)  # not the best: _best.pth keeps epoch 0
    log.save({'epoch': 1, 'w': weights, 'history': history})
    log.summary()  # waits for the write in flight
    assert torch.load(log.last_path, weights_only=True)['epoch'] == 1
    assert torch.load(log.best_path, weights_only=True)['epoch'] == 0


@pytest.mark.slow  # trains
def test_background_saves_give_the_same_run_and_resume(data, tmp_path, monkeypatch):
    def run(out, epochs, *extra):
        argv = tiny(data, str(tmp_path / out), *extra)
        argv[argv.index('--num_epochs') + 1] = str(epochs)
        Train_cifar.main(argv)

    def outputs(out):
        with open(tmp_path / out / (PREFIX + '.jsonl')) as f:
            records = [{k: v for k, v in json.loads(line).items() if k != 'seconds'}
                       for line in f]
        last = torch.load(tmp_path / out / (PREFIX + '_last.pth'), weights_only=True)
        return records, last['net1'], last['epoch']
    run('foreground', 3)
    monkeypatch.setattr(Train_cifar, 'saves_in_background', lambda device, fast: True)
    run('background', 2)
    run('background', 3, '--resume')
    want, have = outputs('foreground'), outputs('background')
    assert want[0] == have[0] and want[2] == have[2] == 2
    assert all(torch.equal(want[1][k], have[1][k]) for k in want[1])


@pytest.mark.slow  # trains
def test_background_write_failure_is_one_line_and_keeps_the_last_checkpoint(
        data, tmp_path, monkeypatch, capsys):
    real_save, calls = torch.save, []

    def save_until_the_disk_is_full(obj, f):
        calls.append(1)
        if len(calls) == 2:  # the second epoch's checkpoint, in the writer thread
            f.write(b'part of a checkpoint')
            raise OSError(errno.ENOSPC, 'No space left on device')
        real_save(obj, f)
    monkeypatch.setattr(utils.checkpoint.torch, 'save', save_until_the_disk_is_full)
    monkeypatch.setattr(Train_cifar, 'saves_in_background', lambda device, fast: True)
    out = tmp_path / 'run'
    code = run_cli(Train_cifar.main, tiny(data, str(out), '--method', 'ce'))
    err = capsys.readouterr().err
    last = out / 'cifar10_0.5_sym_ce_last.pth'
    assert code == 2 and err.count('\n') == 1
    assert err.startswith('error: cannot write %s (No space left on device)' % last)
    assert torch.load(last, weights_only=True)['epoch'] == 0
    assert not [name for name in os.listdir(out) if name.endswith('.tmp')]


def _wait_for(condition, seconds=120):
    import time
    deadline = time.time() + seconds
    while not condition():
        assert time.time() < deadline, 'timed out'
        time.sleep(0.2)


@pytest.mark.slow
def test_a_run_in_use_by_another_process_is_refused_naming_it(data, tmp_path, capsys):
    # A run training in another process holds it: a --resume, a new start and a start under
    # another name that finds it are refused in one line naming that process; once the
    # process is killed (-9: no chance to clean up), nothing stale stays and --resume works.
    import subprocess
    import sys
    from conftest import ROOT
    out = str(tmp_path / 'run')
    argv = tiny(data, out, '--num_epochs', '400')  # far longer than this test
    script = [sys.executable, os.path.join(ROOT, 'Train_cifar.py')]
    subprocess.run(script + tiny(data, out), cwd=str(tmp_path), check=True,
                   stdout=subprocess.DEVNULL)  # two epochs, in a process of their own
    other = subprocess.Popen(script + argv + ['--resume'], cwd=str(tmp_path),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        jsonl = os.path.join(out, PREFIX + '.jsonl')
        _wait_for(lambda: '"epoch": 2,' in open(jsonl).read())  # it has resumed
        for extra in (['--resume'], []):  # (without the lock: a short resume, a refusal)
            # (the other process writes on meanwhile: the folder is not compared)
            assert run_cli(Train_cifar.main, tiny(data, out, '--num_epochs', '3') + extra) == 2
            line = capsys.readouterr().err
            assert line.count('\n') == 1 and line.startswith('error: ')
            assert ('the run %s in %s is in use by process %d (' % (PREFIX, out, other.pid)
                    in line) and 'Train_cifar.py' in line and '--out_dir' in line
    finally:
        other.kill()  # SIGKILL
        other.wait()
    assert run_cli(Train_cifar.main, tiny(data, out, '--num_epochs', '4', '--resume')) == 0
    with open(os.path.join(out, PREFIX + '.jsonl')) as f:
        epochs = [json.loads(line).get('epoch') for line in f]
    assert epochs[:4] == [0, 1, 2, 3] and epochs.count(2) == 1  # each epoch once


def test_holding_a_run_twice_in_one_process_is_no_conflict(data, tmp_path):
    # a process that starts a run again (as the tests do) still holds it
    path = tmp_path / 'x.jsonl'
    path.write_text('')
    utils.runlog.hold_run(str(path), 'x', str(tmp_path))
    utils.runlog.hold_run(str(path), 'x', str(tmp_path))
    path.unlink()
    path.write_text('')  # made anew: the new file is held
    utils.runlog.hold_run(str(path), 'x', str(tmp_path))


def test_a_non_finite_epoch_is_never_saved(data, tmp_path, monkeypatch, capsys):
    # A learning rate that breaks BatchNorm's running variance but not yet the loss: the new
    # run stops in one line at the end of epoch 0 and leaves no file (before, it saved inf)
    out = str(tmp_path / 'blown')
    assert run_cli(Train_cifar.main, tiny(data, out, '--lr', '3')) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and 'epoch 0 ended with non-finite numbers (net' in err, err
    assert not os.path.exists(out)
    # A run whose epoch 1 goes non-finite keeps epoch 0 as its latest and best checkpoint
    out = str(tmp_path / 'run')
    save = RunLog.save

    def breaking_at_epoch_1(log, state):
        if state['epoch'] == 1:
            state = dict(state, net1=dict(state['net1']))
            state['net1']['linear.bias'] = state['net1']['linear.bias'] * float('inf')
        return save(log, state)
    monkeypatch.setattr(RunLog, 'save', breaking_at_epoch_1)
    assert run_cli(Train_cifar.main, tiny(data, out)) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and ('epoch 1 ended with non-finite numbers (net1.linear.bias)'
                                     ', so it was not saved; %s keeps the last finite epoch'
                                     % os.path.join(out, PREFIX + '_last.pth')) in err, err
    for name in ('_last.pth', '_best.pth'):
        state = torch.load(os.path.join(out, PREFIX + name), weights_only=False)
        assert utils.checkpoint.non_finite(state) is None and state['epoch'] == 0


def test_non_finite_numbers_are_found_wherever_they_are(tmp_path):
    finite = {'net1': {'w': torch.ones(2), 'n': torch.arange(3)}, 'loss_history': [[]]}
    assert utils.checkpoint.non_finite(finite) is None
    for broken, name in (({'net2': {'bn.running_var': torch.tensor([1, float('inf')])}},
                          'net2.bn.running_var'),
                         ({'loss_history': [[], [torch.tensor([float('nan')])]]},
                          'loss_history.1.0'),
                         ({'optimizer1': {'state': {0: {'momentum_buffer': torch.tensor(
                             [float('-inf')])}}}}, 'optimizer1.state.0.momentum_buffer')):
        assert utils.checkpoint.non_finite(dict(finite, **broken)) == name
    log = RunLog(str(tmp_path), 'run', {'acc': '_acc.txt'})
    args = Train_cifar.parse_args(['--out_dir', str(tmp_path)])
    log.check(args)
    log.begin(args)
    with pytest.raises(utils.cli.TrainingError, match=r'epoch 0 ended with non-finite numbers '
                       r'\(net1.w\), so it was not saved: lower --lr'):
        log.save({'epoch': 0, 'net1': {'w': torch.tensor([float('nan')])}})
    assert not os.path.exists(log.last_path) and not os.path.exists(log.last_path + '.tmp')


def test_a_truncated_args_file_names_the_fix_and_resume_writes_it_again(data, tmp_path,
                                                                          capsys):
    from tools import figures
    out = str(tmp_path / 'run')
    assert run_cli(Train_cifar.main, tiny(data, out, '--num_epochs', '1')) == 0
    args_path = os.path.join(out, PREFIX + '_args.json')
    with open(args_path) as f:
        saved = f.read()
    for damaged in (saved[:len(saved) // 2], '[1, 2]', '\udcff'.encode('utf-8', 'surrogatepass')):
        with open(args_path, 'wb') as f:
            f.write(damaged if isinstance(damaged, bytes) else damaged.encode())
        capsys.readouterr()
        assert run_cli(figures.main, [out, '--prefix', PREFIX]) == 2
        err = capsys.readouterr().err
        assert err.count('\n') == 1 and err.startswith('error: %s is not a run\'s arguments ('
                                                       % args_path)
        assert err.endswith('): resuming the run (--resume) writes it again, or delete it\n')
    assert run_cli(Train_cifar.main, tiny(data, out, '--num_epochs', '2', '--resume')) == 0
    with open(args_path) as f:
        assert json.load(f)['num_epochs'] == 2


@pytest.mark.slow
def test_the_tools_that_write_into_a_run_folder_wait_for_its_holder(data, tmp_path, capsys):
    # While another process holds the run (here a stand-in that only holds its lock), the
    # tools that write into its folder are refused in one line naming it; writing elsewhere
    # (--out) is fine, and so is everything once the holder is gone.
    import subprocess
    import sys
    import tools.export_labels
    import tools.figures
    out = tmp_path / 'run'
    assert run_cli(Train_cifar.main, tiny(data, str(out), '--num_epochs', '2')) == 0
    jsonl = str(out / (PREFIX + '.jsonl'))
    for held in list(utils.runlog._held_here):  # this process trained the run: let it go
        utils.runlog._held_here.pop(held).close()
    holder = subprocess.Popen(
        [sys.executable, '-c', 'import fcntl, sys, time; f = open(sys.argv[1], "a"); '
         'fcntl.flock(f, fcntl.LOCK_EX); print("held", flush=True); time.sleep(120)', jsonl],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == 'held\n'
        checkpoint = str(out / (PREFIX + '_last.pth'))
        for main, argv, way in (
                (tools.figures.main, [str(out)], 'or draw it into another folder with --out DIR'),
                (tools.export_labels.main, [checkpoint], 'or pass --out FILE in another folder')):
            before = sorted(os.listdir(out))
            assert run_cli(main, argv) == 2
            line = capsys.readouterr().err
            assert line.count('\n') == 1 and line.endswith(way + '\n'), line
            assert 'is in use by process %d (' % holder.pid in line
            assert sorted(os.listdir(out)) == before
        assert run_cli(tools.figures.main, [str(out), '--out', str(tmp_path / 'pictures')]) == 0
        assert run_cli(tools.export_labels.main,
                       [checkpoint, '--out', str(tmp_path / 'labels.csv')]) == 0
    finally:
        holder.kill()
        holder.wait()
    assert run_cli(tools.figures.main, [str(out)]) == 0  # the holder is gone
