"""utils/progress.py: the device line, the progress line on a terminal and in a log file, the
run's time left, and the warning for a long CPU run. A fake clock stands in for time; expected
numbers are worked out by hand in the comments."""
import io
import os
import time

import pytest
import torch

import utils.progress as progress
from utils.progress import (Progress, RunClock, assumed_ssl_ratio, command_with,
                            cpu_full_scale_warning, describe_device, format_duration,
                            preact_quick_look, unused_folder, width_cost)

QUICK = ('python Train_cifar.py --num_train 5000 --width 16', 600)


class FakeClock:
    """time.monotonic that moves only when told, and counts its readings."""

    def __init__(self):
        self.now, self.readings = 0.0, 0

    def __call__(self):
        self.readings += 1
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


class LogFile(io.StringIO):
    """A file that notes the clock's time at each line written."""

    def __init__(self, clock):
        super().__init__()
        self.clock, self.times = clock, []

    def write(self, text):
        self.times.append(self.clock.now)
        return super().write(text)


class CountedLoss:
    """A loss value that counts how often it is read (a GPU tensor's .item() waits for the GPU)."""

    def __init__(self, value):
        self.value, self.reads = value, 0

    def item(self):
        self.reads += 1
        return self.value


@pytest.fixture(autouse=True)
def wide_terminal(monkeypatch):
    monkeypatch.setenv('COLUMNS', '300')  # no truncation unless a test asks for it


def steps(bar, clock, n, seconds, images, *loss):
    for _ in range(n):
        clock.now += seconds
        bar.update(images, *loss)


# ---------------------------------------------------------------- the device line -------------

def test_device_line_on_the_cpu_names_the_threads_and_the_speedups(monkeypatch):
    monkeypatch.setattr(torch, 'get_num_threads', lambda: 3)
    cpu = torch.device('cpu')
    assert (describe_device(cpu, bf16=False, channels_last=True, cuda_graphs=False)
            == 'training on the CPU (3 threads); speed-ups: channels_last '
               '(no bf16 units on this CPU)')
    assert (describe_device(cpu, bf16=True, channels_last=True, cuda_graphs=False)
            == 'training on the CPU (3 threads); speed-ups: bf16 autocast, channels_last')
    assert (describe_device(cpu, bf16=False, channels_last=False, cuda_graphs=False)
            == 'training on the CPU (3 threads); speed-ups: none (--plain)')


def test_device_line_on_a_gpu_names_the_model_and_index(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'get_device_name', lambda device: 'NVIDIA H200')
    assert (describe_device(torch.device('cuda', 0), True, True, True)
            == 'training on NVIDIA H200 (cuda:0); speed-ups: bf16 autocast, channels_last, '
               'CUDA graphs')
    assert describe_device(torch.device('cuda', 1), True, True, False, compile_net=True) \
        .endswith('(cuda:1); speed-ups: bf16 autocast, channels_last, torch.compile')


# ---------------------------------------------------------------- durations -------------------

@pytest.mark.parametrize('seconds, text', [
    (0, '0 s'), (45, '45 s'), (59.4, '59 s'), (59.6, '1 min'), (720, '12 min'),
    (3599, '1 h'), (3 * 3600 + 600, '3 h 10 min'), (47 * 3600, '47 h'),
    (2.5 * 86400, '2.5 days'), (-5, '0 s')])
def test_durations_read_as_people_say_them(seconds, text):
    assert format_duration(seconds) == text


# ---------------------------------------------------------------- the line on a terminal ------

def test_live_line_is_rewritten_in_place_with_rate_and_time_left():
    clock, term = FakeClock(), Terminal()
    bar = Progress('Warmup net1', 100, stream=term, clock=clock)
    # 20 steps of 64 images, 0.125 s each (exact in binary): 512 images/s. Lines at 0.125 s
    # (the first step, at once), then each 0.5 s: 0.625, 1.125, 1.625, 2.125 -> 5 in all.
    steps(bar, clock, 20, 0.125, 64, 'CE-loss: %.2f', torch.tensor(1.5))
    out = term.getvalue()
    assert out.count('\r') == 5 and '\n' not in out
    first, last = out.split('\r')[1], out.split('\r')[-1]
    assert first.startswith('Warmup net1 [--------------------] 1/100') and 'img/s' not in first
    # at 2.125 s, step 17: 17 // 5 = 3 of 20 marks; 83 steps x 0.125 s = 10.4 s left
    assert last.startswith('Warmup net1 [###-----------------] 17/100')
    assert '512 img/s' in last and '10 s left' in last and last.rstrip().endswith('CE-loss: 1.50')
    bar.close()
    assert term.getvalue().endswith('\r' + ' ' * len(last) + '\r')  # cleared for the summary


