"""Progress you can trust: where a run trains, and while it trains, how fast and how long.

  print0(describe_device(device, bf16, channels_last, cuda_graphs))    once, at the start
  run_clock = RunClock(num_epochs, warm_up, passes=2)                  epochs timed by kind
  run_clock.begin(epoch) ... run_clock.end()                           around each epoch
  print0(summary, run_clock.outlook())                                 the time left, the end
  progress = Progress(label, steps, run_clock)                         one network's pass
  progress.update(len(inputs), 'CE-loss: %.4f', loss) ... progress.close()

On a terminal the line is rewritten in place at most every TTY_EVERY_S; into a file a full line
goes at most every LOG_EVERY_S. Loss tensors are read only for a line that is printed, so a GPU
is not made to wait for a line nobody sees.
"""
import math
import os
import shlex
import shutil
import sys
import time

import torch

from utils.cli import stop_if_asked
from utils.distributed import distributed, is_main, release_output

TTY_EVERY_S = 0.5   # the live line: fresh enough to watch, rare enough to cost nothing
LOG_EVERY_S = 180   # a log file: a line every few minutes, not thousands per epoch
TIMED_STEPS = 5     # steps timed after the first (which pays set-up) before judging the speed
SLOW_EPOCH_S = 600  # on the CPU, epochs longer than this on average get a warning
LONG_RUN_S = 3600   # on the CPU, a run with more left than this gets a first look advised too
QUICK_LOOK_S = 900  # the first look such a warning advises should take at most this
RECENT_EPOCHS = 5   # a kind of epoch lasts the mean of its last few (the labeled set drifts)
KINDS = ('warmup', 'ssl')


def assumed_ssl_ratio(labeled_fraction=0.65):
    """How much longer an SSL epoch's training is than a warm-up epoch's, from the work in
    each, for use until an SSL epoch has been timed. Counted in forwards of one image, a
    forward-backward as 3 (backward ~ 2 forwards). Warm-up, per network: one forward-backward
    per training image, 3 N. SSL, per network: co-divide's forward over all N images, then per
    labeled batch of B the no-grad forwards of x1, x2, u1, u2 (4B), the partner's forward of
    u1, u2 (2B) and a forward-backward of the 4B mixed rows (12B): N + 18 L for L labeled
    images. The test pass and the checkpoint, the same in both kinds, are not in it: RunClock
    times them apart. The labeled share is not known before the first co-divide: 0.65 is the
    mean of the first five SSL epochs of the ten runs in results/label_errors (0.50-0.74; the
    count with each epoch's own share gave its time within ~10%)."""
    return (1 + 18 * labeled_fraction) / 3


SSL_PER_WARMUP = assumed_ssl_ratio()  # 4.2: a guess, so estimates that use it are marked '~'


def format_duration(seconds):
    """'45 s', '12 min', '3 h 10 min', '2.5 days'."""
    seconds = round(max(seconds, 0))
    if seconds < 60:
        return '%d s' % seconds
    minutes = round(seconds / 60)
    if minutes < 60:
        return '%d min' % minutes
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return '%d h %d min' % (hours, minutes) if minutes else '%d h' % hours
    return '%.1f days' % (seconds / 86400)


def describe_device(device, bf16, channels_last, cuda_graphs, compile_net=False):
    """One line for the start of a run: the device it trains on and the speed-ups in force."""
    device = torch.device(device)
    if device.type == 'cuda':
        where = '%s (%s)' % (torch.cuda.get_device_name(device), device)
    else:
        threads = torch.get_num_threads()
        where = 'the CPU (%d thread%s)' % (threads, '' if threads == 1 else 's')
    world = distributed()[1]
    if world > 1:
        where += ', one of %d processes' % world
    used = [name for name, on in (('bf16 autocast', bf16), ('channels_last', channels_last),
                                  ('CUDA graphs', cuda_graphs), ('torch.compile', compile_net))
            if on]
    speedups = ', '.join(used) or 'none (--plain)'
    if channels_last and not bf16:  # the fast path is on, but bf16 would be slower here
        speedups += ' (no bf16 units on this %s)' % ('GPU' if device.type == 'cuda' else 'CPU')
    return 'training on %s; speed-ups: %s' % (where, speedups)


