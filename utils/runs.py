"""A run folder as the tools read it, without drawing anything (no matplotlib): each run's
epoch records and final line (<prefix>.jsonl), its saved arguments (<prefix>_args.json) and the
training script that wrote it. tools/figures.py draws from it; tools/paper_cells.py and
tools/export_labels.py read runs and checkpoints with it."""
import json
import os
from dataclasses import dataclass

from utils.cli import InputError, one_line

# The kind of run each training script writes, as its saved arguments declare ('script').
KIND_OF_SCRIPT = {'Train_cifar.py': 'cifar', 'Train_clothing1M.py': 'clothing1m',
                  'Train_webvision.py': 'webvision',
                  'Train_imagefolder.py': 'cifar'}  # the same records (test_acc, ...)


def read_records(path):
    """The epoch records of a .jsonl log and its final line (None while the run goes on).
    A last line that does not parse is being written right now: it is ignored."""
    with open(path) as f:
        lines = f.read().splitlines()
    records, final = [], None
    for number, line in enumerate(lines, 1):
        try:
            entry = json.loads(line) if line.strip() else {}
        except json.JSONDecodeError:
            if number == len(lines):
                break
            raise InputError('%s line %d is not JSON: the log was damaged' % (path, number))
        if entry.get('final'):
            final = entry
        elif 'epoch' in entry:
            records.append(entry)
    return records, final


def script_of_old_run(args):
    """The training script that wrote a run saved before the arguments declared it ('script'),
    from an argument only that script has had since it was written; None if none matches.
    This exists only for those old runs: every run since says which script wrote it."""
    if 'num_batches' in args:
        return 'Train_clothing1M.py'
    if 'crop' in args:  # Clothing1M has crop too: checked above
        return 'Train_webvision.py'
    if 'noise_mode' in args:
        return 'Train_cifar.py'
    return None


def script_of(args):
    """The training script that wrote a run, as its saved arguments declare; None if unknown."""
    return args['script'] if 'script' in args else script_of_old_run(args)


@dataclass
class Run:
    """One run of a run folder: its epoch records, final line and arguments."""
    run_dir: str
    prefix: str
    records: list
    final: dict
    args: dict

    @property
    def script(self):
        """The Train_*.py that wrote the run, as its arguments declare (script_of)."""
        return script_of(self.args)

    @property
    def kind(self):
        """'cifar', 'clothing1m' or 'webvision': what the script that wrote the run logs;
        None when the run does not say (no _args.json) or names another script."""
        return KIND_OF_SCRIPT.get(self.script)

    @property
    def networks(self):
        """The networks that trained: 'net1', 'net2' (net1 alone in the CE baseline)."""
        return sorted({k for r in self.records for k, v in r.items()
                       if k.startswith('net') and isinstance(v, dict)})

    @property
    def divided(self):
        """The records of epochs with a co-divide (the SSL epochs)."""
        return [r for r in self.records
                if any('labeled' in r.get(net, {}) for net in self.networks)]

    @property
    def warm_up(self):
        """The number of warm-up epochs; None for the CE baseline (CE throughout)."""
        if self.args.get('method') == 'ce':
            return None
        if 'warm_up' in self.args:
            return self.args['warm_up']
        return self.divided[0]['epoch'] if self.divided else None

    def path(self, suffix):
        return os.path.join(self.run_dir, self.prefix + suffix)


def run_prefixes(run_dir, prefix=None):
    """The runs in a folder: the prefix of each <prefix>.jsonl (or just `prefix`, checked)."""
    if not os.path.isdir(run_dir):
        raise InputError('%s is not a folder: give the --out_dir of a Train_*.py run' % run_dir)
    found = sorted(name[:-len('.jsonl')] for name in os.listdir(run_dir)
                   if name.endswith('.jsonl'))
    if prefix is not None and prefix not in found:
        raise InputError('no run %s in %s (no %s.jsonl); runs there: %s'
                         % (prefix, run_dir, prefix, ', '.join(found) or 'none'))
    if not found:
        raise InputError('no run in %s: it holds no <prefix>.jsonl log written by Train_*.py'
                         % run_dir)
    return [prefix] if prefix is not None else found


def read_run(run_dir, prefix):
    run = Run(run_dir, prefix, *read_records(os.path.join(run_dir, prefix + '.jsonl')), {})
    if os.path.exists(run.path('_args.json')):  # without it, the kind of run is unknown
        try:
            with open(run.path('_args.json')) as f:
                run.args = json.load(f)
            if not isinstance(run.args, dict):
                raise ValueError('a JSON %s, not an object' % type(run.args).__name__)
        except (OSError, UnicodeDecodeError, ValueError) as e:  # JSONDecodeError: a ValueError
            raise InputError('%s is not a run\'s arguments (%s): resuming the run (--resume) '
                             'writes it again, or delete it' % (run.path('_args.json'),
                                                                one_line(e))) from None
    return run