def test_live_line_is_throttled():
    clock, term = FakeClock(), Terminal()
    bar = Progress('Train net1', 5000, stream=term, clock=clock)
    # 1000 steps of 1/1024 s: lines at 1/1024 s and at 513/1024 s, the next would be due at
    # 1025/1024 s, after the last step
    steps(bar, clock, 1000, 2 ** -10, 64)
    assert term.getvalue().count('\r') == 2


def test_live_line_fits_the_terminal(monkeypatch):
    monkeypatch.setenv('COLUMNS', '40')
    clock, term = FakeClock(), Terminal()
    bar = Progress('a long label ' * 5, 100, stream=term, clock=clock)
    steps(bar, clock, 10, 0.5, 64)
    lines = term.getvalue().split('\r')
    assert max(len(line) for line in lines) <= 39
    assert lines[-1].rstrip() == '10/100  128 img/s  45 s left'  # the numbers, not the label


def test_a_narrow_terminal_keeps_the_rate_and_time_left(monkeypatch):
    # 90 columns, a long label: the bar and then the losses make way for the numbers
    monkeypatch.setenv('COLUMNS', '91')
    clock, term = FakeClock(), Terminal()
    label = 'imagefolder | Epoch [  0/  2] Warmup net1'
    bar = Progress(label, 100, stream=term, clock=clock)
    steps(bar, clock, 10, 0.5, 64, 'CE-loss: %.4f', torch.tensor(2.0))
    last = term.getvalue().split('\r')[-1].rstrip()
    assert last == label + ' 10/100  128 img/s  45 s left  CE-loss: 2.0000'
    bar = Progress(label + ' and more words', 100, stream=term, clock=clock)
    steps(bar, clock, 10, 0.5, 64, 'Labeled loss: %.2f  Unlabeled loss: %.2f', 1.0, 2.0)
    assert term.getvalue().split('\r')[-1].rstrip() == label + ' and more words 10/100  ' \
        '128 img/s  45 s left'


def test_80_columns_keep_the_epoch_and_the_network(monkeypatch):
    # the run's name goes before the epoch and the network do
    monkeypatch.setenv('COLUMNS', '81')
    clock, term = FakeClock(), Terminal()
    run = RunClock(num_epochs=300, warm_up=10, clock=clock)
    run.begin(12)
    label = 'imagefolder_my_long_dataset_name | Epoch [ 12/300] Train net1'
    bar = Progress(label, 100, run, stream=term, clock=clock)
    steps(bar, clock, 10, 0.5, 64, 'Labeled loss: %.2f', 1.0)
    last = term.getvalue().split('\r')[-1].rstrip()
    assert last.startswith('Epoch [ 12/300] Train net1 10/100  128 img/s  45 s left  run ~')
    assert len(last) <= 80


# ---------------------------------------------------------------- the line in a log file ------

def test_log_file_gets_a_full_line_every_few_minutes_with_rate_and_times_left():
    clock = FakeClock()
    log = LogFile(clock)
    run = RunClock(num_epochs=20, warm_up=10, passes=2, ssl_ratio=4, clock=clock)
    run.begin(0)
    bar = Progress('Warmup net1', 2000, run, stream=log, clock=clock)
    steps(bar, clock, 1000, 1.0, 32, 'CE-loss: %.2f', 2.25)
    lines = log.getvalue().splitlines(keepends=True)
    assert log.times == [180, 360, 540, 720, 900]  # LOG_EVERY_S = 180, never more often
    assert all(line.endswith('\n') and '\r' not in line for line in lines)
    # At 180 s, step 180: 32 images a second; 1820 steps of 1 s -> 30 min left in the pass.
    # The run: this epoch's second pass as long as this one, 180 + 1820 + 2000 = 4000 s, so
    # 3820 s left of it, 9 more warm-up epochs of 4000 s and 10 SSL epochs of 4000 x 4 s:
    # 3820 + 36000 + 160000 = 199820 s = 2.3 days, a guess (~).
    assert lines[0] == ('Warmup net1  step 180/2000  32.0 img/s  30 min left  run ~2.3 days left'
                        '  CE-loss: 2.25\n')
    assert all('img/s' in line and ' left  run ~' in line for line in lines)