def cpu_full_scale_warning(device, epoch_seconds, run_seconds, quick_look=None):
    """A line when a run on the CPU has long epochs (measured, on average) or much left: how
    long they and the rest of the run take and, where the script has one, a whole command for
    a first look with its time here (`quick_look` is (command, seconds)), said to be over
    QUICK_LOOK_S where even the smallest is. None otherwise."""
    if torch.device(device).type != 'cpu' or (epoch_seconds <= SLOW_EPOCH_S
                                              and run_seconds <= LONG_RUN_S):
        return None
    if epoch_seconds > SLOW_EPOCH_S:
        line = ('warning: on the CPU an epoch takes ~%s and the rest of the run ~%s'
                % (format_duration(epoch_seconds), format_duration(run_seconds)))
    else:
        line = 'note: on the CPU the rest of this run takes ~%s' % format_duration(run_seconds)
    if quick_look is None:
        return line
    command, seconds = quick_look
    return line + '; a first look takes ~%s here%s: %s' % (
        format_duration(seconds),
        ' (the smallest there is, over %s on this machine)' % format_duration(QUICK_LOOK_S)
        if seconds > QUICK_LOOK_S else '', command)


def command_with(script, argv, flags, drop=('--resume',)):
    """The command `python <script> <argv>` with `flags` ({'--name': value}) set and the
    switches in `drop` left out: a flag of argv that is set again is removed, and the new
    values come last (argparse keeps the last value, so an abbreviated flag loses too)."""
    kept, skip = [], False
    for token in argv:
        if skip:
            skip = False
            continue
        name = token.split('=', 1)[0]
        if name in drop:
            continue
        if name in flags:
            skip = '=' not in token
            continue
        kept.append(token)
    for name, value in flags.items():
        kept += [name, str(value)]
    return ' '.join(['python', shlex.quote(os.path.relpath(script))]
                    + [shlex.quote(token) for token in kept])


def unused_folder(path):
    """`path`, or `path2`, `path3`, ...: the first that does not exist yet."""
    candidate, k = path, 1
    while os.path.exists(candidate):
        k += 1
        candidate = '%s%d' % (path, k)
    return candidate


# PreAct-ResNet18's time per 32-px image, in a whole epoch, is a fixed part plus a part that grows
# with the width squared (the convolutions). The fixed part, 624 width-squared units, is fitted
# on a 2-core Xeon with bf16 autocast through 770 and 143 training images/s at widths 16 and 64
# (the fit gives 411 at width 32, where 403 were measured). A bare training step at width 16 is
# faster on an idle machine (the fit then gives 365), but a width-16 epoch pays more than its
# steps (augmentation, loaders, co-divide): the first look projected with 624 took 0.95 of its
# promise there (results/quick_look).
WIDTH_FIXED_COST = 624
EVAL_PER_TRAIN = 1 / 7  # an eval forward against a training step, per image (6x-8x measured)
QUICK_START_S = 20  # a small run's set-up, labels file and figures (17-18 s: results/quick_look)


def width_cost(width):
    """PreAct-ResNet18's time per image at `width`, in relative units (see WIDTH_FIXED_COST)."""
    return WIDTH_FIXED_COST + width ** 2


def measured_width_ratio(make_net, width, quick_width, image_size=32, batch_size=32, steps=3):
    """How much less time a training step takes at `quick_width` than at `width` on this
    machine: `steps` timed SGD steps of make_net(w) on random images at each width (after one
    untimed), their ratio. The run's random streams are left as they were (forked)."""
    seconds = {}
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        images = torch.randn(batch_size, 3, image_size, image_size)
        for w in (width, quick_width):
            net = make_net(w)
            optimizer = torch.optim.SGD(net.parameters(), lr=0.0)
            for k in range(steps + 1):
                if k == 1:
                    start = time.perf_counter()
                optimizer.zero_grad()
                net(images).float().logsumexp(1).mean().backward()
                optimizer.step()
            seconds[w] = time.perf_counter() - start
    return seconds[quick_width] / seconds[width]


def preact_quick_look(epoch_seconds, images, width, quick_images, quick_width, warm_up, ssl_epochs,
                      test_images, passes=2, width_ratio=None, start_seconds=QUICK_START_S):
    """How long a small PreAct-ResNet18 run takes on this machine, projected from this run's
    epochs (`epoch_seconds`, by kind) on `images` images at `width`: its epochs scaled by
    images and width (`width_ratio`, the time per image at quick_width against width, measured
    with measured_width_ratio; default: width_cost's), plus its test passes and
    `start_seconds` of set-up and end (labels file, figures). Returns seconds."""
    if width_ratio is None:
        width_ratio = width_cost(quick_width) / width_cost(width)
    scale = (quick_images / images) * width_ratio
    train_image_s = epoch_seconds['warmup'] / (passes * images)  # one training image, here
    test = passes * test_images * train_image_s * EVAL_PER_TRAIN * width_ratio
    return (warm_up * (epoch_seconds['warmup'] * scale + test)
            + ssl_epochs * (epoch_seconds['ssl'] * scale + test) + start_seconds)


