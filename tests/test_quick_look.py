"""What a slow CPU run advises: a whole command of the same run, small enough for a first look,
with its time; and every epoch's summary line ending with the run's time left and its end."""
import os
import re
import shlex

import pytest

import Train_cifar
import Train_imagefolder
import utils.progress as progress
from test_train_cifar import TINY

# a full-scale CIFAR-10 run on a CPU: 1,000 s warm-up epochs, SSL epochs guessed at 10/3 of that
FULL_SCALE = {'warmup': 1000.0, 'ssl': 1000.0 * 10 / 3}
FOLDER_START = Train_imagefolder.QUICK_LOOK_START_S  # its set-up and end: reading images, t-SNE


def advised_args(command, script):
    """The arguments of an advised command, as the script would parse them."""
    words = shlex.split(command)
    assert words[:2] == ['python', os.path.relpath(script.__file__)]
    return script.complete_args(script.parse_args(words[2:]))


def test_cifar_advises_its_own_cell_small_in_a_folder_of_its_own(tmp_path):
    os.makedirs(tmp_path / 'runs' / 'quick_look')  # an earlier quick look
    argv = ['--dataset', 'cifar100', '--r', '0.8', '--width', '32', '--resume',
            '--out_dir', str(tmp_path / 'runs')]
    args = Train_cifar.complete_args(Train_cifar.parse_args(argv))
    command, seconds = Train_cifar.quick_look(args, argv, 50000, 10000, 2, FULL_SCALE)
    quick = advised_args(command, Train_cifar)
    assert (quick.dataset, quick.r, quick.noise_mode) == ('cifar100', 0.8, 'sym')
    assert (quick.num_train, quick.width, quick.warm_up, quick.num_epochs) == (5000, 16, 10, 15)
    assert not quick.resume and quick.out_dir == str(tmp_path / 'runs' / 'quick_look2')
    assert seconds == pytest.approx(progress.preact_quick_look(
        FULL_SCALE, 50000, 32, 5000, 16, 10, 5, 10000))


def imagefolder_args(argv):
    return Train_imagefolder.complete_args(Train_imagefolder.parse_args(
        ['--data_path', 'DIR'] + argv))


def test_imagefolder_advises_as_many_images_as_fit_or_nothing():
    args = imagefolder_args([])  # preact18, width 64, 10 warm-up epochs
    argv = ['--data_path', 'DIR']
    # 5,000 images: at width 16 a warm-up epoch ~19 s, an SSL epoch ~62 s; 10 + 5 fit, on all
    command, seconds = Train_imagefolder.quick_look(args, argv, 5000, 0,
                                                    {k: v / 10 for k, v in FULL_SCALE.items()})
    quick = advised_args(command, Train_imagefolder)
    assert (quick.num_train, quick.width, quick.warm_up, quick.num_epochs) == (None, 16, 10, 15)
    assert seconds <= progress.QUICK_LOOK_S
    # 50,000 images: ~186 s and ~620 s, 10 + 5 do not fit; on 5,000 drawn at random they do
    command, seconds = Train_imagefolder.quick_look(args, argv, 50000, 0, FULL_SCALE)
    quick = advised_args(command, Train_imagefolder)
    assert (quick.num_train, quick.width, quick.warm_up, quick.num_epochs) == (5000, 16, 10, 15)
    assert seconds == pytest.approx(progress.preact_quick_look(
        FULL_SCALE, 50000, 64, 5000, 16, 10, 5, 0, start_seconds=FOLDER_START))
    # three times slower: 2,000 images at most (~617 s); five times: 1,000 (~517 s); ten times
    # slower, 1,000 still, the fastest there is, with its honest time (over 15 minutes)
    for slower, images in ((3, 2000), (5, 1000), (10, 1000)):
        epochs = {k: v * slower for k, v in FULL_SCALE.items()}
        command, seconds = Train_imagefolder.quick_look(args, argv, 50000, 0, epochs)
        assert advised_args(command, Train_imagefolder).num_train == images
        assert (seconds > progress.QUICK_LOOK_S) == (slower == 10)
    assert seconds == pytest.approx(progress.preact_quick_look(
        {k: v * 10 for k, v in FULL_SCALE.items()}, 50000, 64, 1000, 16, 10, 5, 0,
        start_seconds=FOLDER_START))
    # ResNet-50 keeps its network: its own epochs, its 1 warm-up + 5 SSL epochs of 100 s and
    # 150 s on 500 images fit; twice as slow on 5,000 images, 2,000 of them are advised
    args = imagefolder_args(['--arch', 'resnet50'])
    argv = ['--data_path', 'DIR', '--arch', 'resnet50']
    epochs = {'warmup': 100, 'ssl': 150}
    command, seconds = Train_imagefolder.quick_look(args, argv, 500, 0, epochs)
    quick = advised_args(command, Train_imagefolder)
    assert (quick.arch, quick.num_train, quick.warm_up, quick.num_epochs) == (
        'resnet50', None, 1, 6)
    assert seconds == 850 + Train_imagefolder.QUICK_LOOK_START_S
    command, seconds = Train_imagefolder.quick_look(args, argv, 5000, 0,
                                                    {k: 2 * v for k, v in epochs.items()})
    assert advised_args(command, Train_imagefolder).num_train == 2000
    assert seconds == pytest.approx(1700 * 2 / 5 + Train_imagefolder.QUICK_LOOK_START_S)