def test_log_every_s_can_be_changed(monkeypatch):
    monkeypatch.setattr(progress, 'LOG_EVERY_S', 10)
    clock = FakeClock()
    log = LogFile(clock)
    steps(Progress('x', 100, stream=log, clock=clock), clock, 35, 1.0, 8)
    assert log.times == [10, 20, 30]


def test_nothing_on_the_other_processes(monkeypatch):
    monkeypatch.setattr(progress, 'is_main', lambda: False)
    clock, term = FakeClock(), Terminal()
    loss = CountedLoss(1.0)
    bar = Progress('Warmup net1', 100, stream=term, clock=clock)
    steps(bar, clock, 50, 1.0, 64, '%.2f', loss)
    bar.close()
    assert term.getvalue() == '' and loss.reads == 0


# ---------------------------------------------------------------- the cost of an update --------

def test_values_are_read_only_for_lines_that_are_printed():
    clock, term = FakeClock(), Terminal()
    loss = CountedLoss(0.5)
    steps(Progress('x', 100, stream=term, clock=clock), clock, 20, 0.125, 64, '%.2f', loss)
    assert loss.reads == term.getvalue().count('\r') == 5

    clock, log = FakeClock(), io.StringIO()
    loss = CountedLoss(0.5)
    steps(Progress('x', 1000, stream=log, clock=clock), clock, 100, 1.0, 64, '%.2f', loss)
    assert log.getvalue() == '' and loss.reads == 0
    assert clock.readings == 1 + 100  # one at the start, one per update


# ---------------------------------------------------------------- the run's time left ----------

def test_assumed_ssl_ratio_counts_the_forwards():
    # per network, in forwards of one image (forward-backward = 3): warm-up 3 N; SSL N + 18 L
    assert assumed_ssl_ratio(0.5) == pytest.approx((1 + 9) / 3)
    assert assumed_ssl_ratio(0.55) == pytest.approx((1 + 9.9) / 3)
    # before the first co-divide, 65% labeled (results/label_errors' runs)
    assert progress.SSL_PER_WARMUP == pytest.approx((1 + 11.7) / 3)
    assert RunClock(20, 10).ssl_ratio == progress.SSL_PER_WARMUP


def timed_epochs(run, clock, epochs, seconds, outside=0):
    """Epochs of `seconds`, the last `outside` of each after the training passes (the test)."""
    for epoch in epochs:
        run.begin(epoch)
        run.pass_begins()
        clock.now += seconds - outside
        run.pass_ends()
        clock.now += outside
        run.end()


def test_run_time_left_uses_the_assumed_ratio_until_an_ssl_epoch_is_timed():
    clock = FakeClock()
    run = RunClock(num_epochs=20, warm_up=10, ssl_ratio=4, clock=clock)
    timed_epochs(run, clock, range(3), 60, outside=10)
    run.begin(3)
    clock.now += 10
    # 50 s left of epoch 3, 6 warm-up epochs x 60 s, 10 SSL epochs of 50 s of training x 4 and
    # the 10 s outside it (the test pass) once: 210 s
    seconds, guessed = run.left(pass_elapsed=10, pass_left=20)
    assert seconds == pytest.approx(50 + 360 + 2100) and guessed
    clock.now += 50
    run.end()
    timed_epochs(run, clock, range(4, 10), 60)
    timed_epochs(run, clock, [10], 200)
    run.begin(11)
    clock.now += 50
    # 150 s left of epoch 11 (a 200 s SSL epoch), 8 more of 200 s; nothing guessed
    seconds, guessed = run.left(pass_elapsed=50, pass_left=100)
    assert seconds == pytest.approx(150 + 8 * 200) and not guessed


