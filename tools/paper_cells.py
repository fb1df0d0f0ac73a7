"""Every cell of the paper's Tables 1-6 as a command, and the comparison table from the logs.

    python tools/paper_cells.py list [--tables 1 5]           # the commands, one per cell
    python tools/paper_cells.py jobs jobs.txt --seeds 1 2 3   # write them as a job list
    python tools/paper_cells.py run --tables 2 --seeds 123    # run them one after another
    python tools/paper_cells.py table checkpoint/             # Markdown: paper beside ours
    python tools/paper_cells.py table checkpoint/ --all       # ... and every cell not run
    python tools/paper_cells.py run --tables C2D --pretrained_cifar10 A --pretrained_cifar100 B
    python tools/paper_cells.py list --tables augdesc         # AugDesc-WS's cells (strong aug.)

Run them from the repository root (the commands name Train_*.py there). Each CIFAR command
relies on Train_cifar.py's per-cell defaults (Table 7: Train_cifar.paper_settings, the only copy
of lambda_u and tau), so the command is short and the settings are printed by the run itself.
`--out_root` (default checkpoint/) gets one folder per seed. `table` reads any folders of runs
(finished or not): it groups the runs by cell and scale, and gives the best and the mean of the
last 10 epochs (mean +- std over seeds), the noise actually injected, and the paper's numbers
for the same cell; one row per cell and scale that has runs, and with `--all` also a row for
each cell of the chosen tables not run. A run's script is the one its _args.json names.
Beyond the paper (docs/beyond_the_paper.md), named with --tables only: `C2D` gives C2D's cells
(DivideMix from a self-supervised start), which need the checkpoints named by
--pretrained_cifar10 and --pretrained_cifar100 (listed with a placeholder for one not given);
`augdesc` gives AugDesc-WS's (strong augmentation) with the numbers its authors published. A
run with --strong_aug, --arch or --pretrained is never counted as the paper's cell.
"""
import argparse
import glob
import os
import shlex
import subprocess
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
import Train_cifar  # noqa: E402 (after the path line above)
import Train_clothing1M  # noqa: E402
import Train_webvision  # noqa: E402
from utils.checkpoint import atomic_write  # noqa: E402
from utils.cli import ArgumentParser, InputError, run_cli  # noqa: E402
from utils.distributed import quiet  # noqa: E402
from utils.runs import read_run as read_run_folder  # noqa: E402

SCRIPTS = {'Train_cifar.py': Train_cifar, 'Train_clothing1M.py': Train_clothing1M,
           'Train_webvision.py': Train_webvision}  # the scripts of the paper's cells
ABLATIONS = [  # Table 5 rows: (flag, label)
    ('--test_net1_only', 'with theta(1) test'), ('--no_cotraining', 'w/o co-training'),
    ('--no_label_refinement', 'w/o label refinement'), ('--no_augmentation', 'w/o augmentation'),
    ('--divide_and_mixmatch', 'Divide and MixMatch'),
]
# Paper numbers (best, last-10) per CIFAR column: (dataset, mode, r) -> row label -> numbers.
CIFAR_COLUMNS = [('cifar10', 'sym', 0.2), ('cifar10', 'sym', 0.5), ('cifar10', 'sym', 0.8),
                 ('cifar10', 'sym', 0.9), ('cifar10', 'asym', 0.4), ('cifar100', 'sym', 0.2),
                 ('cifar100', 'sym', 0.5), ('cifar100', 'sym', 0.8), ('cifar100', 'sym', 0.9)]
