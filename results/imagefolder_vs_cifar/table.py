"""The table of results/imagefolder_vs_cifar/README.md from the run folders beside this file:
per run the best and final test accuracy, the mean test accuracy of the last 5 epochs, the
last co-divide (labeled count, AUC of net1's division) and the mean AUC of both networks'
divisions over the last 5 epochs; per script the mean and the standard
deviation over seeds; and, from each run's labels file, the flags as noise detection against the
true labels. Last, the difference of each script's mean from Train_cifar.py's, with its standard
error (Welch's, from the two standard deviations).

    python results/imagefolder_vs_cifar/table.py
"""
import csv
import glob
import json
import os

import numpy as np
from sklearn.metrics import roc_auc_score

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = {'cifar': 'cifar10_0.5_sym', 'imagefolder': 'imagefolder',
        'cifar_plain': 'cifar10_0.5_sym'}  # the last: Train_cifar.py --plain
COLUMNS = ['best', 'final epoch', 'last 5', 'net1 labeled', 'net1 AUC', 'AUC last 5', 'flagged',
           'precision', 'recall', 'file AUC']
FORMATS = ['%.2f', '%.2f', '%.2f', '%.0f', '%.3f', '%.3f', '%.0f', '%.3f', '%.3f', '%.3f']


def read_run(folder, prefix):
    with open(os.path.join(folder, prefix + '.jsonl')) as f:
        lines = [json.loads(line) for line in f]
    epochs = [r for r in lines if 'epoch' in r and 'final' not in r]
    final = lines[-1] if lines and lines[-1].get('final') else None
    return epochs, final


def detection(folder, prefix):
    """(flagged, precision, recall) of the labels file's flags against its true labels, and
    the AUC of its mean clean probability as a noise score (the ranking, free of tau)."""
    files = sorted(glob.glob(os.path.join(folder, prefix + '_labels*.csv')))
    if not files:
        return None
    with open(files[0]) as f:
        rows = list(csv.DictReader(f))
    flagged = np.array([r['flagged_noisy'] == '1' for r in rows])
    noisy = np.array([r['given_label'] != r['true_label'] for r in rows])
    clean = np.array([(float(r['clean_prob_net1']) + float(r['clean_prob_net2'])) / 2
                      for r in rows])
    hits = (flagged & noisy).sum()
    return (int(flagged.sum()), hits / max(flagged.sum(), 1), hits / max(noisy.sum(), 1),
            roc_auc_score(noisy, -clean))


def main():
    print('| script | seed | ' + ' | '.join(COLUMNS) + ' |')
    print('|---' * (len(COLUMNS) + 2) + '|')
    summary = {}
    for script, prefix in RUNS.items():
        for folder in sorted(glob.glob(os.path.join(HERE, script + '_seed*'))):
            if not os.path.isdir(folder):
                continue
            epochs, final = read_run(folder, prefix)
            if final is None:
                continue
            last = epochs[-1]
            last5 = np.mean([r['test_acc'] for r in epochs[-5:]])
            auc5 = np.mean([r[net]['auc'] for r in epochs[-5:] for net in ('net1', 'net2')])
            found = detection(folder, prefix)
            row = (final['best'], last['test_acc'], last5, last['net1']['labeled'],
                   last['net1']['auc'], auc5)
            summary.setdefault(script, []).append(row + (found or (np.nan,) * 4))
            print('| %s | %s | %.2f | %.2f | %.2f | %d | %.3f | %.3f | %s |'
                  % ((script, folder.rsplit('seed', 1)[1]) + row
                     + ('%d | %.3f | %.3f | %.3f' % found if found else ' | | | ',)))
    for script, rows in summary.items():
        r = np.array(rows, dtype=float)
        sd = r.std(0, ddof=1) if len(r) > 1 else np.full(r.shape[1], np.nan)
        print('| %s | mean (sd) of %d | %s |' % (script, len(r), ' | '.join(
            (f + ' (' + f + ')') % (m, d) for f, m, d in zip(FORMATS, r.mean(0), sd))))
    base = np.array(summary.get('cifar', []), dtype=float)
    for script, rows in summary.items():
        r = np.array(rows, dtype=float)
        if script == 'cifar' or len(r) < 2 or len(base) < 2:
            continue
        diff = r.mean(0) - base.mean(0)
        se = np.sqrt(r.var(0, ddof=1) / len(r) + base.var(0, ddof=1) / len(base))
        print('| %s - cifar | difference (se) | %s |' % (script, ' | '.join(
            (f.replace('%', '%+') + ' (' + f + ')') % (d, e)
            for f, d, e in zip(FORMATS, diff, se))))


if __name__ == '__main__':
    main()