def test_first_epoch_is_projected_from_its_passes():
    clock = FakeClock()
    run = RunClock(num_epochs=20, warm_up=10, passes=2, ssl_ratio=4, clock=clock)
    run.begin(0)
    run.pass_begins()
    clock.now = 10
    # the epoch: this 30 s pass and one more, 60 s; 9 warm-up epochs of 60 s, 10 SSL of 240 s
    seconds, guessed = run.left(pass_elapsed=10, pass_left=20)
    assert seconds == pytest.approx(50 + 540 + 2400) and guessed
    clock.now = 30
    run.pass_ends()
    run.pass_begins()
    clock.now = 40
    seconds, _ = run.left(pass_elapsed=10, pass_left=20)  # the last pass: 20 s of the epoch
    assert seconds == pytest.approx(20 + 540 + 2400)


def test_only_the_training_passes_are_scaled_to_project_the_other_kind():
    # Progress.close ends its pass: 2 passes of 20 s and 36 s outside them (test, checkpoint)
    clock = FakeClock()
    run = RunClock(num_epochs=4, warm_up=2, passes=2, ssl_ratio=4, clock=clock)
    run.begin(0)
    for name in ('net1', 'net2'):
        bar = Progress(name, 10, run, stream=io.StringIO(), clock=clock)
        steps(bar, clock, 10, 2.0, 8)
        bar.close()
    clock.now += 36
    run.end()
    assert run.outside['warmup'] == [36]
    epoch_seconds = {'warmup': run.per_epoch('warmup'), 'ssl': None}
    assert run._fill_in(epoch_seconds, 'warmup')
    assert epoch_seconds['ssl'] == pytest.approx(40 * 4 + 36)  # not 76 x 4 = 304 s
    # 1 more warm-up epoch of 76 s and 2 SSL epochs of 196 s: 468 s
    assert run.outlook().startswith('run ~8 min left')
    run.begin(1)
    clock.now += 80
    run.end()  # an epoch without passes timed: all of it outside them
    assert run.outside['warmup'] == [36, 80]
    # the mean outside, 58 s, of the mean epoch, 78 s: SSL 20 x 4 + 58 = 138 s
    epoch_seconds = {'warmup': run.per_epoch('warmup'), 'ssl': None}
    assert run._fill_in(epoch_seconds, 'warmup')
    assert epoch_seconds['ssl'] == pytest.approx(138)

    # a run resumed in its SSL epochs with warm-up epochs still to come (more --warm_up):
    # an SSL epoch of 230 s with 30 s outside its passes makes a warm-up epoch 200 / 4 + 30
    clock = FakeClock()
    run = RunClock(num_epochs=6, warm_up=4, ssl_ratio=4, clock=clock)
    timed_epochs(run, clock, [4], 230, outside=30)
    epoch_seconds = {'warmup': None, 'ssl': 230}
    assert run._fill_in(epoch_seconds, 'ssl', later=False)
    assert epoch_seconds['warmup'] == pytest.approx(80)


def test_an_epoch_kind_lasts_the_mean_of_its_recent_epochs():
    clock = FakeClock()
    run = RunClock(num_epochs=20, warm_up=20, clock=clock)
    for epoch, seconds in enumerate([10, 10, 100, 100, 100, 100, 100]):
        timed_epochs(run, clock, [epoch], seconds)
    assert progress.RECENT_EPOCHS == 5 and run.per_epoch('warmup') == 100
    assert run.per_epoch('ssl') is None


# ---------------------------------------------------------------- the warning for a CPU run ----

