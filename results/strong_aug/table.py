"""The table of results/strong_aug/table.md from the run folders beside this file (or in the
folder given as the argument): per seed the best and the final-epoch test accuracy of each
augmentation, the mean test accuracy over the SSL epochs, and the mean difference (strong -
paper) over the seeds with its standard error (the seeds pair the runs: same noisy labels, same
initial weights), also per SSL epoch. The warm-up is the same in both
runs of a seed (weak in both), so a best reached during the warm-up is the same in both; the SSL
epochs' mean is where the two augmentations differ."""
import glob
import json
import os
import re
import sys

import numpy as np

here = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))


def result(folder):
    """(best, final-epoch accuracy, mean accuracy over the SSL epochs, mean AUC of the last
    epoch's divisions, seconds), and the test accuracy of each SSL epoch; None if unfinished."""
    logs = glob.glob(os.path.join(folder, '*.jsonl'))
    if not logs:
        return None
    lines = [json.loads(line) for line in open(logs[0])]
    if not lines[-1].get('final'):
        return None
    epochs = [r for r in lines if 'epoch' in r]
    ssl_accs = [r['test_acc'] for r in epochs if 'auc' in r['net1']]  # epochs that co-divided
    auc = np.mean([epochs[-1][n]['auc'] for n in ('net1', 'net2')])
    summary = (lines[-1]['best'], epochs[-1]['test_acc'], np.mean(ssl_accs), auc,
               sum(r['seconds'] for r in epochs))
    return summary, ssl_accs


def mean_se(d):
    """Mean and standard error over the seeds (axis 0)."""
    se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.full(d.shape[1:], np.nan)
    return d.mean(axis=0), se


seeds = sorted({int(re.search(r'seed(\d+)$', f).group(1))
                for f in glob.glob(os.path.join(here, '*_seed*')) if os.path.isdir(f)})
rows, pairs, per_epoch = [], [], []
for seed in seeds:
    paper, strong = (result(os.path.join(here, '%s_seed%d' % (kind, seed)))
                     for kind in ('paper', 'strong'))
    for kind, r in (('paper', paper), ('strong (--strong_aug)', strong)):
        if r is not None:
            rows.append('| %d | %s | %.2f | %.2f | %.2f | %.3f | %.0f |' % ((seed, kind) + r[0]))
    if paper is not None and strong is not None:
        pairs.append(np.subtract(strong[0][:4], paper[0][:4]))
        per_epoch.append(np.subtract(strong[1], paper[1]))
print('| seed | augmentation | best | final epoch | SSL epochs\' mean | AUC (final epoch) | seconds |')
print('|---|---|---|---|---|---|---|')
print('\n'.join(rows))
if pairs:
    mean, se = mean_se(np.array(pairs))
    print('\nstrong - paper over %d seeds (mean ± standard error of the paired differences): '
          'best %+.2f ± %.2f points, final epoch %+.2f ± %.2f points, SSL epochs\' mean '
          '%+.2f ± %.2f points, AUC %+.3f ± %.3f'
          % ((len(pairs),) + tuple(x for k in range(4) for x in (mean[k], se[k]))))
    mean, se = mean_se(np.array(per_epoch))
    print('\nstrong - paper per SSL epoch (test accuracy, points): '
          + ', '.join('%+.2f ± %.2f' % m_s for m_s in zip(mean, se)))
    if len(mean) > 5:  # a longer run: does the gap close? Mean test accuracy per 5 SSL epochs
        diffs, parts = np.array(per_epoch), []
        for start in range(0, len(mean), 5):
            block_mean, block_se = mean_se(diffs[:, start:start + 5].mean(axis=1))
            parts.append('SSL epochs %d-%d %+.2f ± %.2f'
                         % (start + 1, min(start + 5, len(mean)), block_mean, block_se))
        print('\nstrong - paper per 5 SSL epochs (mean test accuracy, points): ' + ', '.join(parts))