PAPER_TABLE5 = {  # Table 5 (DivideMix row = Tables 1 and 2), in CIFAR_COLUMNS order
    'DivideMix': [(96.1, 95.7), (94.6, 94.4), (93.2, 92.9), (76.0, 75.4), (93.4, 92.1),
                  (77.3, 76.9), (74.6, 74.2), (60.2, 59.6), (31.5, 31.0)],
    'with theta(1) test': [(95.2, 95.0), (94.2, 93.7), (93.0, 92.4), (75.5, 74.2), (92.7, 91.4),
                           (75.2, 74.8), (72.8, 72.1), (58.3, 57.6), (29.9, 29.2)],
    'w/o co-training': [(95.0, 94.8), (94.0, 93.3), (92.6, 92.2), (74.3, 73.2), (91.9, 90.6),
                        (74.8, 74.1), (72.3, 71.7), (56.7, 56.3), (27.7, 27.2)],
    'w/o label refinement': [(96.0, 95.5), (94.6, 94.2), (93.0, 92.7), (73.7, 73.0),
                             (87.7, 86.3), (76.9, 76.4), (74.2, 73.9), (58.7, 58.2),
                             (26.9, 26.3)],
    'w/o augmentation': [(95.3, 94.9), (94.1, 93.5), (92.2, 91.8), (73.9, 73.0), (89.5, 88.4),
                         (76.5, 76.2), (73.1, 72.6), (58.2, 58.0), (26.9, 26.4)],
    'Divide and MixMatch': [(94.1, 93.5), (92.8, 92.3), (89.7, 89.1), (70.1, 68.6),
                            (86.5, 85.2), (73.7, 72.4), (70.5, 69.7), (55.3, 53.9),
                            (25.0, 23.7)],
}
PAPER_CE = {  # Cross-Entropy rows of Tables 1 and 2
    ('cifar10', 'sym', 0.2): (86.8, 82.7), ('cifar10', 'sym', 0.5): (79.4, 57.9),
    ('cifar10', 'sym', 0.8): (62.9, 26.1), ('cifar10', 'sym', 0.9): (42.7, 16.8),
    ('cifar10', 'asym', 0.4): (85.0, 72.3),
    ('cifar100', 'sym', 0.2): (62.0, 61.8), ('cifar100', 'sym', 0.5): (46.7, 37.3),
    ('cifar100', 'sym', 0.8): (19.9, 8.8), ('cifar100', 'sym', 0.9): (10.1, 3.5),
}
# C2D (Zheltonozhskii et al., "Contrast to Divide", WACV 2022): DivideMix with both networks
# started from a SimCLR ResNet-18 (--arch resnet18 --pretrained), with the settings of their code
# (ContrastToDivide/C2D main_cifar.py, train_cifar.py, train.py) that differ from DivideMix's:
# 5 warm-up epochs, 360 epochs (+1, their loop's 0..360), lr / 10 every 150 epochs (StepLR),
# 200 GMM iterations, warm-up gradients clipped to norm 1. One number per cell, no last-10.
C2D_SETTINGS = ['--arch', 'resnet18', '--warm_up', '5', '--num_epochs', '361',
                '--lr_drop_every', '150', '--gmm_max_iter', '200', '--warmup_clip_grad_norm', '1']
PAPER_C2D = {('cifar10', 0.9): 93.6, ('cifar100', 0.9): 58.7}
C2D_CHECKPOINT_OPTION = {'cifar10': '--pretrained_cifar10', 'cifar100': '--pretrained_cifar100'}


def c2d_placeholder(dataset):
    """What a C2D cell's command holds where its checkpoint was not given."""
    return '<%s FILE>' % C2D_CHECKPOINT_OPTION[dataset]


