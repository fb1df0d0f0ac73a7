"""A run's files in its output folder: the authors' text logs, one JSON record per epoch, the
arguments, the latest and the best checkpoint; refusing to overwrite a run, and resuming one."""
import contextlib
import glob
import json
import math
import os
import shutil
import threading

import numpy as np
import torch

from utils.checkpoint import (append_text, atomic_save, atomic_write, load_checkpoint,
                              non_finite, write_error)
from utils.cli import InputError, TrainingError, on_failure, one_line
from utils.distributed import distributed, print0, release_output
from utils.snapshots import SNAPSHOT_SUFFIXES
from utils.training_set import training_set, training_set_changes


# What a checkpoint of ours holds besides the networks and optimizers.
CHECKPOINT_KEYS = {'epoch', 'args', 'rng', 'log_sizes', 'scores'}
# Arguments that say how a command was started, not what it runs: a new start in a folder
# that holds a run never differs from that run in these.
NOT_SETTINGS = {'out_dir', 'resume'}
SHOWN_CHANGES = 3  # differences a refusal names; the rest are counted


def cpu_copy(obj):
    """A copy of a checkpoint's state that later training cannot change: tensors copied to CPU
    memory, arrays copied, containers rebuilt."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to('cpu', copy=True)
    if isinstance(obj, np.ndarray):
        return obj.copy()
    if isinstance(obj, dict):
        return {k: cpu_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(cpu_copy(v) for v in obj)
    return obj


class BackgroundWrite:
    """work(*args) in a thread; join() waits for it and raises what it raised. Not a daemon:
    a run that stops still finishes the write in flight (atomic either way)."""

    def __init__(self, work, *args):
        self.error = None
        self.thread = threading.Thread(target=self._run, args=(work, args),
                                       name='checkpoint writer')
        self.thread.start()

    def _run(self, work, args):
        try:
            work(*args)
        except BaseException as e:  # raised in the main thread by join()
            self.error = e

    def join(self):
        self.thread.join()
        if self.error is not None:
            raise self.error


try:
    import fcntl  # POSIX: flock, released by the OS when the process ends however it ends
except ImportError:  # Windows: runs are not locked
    fcntl = None

_held_here = {}  # (device, inode) of a run's .jsonl -> that file open and locked, for the
#                  process's life (a run this process starts again, as tests do, holds it already)


def hold_run(jsonl_path, prefix, out_dir,
             ways='or pass another --out_dir'):
    """Hold a run for this process: an OS lock (flock) on its .jsonl, which ends with the
    process, even on kill -9, so it is never stale. A second process that starts or resumes
    the run, or a tool that writes into its folder, while this one holds it is refused in one
    line naming the holder and ending with the other `ways`. Nothing to hold before the run's
    files exist (a new run holds it from begin()). Under torch.distributed rank 0 holds it for
    all ranks."""
    if fcntl is None or distributed()[0] != 0 or not os.path.isfile(jsonl_path):
        return
    stat = os.stat(jsonl_path)
    key = (stat.st_dev, stat.st_ino)  # the file itself, whatever its name now (a run renamed)
    if key in _held_here:
        return
    try:
        f = open(jsonl_path, 'a')
    except OSError:  # unreadable or unwritable: check() says so in its own words
        return
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = _flock_holder(os.fstat(f.fileno()))
        f.close()
        raise InputError('the run %s in %s is in use by %s: wait for it to end or stop it (two '
                         'processes on one run would write its files twice), %s'
                         % (prefix, out_dir, holder, ways)) from None
    _held_here[key] = f


def _flock_holder(stat):
    """'process PID (its command)' holding a flock on the file of `stat`, from Linux's
    /proc/locks; 'another process' where that cannot be read."""
    device = '%02x:%02x:%d' % (os.major(stat.st_dev), os.minor(stat.st_dev), stat.st_ino)
    try:
        with open('/proc/locks') as f:
            pid = next(fields[4] for fields in (line.split() for line in f)
                       if len(fields) > 5 and fields[1] == 'FLOCK' and fields[5] == device)
        with open('/proc/%s/cmdline' % pid, 'rb') as f:
            command = f.read().replace(b'\0', b' ').decode(errors='replace').strip()
    except (OSError, StopIteration):
        return 'another process'
    return 'process %s (%s)' % (pid, one_line(command[:200]))


def out_dir_problem(out_dir):
    """Why a run cannot write in the folder `out_dir` (to be made where missing), or None: it,
    or the first of its parents that exists, is a file, a link to nothing, or not writable."""
    folder = os.path.abspath(out_dir)
    while not os.path.exists(folder):
        if os.path.islink(folder):  # os.makedirs would fail on it
            return ('%s is a symbolic link to %s, which does not exist: create that folder, or '
                    'pass another --out_dir' % (folder, os.readlink(folder)))
        folder = os.path.dirname(folder)
    if not os.path.isdir(folder):
        return ('--out_dir %s %s a file: pass a folder' % (
            out_dir, 'is' if folder == os.path.abspath(out_dir) else 'lies under %s, which is'
            % folder))
    if not os.access(folder, os.W_OK):
        return 'cannot write to --out_dir %s: choose a writable folder' % out_dir
    return None


def _clean(value):
    """JSON has no NaN: write null for undefined numbers (e.g. AUC when no label is noisy)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def _completed(saved, current, arguments):
    """A run's saved arguments with what it predates filled in: the script (a run saved before
    its arguments named their script was run by this same script) and, for each argument added
    since, the value its declaration says such runs had (utils.cli.ArgumentParser: `before`,
    else its default); where that is None (a default the script fills in, which may differ
    from run to run), the value it has now: an older run is never refused for what it could
    not have saved."""
    earlier = arguments.completed({}) if arguments is not None else {}
    earlier = {k: current.get(k) if v is None else v for k, v in earlier.items()}
    return dict(dict(earlier, script=current.get('script')), **saved)


