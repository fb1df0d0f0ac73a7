"""The labels file against cleanlab, and which flag and ranking find the wrong labels best:
Train_cifar.py runs on a random subset of CIFAR-10 with one kind of noise, recording what the
candidate rules need (every epoch's clean probabilities and losses of each network, the final
logits) and the image passes its networks make; then cleanlab's cross-validated detector
(cross_validated.py) runs on the same images and labels at about the same image passes; then
every candidate is scored against the truth:

    python results/label_errors/measure.py --data_path CIFAR10_DIR --noise worse_label \\
        --subset_seed 1 --out OUT_DIR [--num_train 3000 --width 16 --warm_up 10 --num_epochs 20]
    python results/label_errors/measure.py --table OUT_DIR [OUT_DIR ...]

CIFAR10_DIR holds cifar-10-batches-py/ and, for CIFAR-N noise, CIFAR-10_human.pt. --noise is
sym (50%), asym (40%) or a CIFAR-10N label (aggre_label, random_label1, worse_label). The run
itself is the product's, untouched: the recording spies on dividemix.co_divide, on the labels
file's logits and on the network's forward pass. OUT_DIR gets the run's files, record.npz and
cleanlab.npz (either is kept when there already: a second call only does what is missing);
--table prints a summary over the runs (each flag's F1, each ranking's ROC-AUC, the goals) and
per run each rule's flagged count, precision, recall and F1 and each ranking's AUC and the best
F1 any threshold on it reaches (in hindsight). cleanlab is needed for the runs only (pip install
cleanlab); the table needs what the project needs.
"""
import argparse
import csv
import importlib.util
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))  # the repo root
from sklearn.metrics import roc_auc_score  # noqa: E402

NOISE = {'sym': ['--r', '0.5'], 'asym': ['--r', '0.4', '--noise_mode', 'asym']}
CIFAR_N = ('aggre_label', 'random_label1', 'worse_label')
TAU = 0.5  # the labels file's threshold for these cells (Table 7; CIFAR-N as docs/data.md)


# ---------------------------------------------------------------- candidates ------------------

LABEL_QUALITY = "label_quality: the networks' mean probability of the given label (the file's)"
MEAN_CLEAN = 'mean clean probability (the file\'s ranking before label_quality)'
FLAGGED = ("flagged_noisy: Confident Learning's count per given class, lowest label_quality "
           "(the file's)")
CO_DIVIDE = 'flagged_co_divide: mean clean probability <= tau (the file\'s flag before)'
CLEANLAB_FLAG = "cleanlab: find_label_issues on 4-fold cross-validated probabilities"
CLEANLAB_RANK = "cleanlab: get_label_quality_scores on them"


def ensemble(record):
    """The networks' mean softmax (N, C), as the labels file computes it from the logits."""
    import torch
    from utils.label_export import ensemble_prediction
    return ensemble_prediction([torch.from_numpy(x) for x in record['logits']])[2]


def rankings(record):
    """{name: score per image, low = more likely wrong}."""
    from utils.label_export import label_quality
    history = record['clean_prob']  # (epochs, networks, N): every SSL epoch's divisions
    out = {LABEL_QUALITY: label_quality(ensemble(record), record['given']),
           MEAN_CLEAN: record['final_clean_prob'].mean(0)}
    for last in (3, 5):
        out['clean probability, mean of the last %d epochs' % last] = (
            history[-last:].mean((0, 1)))
    if 'loss' in record:  # each epoch's normalised co-divide loss (runs recorded with it)
        for last in (3, 5):
            out['1 - normalised loss, mean of the last %d epochs' % last] = (
                1 - record['loss'][-last:].mean((0, 1)))
    if 'cleanlab' in record:
        out[CLEANLAB_RANK] = record['cleanlab']['quality']
    return out