class RunClock:
    """Times the run's epochs by kind ('warmup' before epoch `warm_up`, 'ssl' after) and
    estimates the time left: the epochs to come of each kind times that kind's recent mean.
    A kind not timed yet is projected, and the estimate marked as a guess: the epoch in
    progress from its `passes` (networks trained per epoch), the other kind from this one's
    training passes through `ssl_ratio`, plus the time this one spends outside them (the test
    pass and the checkpoint, the same in both kinds). On the CPU (`device`), a run with slow
    epochs gets a warning, with the script's `quick_look(epoch_seconds)` -> (command, seconds)
    where it has one."""

    def __init__(self, num_epochs, warm_up, passes=2, ssl_ratio=SSL_PER_WARMUP, device=None,
                 quick_look=None, clock=time.monotonic, wall=time.time):
        self.num_epochs, self.warm_up, self.passes = num_epochs, warm_up, passes
        self.ssl_ratio, self.device, self.quick_look = ssl_ratio, device, quick_look
        self.clock, self.wall = clock, wall
        self.seconds = {kind: [] for kind in KINDS}
        self.outside = {kind: [] for kind in KINDS}  # of each epoch: seconds outside the passes
        self.epoch, self.epoch_start, self.passes_begun = None, None, 0
        self.pass_start, self.in_passes = None, 0.0
        self.first_epoch = None  # the first epoch this process ran (a resumed run starts later)
        self.warned = False

    def kind(self, epoch):
        return 'warmup' if epoch < self.warm_up else 'ssl'

    def begin(self, epoch):
        """Epoch `epoch` starts now."""
        self.epoch, self.epoch_start, self.passes_begun = epoch, self.clock(), 0
        self.pass_start, self.in_passes = None, 0.0
        if self.first_epoch is None:
            self.first_epoch = epoch

    def pass_begins(self):
        """A network's pass over its batches starts (Progress says so)."""
        self.passes_begun += 1
        self.pass_start = self.clock()

    def pass_ends(self):
        """The pass begun last is over (Progress.close says so)."""
        if self.pass_start is not None:
            self.in_passes += self.clock() - self.pass_start
            self.pass_start = None

    def end(self):
        """The epoch begun last has finished: its length counts for its kind. Returns it."""
        seconds = self.clock() - self.epoch_start
        self.seconds[self.kind(self.epoch)].append(seconds)
        self.outside[self.kind(self.epoch)].append(max(seconds - self.in_passes, 0.0))
        return seconds

    def per_epoch(self, kind):
        """Mean seconds of the last RECENT_EPOCHS epochs of `kind`; None before the first."""
        recent = self.seconds[kind][-RECENT_EPOCHS:]
        return sum(recent) / len(recent) if recent else None

    def _later(self):
        """Epochs of each kind after the current one."""
        return {'warmup': max(0, self.warm_up - self.epoch - 1),
                'ssl': max(0, self.num_epochs - max(self.warm_up, self.epoch + 1))}

    def _fill_in(self, epoch_seconds, kind, later=True):
        """Projects the kind other than `kind` where it is not timed yet (and, with `later`,
        only where epochs of it are to come): the training in `kind`'s epochs through
        ssl_ratio, plus their time outside the training passes (none known before the first
        epoch ends). Returns whether it did (the estimate is then a guess)."""
        other = 'ssl' if kind == 'warmup' else 'warmup'
        if epoch_seconds[other] is not None or (later and self._later()[other] == 0):
            return False
        recent = self.outside[kind][-RECENT_EPOCHS:]
        outside = min(sum(recent) / len(recent), epoch_seconds[kind]) if recent else 0.0
        ratio = self.ssl_ratio if other == 'ssl' else 1 / self.ssl_ratio
        epoch_seconds[other] = (epoch_seconds[kind] - outside) * ratio + outside
        return True

    def _estimate(self, pass_elapsed, pass_left):
        """(seconds into this epoch, left of it, left after it, whether guessed, seconds of an
        epoch of each kind), from inside a pass `pass_elapsed` seconds old with `pass_left` to
        go."""
        in_epoch = self.clock() - self.epoch_start
        kind = self.kind(self.epoch)
        epoch_seconds = {k: self.per_epoch(k) for k in KINDS}
        guessed = epoch_seconds[kind] is None
        if guessed:  # the passes still to begin take as long as this one
            pass_seconds = pass_elapsed + pass_left
            epoch_seconds[kind] = (in_epoch + pass_left
                                   + (self.passes - self.passes_begun) * pass_seconds)
        guessed |= self._fill_in(epoch_seconds, kind)
        this_left = max(epoch_seconds[kind] - in_epoch, pass_left)
        later = self._later()
        after = sum(later[k] * epoch_seconds[k] for k in KINDS if later[k] > 0)
        return in_epoch, this_left, after, guessed, epoch_seconds

    def left(self, pass_elapsed, pass_left):
        """(seconds left in the run, whether guessed); (None, True) outside an epoch."""
        if self.epoch is None:
            return None, True
        _, this_left, after, guessed, _ = self._estimate(pass_elapsed, pass_left)
        return this_left + after, guessed

    def speed_warning(self, pass_elapsed, pass_left):
        """cpu_full_scale_warning for this run, judged once: the first time it is asked."""
        if self.warned or None in (self.device, self.epoch):
            return None
        self.warned = True
        in_epoch, this_left, after, _, epoch_seconds = self._estimate(pass_elapsed, pass_left)
        per_epoch = (in_epoch + this_left + after) / (self.num_epochs - self.epoch)
        if torch.device(self.device).type != 'cpu' or (per_epoch <= SLOW_EPOCH_S
                                                       and this_left + after <= LONG_RUN_S):
            return None
        for kind in KINDS:  # the quick look has both kinds, whatever this run has
            self._fill_in(epoch_seconds, kind, later=False)
        look = self.quick_look(epoch_seconds) if self.quick_look else None
        return cpu_full_scale_warning(self.device, per_epoch, this_left + after, look)

    def outlook(self):
        """After an epoch has ended: the run's time left and its expected end, as
        'run 2 h 10 min left, ends 20:31' ('~' while a kind of epoch is guessed); after the
        first epoch of each kind timed in this process, a second line with what the epochs of
        this process take in all."""
        kind = self.kind(self.epoch)
        epoch_seconds = {k: self.per_epoch(k) for k in KINDS}
        guessed = self._fill_in(epoch_seconds, kind)
        later = self._later()
        left = sum(later[k] * epoch_seconds[k] for k in KINDS if later[k] > 0)
        line = 'run %s%s left, ends %s' % ('~' if guessed else '', format_duration(left),
                                          self._clock_time(self.wall() + left))
        if len(self.seconds[kind]) != 1:
            return line
        counts = {'warmup': max(0, min(self.warm_up, self.num_epochs) - self.first_epoch),
                  'ssl': self.num_epochs - max(self.warm_up, self.first_epoch)}
        total = sum(sum(self.seconds[k]) for k in KINDS) + left
        for k in KINDS:  # a kind this process has finished: the mean of all its epochs
            if later[k] == 0 and self.seconds[k]:
                epoch_seconds[k] = sum(self.seconds[k]) / len(self.seconds[k])
        parts = ['%d %s epoch%s of ~%s' % (counts[k], 'warm-up' if k == 'warmup' else 'SSL',
                                           '' if counts[k] == 1 else 's',
                                           format_duration(epoch_seconds[k]))
                 for k in KINDS if counts[k] > 0]
        return line + ('\nexpected: epochs %d-%d take %s%s in all (%s%s)'
                       % (self.first_epoch, self.num_epochs - 1, '~' if guessed else '',
                          format_duration(total), ', '.join(parts),
                          '; SSL guessed from the warm-up' if guessed else ''))

    @staticmethod
    def _clock_time(timestamp):
        """'20:31' today, 'Sat 5 Dec 09:14' on another day (local time, to the nearest minute)."""
        when = time.localtime(timestamp + 30)
        if time.strftime('%Y%m%d', when) == time.strftime('%Y%m%d'):
            return time.strftime('%H:%M', when)
        return '%s %d %s' % (time.strftime('%a', when), when.tm_mday,
                             time.strftime('%b %H:%M', when))