def test_cpu_warning_above_the_threshold_only_and_only_on_the_cpu():
    assert progress.SLOW_EPOCH_S == 600
    line = cpu_full_scale_warning(torch.device('cpu'), 601, 5 * 3600, QUICK)
    assert line == ('warning: on the CPU an epoch takes ~10 min and the rest of the run ~5 h; '
                    'a first look takes ~10 min here: %s' % QUICK[0])
    assert cpu_full_scale_warning(torch.device('cpu'), 599, 3600, QUICK) is None
    # shorter epochs but more than an hour left: a note, with the first look
    assert cpu_full_scale_warning(torch.device('cpu'), 599, 5 * 3600, QUICK) == (
        'note: on the CPU the rest of this run takes ~5 h; a first look takes ~10 min here: '
        '%s' % QUICK[0])
    assert cpu_full_scale_warning(torch.device('cuda', 0), 6000, 50 * 3600, QUICK) is None
    # a script without a quick look (Clothing1M, WebVision) gives the times only
    assert cpu_full_scale_warning(torch.device('cpu'), 3600, 80 * 3600, None) == (
        'warning: on the CPU an epoch takes ~1 h and the rest of the run ~3.3 days')


def test_the_advised_command_sets_its_flags_last_and_drops_resume():
    argv = ['--r', '0.5', '--width=32', '--resume', '--num_epochs', '300', '--out_dir', 'a b']
    command = command_with(os.path.abspath('Train_cifar.py'), argv,
                           {'--width': 16, '--num_epochs': 15, '--out_dir': 'runs/quick_look'})
    assert command == ('python Train_cifar.py --r 0.5 --width 16 --num_epochs 15 '
                       '--out_dir runs/quick_look')
    # a value with a space stays one argument; an abbreviated flag is overruled by the last
    assert command_with('x.py', ['--data_path', 'my data', '--num_ep', '300'],
                        {'--num_epochs': 15}) == (
        "python x.py --data_path 'my data' --num_ep 300 --num_epochs 15")


def test_the_quick_look_gets_a_folder_of_its_own(tmp_path):
    path = str(tmp_path / 'quick_look')
    assert unused_folder(path) == path
    os.mkdir(path)
    os.mkdir(path + '2')
    assert unused_folder(path) == path + '3'


def test_width_cost_fits_the_measured_rates():
    # training images/s measured at widths 16, 32, 64 (the comment of WIDTH_FIXED_COST)
    assert width_cost(64) / width_cost(16) == pytest.approx(770 / 143, rel=0.01)
    assert width_cost(32) / width_cost(16) == pytest.approx(770 / 403, rel=0.03)


def test_a_quick_look_is_this_runs_epochs_scaled_by_images_and_width():
    # 50,000 images at width 64: 1,000 s warm-up, 4,000 s SSL epochs, so 0.01 s a training
    # image. 5,000 images at width 16: a factor 0.1 x 880 / 4720; the test pass of 10,000
    # images, each network, 1/7 of a training image at width 16.
    scale = 0.1 * (624 + 256) / (624 + 4096)
    test = 2 * 10000 * 0.01 / 7 * (624 + 256) / (624 + 4096)
    seconds = preact_quick_look({'warmup': 1000, 'ssl': 4000}, 50000, 64, 5000, 16, 10, 5,
                                10000)
    assert seconds == pytest.approx(10 * (1000 * scale + test) + 5 * (4000 * scale + test)
                                    + progress.QUICK_START_S)


def slow_first_pass(device, stream):
    clock = FakeClock()
    run = RunClock(num_epochs=300, warm_up=10, device=device, ssl_ratio=4, clock=clock,
                   quick_look=lambda epoch_seconds: (
                       'python Train_cifar.py --num_epochs %d' % epoch_seconds['ssl'], 60))
    run.begin(0)
    bar = Progress('Warmup net1', 782, run, stream=stream, clock=clock)
    return clock, bar, run