def flags(record):
    """{name: bool per image, True = flagged as a wrong label}."""
    from utils.label_export import flagged_noisy, label_quality, off_diagonal_counts
    given, w = record['given'], record['final_clean_prob'].mean(0)
    probs = ensemble(record)
    quality = label_quality(probs, given)
    num_class = probs.shape[1]
    out = {FLAGGED: flagged_noisy(quality, probs, given).astype(bool),
           CO_DIVIDE: w <= TAU,
           'predicted != given': probs.argmax(1) != given,
           'count from 1 - mean clean probability, lowest label_quality':
               lowest(quality, round((1 - w.mean()) * len(w))),
           'mean clean probability below its given class\'s mean':
               w < (np.bincount(given, w, num_class)
                    / np.maximum(np.bincount(given, minlength=num_class), 1))[given],
           "Confident Learning's count in all (not per class), lowest label_quality":
               lowest(quality, off_diagonal_counts(probs, given).sum())}
    if 'cleanlab' in record:
        out[CLEANLAB_FLAG] = record['cleanlab']['flagged']
    return out


def lowest(score, count):
    flagged = np.zeros(len(score), bool)
    flagged[np.argsort(score, kind='stable')[:int(count)]] = True
    return flagged


def scores(flagged, wrong):
    """(flagged count, precision, recall, F1)."""
    hits = (flagged & wrong).sum()
    precision = hits / flagged.sum() if flagged.any() else float('nan')
    recall = hits / wrong.sum()
    f1 = 2 * precision * recall / (precision + recall) if hits else 0.0
    return int(flagged.sum()), float(precision), float(recall), float(f1)


def best_f1(score, wrong):
    """The best F1 any threshold on the ranking reaches (in hindsight)."""
    order = np.argsort(score, kind='stable')
    hits = np.cumsum(wrong[order])
    k = np.arange(1, len(score) + 1)
    return float(np.max(2 * hits / (k + wrong.sum())))


def load(out):
    """A run's record (and cleanlab's, under 'cleanlab', where there is one)."""
    record = dict(np.load(os.path.join(out, 'record.npz')))
    if os.path.exists(os.path.join(out, 'cleanlab.npz')):
        record['cleanlab'] = dict(np.load(os.path.join(out, 'cleanlab.npz')))
    return record


def summary(out_dirs):
    """One table over the runs: each flag's F1 and each ranking's AUC per run and their mean,
    the image passes of both detectors, and the goals: the file's flag against cleanlab's and
    against the best threshold on its own ranking."""
    records = [load(out) for out in out_dirs]
    names = [os.path.basename(os.path.normpath(out)) for out in out_dirs]
    wrongs = [r['given'] != r['true'] for r in records]
    head = ['| | ' + ' | '.join('%s (%.0f%% wrong)' % (n, 100 * w.mean())
                                for n, w in zip(names, wrongs)) + ' | mean |',
            '|---' * (len(names) + 2) + '|']

    def rows(candidates, score):
        values = [candidates(r) for r in records]
        lines = []
        for name in dict.fromkeys(name for v in values for name in v):  # all, in order
            got = [score(v[name], w) if name in v else None for v, w in zip(values, wrongs)]
            known = [g for g in got if g is not None]
            lines.append('| %s | %s | %s |' % (name, ' | '.join(
                '%.3f' % g if g is not None else '' for g in got),
                '%.3f' % np.mean(known) if len(known) == len(got) else ''))
        return lines
    lines = ['F1 of each flag:', ''] + head + rows(flags, lambda f, w: scores(f, w)[3])
    lines += ['', 'ROC-AUC of each ranking (wrong labels low):', ''] + head + rows(
        rankings, lambda s, w: roc_auc_score(w, -s))
    lines += ['', 'The goals, per run:', '', '| run | F1 of flagged_noisy | cleanlab\'s | '
              'best threshold on label_quality | ratio | image passes: ours, cleanlab\'s '
              '(forward-pass equivalents, test set not counted) |', '|---|---|---|---|---|---|']
    for name, record, wrong in zip(names, records, wrongs):
        ours = scores(flags(record)[FLAGGED], wrong)[3]
        best = best_f1(rankings(record)[LABEL_QUALITY], wrong)
        cleanlab = record.get('cleanlab')
        lines.append('| %s | %.3f | %s | %.3f | %.2f | %s |' % (
            name, ours, '%.3f' % scores(cleanlab['flagged'], wrong)[3] if cleanlab else '',
            best, ours / best, '%s, %s' % (
                '{:,}'.format(compute(record['image_passes']))
                if 'image_passes' in record else 'not counted',
                '{:,} (%d epochs per fold)'.format(compute(cleanlab['image_passes']))
                % cleanlab['epochs'] if cleanlab else '')))
    return '\n'.join(lines)


