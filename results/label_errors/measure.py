"""Which flag and which ranking find the wrong labels best: Train_cifar.py runs on a random subset
of CIFAR-10 with one kind of noise, recording what candidate rules need (every epoch's clean
probabilities of each network, the final logits), then every candidate is scored against the
truth:

    python results/label_errors/measure.py --data_path CIFAR10_DIR --noise worse_label \\
        --subset_seed 1 --out OUT_DIR [--num_train 3000 --width 16 --warm_up 10 --num_epochs 20]
    python results/label_errors/measure.py --table OUT_DIR [OUT_DIR ...]

CIFAR10_DIR holds cifar-10-batches-py/ and, for CIFAR-N noise, CIFAR-10_human.pt. --noise is
sym (50%), asym (40%) or a CIFAR-10N label (aggre_label, random_label1, worse_label). The run
itself is the product's, untouched: the recording spies on dividemix.co_divide and on the
labels file's logits. OUT_DIR gets the run's files and record.npz; --table prints, per run,
each rule's flagged count, precision, recall and F1, and each ranking's ROC-AUC and the best F1
any threshold on it reaches (in hindsight).
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

def softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def rankings(record):
    """{name: score per image, low = more likely wrong}."""
    history = record['clean_prob']  # (epochs, networks, N): every SSL epoch's divisions
    given = record['given']
    probs = np.mean([softmax(x) for x in record['logits']], axis=0)  # the ensemble's
    given_prob = probs[np.arange(len(given)), given]
    out = {'mean clean prob (today)': record['final_clean_prob'].mean(0),
           'ensemble prob of the given label': given_prob}
    for last in (3, 5, 10):
        out['clean prob, mean of last %d epochs' % last] = history[-last:].mean((0, 1))
    out['mean clean prob + given-label prob'] = out['mean clean prob (today)'] + given_prob
    return out


def flags(record):
    """{name: bool per image, True = flagged as a wrong label}."""
    given, w = record['given'], record['final_clean_prob'].mean(0)
    probs = np.mean([softmax(x) for x in record['logits']], axis=0)
    predicted = probs.argmax(1)
    disagree = predicted != given
    out = {'co-divide: mean clean prob <= tau (today)': w <= TAU,
           'predicted != given': disagree,
           'the disagreements count, lowest mean clean prob': lowest(w, disagree.sum()),
           'count from 1 - mean clean prob': lowest(w, round((1 - w.mean()) * len(w))),
           'mean clean prob below its given class mean':
               w < (np.bincount(given, w, probs.shape[1])
                    / np.maximum(np.bincount(given, minlength=probs.shape[1]), 1))[given]}
    # Confident Learning's confident joint (Northcutt et al., JAIR 2021): an image is off the
    # diagonal when some other class j reaches class j's threshold t_j, the mean probability
    # of j over the images labelled j
    num_class = probs.shape[1]
    t = np.array([probs[given == j, j].mean() if (given == j).any() else 1.0
                  for j in range(num_class)])
    above = probs >= t[None, :]
    above[np.arange(len(given)), given] = False
    out['confident learning: another class above its threshold'] = above.any(1)
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


def table(out_dirs):
    lines = []
    for out in out_dirs:
        record = dict(np.load(os.path.join(out, 'record.npz')))
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
