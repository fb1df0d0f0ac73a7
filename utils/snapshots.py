"""What a run saves so that tools/figures.py can draw the paper's pictures from it afterwards:

  <prefix>_division/epoch_<E>.npz    a co-divide: per-sample loss, clean probability and the
                                     fitted GMM of each network (Fig. 2; Fig. 3 is in the .jsonl)
  <prefix>_features.npz              penultimate-layer features of training images (Fig. 5)
  <prefix>_unlabeled_examples.json   images the division put in the unlabeled set (Fig. 4)

and an optional TensorBoard log of the per-epoch records. Every file is written through a
temporary file and a rename, so tools/figures.py can read a folder while the run is still
writing it.
Under torch.distributed, call the save_* functions on rank 0 only (RunLog.writer).
"""
import json
import math
import os

import numpy as np
import torch
from torch import nn

from utils.checkpoint import atomic_write, write_error
from utils.cli import import_problem, optional_package_said
from utils.data import open_rgb
from utils.distributed import distributed

# The names of what a run saves here, after its <prefix> (the TensorBoard log: <prefix>_tb/);
# RunLog counts them among the run's files.
SNAPSHOT_SUFFIXES = ('_division', '_features.npz', '_unlabeled_examples.json', '_tb')

def _numpy(values):
    return values.detach().cpu().numpy() if torch.is_tensor(values) else np.asarray(values)


# ---------------------------------------------------------------- co-divide snapshots --------

def division_epochs(warm_up, num_epochs, every=50):
    """The epochs at which a run saves a division snapshot: the first co-divide (`warm_up`,
    where Fig. 2a/b look: the loss right after warm-up), the one after it, each multiple of
    `every`, and the last epoch (Fig. 2c). Sorted, only epochs in [warm_up, num_epochs).

    Size (measured, np.savez uncompressed, two networks): 50,000 samples make 553,742 bytes per
    snapshot (loss and clean probability float16 per network, noisy labels int16, is_clean
    bool), so the paper's CIFAR run (warm_up 10, 300 epochs: epochs 10, 11, 50, 100, ..., 250,
    299, eight snapshots) adds 4.4 MB to its run folder, beside 360 MB of checkpoints.
    """
    epochs = {warm_up, warm_up + 1, num_epochs - 1} | set(range(0, num_epochs, every))
    return sorted(e for e in epochs if warm_up <= e < num_epochs)


def division_dir(out_dir, prefix):
    return os.path.join(out_dir, prefix + '_division')


def save_division(out_dir, prefix, epoch, p_threshold, noisy_labels, nets, is_clean=None):
    """Save one co-divide as <out_dir>/<prefix>_division/epoch_<epoch:03d>.npz.

    nets: {'net1': {'loss': (M,), 'clean_prob': (M,), 'mixture': 'gmm',
                    'components': {'means': (K,), ...}}, ...}
    (a dm.Division as a dict), keyed by the network whose per-sample loss the mixture modelled
    (net1's divides the data that net2 trains on); each component array is saved as
    <net>_<mixture>_<name> (e.g. net1_gmm_means), what tools/figures.py finds the mixture by
    (dm.MIXTURES). 'loss' is what the mixture was fitted on: the normalised loss, averaged
    over the loss history when there is one. Where a GMM saw a subset of the N training
    samples (Clothing1M: a fresh balanced subset per network), its entry also holds
    'indices' (M,) into them; otherwise M = N. noisy_labels (N,); is_clean (N,) bool where
    the truth is known (synthetic noise), None for Clothing1M and WebVision.
    Returns the path written.
    """
    arrays = {'epoch': np.int64(epoch), 'p_threshold': np.float64(p_threshold),
              'noisy_labels': _numpy(noisy_labels).astype(np.int16)}
    if is_clean is not None:
        arrays['is_clean'] = _numpy(is_clean).astype(bool)
    for name, net in nets.items():
        # float16 keeps a 50,000-sample snapshot near half a megabyte; a histogram needs no more
        arrays[name + '_loss'] = _numpy(net['loss']).astype(np.float16)
        arrays[name + '_clean_prob'] = _numpy(net['clean_prob']).astype(np.float16)
        if 'indices' in net:
            arrays[name + '_indices'] = _numpy(net['indices']).astype(np.int32)
        for key, values in net['components'].items():
            arrays['%s_%s_%s' % (name, net['mixture'], key)] = np.asarray(values, np.float64)
    path = os.path.join(division_dir(out_dir, prefix), 'epoch_%03d.npz' % epoch)
    atomic_write(lambda f: np.savez(f, **arrays), path)
    return path


# ---------------------------------------------------------------- features (Fig. 5) ----------

def penultimate_features(net, images_loader, device):
    """The input of the network's last nn.Linear (the classifier) for every image of the
    loader, which yields (inputs, ...) tuples. Eval mode, no grad; the network's mode is
    restored afterwards. Returns float32 numpy (M, D)."""
    classifier = [m for m in net.modules() if isinstance(m, nn.Linear)][-1]
    batches = []
    hook = classifier.register_forward_pre_hook(
        lambda module, inputs: batches.append(inputs[0].detach().flatten(1).float().cpu()))
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            for inputs, *_ in images_loader:
                # forward, not __call__: a torch.compile'd module would run its compiled
                # code, which need not call the hook added here
                net.forward(inputs.to(device))
    finally:
        hook.remove()
        net.train(was_training)
    return torch.cat(batches).numpy()