# AugDesc-WS (Nishi et al., CVPR 2021; docs/beyond_the_paper.md), in CIFAR_COLUMNS order: warm-up
# on weak views (WAW, their headline) and on strong ones (SAW), each (epochs, lr drop epoch, best,
# last-10) as their repository gives them: schedule from presets.json, numbers from README.md.
PAPER_AUGDESC = [
    {'WAW': (300, 150, 96.33, 96.168), 'SAW': (300, 150, 96.35, 96.138)},
    {'WAW': (300, 150, 95.36, 95.134), 'SAW': (300, 200, 95.64, 95.417)},
    {'WAW': (350, 200, 93.77, 93.641), 'SAW': (350, 200, 93.72, 93.563)},
    {'WAW': (350, 250, 91.88, 91.76), 'SAW': (350, 250, 35.33, 10.0)},
    {'WAW': (350, 250, 94.64, 94.258), 'SAW': (300, 150, 94.39, 94.078)},
    {'WAW': (400, 300, 79.50, 79.216), 'SAW': (400, 300, 79.61, 79.464)},
    {'WAW': (400, 300, 77.24, 77.01), 'SAW': (400, 300, 77.64, 77.522)},
    {'WAW': (400, 300, 66.36, 66.046), 'SAW': (400, 300, 61.83, 61.632)},
    {'WAW': (400, 300, 41.20, 40.895), 'SAW': (400, 300, 17.57, 15.05)},
]
AUGDESC_BATCH_SIZE = 128  # their presets' SSL batch (DivideMix's is 64)
AUGDESC_WARMUP = {'WAW': ('weak warm-up', []), 'SAW': ('strong warm-up', ['--strong_warmup'])}
PAPER_TABLE6 = {  # one number per cell (test accuracy), true label never kept
    ('cifar10', 0.2): 96.2, ('cifar10', 0.4): 94.9, ('cifar10', 0.6): 94.3, ('cifar10', 0.8): 79.8,
    ('cifar100', 0.2): 77.2, ('cifar100', 0.4): 75.2, ('cifar100', 0.6): 72.0,
    ('cifar100', 0.8): 60.0,
}


def cells(checkpoints=None):
    """[(table, description, script, arguments, paper best, paper last)] for every cell.
    checkpoints: {dataset: self-supervised checkpoint} for the C2D cells (a placeholder for
    a dataset not given)."""
    checkpoints = checkpoints or {}
    out = []
    for k, (dataset, mode, r) in enumerate(CIFAR_COLUMNS):
        args = (['--dataset', dataset] if dataset != 'cifar10' else []) + ['--r', str(r)] + (
            ['--noise_mode', mode] if mode != 'sym' else [])
        column = '%s %s %d%%' % (dataset, mode, 100 * r)
        table = '2' if mode == 'asym' else '1'
        out.append((table, column + ' Cross-Entropy', 'Train_cifar.py', args + ['--method', 'ce'],
                    *PAPER_CE[(dataset, mode, r)]))
        out.append((table, column + ' DivideMix', 'Train_cifar.py', args,
                    *PAPER_TABLE5['DivideMix'][k]))
        for flag, label in ABLATIONS:
            out.append(('5', '%s %s' % (column, label), 'Train_cifar.py', args + [flag],
                        *PAPER_TABLE5[label][k]))
        for variant, (epochs, drop, best, last) in PAPER_AUGDESC[k].items():
            label, warmup = AUGDESC_WARMUP[variant]
            schedule = ['--num_epochs', str(epochs), '--lr_drop_epoch', str(drop),
                        '--batch_size', str(AUGDESC_BATCH_SIZE)]
            out.append(('augdesc', '%s AugDesc-WS, %s (%s)' % (column, label, variant),
                        'Train_cifar.py', args + ['--strong_aug'] + warmup + schedule, best, last))
    out.append(('3', 'Clothing1M DivideMix', 'Train_clothing1M.py', [], 74.76, None))
    out.append(('4', 'WebVision DivideMix (WebVision top-1; paper top-5 91.64, ILSVRC12 '
                     '75.20 / 90.84)', 'Train_webvision.py', [], 77.32, None))
    for (dataset, r), acc in PAPER_TABLE6.items():
        args = (['--dataset', dataset] if dataset != 'cifar10' else []) + [
            '--r', str(r), '--noise_mode', 'sym_exclusive']
        out.append(('6', '%s %d%% (true label never kept) DivideMix' % (dataset, 100 * r),
                    'Train_cifar.py', args, acc, None))
    for (dataset, r), acc in PAPER_C2D.items():
        args = (['--dataset', dataset] if dataset != 'cifar10' else []) + ['--r', str(r)] + [
            '--pretrained', checkpoints.get(dataset) or c2d_placeholder(dataset)] + C2D_SETTINGS
        out.append(('C2D', '%s sym %d%% C2D (DivideMix from a SimCLR ResNet-18)'
                    % (dataset, 100 * r), 'Train_cifar.py', args, acc, None))
    return out


