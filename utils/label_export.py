"""The label errors of a run, as a file: one CSV row per training image with the label it was
trained with, each network's clean probability, the ensemble's prediction, how likely the label
is right (a ranking) and whether the image is flagged as mislabeled. Every training script
writes <run>_labels.csv at its end; tools/export_labels.py writes one for any saved checkpoint.

A training script calls it once, after its last checkpoint is saved (the networks as the test
uses them, the run's per-network loss histories, which are copied, never changed):

    labels = export_labels(os.path.join(args.out_dir, run_name + '_labels.csv'),
                           [net1, net2], eval_loader, device, epoch=args.num_epochs - 1,
                           args=args, loss_histories=loss_history, true=clean_labels,
                           class_names=names)
    print0(labels.line)                          # how many are flagged; precision and recall
    summary = log.summary(**labels.record)       # the final JSONL record names the file

The columns, in this order:
  index            the image's position in the training set (its position in eval_loader)
  path             its file relative to the data folder; empty for images held in memory
  given_label      the label it was trained with (the noisy one)
  clean_prob_net1  each network's co-divide on these weights over all training images
  clean_prob_net2  (dm.co_divide with the run's loss history and arguments): the probability
                   that the given label is clean; net2's is empty when one network is exported
  predicted_label  the prediction as the test makes it: argmax of the networks' summed logits
  confidence       the networks' mean softmax probability of the predicted label
  label_quality    the networks' mean softmax probability of the given label: sort by it,
                   lowest first, to review the likeliest errors first
  flagged_noisy    1 for the images most likely mislabeled (the function flagged_noisy:
                   Confident Learning's count per given class, the lowest label_quality)
  flagged_co_divide  1 when the mean clean probability is outside the labeled set
                   (dm.labeled_set: not above tau), else 0: DivideMix's own division
  true_label       only where the truth is known: the true label, empty for an unknown one
Files written before label_quality and flagged_co_divide had flagged_noisy as the co-divide's
flag (COLUMNS_BEFORE); the tools read both. Which flag and which ranking find the wrong labels
best, against cleanlab's cross-validated detector: results/label_errors.
Labels are class names where the dataset has them, integers otherwise; probabilities have 6
decimals. The file is written atomically by the main process.
"""
import collections
import csv
import io
import math
import os

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

import dividemix as dm
from utils.checkpoint import atomic_write, rng_state, set_rng_state
from utils.distributed import all_reduce, is_main

COLUMNS = ('index', 'path', 'given_label', 'clean_prob_net1', 'clean_prob_net2',
           'predicted_label', 'confidence', 'label_quality', 'flagged_noisy', 'flagged_co_divide')
# the columns of files written before label_quality and flagged_co_divide (flagged_noisy was
# then the co-divide's flag); the tools read both
COLUMNS_BEFORE = ('index', 'path', 'given_label', 'clean_prob_net1', 'clean_prob_net2',
                  'predicted_label', 'confidence', 'flagged_noisy')
TRUE_COLUMN = 'true_label'
UNKNOWN = -1  # a true label that is not known (Clothing1M: most training images)

Exported = collections.namedtuple('Exported', 'line record')


# ---------------------------------------------------------------- the numbers ----------------

def network_logits(net, eval_loader, device):
    """One eval-mode pass of `net` over `eval_loader` (batches (images, given labels,
    position), unaugmented): every image's logits (N, C) float32 and given label (N,), on the
    CPU, by position. Under torch.distributed each process fills its shard and a sum gives
    every process all rows."""
    net.eval()
    num_samples = len(eval_loader.dataset)
    logits = labels = None
    with torch.inference_mode():
        for inputs, batch_labels, position in eval_loader:
            out = net(inputs.to(device)).float()
            if logits is None:
                logits = torch.zeros(num_samples, out.size(1), device=device)
                labels = torch.zeros(num_samples, dtype=torch.long, device=device)
            position = position.to(device)
            logits[position], labels[position] = out, batch_labels.to(device)
        all_reduce(logits, dist.ReduceOp.SUM)
        all_reduce(labels, dist.ReduceOp.SUM)
    return logits.cpu(), labels.cpu()