def save_features(out_dir, prefix, features, noisy_labels, clean_labels, indices):
    """Save <out_dir>/<prefix>_features.npz: features (M, D) float16, and for the same M
    training images their noisy labels, true labels (None where unknown, e.g. Clothing1M)
    and indices into the training set. Returns the path written. tools/figures.py embeds at
    most 2,000 of them, so save a random 2,000 (2 MB at D = 512), not all 50,000 (51 MB)."""
    arrays = {'features': _numpy(features).astype(np.float16),
              'noisy_labels': _numpy(noisy_labels).astype(np.int16),
              'indices': _numpy(indices).astype(np.int64)}
    if clean_labels is not None:
        arrays['clean_labels'] = _numpy(clean_labels).astype(np.int16)
    path = os.path.join(out_dir, prefix + '_features.npz')
    atomic_write(lambda f: np.savez(f, **arrays), path)
    return path


# ---------------------------------------------------------------- unlabeled examples (Fig. 4)

def save_unlabeled_examples(out_dir, prefix, epoch, paths, given_labels, guessed_labels,
                            clean_prob, class_names=None):
    """Save <out_dir>/<prefix>_unlabeled_examples.json: a few dozen images that the division of
    `epoch` put in the unlabeled set, each with its path, its given (noisy) label, the label
    the two networks co-guess for it, and its clean probability. tools/figures.py shows the
    first ones in the order given. Returns the path written."""
    examples = [{'path': str(path), 'given': int(given), 'guessed': int(guessed),
                 'clean_prob': float(prob)}
                for path, given, guessed, prob in zip(paths, _numpy(given_labels),
                                                      _numpy(guessed_labels),
                                                      _numpy(clean_prob))]
    content = {'epoch': int(epoch),
               'class_names': None if class_names is None else list(class_names),
               'examples': examples}
    path = os.path.join(out_dir, prefix + '_unlabeled_examples.json')
    atomic_write(lambda f: f.write(json.dumps(content, indent=1).encode()), path)
    return path


def save_unlabeled_guesses(out_dir, prefix, epoch, nets, paths, labels, candidates,
                           candidate_prob, transform, device, seed, count=18,
                           class_names=None):
    """Fig. 4 for a run on image files (Clothing1M, WebVision): `count` of the `candidates`
    (training indices the division put in the unlabeled set, with their clean probabilities),
    chosen with their own RNG so the run's random streams stay untouched, each with the label
    the two networks guess for it: the argmax of their summed softmax on the unaugmented image
    (co-guessing without the augmented views and the sharpening). Calls save_unlabeled_examples
    (class_names: the names of the labels in label order, so the figure can show them).
    The networks are left in eval mode; pass the bare ones (utils.distributed.unwrap) under
    torch.distributed, since only rank 0 calls this."""
    candidates, candidate_prob = np.asarray(candidates), np.asarray(candidate_prob)
    if not len(candidates):  # an empty unlabeled set: nothing to show
        return None
    pick = np.random.RandomState(seed + epoch).choice(
        len(candidates), min(count, len(candidates)), replace=False)
    chosen = candidates[pick]
    images = torch.stack([transform(open_rgb(paths[i])) for i in chosen]).to(device)
    with torch.no_grad():
        for net in nets:
            net.eval()
        guessed = sum(torch.softmax(net(images).float(), 1) for net in nets).argmax(1)
    return save_unlabeled_examples(out_dir, prefix, epoch, [paths[i] for i in chosen],
                                   np.asarray(labels)[chosen], guessed, candidate_prob[pick],
                                   class_names)


# ---------------------------------------------------------------- TensorBoard ----------------

def _scalars(record, parent=''):
    """{'net1': {'auc': 0.9}} -> [('net1/auc', 0.9)]: the finite numbers of a record."""
    for key, value in record.items():
        name = parent + str(key)
        if isinstance(value, dict):
            yield from _scalars(value, name + '/')
        elif (isinstance(value, (int, float, np.number)) and not isinstance(value, bool)
              and math.isfinite(value)):
            yield name, float(value)


class TensorBoardLog:
    """The per-epoch records as TensorBoard scalars, when asked for and when tensorboard is
    installed (it is optional: the scripts refuse --tensorboard at their start without it,
    utils.cli.TENSORBOARD_NEEDS_IT; any other caller gets one line and goes on).
    Under torch.distributed only rank 0 writes."""

    def __init__(self, log_dir, enabled):
        self.writer, self.log_dir = None, log_dir
        if not enabled or distributed()[0] != 0:
            return
        if import_problem('torch.utils.tensorboard', 'tensorboard'):  # missing, or broken
            print('TensorBoard logging is off: ' + optional_package_said(
                'tensorboard', 'torch.utils.tensorboard', 'it logs with'))
            return
        from torch.utils.tensorboard import SummaryWriter
        self.writer = self._writing(SummaryWriter, log_dir)

    def _writing(self, write, *args):
        """write(*args); a failed write (disk full) is one line naming the log's folder."""
        try:
            return write(*args)
        except OSError as e:
            raise write_error(self.log_dir, e) from None

    def epoch(self, record):
        """Write the numbers of one epoch's record (nested dicts as 'net1/auc'; NaN, None and
        text skipped) at step record['epoch']."""
        if self.writer is None:
            return
        for name, value in _scalars(record):
            if name != 'epoch':
                self._writing(self.writer.add_scalar, name, value, record['epoch'])
        self._writing(self.writer.flush)

    def close(self):
        if self.writer is not None:
            self._writing(self.writer.close)