def command(cell, seed, out_root):
    _, _, script, args, _, _ = cell
    return ['python', script] + args + ['--seed', str(seed),
                                        '--out_dir', os.path.join(out_root, 'seed%d' % seed)]


def run_key(script, args_dict):
    """What identifies a cell in a run's saved arguments (seed and scale aside): its script,
    what its run name says of the method (every argument declared names_run: the baseline, an
    ablation, another network, a self-supervised start, strong augmentation, another mixture,
    ...), so a run that changes the method is never the paper's cell, and CIFAR's noise."""
    method = (SCRIPTS[script].argument_parser().run_name_parts(args_dict)
              if script in SCRIPTS else None)
    if script != 'Train_cifar.py':
        return (script, method)
    r = None if args_dict['noise_mode'] == 'cifar-n' else round(args_dict['r'], 2)
    return (script, args_dict['dataset'], args_dict['noise_mode'], r,
            args_dict.get('cifar_n_label'), method)


def cell_key(cell):
    _, _, script, args, _, _ = cell
    if script != 'Train_cifar.py':
        return run_key(script, vars(SCRIPTS[script].parse_args(args)))
    with quiet():  # complete_args prints the settings
        parsed = Train_cifar.complete_args(Train_cifar.parse_args(args))
    return run_key(script, vars(parsed))


def read_run(jsonl_path):
    """(script, saved args, per-epoch records, final record or None) of one run, read as
    tools/figures.py reads it (utils/runs.py): the script its _args.json names, a half-written
    last line of a run still going left out."""
    run = read_run_folder(os.path.dirname(jsonl_path),
                          os.path.basename(jsonl_path)[:-len('.jsonl')])
    if run.script is None:
        raise InputError('%s: no %s_args.json names the Train_*.py that wrote it'
                         % (jsonl_path, run.prefix))
    return run.script, run.args, run.records, run.final


def score(script, epochs, final):
    """(best, last-10) of the accuracy the paper reports for this script."""
    if script == 'Train_clothing1M.py':
        return (final['test_acc'], None) if final else (None, None)
    key = 'webvision_top1' if script == 'Train_webvision.py' else 'test_acc'
    accs = [r[key] for r in epochs]
    return max(accs), float(np.mean(accs[-10:]))


def describe(script, args, name):
    """A readable name for a run that is not a paper cell (e.g. CIFAR-N)."""
    if script != 'Train_cifar.py' or args['noise_mode'] != 'cifar-n':
        return name
    method = 'Cross-Entropy' if args.get('method') == 'ce' else 'DivideMix'
    method += ' AugDesc-WS' if args.get('strong_aug') else ''
    return '%s CIFAR-N %s %s' % (args['dataset'], args['cifar_n_label'], method)


def scale_of(script, args):
    if script != 'Train_cifar.py':
        return '%d epochs' % args['num_epochs']
    parts = ['%s train' % (args['num_train'] or 'all'), 'width %d' % args['width'],
             '%d epochs' % args['num_epochs']]
    return ', '.join(parts)


def fmt(values):
    values = [v for v in values if v is not None]
    if not values:
        return '-'
    if len(values) == 1:
        return '%.2f' % values[0]
    return '%.2f ± %.2f' % (np.mean(values), np.std(values))


