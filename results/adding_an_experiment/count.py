"""The lines and files each experiment's patch changes, by kind (code, tests, docs):

    python results/adding_an_experiment/count.py

prints the table of README.md in this folder from the patches beside it."""
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
PATCHES = ['before/E1', 'before/E2', 'before/E3', 'after/E3_at_cfe7779', 'after/E1', 'after/E2',
           'after/E3']


def changed_lines(patch):
    """{file: [added, removed]} of a `git format-patch` file."""
    stats, current = {}, None
    for line in open(patch, encoding='utf-8').read().split('\n'):
        header = re.match(r'^diff --git a/(\S+) b/', line)
        if header:
            current = stats.setdefault(header.group(1), [0, 0])
        elif line == '-- ':  # the signature that ends the patch
            current = None
        elif current is not None and not line.startswith(('+++', '--- ')):
            if line.startswith('+'):
                current[0] += 1
            elif line.startswith('-'):
                current[1] += 1
    return stats


def kind(path):
    return 'tests' if path.startswith('tests/') else 'docs' if path.endswith('.md') else 'code'


def main():
    print('| patch | all | code | tests | docs |')
    print('|---|---|---|---|---|')
    for name in PATCHES:
        totals = {k: [0, 0, 0] for k in ('all', 'code', 'tests', 'docs')}
        for path, (added, removed) in changed_lines(os.path.join(HERE, name + '.patch')).items():
            for k in ('all', kind(path)):
                totals[k] = [totals[k][0] + 1, totals[k][1] + added, totals[k][2] + removed]
        print('| %s | %s |' % (name, ' | '.join('%d files, +%d −%d' % tuple(totals[k])
                                               for k in ('all', 'code', 'tests', 'docs'))))


if __name__ == '__main__':
    main()