@pytest.mark.slow
def test_a_slow_cpu_run_advises_a_command_that_runs(cifar10_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(progress, 'SLOW_EPOCH_S', 0)  # every CPU run is slow
    monkeypatch.setattr(progress, 'TIMED_STEPS', 1)   # judged after two steps: tiny epochs
    argv = ['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'run')] + TINY
    Train_cifar.main(argv)
    out = capsys.readouterr().out
    warning = [line for line in out.splitlines() if line.startswith('warning: on the CPU')]
    assert len(warning) == 1
    command = re.search(r'a first look takes ~.* here: (python .*)$', warning[0]).group(1)
    quick = shlex.split(command)[2:]
    assert quick[-10:] == ['--num_train', '200', '--width', '16', '--warm_up', '10',
                           '--num_epochs', '15', '--out_dir', str(tmp_path / 'run' / 'quick_look')]
    monkeypatch.setattr(progress, 'SLOW_EPOCH_S', 600)
    summary = Train_cifar.main(quick)  # the whole command, as given
    assert os.path.isdir(tmp_path / 'run' / 'quick_look')
    out = capsys.readouterr().out
    epochs = [line for line in out.splitlines() if '| Epoch [' in line and 'test acc' in line]
    assert len(epochs) == 15 and summary['best'] >= 0
    # every summary line ends with the time left and the end; the total after each kind's first
    assert all(re.search(r'  run ~?[\w .]+ left, ends (\w+ \d+ \w+ )?\d\d:\d\d$', line)
               for line in epochs)
    totals = [line for line in out.splitlines() if line.startswith('expected: epochs 0-14 ')]
    assert len(totals) == 2 and 'SSL guessed from the warm-up' in totals[0]


@pytest.mark.slow
def test_the_change_of_width_is_measured_on_this_machine(monkeypatch):
    # networks whose step takes a time set by their width: the measured ratio is theirs, and
    # the advice uses it instead of the assumed width_cost
    import time
    import torch

    class Timed(torch.nn.Module):
        def __init__(self, width):
            super().__init__()
            self.width, self.linear = width, torch.nn.Linear(3 * 32 * 32, 2)

        def forward(self, x):
            time.sleep(self.width / 200)  # 80 ms at width 16, 320 ms at 64
            return self.linear(x.flatten(1))
    state = torch.get_rng_state()
    ratio = progress.measured_width_ratio(Timed, 64, 16)
    assert ratio == pytest.approx(16 / 64, rel=0.3)
    assert torch.equal(torch.get_rng_state(), state)  # the run's random stream untouched
    args = imagefolder_args([])
    command, seconds = Train_imagefolder.quick_look(args, ['--data_path', 'DIR'], 50000, 0,
                                                    FULL_SCALE, Timed)
    assert seconds == pytest.approx(progress.preact_quick_look(
        FULL_SCALE, 50000, 64, 5000, 16, 10, 5, 0, width_ratio=ratio,
        start_seconds=FOLDER_START), rel=0.3)
    assert seconds != pytest.approx(progress.preact_quick_look(
        FULL_SCALE, 50000, 64, 5000, 16, 10, 5, 0, start_seconds=FOLDER_START),
        rel=0.1)  # not the assumed one
    cifar = Train_cifar.complete_args(Train_cifar.parse_args([]))
    _, cifar_seconds = Train_cifar.quick_look(cifar, [], 50000, 10000, 2, FULL_SCALE, Timed)
    assert cifar_seconds == pytest.approx(progress.preact_quick_look(
        FULL_SCALE, 50000, 64, 5000, 16, 10, 5, 10000, width_ratio=ratio), rel=0.3)


def test_a_long_run_of_short_epochs_gets_the_advice_too():
    look = ('python Train_imagefolder.py --width 16', 400)
    # 44-s epochs, 19 hours left: a note with the first look (not a warning: epochs are fine)
    line = progress.cpu_full_scale_warning('cpu', 44, 19 * 3600, look)
    assert line == ('note: on the CPU the rest of this run takes ~19 h; a first look takes '
                    '~7 min here: python Train_imagefolder.py --width 16')
    assert progress.cpu_full_scale_warning('cpu', 44, 3000, look) is None  # under an hour
    assert progress.cpu_full_scale_warning('cuda', 4400, 10 ** 6, look) is None
    # slow epochs: a warning; a first look over 15 minutes says so
    line = progress.cpu_full_scale_warning('cpu', 2640, 8 * 86400, (look[0], 1500))
    assert line.startswith('warning: on the CPU an epoch takes ~44 min and the rest of the run '
                           '~8.0 days; a first look takes ~25 min here (the smallest there is, '
                           'over 15 min on this machine): python')


def test_a_run_that_is_the_first_look_already_gets_none():
    args = imagefolder_args(['--width', '16', '--warm_up', '10', '--num_epochs', '15'])
    assert Train_imagefolder.quick_look(args, [], 3000, 0, {'warmup': 10, 'ssl': 30}) is None
    # slower: fewer images are advised
    advice = Train_imagefolder.quick_look(args, ['--data_path', 'DIR'], 3000, 0, FULL_SCALE)
    assert advised_args(advice[0], Train_imagefolder).num_train == 1000
    args = Train_cifar.complete_args(Train_cifar.parse_args(
        ['--num_train', '5000', '--width', '16', '--num_epochs', '15']))
    assert Train_cifar.quick_look(args, [], 5000, 10000, 2, FULL_SCALE) is None
