"""A run's files in its output folder: the authors' text logs, one JSON record per epoch, the
arguments, the latest and the best checkpoint; refusing to overwrite a run, and resuming one."""
import json
import math
import os
import shutil

import numpy as np

from utils.checkpoint import atomic_save, atomic_write, load_checkpoint
from utils.cli import InputError
from utils.distributed import distributed, print0


# Arguments that may change when a run is resumed: where things are, how fast they run and
# what else is written. Raising --num_epochs extends a finished run. The speed switches
# (plain, compile, cuda_graphs) keep the method but not the arithmetic: the continuation is
# then not bit-exact.
RESUMABLE_CHANGES = {'num_epochs', 'num_workers', 'gpuid', 'out_dir', 'resume', 'debug',
                     'download', 'data_path', 'noise_file', 'plain', 'compile', 'figures',
                     'tensorboard', 'cuda_graphs'}


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
    """One run's files in `out_dir`, all named <prefix><suffix>:
      text logs   the authors' formats, given as {name: suffix}, e.g. CIFAR's
                  {'acc': '_acc.txt', 'stats': '_stats.txt'}; written with write(name, line)
      .jsonl      one JSON object per epoch, then {"final": true, "best", "last10", ...}
      _args.json  the run's arguments
      _last.pth   checkpoint after the latest finished epoch;  _best.pth  at the best score
    Use: check() before touching anything, begin() once the inputs are known to be good, then
    epoch() and save() every epoch. A checkpoint records the log files' sizes, so resuming
    cuts them back to that point and the logs of a resumed run equal an uninterrupted one's.
    Under torch.distributed only rank 0 writes; every rank reads the checkpoint.
    """

    def __init__(self, out_dir, prefix, text_logs):
        base = os.path.join(out_dir, prefix)
        self.out_dir = out_dir
        self.text = {name: base + suffix for name, suffix in text_logs.items()}
        self.jsonl_path, self.args_path = base + '.jsonl', base + '_args.json'
        self.last_path, self.best_path = base + '_last.pth', base + '_best.pth'
        self.logs = tuple(self.text.values()) + (self.jsonl_path,)
        self.scores = []
        self.writer = distributed()[0] == 0

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
            print0('nothing to resume in %s: starting a new run' % self.out_dir)
            return None
        checkpoint = load_checkpoint(self.last_path)
        current = vars(args)
        # a run saved before its arguments named their script was run by this same script
        saved = dict({'script': current.get('script')}, **checkpoint['args'])
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
        if checkpoint is not None:
            self.scores = list(checkpoint['scores'])
        if not self.writer:
            return
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

    def _append(self, path, text):
        if self.writer:
            with open(path, 'a') as f:
                f.write(text)

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
        copy it to the best one when this epoch has the best score."""
        if not self.writer:
            return
        state = dict(state, log_sizes=[os.path.getsize(p) for p in self.logs],
                     scores=list(self.scores))
        atomic_save(state, self.last_path)
        if self.scores[-1] >= max(self.scores):
            with open(self.last_path, 'rb') as src:
                atomic_write(lambda f: shutil.copyfileobj(src, f), self.best_path)

    def summary(self, **extra):
        """Best score over all epochs and the mean of the last 10, as the paper reports them,
        plus whatever else the script adds; appended to the JSONL and returned."""
        result = dict({'final': True, 'best': max(self.scores),
                       'last10': float(np.mean(self.scores[-10:])),
                       'epochs': len(self.scores)}, **extra)
        self._append(self.jsonl_path, json.dumps(_clean(result)) + '\n')
        return result