def table(folders, missing=False, tables=None):
    """Markdown rows for every run found under `folders`, and (missing=True) the cells of
    `tables` (default: all) that have none. Without runs and without missing, an InputError
    that says so."""
    groups = {}
    for folder in folders:
        paths = sorted(glob.glob(os.path.join(folder, '**', '*.jsonl'), recursive=True))
        if not os.path.isdir(folder) or not paths:
            raise InputError('%s %s (a run is <name>.jsonl beside its <name>_args.json, in the '
                             '--out_dir of Train_*.py): pass the folders that hold runs%s' % (
                                 folder, 'holds no run' if os.path.isdir(folder)
                                 else 'is not a folder',
                                 '' if missing else ', or add --all for every cell of the paper'))
        for path in paths:
            script, args, epochs, final = read_run(path)
            if not epochs:
                continue
            best, last = score(script, epochs, final)
            key = (run_key(script, args), scale_of(script, args))
            groups.setdefault(key, []).append(
                dict(best=best, last=last, seed=args['seed'], epochs=len(epochs),
                     done=final is not None, noise=epochs[-1].get('noise_rate'),
                     name=describe(script, args, os.path.basename(path)[:-len('.jsonl')])))
    if not groups and not missing:
        raise InputError('no run under %s has finished an epoch yet: wait for one, or add --all '
                         'for every cell of the paper' % ', '.join(folders))
    paper = {cell_key(c): c for c in cells()}
    lines = ['| table | cell | scale | seeds | paper best | paper last | ours best | ours last '
             '| noise injected |', '|---|---|---|---|---|---|---|---|---|']
    seen = set()
    for (key, scale), runs in sorted(groups.items(), key=lambda kv: str(kv[0])):
        cell = paper.get(key)
        seen.add(key)
        state = '' if all(r['done'] for r in runs) else ' (running: %s epochs)' % ', '.join(
            str(r['epochs']) for r in runs)
        noise = runs[0]['noise']
        lines.append('| %s | %s | %s | %s | %s | %s | %s | %s | %s |' % (
            cell[0] if cell else '-', (cell[1] if cell else runs[0]['name']) + state, scale,
            ' '.join(str(r['seed']) for r in runs),
            fmt([cell[4]]) if cell else '-', fmt([cell[5]]) if cell else '-',
            fmt([r['best'] for r in runs]), fmt([r['last'] for r in runs]),
            '-' if noise is None else '%.1f%%' % (100 * noise)))
    for key, cell in paper.items() if missing else ():
        if key not in seen and (tables is None or cell[0] in tables):
            lines.append('| %s | %s | - | - | %s | %s | not run | not run | - |'
                         % (cell[0], cell[1], fmt([cell[4]]), fmt([cell[5]])))
    return '\n'.join(lines)


TABLES = sorted({cell[0] for cell in cells()})
PAPER_TABLES = [t for t in TABLES if t.isdigit()]  # the default; the others are beyond the paper


def check_options(args):
    """Refuse what means nothing for the action, before anything is written or run."""
    seed_rule = Train_cifar.argument_parser().declared['seed'].check
    for seed in args.seeds:
        if not seed_rule.allows(seed):
            raise InputError('--seeds %d: a seed must be %s' % (seed, seed_rule))
    if len(set(args.seeds)) < len(args.seeds):
        raise InputError('--seeds %s: a seed given twice would run the same cell twice into '
                         'one folder' % ' '.join(map(str, args.seeds)))
    if args.action in ('list', 'run') and args.paths:
        raise InputError('%s takes no paths (%s): drop them' % (args.action, ' '.join(args.paths)))
    if args.action == 'jobs' and len(args.paths) != 1:
        raise InputError('jobs writes one file: give its name (e.g. jobs.txt)')
    if args.all and args.action != 'table':
        raise InputError('--all is for table (the cells not run): drop it')
    given = [C2D_CHECKPOINT_OPTION[d] for d, path in checkpoints_of(args).items() if path]
    if given and args.action == 'table':
        raise InputError('%s is for the commands of the C2D cells (list, jobs, run), table '
                         'reads runs: drop it' % ' and '.join(given))


