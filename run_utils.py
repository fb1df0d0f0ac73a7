"""Plumbing shared by the training scripts: command-line errors, seeding, devices and logs."""
import argparse
import json
import math
import os
import random
import sys

import numpy as np
import torch


class InputError(ValueError):
    """Bad input (arguments, data, files): the message is one line that says what to fix."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


def run_cli(main, argv=None):
    """Run main(argv); expected failures (bad input, a diverging run) become one line on stderr
    and exit code 2 instead of a traceback. --debug shows the traceback."""
    from dividemix import TrainingError
    argv = sys.argv[1:] if argv is None else argv
    try:
        main(argv)
    except (InputError, TrainingError) as e:
        if '--debug' in argv:
            raise
        print('error: %s' % e, file=sys.stderr)
        return 2
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


class RunLog:
    """The authors' two log files plus one JSON object per epoch:
      <prefix>_acc.txt    'Epoch:%d   Accuracy:%.2f'                         (one line per epoch)
      <prefix>_stats.txt  'Numer of labeled samples:%d   AUC:%.3f'  (sic)    (one per division)
      <prefix>.jsonl      {"epoch": ..., "lr": ..., "test_acc": ..., "net1": {...}, ...}
      <prefix>_args.json  the arguments of the run
    """

    def __init__(self, out_dir, prefix, args):
        os.makedirs(out_dir, exist_ok=True)
        base = os.path.join(out_dir, prefix)
        self.acc_path, self.stats_path = base + '_acc.txt', base + '_stats.txt'
        self.jsonl_path, self.args_path = base + '.jsonl', base + '_args.json'
        for path in (self.acc_path, self.stats_path, self.jsonl_path):
            open(path, 'w').close()
        with open(self.args_path, 'w') as f:
            json.dump(vars(args), f, indent=1)
        self.accuracies = []

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

    def summary(self):
        """Best test accuracy over all epochs and the mean of the last 10, as the paper reports."""
        result = {'final': True, 'best_acc': max(self.accuracies),
                  'last10_acc': float(np.mean(self.accuracies[-10:])),
                  'epochs': len(self.accuracies)}
        self._append(self.jsonl_path, json.dumps(result) + '\n')
        return result