def _shown(value):
    """An argument's value as a command line would give it."""
    if isinstance(value, bool):
        return 'on' if value else 'off'
    if isinstance(value, (list, tuple)):
        return ' '.join(_shown(v) for v in value)
    return 'unset' if value is None else str(value)


def _saved_args(path):
    """The arguments saved in a checkpoint or an _args.json; None when they cannot be read."""
    with contextlib.suppress(Exception):
        if path.endswith('.json'):
            with open(path) as f:
                return dict(json.load(f))
        # weights_only: nothing executes; mmap: the weights are not read
        return dict(torch.load(path, map_location='cpu', weights_only=True, mmap=True)['args'])
    return None


def _remove(path):
    with contextlib.suppress(OSError):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)


class RunLog:
    """One run's files in `out_dir`, all named <prefix><suffix>:
      text logs   the authors' formats, given as {name: suffix}, e.g. CIFAR's
                  {'acc': '_acc.txt', 'stats': '_stats.txt'}; written with write(name, line)
      .jsonl      one JSON object per epoch, then {"final": true, "best", "last10", ...}
      _args.json  the run's arguments
      _last.pth   checkpoint after the latest finished epoch;  _best.pth  at the best score
      _labels.csv the label errors, written at the end (utils.label_export)
      other_files further suffixes the script writes (e.g. Clothing1M's per-network weights),
                  and the snapshots (utils.snapshots)
    The folder holds a run when any of these files is there: a new start is then refused, and
    --resume continues it from _last.pth or is refused with what to do; nothing is overwritten.
    A run saved under another name with the same settings (its name came from an older rule)
    is resumed under its own name: the script takes its prefix from `prefix` after check().
    Use: check() before touching anything; begin() when the run really starts (every input
    checked), then epoch() and save() every epoch. With save_in_background set, save() copies
    the state to CPU memory and a thread writes it while training goes on (a kill then loses
    at most the epoch being written and the one after it); the next save(), summary() and a
    failure wait for it. A new run that fails or is stopped before its first checkpoint
    removes its files again, so the same command can simply be rerun.
    A checkpoint records the log files' sizes, so resuming cuts them back to that point and
    the logs of a resumed run equal an uninterrupted one's. Under torch.distributed only rank 0
    writes; every rank reads the checkpoint. `arguments`, the script's parser, says which
    arguments may change on --resume and what a run saved before an argument existed had.
    """

    def __init__(self, out_dir, prefix, text_logs, other_files=(), arguments=None):
        self.out_dir, self.text_logs, self.other_files = out_dir, text_logs, other_files
        self._name(prefix)
        self.scores = []
        self.saved = False  # whether this process has written a checkpoint
        self.writer = distributed()[0] == 0
        self.save_in_background = False
        self.training_set = None  # what the run trains on (record_training_set), in each save
        self._pending = None  # the background write in flight (BackgroundWrite)
        self.arguments = arguments
        self.resumable = arguments.resumable if arguments is not None else set()

    def _name(self, prefix):
        """The run's files, all named <prefix><suffix>."""
        base = os.path.join(self.out_dir, prefix)
        self.prefix = prefix
        self.text = {name: base + suffix for name, suffix in self.text_logs.items()}
        self.jsonl_path, self.args_path = base + '.jsonl', base + '_args.json'
        self.last_path, self.best_path = base + '_last.pth', base + '_best.pth'
        self.labels_path = base + '_labels.csv'  # written by the script at its end
        self.logs = tuple(self.text.values()) + (self.jsonl_path,)
        written = (self.logs + (self.args_path, self.last_path, self.best_path)
                   + tuple(base + suffix for suffix in self.other_files) + (self.labels_path,)
                   + tuple(base + suffix for suffix in SNAPSHOT_SUFFIXES))
        self.files = written + tuple(path + '.tmp' for path in written)

    def _present(self):
        return [p for p in self.files if os.path.lexists(p)]

    def _saved_under_another_name(self, args):
        """The prefix of the one run in the folder whose latest checkpoint has these settings
        under another name (a run name follows the declarations of the switches that change
        the method, which may have changed since it was saved); None if none, or several."""
        found = []
        for path in sorted(glob.glob(os.path.join(glob.escape(self.out_dir), '*_last.pth'))):
            saved = _saved_args(path)
            if saved is not None and not self._refused_changes(saved, args)[0]:
                found.append(os.path.basename(path)[:-len('_last.pth')])
        return found[0] if len(found) == 1 else None

    def _refused_changes(self, saved, args):
        """The arguments, in order, in which `args` differ from a run's saved ones (what the run
        predates filled in) and which may not change on --resume; and those saved arguments."""
        current = vars(args)
        saved = _completed(saved, current, self.arguments)
        return [k for k in sorted(set(saved) | set(current))
                if k not in self.resumable and saved.get(k) != current.get(k)], saved

    def check(self, args):
        """Refuse what would fail or destroy an earlier run; with --resume, load and check the
        latest checkpoint. Writes nothing. Returns the checkpoint or None."""
        problem = out_dir_problem(self.out_dir)
        if problem:
            raise InputError(problem)
        hold_run(self.jsonl_path, self.prefix, self.out_dir)  # first: a second process on
        #                                                        this run is refused
        present = self._present()
        names = ', '.join(os.path.basename(p) for p in present[:3]) + (
            ', ...' if len(present) > 3 else '')
        if not args.resume:
            if present:
                raise InputError(self._held(args, names))
            return None
        if not present:
            earlier = self._saved_under_another_name(args)
            if earlier is None:
                print0('nothing to resume in %s: starting a new run' % self.out_dir)
                return None
            print0('resuming %s, which has these settings under the name it was saved with'
                   % earlier)
            self._name(earlier)
            hold_run(self.jsonl_path, self.prefix, self.out_dir)
        if not os.path.isfile(self.last_path):
            if os.path.isfile(self.best_path):
                fix = ('copy %s to %s to continue from its best epoch, or pass another --out_dir'
                       % (self.best_path, self.last_path))
            else:
                fix = ('delete its files (%s) to start it again, or pass another --out_dir'
                       % names)
            raise InputError('%s holds a run without its latest checkpoint %s, so it cannot be '
                             'resumed: %s' % (self.out_dir, self.last_path, fix))
        fix = ('copy %s over it to continue from its best epoch, or pass another --out_dir'
               % self.best_path if os.path.isfile(self.best_path) else
               'restore it, or pass another --out_dir to start afresh')
        checkpoint = load_checkpoint(self.last_path, fix)
        if not isinstance(checkpoint, dict) or not CHECKPOINT_KEYS <= set(checkpoint):
            raise InputError('%s is not a checkpoint written by this script: %s'
                             % (self.last_path, fix))
        refused, saved = self._refused_changes(checkpoint['args'], args)
        if checkpoint['epoch'] + 1 > args.num_epochs:
            raise InputError('the run in %s has finished %d epochs, more than --num_epochs %d: '
                             'pass --num_epochs %d or more to continue it'
                             % (self.out_dir, checkpoint['epoch'] + 1, args.num_epochs,
                                checkpoint['epoch'] + 1))
        changed = ['--%s %s (was %s)' % tuple(one_line(value) for value in  # a file's text
                                              (k, vars(args).get(k), saved.get(k)))
                   for k in refused]
        if changed:
            raise InputError('cannot resume %s with other settings: %s; run it with the '
                             'original ones, or pass another --out_dir'
                             % (self.last_path, ', '.join(changed)))
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            if not os.path.isfile(path):
                raise InputError('log %s of the run in %s is missing: restore it, or pass '
                                 'another --out_dir' % (path, self.out_dir))
            if os.path.getsize(path) < size:
                raise InputError('log %s is shorter than its checkpoint says: it was changed '
                                 'by hand; restore it or pass another --out_dir' % path)
        return checkpoint

    def record_training_set(self, checkpoint, keys, labels, names=None):
        """What the run trains on, kept in each checkpoint from now on: per image its key (the
        path of its file; a CIFAR image's pixels) and its label (utils.training_set). With
        the `checkpoint` of a resume, a training set that changed since is refused in one
        line, saying what changed; `names` (default: the keys) name the images there."""
        self.training_set = training_set(keys, labels)
        changed = training_set_changes(checkpoint and checkpoint.get('training_set'),
                                       self.training_set, keys if names is None else names)
        if changed:
            raise InputError('cannot resume %s: its training set changed since: %s; put the '
                             'data back as it was to continue the run, or start a new run on '
                             'the data as it is now with another --out_dir'
                             % (self.last_path, changed))

    def _held(self, args, names):
        """Why a new start is refused: the run the folder holds, how its settings differ from
        these (a few named, the rest counted), and the ways on."""
        # the latest checkpoint's (a resume's settings), else the start's, else the best epoch's
        saved = next((found for found in map(_saved_args, (self.last_path, self.args_path,
                                                           self.best_path)) if found), None)
        if saved is None:
            return ('%s already holds files of the run %s (%s): add --resume to continue it, or '
                    'pass another --out_dir' % (self.out_dir, self.prefix, names))
        current = vars(args)
        saved = _completed(saved, current, self.arguments)
        changed = sorted((k for k in set(saved) | set(current)
                          if k not in NOT_SETTINGS and saved.get(k) != current.get(k)),
                         key=lambda k: (k in self.resumable, k.lower()))  # refused ones first
        held = '%s already holds the run %s' % (self.out_dir, self.prefix)
        if not changed:
            return held + (', with the same settings: add --resume to continue it, or pass '
                           'another --out_dir')
        shown = ', '.join('%s%s %s (there) vs %s (now)'
                          % ('' if k == 'script' else '--', k, _shown(saved.get(k)),
                             _shown(current.get(k))) for k in changed[:SHOWN_CHANGES])
        if len(changed) > SHOWN_CHANGES:
            shown += ' and %d more' % (len(changed) - SHOWN_CHANGES)
        if all(k in self.resumable for k in changed):
            ways = 'add --resume to continue it with these settings, or pass another --out_dir'
        else:
            ways = ("pass another --out_dir to start this one, or --resume with that run's "
                    'settings to continue it')
        return '%s, with other settings: %s; %s' % (held, shown, ways)

    def begin(self, args, checkpoint=None):
        """The run really starts: create the files of a new run (removed again if it fails
        before its first checkpoint), or cut a resumed run's logs back to its checkpoint and
        repair its best checkpoint if a kill came between the two. What the run said while
        its inputs were checked is printed now (utils.cli.run_cli held it)."""
        release_output()
        if checkpoint is not None:
            self.scores = list(checkpoint['scores'])
        if not self.writer:  # what a failure leaves is rank 0's to say: whether it has saved
            on_failure(lambda: not os.path.isfile(self.last_path))
            return
        if checkpoint is None:
            created_dir = not os.path.isdir(self.out_dir)
            try:
                os.makedirs(self.out_dir, exist_ok=True)
                open(self.logs[0], 'x').close()  # exclusive: of two starts here, one goes on
            except FileExistsError:
                raise InputError('%s already holds the run %s, started while this one was '
                                 'loading its data: let that one run, or pass another --out_dir'
                                 % (self.out_dir, self.prefix)) from None
            except OSError as e:
                raise write_error(self.out_dir, e) from None
            on_failure(lambda: self._discard_unsaved(created_dir))
            for path in self.logs[1:]:
                append_text(path, '')
            hold_run(self.jsonl_path, self.prefix, self.out_dir)  # held from now on
            self._write_args(args)
            return
        on_failure(self._keep)  # a resumed run keeps its checkpoint whatever happens
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            with open(path, 'r+') as f:
                f.truncate(size)
        for path in self.files:
            if path.endswith('.tmp'):  # half of a write that a kill interrupted
                _remove(path)
        self._write_args(args)  # what the run is now (an extended --num_epochs, say): the
        #                         tools and tables read it
        if self.scores and self.scores[-1] >= max(self.scores):  # the latest epoch is the best
            self._copy_last_to_best()

    def _keep(self):
        """After a failure: let the checkpoint write in flight end; the files stay."""
        with contextlib.suppress(Exception):  # its failure is not this one
            self.wait()
        return False

    def _discard_unsaved(self, created_dir):
        """After a failure: remove a new run's files if it never wrote a checkpoint."""
        self._keep()
        if self.saved:
            return False
        for path in self._present():
            _remove(path)
        if created_dir:
            with contextlib.suppress(OSError):
                os.rmdir(self.out_dir)  # only if empty
        return True

    def _write_args(self, args):
        text = json.dumps(vars(args), indent=1)
        atomic_write(lambda f: f.write(text.encode()), self.args_path)

    def _append(self, path, text):
        if self.writer:
            append_text(path, text)

    def write(self, name, line):
        """Append a line to one of the authors' text logs."""
        self._append(self.text[name], line)

    def epoch(self, record, score):
        """Append the epoch's JSON record; `score` (test accuracy, or validation accuracy
        where the test set is only used at the end) picks the best checkpoint."""
        self.scores.append(score)
        self._append(self.jsonl_path, json.dumps(_clean(record)) + '\n')

    def save(self, state):
        """Write the latest checkpoint atomically (plus the logs' sizes and the scores so far);
        copy it to the best one when this epoch has the best score. In the background (see
        the class) once the previous write has finished."""
        broken = non_finite(state)  # every process: under torchrun all stop together
        if broken:  # the last finite checkpoint stays the latest
            kept = ('; %s keeps the last finite epoch' % self.last_path
                    if os.path.exists(self.last_path) else '')
            raise TrainingError('epoch %s ended with non-finite numbers (%s), so it was not '
                                'saved%s: lower --lr or check the data'
                                % (state.get('epoch'), broken, kept))
        if not self.writer:
            return
        state = dict(state, log_sizes=[os.path.getsize(p) for p in self.logs],
                     scores=list(self.scores))
        if self.training_set is not None:
            state['training_set'] = self.training_set
        best = self.scores[-1] >= max(self.scores)
        self.wait()
        if self.save_in_background:  # a copy: training goes on with the live tensors
            self._pending = BackgroundWrite(self._write_checkpoint, cpu_copy(state), best)
        else:
            self._write_checkpoint(state, best)

    def _write_checkpoint(self, state, best):
        atomic_save(state, self.last_path)
        self.saved = True
        if best:
            self._copy_last_to_best()

    def wait(self):
        """Until the background write in flight (if any) is on disk; raises its failure."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.join()

    def _copy_last_to_best(self):
        with open(self.last_path, 'rb') as src:
            atomic_write(lambda f: shutil.copyfileobj(src, f), self.best_path)

    def summary(self, **extra):
        """Best score over all epochs and the mean of the last 10, as the paper reports them,
        plus whatever else the script adds; appended to the JSONL and returned."""
        self.wait()
        result = dict({'final': True, 'best': max(self.scores),
                       'last10': float(np.mean(self.scores[-10:])),
                       'epochs': len(self.scores)}, **extra)
        self._append(self.jsonl_path, json.dumps(_clean(result)) + '\n')
        return result