def table(out_dirs):
    lines = [summary(out_dirs)]
    for out in out_dirs:
        record = load(out)
        wrong = record['given'] != record['true']
        lines += ['', '%s: %d images, %.1f%% wrong' % (out, len(wrong), 100 * wrong.mean()), '',
                  '| flag | flagged | precision | recall | F1 |', '|---|---|---|---|---|']
        for name, flagged in flags(record).items():
            lines.append('| %s | %d | %.3f | %.3f | %.3f |' % ((name,) + scores(flagged, wrong)))
        lines += ['', '| ranking | AUC | best F1 in hindsight |', '|---|---|---|']
        for name, score in rankings(record).items():
            lines.append('| %s | %.3f | %.3f |' % (name, roc_auc_score(wrong, -score),
                                                   best_f1(score, wrong)))
    return '\n'.join(lines)


# ---------------------------------------------------------------- a recorded run --------------

def run(args):
    import torch
    import dividemix as dm
    import PreResNet
    import Train_cifar
    import utils.label_export as label_export
    noise = NOISE.get(args.noise) or ['--noise_mode', 'cifar-n', '--cifar_n_label', args.noise]
    argv = ['--data_path', args.data_path, '--no-download', '--num_train', str(args.num_train),
            '--subset_seed', str(args.subset_seed), '--num_test', '1000',
            '--width', str(args.width), '--warm_up', str(args.warm_up),
            '--num_epochs', str(args.num_epochs), '--out_dir', args.out, '--no-figures'] + noise
    divisions, losses, logits = [], [], []
    co_divide, network_logits = dm.co_divide, label_export.network_logits

    def recording_co_divide(net, *rest, **named):
        division = co_divide(net, *rest, **named)
        if not isinstance(net, torch.nn.Identity):  # the training's, not the labels file's
            divisions.append(np.asarray(division.clean_prob, np.float32))
            losses.append(division.loss.numpy().astype(np.float32))
        return division

    def recording_logits(*a, **k):
        result = network_logits(*a, **k)
        logits.append(result)
        return result
    passes, test_ensemble = counting_passes(PreResNet.ResNet), dm.test_ensemble
    dm.co_divide, label_export.network_logits = recording_co_divide, recording_logits
    dm.test_ensemble = passes.testing(test_ensemble)
    try:
        Train_cifar.main(argv)
    finally:
        dm.co_divide, label_export.network_logits = co_divide, network_logits
        dm.test_ensemble, PreResNet.ResNet.forward = test_ensemble, passes.forward
    prefix = [n for n in os.listdir(args.out) if n.endswith('_labels.csv')][0]
    with open(os.path.join(args.out, prefix)) as f:
        rows = list(csv.DictReader(f))
    names = sorted({r['true_label'] for r in rows} | {r['given_label'] for r in rows})
    index = {name: k for k, name in enumerate(Train_cifar.class_names(args.data_path,
                                                                      'cifar10'))}
    assert set(names) <= set(index)
    np.savez_compressed(os.path.join(args.out, 'record.npz'),
             clean_prob=np.array(divisions).reshape(-1, 2, len(rows)),
             loss=np.array(losses).reshape(-1, 2, len(rows)),
             final_clean_prob=np.array([[float(r['clean_prob_net1']) for r in rows],
                                        [float(r['clean_prob_net2']) for r in rows]]),
             logits=np.array([x.numpy() for x, _ in logits]),
             image_passes=np.array([passes.train, passes.eval]),
             given=np.array([index[r['given_label']] for r in rows]),
             true=np.array([index[r['true_label']] for r in rows]))