class _LogitBatches:
    """What dm.co_divide reads as its eval loader, made of logits already computed: with an
    identity network its per-sample loss is the cross-entropy of these logits, so a network
    reads the images once for its co-divide and its predictions."""

    def __init__(self, logits, labels, batch_size=4096):
        self.logits, self.labels, self.batch_size = logits, labels, batch_size
        self.dataset = labels  # what co_divide asks len() of

    def __iter__(self):
        for start in range(0, len(self.labels), self.batch_size):
            index = torch.arange(start, min(start + self.batch_size, len(self.labels)))
            yield self.logits[index], self.labels[index], index


def clean_probability(logits, labels, loss_history, args):
    """A network's co-divide (dm.co_divide with the run's arguments) from its logits (N, C)
    and the given labels (N,), on a copy of its loss history (the run's own list is left as it
    is): the division the next epoch would make. Returns the clean probabilities (N,) and how
    many epochs' losses the mixture averaged."""
    history = list(loss_history)
    division = dm.co_divide(torch.nn.Identity(), _LogitBatches(logits, labels), history,
                            torch.device('cpu'), args)
    return division.clean_prob, len(history)


def ensemble_prediction(logits):
    """The prediction as dm.test_ensemble makes it, argmax of the summed logits (one network:
    its own), its confidence and every class's probability, the networks' mean softmax.
    logits: a list of (N, C), one per network -> predicted (N,) int64, confidence (N,),
    probabilities (N, C)."""
    predicted = sum(logits).argmax(1)
    mean_prob = sum(F.softmax(x, dim=1) for x in logits) / len(logits)
    return (predicted.numpy(), mean_prob.gather(1, predicted[:, None])[:, 0].numpy(),
            mean_prob.numpy())


def label_quality(probs, given):
    """The networks' mean probability of the given label (N,): the ranking to sort the file
    by, low = most likely mislabeled. probs (N, C) the networks' mean softmax, given (N,)."""
    return probs[np.arange(len(given)), given]


def flagged_co_divide(clean_probs, args):
    """1 where the mean clean probability over the networks falls outside the labeled set (the
    image would go to the unlabeled set: dm.labeled_set, Alg. 1 lines 6-8), else 0: DivideMix's
    own division. clean_probs: one (N,) per network."""
    return (~dm.labeled_set(np.mean(clean_probs, axis=0), args)).astype(np.int64)


def off_diagonal_counts(probs, given):
    """Per given class j, how many of its images the confident joint of Confident Learning
    (Northcutt et al., JAIR 2021, Sec. 3.1) counts off its diagonal: those whose probability
    of some class k reaches k's threshold t_k (the mean probability of k over the images
    given k), the most probable such class not being j. probs (N, C), given (N,) -> (C,)."""
    num_class = probs.shape[1]
    images = np.bincount(given, minlength=num_class)
    own = np.bincount(given, label_quality(probs, given), num_class)
    threshold = np.where(images > 0, own / np.maximum(images, 1), np.inf)  # no image: never
    reaching = np.where(probs >= threshold, probs, -1.0)
    confident = reaching.max(1) >= 0
    off = confident & (reaching.argmax(1) != given)
    return np.bincount(given[off], minlength=num_class)


def flagged_noisy(quality, probs, given):
    """1 for the images most likely mislabeled, else 0: per given class j, as many as the
    confident joint counts off its diagonal (off_diagonal_counts: Confident Learning's
    estimate of how many labels j are wrong), those of lowest label quality among the images
    given j ("prune by class", Northcutt et al. 2021). Measured against the co-divide's flag
    and others in results/label_errors. quality (N,), probs (N, C) the networks' mean
    softmax, given (N,) the given labels."""
    flagged = np.zeros(len(given), np.int64)
    for label, count in enumerate(off_diagonal_counts(probs, given)):
        images = np.flatnonzero(given == label)
        flagged[images[np.argsort(quality[images], kind='stable')[:count]]] = 1
    return flagged


def noise_detection(flagged, given, true):
    """The flags as a detector of wrong labels, over the images whose true label is known:
    (precision, recall, known count); NaN where undefined."""
    known = np.asarray(true) != UNKNOWN
    noisy = known & (np.asarray(given) != np.asarray(true))
    caught = np.asarray(flagged, bool) & known
    hits = (caught & noisy).sum()
    return (float(hits / caught.sum()) if caught.any() else math.nan,
            float(hits / noisy.sum()) if noisy.any() else math.nan, int(known.sum()))


# ---------------------------------------------------------------- the file -------------------

def relative_to(root, paths):
    """Image paths as the dataset's lists give them: relative to the data folder `root`."""
    prefix = os.path.join(root, '')
    return [p[len(prefix):] if p.startswith(prefix) else p for p in paths]


