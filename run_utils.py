"""Plumbing shared by the training scripts: command-line errors, seeding, devices, logs and
checkpoints (a run survives a kill at any moment and resumes exactly)."""
import argparse
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import signal
import sys

import numpy as np
import torch


class InputError(ValueError):
    """Bad input (arguments, data, files): the message is one line that says what to fix."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; raised in the main process wherever it is."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_on_signals():
    """Turn SIGTERM/SIGINT into Interrupted in this process (not in data-loading workers, which
    the main process shuts down). The epoch in progress is dropped; every finished epoch is
    already in the checkpoint, written atomically, so the run resumes exactly."""
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise Interrupted(signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_cli(main, argv=None):
    """Run main(argv) as a command. Bad input and a diverging run become one line on stderr and
    exit code 2 instead of a traceback (--debug shows it); SIGTERM/SIGINT stop the run with a
    line that says how to resume it, and exit code 128 + signal number."""
    from dividemix import TrainingError
    argv = sys.argv[1:] if argv is None else list(argv)
    stop_on_signals()
    try:
        main(argv)
    except (InputError, TrainingError) as e:
        if '--debug' in argv:
            raise
        print('error: %s' % e, file=sys.stderr)
        return 2
    except Interrupted as e:
        command = ' '.join(shlex.quote(a) for a in ['python', sys.argv[0]] + argv
                           + ([] if '--resume' in argv else ['--resume']))
        print('\nstopped by %s; finished epochs are saved: continue with  %s' % (e, command),
              file=sys.stderr)
        return 128 + e.signum
    return 0


def seed_everything(seed):
    """Seed Python, numpy (mixup lambda, GMM init) and torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(gpuid):
    if torch.cuda.is_available():
        torch.cuda.set_device(gpuid)
        torch.backends.cudnn.benchmark = True  # as the authors; GPU runs are not bit-exact anyway
        return torch.device('cuda', gpuid)
    return torch.device('cpu')


