"""The fast-vs-plain table of docs/speed.md from the run folders beside this file."""
import json
import os

import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rows, summary = [], {}
for path in ('fast', 'plain'):
    for seed in (1, 2, 3):
        log = os.path.join(here, '%s_seed%d' % (path, seed), 'cifar10_0.5_sym.jsonl')
        if not os.path.exists(log):
            continue
        lines = [json.loads(line) for line in open(log)]
        epochs, final = [r for r in lines if 'epoch' in r], lines[-1]
        if not final.get('final'):
            continue
        seconds = sum(r['seconds'] for r in epochs)
        result = (final['best'], final['last10'], epochs[-1]['test_acc'], seconds)
        summary.setdefault(path, []).append(result)
        rows.append('| %s | %d | %.2f | %.2f | %.2f | %.0f |' % ((path, seed) + result))
print('| path | seed | best | last-10 mean | final epoch | seconds |')
print('|---|---|---|---|---|---|')
print('\n'.join(rows))
for path, results in summary.items():
    r = np.array(results)
    print('| %s | mean ± std of %d | %.2f ± %.2f | %.2f ± %.2f | %.2f ± %.2f | %.0f |'
          % (path, len(r), r[:, 0].mean(), r[:, 0].std(ddof=1) if len(r) > 1 else 0,
             r[:, 1].mean(), r[:, 1].std(ddof=1) if len(r) > 1 else 0,
             r[:, 2].mean(), r[:, 2].std(ddof=1) if len(r) > 1 else 0, r[:, 3].mean()))
