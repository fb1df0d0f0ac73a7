"""WebVision 1.0 ("mini-WebVision": Google images of the first 50 classes), its validation set
and the ILSVRC12 validation images of the same classes, with the loaders DivideMix uses
(as in the authors' code).

Layout under the root folder (the official one, as the authors use it):
  info/train_filelist_google.txt   lines '<path relative to root> <label>'
  info/val_filelist.txt            lines '<file name in val_images_256/> <label>'
  val_images_256/                  WebVision validation images
  imagenet/val/<c>/                ILSVRC12 val images of WebVision class c (built by the user)
  info/synsets.txt                 (optional) '<wnid> <names>' per class, in class order
The lists are read, and every image checked (utils.data.check_images), once, up front; images
are opened when a batch needs them.
The transforms: the authors' (transforms_for) and AugDesc-WS's strong one (strong_transform_for).
"""
import os

import numpy as np
import torchvision.transforms as T

from utils.augment import autoaugmented
from utils.cli import InputError, one_line
from utils.data import ImageFiles, NoisyLabelDataset, check_images, make_loader

TRAIN_LIST = os.path.join('info', 'train_filelist_google.txt')  # Google subset only, no Flickr
VAL_LIST = os.path.join('info', 'val_filelist.txt')
SYNSETS = os.path.join('info', 'synsets.txt')  # 'n01440764 tench, Tinca tinca' per class
VAL_FOLDER = 'val_images_256'
IMAGENET_FOLDER = os.path.join('imagenet', 'val')

IMAGENET_MEAN_STD = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def read_list(path, num_class):
    """(names, labels) from a '<name> <label>' list, keeping the lines with label < num_class
    (the full lists hold 1000 classes). Blank lines are skipped; anything else that does not
    parse is refused with its line number."""
    if not os.path.isfile(path):
        raise InputError('no list file %s: extract WebVision\'s "info" folder (Training & '
                         'Validation Labels) into the root, or set --data_path' % path)
    names, labels = [], []
    try:
        with open(path, encoding='utf-8-sig') as f:  # -sig: a leading BOM is dropped
            for line_no, line in enumerate(f, 1):
                line = line.strip()
                if not line:
                    continue
                fields = line.rsplit(None, 1)  # the label is the last field
                try:
                    name, label = fields[0], int(fields[1])
                except (IndexError, ValueError):
                    raise InputError('%s:%d: expected "<image path> <label>", got %.80r: fix or '
                                     'delete the line' % (path, line_no, line)) from None
                if label < 0:
                    raise InputError('%s:%d: negative label %d: labels are class ids 0, 1, ...'
                                     % (path, line_no, label))
                if label < num_class:
                    names.append(name)
                    labels.append(label)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError('cannot read list file %s (%s): re-extract it from the WebVision '
                         'archive' % (path, one_line(e))) from None
    return names, np.asarray(labels, dtype=np.int64)


def read_class_names(path, num_class):
    """The first name of each of the first num_class synsets ('tench' from 'n01440764 tench,
    Tinca tinca'), or None when the file is absent or does not name them all: the labels then
    stay integers."""
    try:
        with open(path, encoding='utf-8-sig') as f:
            lines = [line.split(None, 1) for line in f if line.strip()][:num_class]
    except (OSError, UnicodeDecodeError):
        return None
    if len(lines) < num_class or any(len(fields) < 2 for fields in lines):
        return None
    return [fields[1].split(',')[0].strip() for fields in lines]


def read_imagenet_folder(folder, num_class):
    """(paths, labels) of folder/<c>/* for c < num_class, label c; hidden files are skipped and
    names sorted, so the order does not depend on the file system."""
    paths, labels = [], []
    for c in range(num_class):
        class_folder = os.path.join(folder, str(c))
        if not os.path.isdir(class_folder):
            raise InputError('no ImageNet folder %s: build %s/<c>/ for every class c < %d from '
                             'the ILSVRC12 val images, mapping classes to synsets with '
                             'WebVision\'s synsets list (see docs/data.md)'
                             % (class_folder, folder, num_class))
        names = sorted(n for n in os.listdir(class_folder) if not n.startswith('.')
                       and os.path.isfile(os.path.join(class_folder, n)))
        if not names:
            raise InputError('ImageNet folder %s holds no images: fill it with the ILSVRC12 val '
                             'images of the synset of WebVision class %d (see docs/data.md)'
                             % (class_folder, c))
        paths += [os.path.join(class_folder, n) for n in names]
        labels += [c] * len(names)
    return paths, np.asarray(labels, dtype=np.int64)