def _clean(value):
    """JSON has no NaN: write null for undefined numbers (e.g. AUC when no label is noisy)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


def rng_state():
    """Every random stream the run draws from, in a form torch.load(weights_only=True) reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    return {'python': random.getstate(),
            'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
            'torch': torch.get_rng_state(),
            'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}


def set_rng_state(state):
    random.setstate(state['python'])
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def labels_digest(labels):
    """A short fingerprint of the noisy labels, so a resumed run cannot train on other ones."""
    return hashlib.sha256(json.dumps([int(v) for v in labels]).encode()).hexdigest()[:16]


def _atomic(write, path):
    """Write through a temporary file and rename: a kill at any moment leaves either the old
    file or the new one, never half of one."""
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path):
    """Load with weights_only=True: tensors and plain containers only, nothing executes."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError('checkpoint %s cannot be loaded safely (%s): delete it or pass another '
                         '--out_dir' % (path, first_line[:200])) from None


# Arguments that may change when a run is resumed: where things are and how fast they run.
# Raising --num_epochs extends a finished run; anything else would change its results.
RESUMABLE_CHANGES = {'num_epochs', 'num_workers', 'gpuid', 'out_dir', 'resume', 'debug',
                     'download', 'data_path', 'noise_file'}


def _writable_or_creatable(folder):
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return os.path.isdir(folder) and os.access(folder, os.W_OK)


def _clean(value):
    """JSON has no NaN: write null for undefined numbers (e.g. AUC when no label is noisy)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class RunLog:
    """One run's files in `out_dir`, named <prefix>_...:
      _acc.txt    'Epoch:%d   Accuracy:%.2f'                   (authors' format, one per epoch)
      _stats.txt  'Numer of labeled samples:%d   AUC:%.3f'     (authors' format, sic "Numer")
      .jsonl      one JSON object per epoch, then {"final": true, "best_acc", "last10_acc"}
      _args.json  the run's arguments
      _last.pth   checkpoint after the latest finished epoch;  _best.pth  at the best test acc
    Use: check() before touching anything, begin() once the inputs are known to be good, then
    epoch() and save() every epoch. A checkpoint records the log files' sizes, so resuming
    cuts them back to that point and the logs of a resumed run equal an uninterrupted one's.
    """

    def __init__(self, out_dir, prefix):
        base = os.path.join(out_dir, prefix)
        self.out_dir = out_dir
        self.acc_path, self.stats_path = base + '_acc.txt', base + '_stats.txt'
        self.jsonl_path, self.args_path = base + '.jsonl', base + '_args.json'
        self.last_path, self.best_path = base + '_last.pth', base + '_best.pth'
        self.logs = (self.acc_path, self.stats_path, self.jsonl_path)
        self.accuracies = []

    def check(self, args):
        """Refuse what would fail or destroy an earlier run; with --resume, load and check the
        latest checkpoint. Writes nothing. Returns the checkpoint or None."""
        if not _writable_or_creatable(self.out_dir):
            raise InputError('cannot write to --out_dir %s: choose a writable folder'
                             % self.out_dir)
        existing = [p for p in self.logs + (self.last_path,) if os.path.exists(p)]
        if not args.resume:
            if existing:
                raise InputError('%s already holds a run with these settings: add --resume to '
                                 'continue it, or pass another --out_dir' % existing[0])
            return None
        if not os.path.exists(self.last_path):
            print('nothing to resume in %s: starting a new run' % self.out_dir)
            return None
        checkpoint = load_checkpoint(self.last_path)
        saved, current = checkpoint['args'], vars(args)
        changed = ['--%s %s (was %s)' % (k, current.get(k), saved.get(k))
                   for k in sorted(set(saved) | set(current))
                   if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)]
        if changed:
            raise InputError('cannot resume %s with other settings: %s; run it with the '
                             'original ones, or pass another --out_dir'
                             % (self.last_path, ', '.join(changed)))
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            if not os.path.exists(path) or os.path.getsize(path) < size:
                raise InputError('log %s is shorter than its checkpoint says: it was changed '
                                 'by hand; restore it or pass another --out_dir' % path)
        return checkpoint

    def begin(self, args, checkpoint=None):
        """Create the files of a new run, or cut a resumed run's logs back to its checkpoint."""
        os.makedirs(self.out_dir, exist_ok=True)
        if checkpoint is None:
            for path in self.logs:
                open(path, 'w').close()
            with open(self.args_path, 'w') as f:
                json.dump(vars(args), f, indent=1)
            return
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            with open(path, 'r+') as f:
                f.truncate(size)
        self.accuracies = list(checkpoint['accuracies'])

    def _append(self, path, text):
        with open(path, 'a') as f:
            f.write(text)

    def division(self, num_labeled, auc):
        self._append(self.stats_path, 'Numer of labeled samples:%d   AUC:%.3f\n'
                     % (num_labeled, auc))

    def epoch(self, record):
        self.accuracies.append(record['test_acc'])
        self._append(self.acc_path, 'Epoch:%d   Accuracy:%.2f\n'
                     % (record['epoch'], record['test_acc']))
        self._append(self.jsonl_path, json.dumps(_clean(record)) + '\n')

    def save(self, state):
        """Write the latest checkpoint atomically (plus the logs' sizes and the accuracies so
        far); copy it to the best one when this epoch has the best test accuracy."""
        state = dict(state, log_sizes=[os.path.getsize(p) for p in self.logs],
                     accuracies=list(self.accuracies))
        _atomic(lambda f: torch.save(state, f), self.last_path)
        if self.accuracies[-1] >= max(self.accuracies):
            with open(self.last_path, 'rb') as src:
                _atomic(lambda f: shutil.copyfileobj(src, f), self.best_path)

    def summary(self):
        """Best test accuracy over all epochs and the mean of the last 10, as the paper reports."""
        result = {'final': True, 'best_acc': max(self.accuracies),
                  'last10_acc': float(np.mean(self.accuracies[-10:])),
                  'epochs': len(self.accuracies)}
        self._append(self.jsonl_path, json.dumps(result) + '\n')
        return result
