"""Clothing1M: annotation files, class-balanced subsets and the loaders DivideMix uses.

The official layout: under `root` lie five annotation files and the image
folders 0/, 1/, ... The paths in the files start with "images/"; as the authors do, those first
7 characters are stripped and the rest is joined under `root`. All annotation files are read and
checked once, up front, and every listed image is checked to exist; the ~1M images are only
opened when a batch needs them.

Each epoch works on fresh class-balanced subsets of the 1M-image noisy pool (§4.4): warm-up on
num_batches*2B images, co-divide on num_batches*B, drawn with Python's global `random` module so
that seeding it (and saving its state in a checkpoint) covers the sampling.

The transforms: the authors' (transforms_for) and AugDesc-WS's strong one (strong_transform_for).
"""
import os
import random

import numpy as np
import torchvision.transforms as T

from utils.augment import autoaugmented
from utils.cli import InputError, one_line
from utils.data import ImageFiles, NoisyLabelDataset, check_images, make_loader

# The 14 classes in label order (the release's category names)
CLASS_NAMES = ('T-Shirt', 'Shirt', 'Knitwear', 'Chiffon', 'Sweater', 'Hoodie', 'Windbreaker',
               'Jacket', 'Downcoat', 'Suit', 'Shawl', 'Dress', 'Vest', 'Underwear')

MEAN = (0.6959, 0.6537, 0.6371)
STD = (0.3113, 0.3192, 0.3214)

NOISY_KV, CLEAN_KV = 'noisy_label_kv.txt', 'clean_label_kv.txt'
TRAIN_KEYS, VAL_KEYS, TEST_KEYS = ('noisy_train_key_list.txt', 'clean_val_key_list.txt',
                                   'clean_test_key_list.txt')
ANNOTATIONS = (NOISY_KV, CLEAN_KV, TRAIN_KEYS, VAL_KEYS, TEST_KEYS)
PREFIX = 'images/'  # every path in the annotation files starts with it; stripped (authors: [7:])

VAL_TEST_BATCH = 1000  # authors' hard-coded batch for val and test