class WebVision:
    """The image paths and labels of the three sets, read and checked once:
    train_* (Google training images, noisy labels), val_* (WebVision val), imagenet_* (ILSVRC12
    val). Paths are built with os.path.join, so `root` may or may not end with '/'.
    class_names: from info/synsets.txt when it is there, else None (integer labels)."""

    def __init__(self, root, num_class=50):
        if not isinstance(num_class, (int, np.integer)) or num_class < 1:
            raise InputError('num_class must be a positive integer, got %r' % (num_class,))
        if not os.path.isdir(root):
            raise InputError('WebVision folder %s %s: set --data_path to the folder that holds '
                             'info/, google/, val_images_256/ and imagenet/'
                             % (root, 'is a file' if os.path.exists(root) else 'does not exist'))
        self.root, self.num_class = root, int(num_class)
        train_list, val_list = os.path.join(root, TRAIN_LIST), os.path.join(root, VAL_LIST)

        names, self.train_labels = read_list(train_list, num_class)
        self.train_paths = [os.path.join(root, n) for n in names]
        counts = np.bincount(self.train_labels, minlength=num_class)
        if (counts == 0).any():
            raise InputError('%s has no training image of class %d (of %d): is it the full '
                             'Google list, and is --num_class right?'
                             % (train_list, int(np.argmin(counts)), num_class))
        check_images(self.train_paths, 'training images listed in %s' % train_list,
                     'extract google_resized_256.tar into %s, or set --data_path' % root)

        names, self.val_labels = read_list(val_list, num_class)
        if not names:
            raise InputError('%s lists no validation image of the first %d classes: is it the '
                             'full WebVision val list, and is --num_class right?'
                             % (val_list, num_class))
        self.val_paths = [os.path.join(root, VAL_FOLDER, n) for n in names]
        check_images(self.val_paths, 'validation images listed in %s' % val_list,
                     'extract val_images_256.tar into %s, or set --data_path' % root)

        imagenet = os.path.join(root, IMAGENET_FOLDER)
        self.imagenet_paths, self.imagenet_labels = read_imagenet_folder(imagenet, num_class)
        check_images(self.imagenet_paths, 'images in %s' % imagenet,  # built by hand: once each
                     'replace it with its ILSVRC12 val image or remove it', distinct=True)
        self.class_names = read_class_names(os.path.join(root, SYNSETS), num_class)


def transforms_for(resize, crop):
    """The authors' current transforms (299-px crops for InceptionResNetV2). The released images
    are about 256 px, so Resize(320) upsamples them; kept for fidelity."""
    mean, std = IMAGENET_MEAN_STD
    train = T.Compose([T.Resize(resize), T.RandomResizedCrop(crop), T.RandomHorizontalFlip(),
                       T.ToTensor(), T.Normalize(mean, std)])
    test = T.Compose([T.Resize(resize), T.CenterCrop(crop), T.ToTensor(), T.Normalize(mean, std)])
    return train, test


def strong_transform_for(resize, crop):
    """AugDesc-WS's strong augmentation: the train transform's resize, crop and flip, then
    AutoAugment with its ImageNet policy (as AugDesc for Clothing1M)."""
    return autoaugmented(transforms_for(resize, crop)[0], 'imagenet')


class WebVisionLoaders:
    """Builds the authors' loaders from a WebVision read once:
    warmup (all, train transform, 2B, shuffled), eval_train (all, test transform), webvision_val
    and imagenet_val (test transform), and train(pred, prob) -> (labeled loader, unlabeled
    loader) of batch B, shuffled. Evaluation loaders use eval_batch_size (authors: 20B).
    strong=True (AugDesc-WS, strong_transform_for): warm-up on strongly augmented images; two
    strong views more per SSL item."""

    def __init__(self, data, batch_size=32, num_workers=0, resize=320, crop=299,
                 eval_batch_size=None):
        self.data, self.batch_size, self.num_workers = data, batch_size, num_workers
        self.eval_batch_size = 20 * batch_size if eval_batch_size is None else eval_batch_size
        self.train_transform, self.test_transform = transforms_for(resize, crop)
        self.strong_transform = strong_transform_for(resize, crop)

    def _loader(self, dataset, batch_size, shuffle):
        return make_loader(dataset, batch_size, shuffle, self.num_workers)

    def _train_set(self, transform, mode, indices=None, prob=None, strong=None):
        return NoisyLabelDataset(ImageFiles(self.data.train_paths), self.data.train_labels,
                                 transform, mode, indices, prob, strong)

    def _test_set(self, paths, labels):
        ds = NoisyLabelDataset(ImageFiles(paths), labels, self.test_transform, 'test')
        return self._loader(ds, self.eval_batch_size, shuffle=False)

    def warmup(self, strong=False):
        transform = self.strong_transform if strong else self.train_transform
        return self._loader(self._train_set(transform, 'all'), 2 * self.batch_size,
                            shuffle=True)

    def eval_train(self):
        return self._loader(self._train_set(self.test_transform, 'all'), self.eval_batch_size,
                            shuffle=False)

    def webvision_val(self):
        return self._test_set(self.data.val_paths, self.data.val_labels)

    def imagenet_val(self):
        return self._test_set(self.data.imagenet_paths, self.data.imagenet_labels)

    def train(self, pred, prob, strong=False):
        """Labeled set = indices where pred is True (with their clean prob), unlabeled = rest;
        pred and prob are aligned with train_paths. An empty set gives None, not a loader.
        strong=True adds two strongly augmented views (AugDesc-WS)."""
        pred, prob = np.asarray(pred, dtype=bool), np.asarray(prob)
        n = len(self.data.train_paths)
        if len(pred) != n or len(prob) != n:
            raise ValueError('pred (%d) and prob (%d) must have one entry per training image '
                             '(%d)' % (len(pred), len(prob), n))
        labeled_idx, unlabeled_idx = np.flatnonzero(pred), np.flatnonzero(~pred)
        strong = self.strong_transform if strong else None
        labeled = self._train_set(self.train_transform, 'labeled', labeled_idx,
                                  prob[labeled_idx], strong)
        unlabeled = self._train_set(self.train_transform, 'unlabeled', unlabeled_idx,
                                    strong=strong)
        return tuple(self._loader(ds, self.batch_size, shuffle=True) if len(ds) else None
                     for ds in (labeled, unlabeled))
