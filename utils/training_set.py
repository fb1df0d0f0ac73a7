"""What a run trains on, kept in each of its checkpoints: per training image a 64-bit hash of
what names it (its file's path; a CIFAR image's pixels) and its given label, in the order the
run indexes them. A resume on a training set that changed since (images added, removed or
relabelled, or the same ones in another order) would pair each image with another's loss
history and clean probability: it is refused, saying what changed.

  fingerprint = training_set(keys, labels)       keys: str or bytes, one per image
  problem = training_set_changes(saved, fingerprint, names)    None when it is the same set;
                                                 names: how a message names each image
"""
import collections
import hashlib

import numpy as np
import torch

from utils.cli import one_line

EXAMPLES = 2  # names a message shows of the images added or relabelled


def _hash(key):
    data = key.encode() if isinstance(key, str) else bytes(key)
    return int.from_bytes(hashlib.blake2b(data, digest_size=8).digest(), 'little', signed=True)


def training_set(keys, labels):
    """{'ids': int64 tensor of the keys' hashes, 'labels': int64 tensor}, for a checkpoint
    (tensors: torch.load reads them with weights_only)."""
    return {'ids': torch.tensor([_hash(key) for key in keys], dtype=torch.int64),
            'labels': torch.as_tensor(np.asarray(labels), dtype=torch.int64).flatten()}


def training_set_changes(saved, current, names):
    """None where `current` (training_set's) is the set `saved` was made from, or a checkpoint
    predates the record (`saved` None); else what changed, e.g. '5 images added (cat/x.jpg,
    ...), 2 removed and 1 relabelled (dog/y.jpg), of the 3,000 images the run was started on'.
    `names`, one per image of current, name the examples."""
    if saved is None:
        return None
    old = list(zip(saved['ids'].tolist(), saved['labels'].tolist()))
    new = list(zip(current['ids'].tolist(), current['labels'].tolist()))
    if old == new:
        return None
    of = 'of the %s images the run was started on' % format(len(old), ',')
    removed = collections.Counter(old) - collections.Counter(new)
    added = collections.Counter(new) - collections.Counter(old)
    if not removed and not added:
        return 'the same images and labels in another order (%s): a list was reordered' % of
    # an image whose name is in both with another label was relabelled
    relabelled = collections.Counter(i for i, _ in removed.elements()) & collections.Counter(
        i for i, _ in added.elements())
    counts = {'added': sum(added.values()) - sum(relabelled.values()),
              'removed': sum(removed.values()) - sum(relabelled.values()),
              'relabelled': sum(relabelled.values())}
    examples = {'added': [], 'relabelled': []}
    for name, pair in zip(names, new):
        kind = ('relabelled' if pair[0] in relabelled else 'added') if pair in added else None
        if kind and len(examples[kind]) < EXAMPLES:
            examples[kind].append(one_line(str(name)))
    parts = []
    for kind, count in counts.items():
        if count:
            shown = examples.get(kind)
            parts.append('%s %s%s%s' % (
                format(count, ','), '' if parts else 'image ' if count == 1 else 'images ',
                kind, ' (%s%s)' % (', '.join(shown), ', ...' if count > len(shown) else '')
                if shown else ''))
    listed = ', '.join(parts[:-1]) + ' and ' + parts[-1] if len(parts) > 1 else parts[0]
    return '%s, %s' % (listed, of)