class counting_passes:
    """Counts the images a network class sees on the training set: `train` with gradients
    (forward and backward), `eval` without (co-divide, co-guessing, the labels file). Passes
    inside `testing` (the test set's accuracy, which no detector needs) are not counted."""

    def __init__(self, network_class):
        self.train = self.eval = 0
        self.in_test = False
        self.forward = forward = network_class.forward

        def counted(net, x):
            import torch
            if self.in_test:
                pass
            elif torch.is_grad_enabled():
                self.train += len(x)
            else:
                self.eval += len(x)
            return forward(net, x)
        network_class.forward = counted

    def testing(self, test):
        def uncounted(*args, **kwargs):
            self.in_test = True
            try:
                return test(*args, **kwargs)
            finally:
                self.in_test = False
        return uncounted


def compute(passes):
    """Forward-pass equivalents: a backward pass costs about two forward passes."""
    train, evaluation = passes
    return 3 * train + evaluation


def run_cleanlab(args):
    """cleanlab's cross-validated detector on the run's images and given labels, at the run's
    compute (or at that of the run in --compute_like): OUT_DIR/cleanlab.npz."""
    import dataloader_cifar
    import PreResNet
    import cross_validated
    record = dict(np.load(os.path.join(args.out, 'record.npz')))
    counted = record if 'image_passes' in record else (
        dict(np.load(os.path.join(args.compute_like, 'record.npz'))) if args.compute_like else {})
    if 'image_passes' not in counted:
        sys.exit('%s/record.npz has no image count: add --compute_like OTHER_OUT_DIR, a run of '
                 'the same settings that has one' % args.out)
    train_images, train_labels, _, _ = dataloader_cifar.load_cifar(args.data_path, 'cifar10')
    chosen = dataloader_cifar.training_subset(len(train_images), args.num_train,
                                              args.subset_seed)
    images, given = train_images[chosen], record['given']
    assert (train_labels[chosen] == record['true']).all(), 'not the images of this run'
    epochs = cross_validated.epochs_for(compute(counted['image_passes']), len(given))
    passes = counting_passes(PreResNet.ResNet)
    try:
        probs = cross_validated.out_of_fold_probs(images, given, epochs, args.width,
                                                  args.subset_seed)
    finally:
        PreResNet.ResNet.forward = passes.forward
    flagged, quality = cross_validated.detect(given, probs)
    np.savez_compressed(os.path.join(args.out, 'cleanlab.npz'), probs=probs, flagged=flagged,
                        quality=quality, epochs=epochs,
                        image_passes=np.array([passes.train, passes.eval]))


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--table', nargs='+', metavar='OUT_DIR', help='print the tables of these runs')
    p.add_argument('--data_path')
    p.add_argument('--noise', choices=sorted(NOISE) + list(CIFAR_N))
    p.add_argument('--subset_seed', type=int, default=1)
    p.add_argument('--num_train', type=int, default=3000)
    p.add_argument('--width', type=int, default=16)
    p.add_argument('--warm_up', type=int, default=10)
    p.add_argument('--num_epochs', type=int, default=20)
    p.add_argument('--out')
    p.add_argument('--compute_like', metavar='OUT_DIR',
                   help='for a run recorded without its image count: give cleanlab the compute '
                        'of this run of the same settings')
    args = p.parse_args()
    if args.table:
        print(table(args.table))
        return
    if not (args.data_path and args.noise and args.out):
        p.error('a run needs --data_path, --noise and --out (or --table OUT_DIR ...)')
    if importlib.util.find_spec('cleanlab') is None:
        p.error('the comparison needs cleanlab, which the project does not: pip install cleanlab')
    sys.path.insert(0, HERE)
    for name, step in (('record.npz', run), ('cleanlab.npz', run_cleanlab)):
        if os.path.exists(os.path.join(args.out, name)):
            print('%s/%s is there: kept' % (args.out, name))
        else:
            step(args)
    print(table([args.out]))


if __name__ == '__main__':
    main()