def write_labels_csv(path, given, clean_probs, predicted, confidence, quality, flagged,
                     flagged_by_co_divide, true=None, paths=None, class_names=None):
    """The CSV (COLUMNS, plus TRUE_COLUMN when `true` is given; UNKNOWN entries of `true` are
    empty cells), written atomically. Per-image arrays are aligned with the training set."""
    def label(c):
        return class_names[c] if class_names is not None else c

    def rows():
        yield COLUMNS + ((TRUE_COLUMN,) if true is not None else ())
        for i in range(len(given)):
            probs = ['%.6f' % p[i] for p in clean_probs] + [''] * (2 - len(clean_probs))
            row = [i, paths[i] if paths is not None else '', label(int(given[i]))] + probs + [
                label(int(predicted[i])), '%.6f' % confidence[i], '%.6f' % quality[i],
                int(flagged[i]), int(flagged_by_co_divide[i])]
            if true is not None:
                row.append(label(int(true[i])) if true[i] != UNKNOWN else '')
            yield row

    def write(f):
        text = io.TextIOWrapper(f, encoding='utf-8', newline='')
        csv.writer(text, lineterminator='\n').writerows(rows())
        text.flush()
        text.detach()  # atomic_write still syncs and closes f
    atomic_write(write, path)


def export_labels(path, nets, eval_loader, device, *, epoch, args, loss_histories=None,
                  predict_with=None, true=None, paths=None, class_names=None):
    """Write the labels file of `nets` (net1, or net1 and net2) at `path` and say what it holds.

    eval_loader  every training image unaugmented, in order (the script's eval_train loader);
                 it gives the given labels
    epoch        the last finished epoch (the record says which weights made the file)
    args         the run's arguments: co-divide's (--mixture, --loss_history, --p_threshold,
                 ...) as dm.co_divide reads them in training
    loss_histories  per network, the normalised losses of earlier epochs (the run's lists,
                 copied: the co-divide is the one the next epoch would make); None: none kept
    predict_with how many of `nets` predict (default all; 1: net1 alone, as the test does
                 in one-network runs and with --test_net1_only)
    true         the true labels, UNKNOWN where not known; None: the truth is not known
    paths        each image's path relative to the data folder (relative_to); class_names
                 the names of the labels in label order (None: integers)
    Every random stream is as it was before (the GMM seeds are drawn from numpy's, as the next
    epoch would draw them). Returns Exported(line, record): the line to print, and the keys
    for the final JSONL record (RunLog.summary(**record)).
    """
    histories = loss_histories if loss_histories is not None else [[] for _ in nets]
    streams = rng_state()
    try:
        logits, labels = zip(*(network_logits(net, eval_loader, device) for net in nets))
        clean_probs, averaged = zip(*(clean_probability(x, labels[0], history, args)
                                      for x, history in zip(logits, histories)))
    finally:
        set_rng_state(streams)
    given = labels[0].numpy()
    predicted, confidence, probs = ensemble_prediction(list(logits[:predict_with or len(nets)]))
    quality = label_quality(probs, given)
    flagged = flagged_noisy(quality, probs, given)
    by_co_divide = flagged_co_divide(clean_probs, args)
    if is_main():
        write_labels_csv(path, given, clean_probs, predicted, confidence, quality, flagged,
                         by_co_divide, true, paths, class_names)
    record = {'labels_file': os.path.basename(path), 'labels_epoch': epoch,
              'labels_p_threshold': args.p_threshold, 'labels_loss_history': averaged[0],
              'labels_images': len(given), 'labels_flagged': int(flagged.sum()),
              'labels_flagged_co_divide': int(by_co_divide.sum())}
    line = ('labels: %d of %d training images flagged as noisy (%d by the co-divide) in %s'
            % (record['labels_flagged'], len(given), record['labels_flagged_co_divide'], path))
    if true is not None:
        precision, recall, known = noise_detection(flagged, given, true)
        record.update(labels_known=known, labels_precision=precision, labels_recall=recall)
        record['labels_precision_co_divide'], record['labels_recall_co_divide'], _ = (
            noise_detection(by_co_divide, given, true))
        line += ('; as noise detection on the %d with known true labels: precision %s, recall %s'
                 % (known, _fraction(precision), _fraction(recall)) if known else
                 '; no image has a known true label')
    return Exported(line, record)


def _fraction(value):
    return 'undefined' if math.isnan(value) else '%.3f' % value