def test_progress_warns_once_after_its_first_timed_steps_of_a_slow_cpu_run():
    log = io.StringIO()
    clock, bar, run = slow_first_pass('cpu', log)
    steps(bar, clock, progress.TIMED_STEPS, 2.0, 128)
    assert log.getvalue() == ''
    steps(bar, clock, 1, 2.0, 128)
    # At 12 s, step 6: 2 s a step, 776 steps left = 1552 s; the epoch two passes of 1564 s,
    # 3128 s; the rest: 3116 + 9 x 3128 + 290 x 3128 x 4 = 3,659,748 s = 42.4 days, over
    # 300 epochs with the 12 s done, 12,199 s = 3 h 23 min an epoch.
    # The quick look is given both kinds' epochs: 3,128 s warm-up, 12,512 s SSL.
    assert log.getvalue() == ('warning: on the CPU an epoch takes ~3 h 23 min and the rest of '
                              'the run ~42.4 days; a first look takes ~1 min here: '
                              'python Train_cifar.py --num_epochs 12512\n')
    steps(bar, clock, 100, 2.0, 128)
    bar.close()
    steps(Progress('Warmup net2', 782, run, stream=log, clock=clock), clock, 100, 2.0, 128)
    assert log.getvalue().count('warning') == 1  # once in the run, not once per pass

    term = Terminal()
    clock, bar, _ = slow_first_pass('cpu', term)
    steps(bar, clock, progress.TIMED_STEPS + 1, 0.25, 128)
    # 0.25 s a step, still ~21 min an epoch over the run. On a terminal the live line is cleared,
    # the warning takes a line of its own and the live line comes back below it at once (step 6
    # at 1.5 s, though the last line was drawn at 1.25 s)
    *_, shown, cleared, warning, live = term.getvalue().split('\r')
    assert cleared == ' ' * len(shown) and warning.startswith('warning: ')
    assert warning.endswith('\n') and live.startswith('Warmup net1 [') and 'img/s' in live


@pytest.mark.parametrize('device, seconds_per_step', [('cpu', 0.01), ('cuda', 2.0)])
def test_no_warning_for_a_fast_run_nor_on_a_gpu(device, seconds_per_step):
    log = io.StringIO()
    clock, bar, _ = slow_first_pass(device, log)
    steps(bar, clock, 50, seconds_per_step, 128)
    assert 'warning' not in log.getvalue()


# ---------------------------------------------------------------- after each epoch -------------

def noon_today():
    return time.mktime(time.localtime()[:3] + (12, 0, 0, 0, 0, -1))


def test_every_epoch_ends_with_the_time_left_and_the_end_and_each_kind_once_with_the_total():
    clock, noon = FakeClock(), noon_today()
    run = RunClock(num_epochs=20, warm_up=10, ssl_ratio=5, clock=clock,
                   wall=lambda: noon + clock.now)
    lines = []
    for epoch, seconds in enumerate([30] * 5 + [90] * 5 + [200] * 10):
        timed_epochs(run, clock, [epoch], seconds, outside=10)
        lines.append(run.outlook())
    # Epoch 0 at 12:00:30: 9 warm-up epochs of 30 s and 10 SSL of 20 x 5 + 10 s guessed =
    # 1,370 s (23 min) left, the end at 12:23:20; the 20 epochs 1,400 s, 23 min.
    assert lines[0] == ('run ~23 min left, ends 12:23\n'
                        'expected: epochs 0-19 take ~23 min in all (10 warm-up epochs of '
                        '~30 s, 10 SSL epochs of ~2 min; SSL guessed from the warm-up)')
    assert lines[1] == 'run ~22 min left, ends 12:23'  # no new total within a kind
    # Epoch 10, the first SSL epoch, ends at 12:13:20: 9 x 200 s left, to 12:43:20; in all
    # 600 + 2,000 s. The warm-up epochs are over: their mean over all 10, not the last 5 (90 s).
    assert lines[10] == ('run 30 min left, ends 12:43\n'
                         'expected: epochs 0-19 take 43 min in all (10 warm-up epochs of '
                         '~1 min, 10 SSL epochs of ~3 min)')
    assert lines[19] == 'run 0 s left, ends 12:43'
    assert sum('expected' in line for line in lines) == 2


def test_a_resumed_run_totals_its_own_epochs_and_a_later_day_is_named():
    clock = FakeClock()
    tomorrow_noon = noon_today() + 86400
    run = RunClock(num_epochs=300, warm_up=10, clock=clock,
                   wall=lambda: tomorrow_noon + clock.now)
    run.begin(150)  # resumed in the SSL epochs
    clock.now += 100
    run.end()
    when = time.localtime(tomorrow_noon + 100 + 149 * 100)
    day = '%s %d %s' % (time.strftime('%a', when), when.tm_mday, time.strftime('%b', when))
    assert run.outlook() == ('run 4 h 8 min left, ends %s 16:10\n'
                             'expected: epochs 150-299 take 4 h 10 min in all '
                             '(150 SSL epochs of ~2 min)' % day)