def checkpoints_of(args):
    """{dataset: self-supervised checkpoint} given for the C2D cells."""
    return {'cifar10': args.pretrained_cifar10, 'cifar100': args.pretrained_cifar100}


def ready(chosen):
    """The chosen cells, refused in one line where a C2D cell's checkpoint was not given."""
    missing = [d for d in C2D_CHECKPOINT_OPTION
               if any(c[0] == 'C2D' and c2d_placeholder(d) in c[3] for c in chosen)]
    if missing:
        raise InputError('the C2D cells start both networks from a self-supervised checkpoint '
                         '(docs/beyond_the_paper.md): pass %s'
                         % ' and '.join(C2D_CHECKPOINT_OPTION[d] + ' FILE' for d in missing))
    return chosen


def write_jobs(path, commands):
    """The commands, one a line, into a new file (an existing one is never overwritten)."""
    if os.path.lexists(path):
        raise InputError('%s exists and is never overwritten: give another file name, or move '
                         'it away' % path)
    folder = os.path.dirname(os.path.abspath(path))
    if os.path.lexists(folder) and not (os.path.isdir(folder) and os.access(folder, os.W_OK)):
        raise InputError('cannot write into %s: give a file in a writable folder' % folder)
    text = ''.join(shlex.join(cmd) + '\n' for cmd in commands)
    atomic_write(lambda f: f.write(text.encode()), path)  # a failed write: one line, no file
    print('%d commands written to %s' % (len(commands), path))


def main(argv=None):
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('action', choices=['list', 'jobs', 'run', 'table'])
    p.add_argument('paths', nargs='*', help='jobs: the output file; table: run folders')
    p.add_argument('--tables', nargs='+', choices=TABLES, default=PAPER_TABLES, metavar='N',
                   help='the tables whose cells to list, write, run or (table --all) show not '
                        'run: %s (default: the paper\'s, 1-6; beyond the paper, C2D: a '
                        'self-supervised start, augdesc: strong augmentation)' % ' '.join(TABLES))
    p.add_argument('--seeds', nargs='+', type=int, default=[123])
    p.add_argument('--out_root', default='checkpoint')
    for dataset, option in C2D_CHECKPOINT_OPTION.items():
        p.add_argument(option, default=None, metavar='FILE',
                       help='the self-supervised (SimCLR ResNet-18) checkpoint the C2D cells '
                            'on %s start from' % dataset.upper().replace('CIFAR', 'CIFAR-'))
    rows = p.add_mutually_exclusive_group()
    rows.add_argument('--all', action='store_true',
                      help='table: also a row for each cell of --tables not run (default: '
                           'only the cells with runs)')
    rows.add_argument('--runs_only', action='store_true', help=argparse.SUPPRESS)  # the default
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = p.parse_intermixed_args(argv)
    check_options(args)
    if args.action == 'table':
        folders = args.paths or [args.out_root]
        if not args.paths and args.all and not os.path.isdir(args.out_root):
            folders = []  # no run yet: the paper's cells alone
        print(table(folders, missing=args.all, tables=args.tables))
        return 0
    chosen = [c for c in cells(checkpoints_of(args)) if c[0] in args.tables]
    if args.action != 'list':  # list shows a placeholder for a checkpoint not given
        chosen = ready(chosen)
    commands = [command(c, seed, args.out_root) for c in chosen for seed in args.seeds]
    if args.action == 'list':
        for c, cmd in zip([c for c in chosen for _ in args.seeds], commands):
            print('# Table %s: %s\n%s' % (c[0], c[1], shlex.join(cmd)))
    elif args.action == 'jobs':
        write_jobs(args.paths[0], commands)
    else:
        for cmd in commands:
            print(shlex.join(cmd), flush=True)
            code = subprocess.call([sys.executable] + cmd[1:])
            if code != 0:
                return code
    return 0


if __name__ == '__main__':
    sys.exit(run_cli(main))