class Progress:
    """One network's pass over its batches, shown as it goes: images per second, the time
    left in the pass and, with a RunClock, in the run. update() reads the clock once; the
    line, and the values in it, are made only when it is printed. Silent on all but the main
    process under torch.distributed."""

    def __init__(self, label, steps, run=None, stream=None, clock=time.monotonic):
        self.label, self.steps, self.run, self.clock = label, steps, run, clock
        self.stream = sys.stdout if stream is None else stream
        self.quiet = not is_main()
        self.live = getattr(self.stream, 'isatty', lambda: False)()
        self.every = TTY_EVERY_S if self.live else LOG_EVERY_S
        self.columns = shutil.get_terminal_size().columns - 1  # a wrapped line can't be redrawn
        self.world = distributed()[1]  # every process trains as many images: the job's rate
        self.done = self.images = 0
        self.start = clock()
        self.first = None  # (time, images) after the first step, whose set-up is not the rate
        self.printed_at = -math.inf if self.live else self.start  # the live line shows at once
        self.shown = 0  # characters of the live line on screen
        if run is not None:
            run.pass_begins()
        release_output()  # a tool's lines held while it checked its inputs come first

    def update(self, images, fmt='', *values):
        """One step done, on `images` images; the line ends with `fmt % values` (values may
        be tensors: they are read only when the line is printed)."""
        stop_if_asked()  # a stop that Python dropped where it arrived (utils.cli) stops here
        if self.quiet:
            return
        now = self.clock()
        self.done += 1
        self.images += images
        if self.first is None:
            self.first = (now, self.images)
        elif self.done == TIMED_STEPS + 1 and self.run is not None:
            elapsed, left = self._pass_times(now)
            if left is not None:
                self._above(self.run.speed_warning(elapsed, left))
        if now - self.printed_at >= self.every:
            self.printed_at = now
            self._show(self._line(now, fmt, values))

    def close(self):
        """The pass is over: the live line is cleared for the epoch's summary."""
        if self.run is not None:
            self.run.pass_ends()
        self._clear()

    def _clear(self):
        if self.live and self.shown and not self.quiet:
            self.stream.write('\r' + ' ' * self.shown + '\r')
            self.stream.flush()
            self.shown = 0

    def _pass_times(self, now):
        """(seconds since the pass began, seconds left in it, or None before a step is timed)"""
        first_time = self.first[0]
        if self.done < 2 or now <= first_time:
            return now - self.start, None
        per_step = (now - first_time) / (self.done - 1)
        return now - self.start, per_step * max(self.steps - self.done, 0)

    def _line(self, now, fmt, values):
        elapsed, left = self._pass_times(now)
        count = '%d/%d' % (self.done, self.steps)
        stats = []
        if left is not None:
            rate = self.world * (self.images - self.first[1]) / (now - self.first[0])
            stats.append(('%d img/s' if rate >= 100 else '%.1f img/s') % rate)
            stats.append('%s left' % format_duration(left))
            if self.run is not None:
                run_left, guessed = self.run.left(elapsed, left)
                if run_left is not None:
                    stats.append('run %s%s left' % ('~' if guessed else '',
                                                    format_duration(run_left)))
        extra = [fmt % tuple(v.item() if hasattr(v, 'item') else v for v in values)] if fmt \
            else []
        if not self.live:
            return '  '.join(['%s  step %s' % (self.label, count)] + stats + extra)
        filled = min(20, 20 * self.done // max(self.steps, 1))
        bar = '%s [%s%s] %s' % (self.label, '#' * filled, '-' * (20 - filled), count)
        # on a narrow terminal the rate and the times left stay: the bar and the losses go
        # first, then the run's name before ' | ' (the epoch and the network stay)
        short = self.label.split(' | ', 1)[-1]
        for parts in ([bar] + stats + extra, ['%s %s' % (self.label, count)] + stats + extra,
                      ['%s %s' % (self.label, count)] + stats,
                      ['%s %s' % (short, count)] + stats, [count] + stats):
            line = '  '.join(parts)
            if len(line) <= self.columns:
                break
        return line

    def _show(self, line):
        if self.live:
            line = line[:self.columns]
            self.stream.write('\r' + line.ljust(self.shown))  # spaces cover a longer old line
            self.shown = len(line)
        else:
            self.stream.write(line + '\n')
        self.stream.flush()

    def _above(self, message):
        """A line of its own, above the live line (which is redrawn at the next update)."""
        if message is None:
            return
        self._clear()
        self.stream.write(message + '\n')
        self.stream.flush()
        if self.live:
            self.printed_at = -math.inf