def _lines(path):
    """(line number, text) of every non-blank line of an annotation file."""
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: a leading BOM is dropped
            return [(n, line.strip()) for n, line in enumerate(f, 1) if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise InputError('cannot read %s (%s): restore it from the official annotations.zip'
                         % (path, one_line(e))) from None


def _relative(path, text, where):
    """'images/0/x.jpg' -> '0/x.jpg', refusing paths the authors' [7:] would silently mangle."""
    if not text.startswith(PREFIX) or len(text) == len(PREFIX):
        raise InputError('%s: path %r does not start with %r as in the official annotation files:'
                         ' restore the file from annotations.zip' % (where, text[:80], PREFIX))
    return text[len(PREFIX):]


def _read_kv(path, num_class):
    """'<path> <label>' lines -> {relative path: label}. A repeated path keeps its last label,
    as the authors' dictionary does."""
    labels = {}
    lines = _lines(path)
    if not lines:
        raise InputError('%s holds no labels: restore it from the official annotations.zip'
                         % path)
    for n, text in lines:
        where = '%s:%d' % (path, n)
        try:
            key, label = text.split()
            label = int(label)
        except ValueError:  # not two fields, or a label that is not an integer
            raise InputError('%s: expected "<path> <label>", got %r: fix or restore the file'
                             % (where, text[:80])) from None
        if not 0 <= label < num_class:
            raise InputError('%s: label %d is outside [0, %d): fix the file or --num_class'
                             % (where, label, num_class))
        labels[_relative(path, key, where)] = label
    return labels


def _read_keys(path, labels, kv_name, root):
    """One path per line -> (absolute paths, labels looked up in the kv file), in file order."""
    paths, targets = [], []
    for n, text in _lines(path):
        where = '%s:%d' % (path, n)
        if len(text.split()) != 1:
            raise InputError('%s: expected one path, got %r: fix or restore the file'
                             % (where, text[:80]))
        key = _relative(path, text, where)
        if key not in labels:
            raise InputError('%s: %s has no label in %s: use the key lists and label files of '
                             'the same official annotations.zip' % (where, one_line(text), kv_name))
        paths.append(os.path.join(root, key))
        targets.append(labels[key])
    if not paths:
        raise InputError('%s lists no images: restore it from the official annotations.zip'
                         % path)
    return paths, np.asarray(targets, dtype=np.int64)


class Clothing1M:
    """The annotation files of one Clothing1M folder, read and checked up front.
      train_paths, train_labels   the noisy training pool (noisy_train_key_list, noisy labels)
      val_paths, val_labels       clean_val_key_list with clean labels
      test_paths, test_labels     clean_test_key_list with clean labels
      train_clean_labels          the clean label of each training image that clean_label_kv
                                  covers, -1 for the others (most of them)
      class_names                 the 14 names in label order (None with another --num_class)
    Paths are absolute; labels are int64 arrays aligned with the paths.
    """

    def __init__(self, root, num_class=14):
        if not os.path.isdir(root):
            raise InputError('Clothing1M folder %s %s: pass --data_path, the folder holding %s '
                             'and the image folders 0/, 1/, ...'
                             % (root, 'is a file' if os.path.exists(root) else 'does not exist',
                                NOISY_KV))
        missing = [name for name in ANNOTATIONS if not os.path.isfile(os.path.join(root, name))]
        if missing:
            raise InputError('%s lacks %s: unpack the official annotations.zip there, next to '
                             'the image folders 0/, 1/, ...' % (root, ', '.join(missing)))
        self.root, self.num_class = os.path.abspath(root), num_class
        path = {name: os.path.join(self.root, name) for name in ANNOTATIONS}
        noisy = _read_kv(path[NOISY_KV], num_class)
        clean = _read_kv(path[CLEAN_KV], num_class)
        self.train_paths, self.train_labels = _read_keys(path[TRAIN_KEYS], noisy, NOISY_KV,
                                                         self.root)
        self.val_paths, self.val_labels = _read_keys(path[VAL_KEYS], clean, CLEAN_KV, self.root)
        self.test_paths, self.test_labels = _read_keys(path[TEST_KEYS], clean, CLEAN_KV,
                                                       self.root)
        start = len(os.path.join(self.root, ''))  # a path's key: what follows root/
        self.train_clean_labels = np.asarray([clean.get(p[start:], -1) for p in self.train_paths],
                                             dtype=np.int64)
        self.class_names = list(CLASS_NAMES) if num_class == len(CLASS_NAMES) else None
        # Every listed image is checked now, so a missing or empty one stops the run before it
        # starts, not hours in (whether it decodes is seen when it is read: utils.data.open_rgb).
        # The official lists are taken as published: no check for a file listed twice.
        for name, paths in ((TRAIN_KEYS, self.train_paths), (VAL_KEYS, self.val_paths),
                            (TEST_KEYS, self.test_paths)):
            check_images(paths, 'images listed in %s' % path[name],
                              'put the image folders 0/ ... 9/ of the Clothing1M release in %s'
                              ', next to the annotation files, or set --data_path' % self.root)


def balanced_subset(labels, num_samples, num_class):
    """The authors' class-balanced draw from the pool, with Python's global `random`.

    Shuffle the pool, walk it keeping an image while its class has fewer than
    num_samples/num_class kept (so at most ceil(num_samples/num_class) per class) and fewer than
    num_samples are kept in all, then shuffle the kept ones. Small classes make it return fewer
    than num_samples. Shuffling indices draws the same permutation as the authors' shuffle of
    the path list (random.shuffle depends only on the length), so the subsets are theirs.
    Returns pool indices, int64.
    """
    labels = np.asarray(labels).tolist()
    order = list(range(len(labels)))
    random.shuffle(order)
    per_class = num_samples / num_class
    count = [0] * num_class
    kept = []
    for i in order:
        if len(kept) >= num_samples:
            break  # nothing more can be kept; stopping early draws no random numbers
        if count[labels[i]] < per_class:
            count[labels[i]] += 1
            kept.append(i)
    random.shuffle(kept)
    return np.asarray(kept, dtype=np.int64)


def transforms_for(resize=256, crop=224):
    """The authors' (train transform, test transform): resize the shorter side, then crop
    (train: at random, and flip), normalised with Clothing1M's mean and std."""
    to_tensor = [T.ToTensor(), T.Normalize(MEAN, STD)]
    train = T.Compose([T.Resize(resize), T.RandomCrop(crop), T.RandomHorizontalFlip()] + to_tensor)
    return train, T.Compose([T.Resize(resize), T.CenterCrop(crop)] + to_tensor)


def strong_transform_for(resize=256, crop=224):
    """AugDesc-WS's strong augmentation, as AugDesc's Clothing1M code: the train transform's
    crop and flip, then AutoAugment with its ImageNet policy."""
    return autoaugmented(transforms_for(resize, crop)[0], 'imagenet')


class Clothing1MLoaders:
    """Builds the authors' loaders from a Clothing1M read once:
      warmup(N)       fresh balanced subset of N, train transform, batch 2B, shuffled
      eval_train(N)   fresh balanced subset of N, test transform, not shuffled;
                      loader.dataset.indices are its pool indices, in position order;
                      eval_train() the whole pool in file order (draws nothing)
      train(pred, prob, pool_indices) -> (labeled, unlabeled), batch B, shuffled
      val(), test()   clean labels, test transform, not shuffled
    Batch sizes: B = batch_size. `eval_batch_size`, when given, is used by eval_train, val and
    test; by default val/test use the authors' 1000 and eval_train 4B (the authors use B there;
    in eval mode the batch size changes only speed and memory, not the per-sample losses).
    `resize` and `crop` are 256 and 224 as the authors'; tests make them tiny. strong=True
    (AugDesc-WS, strong_transform_for): warm-up on strongly augmented images; two strong views
    more per SSL item.
    """

    def __init__(self, data, batch_size=32, num_workers=0, resize=256, crop=224,
                 eval_batch_size=None):
        self.data, self.batch_size, self.num_workers = data, batch_size, num_workers
        self.eval_train_batch = eval_batch_size or 4 * batch_size
        self.val_test_batch = eval_batch_size or VAL_TEST_BATCH
        self.train_transform, self.test_transform = transforms_for(resize, crop)
        self.strong_transform = strong_transform_for(resize, crop)

    def _loader(self, dataset, batch_size, shuffle):
        return make_loader(dataset, batch_size, shuffle, self.num_workers)

    def _pool(self, transform, mode, indices, prob=None, strong=None):
        """A subset of the noisy pool; in 'all' mode items carry their position in it."""
        return NoisyLabelDataset(ImageFiles(self.data.train_paths), self.data.train_labels,
                                 transform, mode, indices, prob, strong)

    def warmup(self, num_samples, strong=False):
        indices = balanced_subset(self.data.train_labels, num_samples, self.data.num_class)
        transform = self.strong_transform if strong else self.train_transform
        return self._loader(self._pool(transform, 'all', indices), 2 * self.batch_size,
                            shuffle=True)

    def eval_train(self, num_samples=None):
        indices = None if num_samples is None else balanced_subset(
            self.data.train_labels, num_samples, self.data.num_class)
        return self._loader(self._pool(self.test_transform, 'all', indices),
                            self.eval_train_batch, shuffle=False)

    def train(self, pred, prob, pool_indices, strong=False):
        """Labeled set = pool_indices where pred is True, with their clean prob; unlabeled = the
        rest. pred and prob are aligned with pool_indices (eval_train's dataset.indices).
        An empty set gives None instead of a loader. strong=True adds two strongly augmented
        views (AugDesc-WS)."""
        pred = np.asarray(pred, dtype=bool)
        prob, pool_indices = np.asarray(prob), np.asarray(pool_indices)
        if not len(pred) == len(prob) == len(pool_indices):
            raise ValueError('pred, prob and pool_indices differ in length: %d, %d, %d'
                             % (len(pred), len(prob), len(pool_indices)))
        strong = self.strong_transform if strong else None
        labeled = self._pool(self.train_transform, 'labeled', pool_indices[pred], prob[pred],
                             strong)
        unlabeled = self._pool(self.train_transform, 'unlabeled', pool_indices[~pred],
                               strong=strong)
        return tuple(self._loader(ds, self.batch_size, shuffle=True) if len(ds) else None
                     for ds in (labeled, unlabeled))

    def _clean_set(self, paths, labels):
        ds = NoisyLabelDataset(ImageFiles(paths), labels, self.test_transform, 'test')
        return self._loader(ds, self.val_test_batch, shuffle=False)

    def val(self):
        return self._clean_set(self.data.val_paths, self.data.val_labels)

    def test(self):
        return self._clean_set(self.data.test_paths, self.data.test_labels)
