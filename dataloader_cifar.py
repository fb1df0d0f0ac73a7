"""CIFAR-10/100 with injected label noise, and the five loaders DivideMix uses: the plain
ones (CIFARLoaders: PIL transforms in DataLoader workers) and the fast ones (DeviceCIFARLoaders:
the dataset on the training device, batched augmentation), which draw batches from the same
distribution.

The images are read once per run from the standard python-pickle folders
(`cifar-10-batches-py`, `cifar-100-python`) and kept in memory as uint8 arrays.
Noise injection reproduces the authors' code bit for bit (see `make_noisy_labels`), and noise
files use their JSON format and default path, so existing files are reused as they are.
"""
import io
import json
import os
import pickle
import random
import shutil
import zipfile

import numpy as np
import torch
import torchvision.transforms as T

from utils.augment import BatchAutoAugment, autoaugment
from utils.checkpoint import atomic_write
from utils.cli import InputError as DataError, WriteError, one_line
from utils.data import ImageArray, NoisyLabelDataset, ShardSampler, make_loader
from utils.distributed import barrier, distributed, print0

NUM_CLASSES = {'cifar10': 10, 'cifar100': 100}
NUM_TRAIN = 50000

MEAN_STD = {
    'cifar10': ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    'cifar100': ((0.507, 0.487, 0.441), (0.267, 0.256, 0.276)),
}

# Files per dataset: (folder name torchvision extracts, training pickles, test pickle, label key)
LAYOUT = {
    'cifar10': ('cifar-10-batches-py', ['data_batch_%d' % i for i in range(1, 6)],
                'test_batch', 'labels'),
    'cifar100': ('cifar-100-python', ['train'], 'test', 'fine_labels'),
}
META_FILE = {'cifar10': 'batches.meta', 'cifar100': 'meta'}  # in the archive
# CIFAR-10's class names in label order (the archive's batches.meta holds the same ten)
CIFAR10_CLASSES = ('airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse',
                   'ship', 'truck')
PRETTY_NAME = {'cifar10': 'CIFAR-10', 'cifar100': 'CIFAR-100'}

# CIFAR-10 asymmetric noise (authors' map): truck->automobile, bird->airplane, deer->horse,
# cat<->dog; the other classes map to themselves.
CIFAR10_ASYM = {9: 1, 2: 0, 4: 7, 3: 5, 5: 3}

# CIFAR-100's 20 superclasses as sets of fine-label indices (in the official label order).
# Asymmetric noise flips each class to the next one of its superclass, cyclically.
CIFAR100_SUPERCLASSES = (
    (4, 30, 55, 72, 95),   # aquatic mammals
    (1, 32, 67, 73, 91),   # fish
    (54, 62, 70, 82, 92),  # flowers
    (9, 10, 16, 28, 61),   # food containers
    (0, 51, 53, 57, 83),   # fruit and vegetables
    (22, 39, 40, 86, 87),  # household electrical devices
    (5, 20, 25, 84, 94),   # household furniture
    (6, 7, 14, 18, 24),    # insects
    (3, 42, 43, 88, 97),   # large carnivores
    (12, 17, 37, 68, 76),  # large man-made outdoor things
    (23, 33, 49, 60, 71),  # large natural outdoor scenes
    (15, 19, 21, 31, 38),  # large omnivores and herbivores
    (34, 63, 64, 66, 75),  # medium-sized mammals
    (26, 45, 77, 79, 99),  # non-insect invertebrates
    (2, 11, 35, 46, 98),   # people
    (27, 29, 44, 78, 93),  # reptiles
    (36, 50, 65, 74, 80),  # small mammals
    (47, 52, 56, 59, 96),  # trees
    (8, 13, 48, 58, 90),   # vehicles 1
    (41, 69, 81, 85, 89),  # vehicles 2
)


def asym_transition(dataset):
    """Class map for asymmetric noise: transition[true class] = noisy class."""
    if dataset == 'cifar10':
        return [CIFAR10_ASYM.get(c, c) for c in range(10)]
    transition = [None] * 100
    for group in CIFAR100_SUPERCLASSES:
        for k, c in enumerate(group):
            transition[c] = group[(k + 1) % len(group)]
    return transition


def make_noisy_labels(clean_labels, r, noise_mode, num_class, seed, transition=None):
    """The authors' noise injection, reproduced exactly.

    Python's `random` is seeded with the integer seed; one shuffle of all indices picks the first
    floor(r*N) as noisy. Visiting indices in order, a noisy index gets randint(0, C-1) for 'sym'
    (the true class can be drawn, so the flip rate is r(1-1/C)) or transition[true] for 'asym'.
    A set (not the authors' list) makes membership O(1); the draws are unchanged.
    'sym_exclusive' (paper Table 6) draws uniformly among the C-1 other classes instead, so
    exactly floor(r*N) labels are wrong.
    """
    rng = random.Random(int(seed))
    n = len(clean_labels)
    order = list(range(n))
    rng.shuffle(order)
    noise_idx = set(order[:int(r * n)])
    noisy = []
    for i in range(n):
        if i not in noise_idx:
            noisy.append(int(clean_labels[i]))
        elif noise_mode == 'sym':
            noisy.append(rng.randint(0, num_class - 1))
        elif noise_mode == 'asym':
            noisy.append(int(transition[clean_labels[i]]))
        elif noise_mode == 'sym_exclusive':
            label = rng.randint(0, num_class - 2)  # skip the true class
            noisy.append(label + int(label >= clean_labels[i]))
        else:
            raise DataError("unknown noise mode %r: use 'sym', 'asym' or 'sym_exclusive'"
                            % noise_mode)
    return noisy


def default_noise_file(data_path, r, noise_mode, seed=123, num_train=None, subset_seed=None):
    """The authors' path `<data_path>/<r:.1f>_<mode>.json` for their default setting (seed 123,
    all images); other seeds and subsets (the first num_train images, or num_train drawn with
    subset_seed) get their own file instead of silently sharing one, and so does a ratio with
    more than one decimal (0.45 would round onto 0.5's file)."""
    name = ('%.1f_%s' if round(r, 1) == r else '%g_%s') % (r, noise_mode)
    if int(seed) != 123:
        name += '_seed%d' % int(seed)
    if num_train is not None:
        name += ('_first%d' % num_train if subset_seed is None else
                 '_random%d_subset%d' % (num_train, subset_seed))
    return os.path.join(data_path, name + '.json')


def training_subset(num_images, num_train=None, subset_seed=None):
    """The training images a run uses: all, the first num_train (a slice), or num_train drawn
    at random with subset_seed, in their original order (an index array)."""
    if subset_seed is None:
        return slice(None, num_train)
    chosen = np.random.RandomState(subset_seed).choice(num_images, num_train, replace=False)
    return np.sort(chosen)


def read_noise_file(path, num_train, num_class):
    """A JSON list with one noisy label per training image, refused when it does not fit."""
    try:
        with open(path) as f:
            labels = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DataError('noise file %s is not readable JSON (%s): delete it to generate new '
                        'labels (with --create_noise_file if it is a --noise_file)'
                        % (path, one_line(e))) from None
    if not isinstance(labels, list):
        found = {dict: 'object', str: 'string', bool: 'boolean', type(None): 'null'}
        raise DataError('noise file %s must be a JSON list of integer labels, not a JSON %s'
                        % (path, found.get(type(labels), 'number')))
    wrong = next((k for k, v in enumerate(labels) if type(v) is not int), None)  # bool too
    if wrong is not None:
        raise DataError('noise file %s must be a JSON list of integer labels: item %d is %.40s'
                        % (path, wrong, json.dumps(labels[wrong])))
    if len(labels) != num_train:
        raise DataError('noise file %s has %d labels but the training set has %d images: '
                        'it belongs to other data' % (path, len(labels), num_train))
    bad = [v for v in labels if not 0 <= v < num_class]
    if bad:
        raise DataError('noise file %s has label %d outside [0, %d): it belongs to another '
                        'dataset' % (path, bad[0], num_class))
    return labels


def write_noise_file(path, labels):
    """Atomic: a kill or a full disk never leaves half a noise file (or its temporary file)."""
    text = json.dumps(labels)
    atomic_write(lambda f: f.write(text.encode()), path, shared=True)  # runs may share data


class _CIFARUnpickler(pickle.Unpickler):
    """Unpickles only what a CIFAR batch or a CIFAR-N file holds (dicts, lists, numpy arrays;
    `_codecs.encode` turns text into bytes under pickle protocol 2): never runs code."""
    ALLOWED = {('numpy', 'ndarray'), ('numpy', 'dtype'),
               ('numpy.core.multiarray', '_reconstruct'),
               ('numpy._core.multiarray', '_reconstruct'), ('_codecs', 'encode')}

    def find_class(self, module, name):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError('forbidden global %s.%s' % (module, name))
        return super().find_class(module, name)


def _read_batch(path, label_key):
    try:
        with open(path, 'rb') as f:
            batch = _CIFARUnpickler(f, encoding='latin1').load()
        data = np.asarray(batch['data'], dtype=np.uint8).reshape(-1, 3, 32, 32)
        labels = np.asarray(batch[label_key])
        if labels.ndim != 1 or (len(labels) and labels.dtype.kind not in 'iu'):
            raise ValueError('%r is not a list of integer labels' % label_key)
        labels = labels.astype(np.int64)
    except Exception as e:  # truncated, foreign or malicious pickle: all mean "re-extract"
        raise DataError('%s is not a readable CIFAR batch (%s: %s): re-extract the official '
                        'archive' % (path, type(e).__name__, one_line(e))) from None
    if not len(data):
        raise DataError('%s holds no images: re-extract the official archive' % path)
    if len(labels) != len(data):
        raise DataError('%s has %d images but %d labels: re-extract the official archive'
                        % (path, len(data), len(labels)))
    return data.transpose(0, 2, 3, 1), labels  # N x 32 x 32 x 3 (HWC, as PIL wants)


def class_names(data_path, dataset):
    """The class names in label order: CIFAR-10's ten; CIFAR-100's fine label names from the
    `meta` pickle beside the data (read through the same allow-list as the batches), or None
    when it is absent or unreadable (the labels then stay integers)."""
    if dataset == 'cifar10':
        return list(CIFAR10_CLASSES)
    folder = find_cifar_folder(data_path, dataset)
    path = os.path.join(folder or data_path, META_FILE[dataset])
    try:
        with open(path, 'rb') as f:
            names = _CIFARUnpickler(f, encoding='latin1').load()['fine_label_names']
    except Exception:  # missing, foreign or damaged: the integers will do
        return None
    if len(names) != NUM_CLASSES[dataset] or not all(isinstance(n, str) for n in names):
        return None
    return list(names)


def find_cifar_folder(data_path, dataset):
    """The folder holding the pickles: `data_path` itself or its torchvision subfolder."""
    subfolder, train_files, test_file, _ = LAYOUT[dataset]
    for folder in (data_path, os.path.join(data_path, subfolder)):
        if all(os.path.isfile(os.path.join(folder, f)) for f in train_files + [test_file]):
            return folder
    return None


def refuse_partial_or_other(data_path, dataset):
    """Called when `dataset`'s pickles are not all found: refuse, before any download, a folder
    that holds only some of them (naming those missing) or the other CIFAR's files (with the
    --dataset that fits)."""
    subfolder, train_files, test_file, _ = LAYOUT[dataset]
    names = train_files + [test_file]
    for folder in (data_path, os.path.join(data_path, subfolder)):
        missing = [f for f in names if not os.path.isfile(os.path.join(folder, f))]
        if 0 < len(missing) < len(names):
            raise DataError('%s lacks %s of the %s files: re-extract the official archive there'
                            ' (python version from https://www.cs.toronto.edu/~kriz/cifar.html)'
                            % (folder, ', '.join(missing), dataset))
    other = 'cifar100' if dataset == 'cifar10' else 'cifar10'
    other_folder, other_train, other_test, _ = LAYOUT[other]
    other_files = [f for f in other_train + [other_test, META_FILE[other]]
                   if os.path.isfile(os.path.join(data_path, f))]
    if (find_cifar_folder(data_path, other) is not None
            or os.path.isdir(os.path.join(data_path, other_folder))
            or os.path.basename(os.path.normpath(data_path)) == other_folder
            or (META_FILE[other] in other_files and len(other_files) > 1)):
        raise DataError('no %s data in %s, but this looks like %s: add --dataset %s (or set '
                        '--data_path to the %s folder)'
                        % (dataset, data_path, PRETTY_NAME[other], other, PRETTY_NAME[dataset]))


def _entries(data_path, subfolder):
    """What a download may write to: the names in `data_path` and in its `subfolder` (as
    relative paths); None when `data_path` does not exist."""
    if not os.path.isdir(data_path):
        return None
    names = set(os.listdir(data_path))
    inner = os.path.join(data_path, subfolder)
    if os.path.isdir(inner):
        names |= {os.path.join(subfolder, name) for name in os.listdir(inner)}
    return names


def _remove(path):
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def download_cifar(data_path, dataset):
    """Fetch and checksum the official archive with torchvision; one clear line when offline,
    and nothing left behind by a failed download."""
    import torchvision.datasets
    cls = {'cifar10': torchvision.datasets.CIFAR10, 'cifar100': torchvision.datasets.CIFAR100}
    print0('%s not found under %s: downloading the official archive' % (dataset, data_path),
           now=True)  # it takes minutes: said before, even while the run's settings wait
    subfolder = LAYOUT[dataset][0]
    before = _entries(data_path, subfolder)
    created = os.path.abspath(data_path)  # the outermost folder the download would create
    while not os.path.exists(os.path.dirname(created)):
        created = os.path.dirname(created)
    try:
        cls[dataset](root=data_path, train=True, download=True)
    except BaseException as e:  # offline, a bad checksum, a kill: remove only what it made
        if before is None:  # data_path did not exist: remove it, with any parents it needed
            _remove(created)
        else:  # a partial archive, a half-extracted folder or the files new in it
            for name in sorted(_entries(data_path, subfolder) - before, reverse=True):
                _remove(os.path.join(data_path, name))
        if not isinstance(e, Exception):
            raise
        raise DataError(
            'could not download %s into %s (%s): download the python version from '
            'https://www.cs.toronto.edu/~kriz/cifar.html, extract it there, or pass --data_path'
            % (dataset, data_path, one_line(e))
        ) from None


def load_cifar(data_path, dataset, download=False):
    """Returns (train_images, train_labels, test_images, test_labels); images N x 32 x 32 x 3."""
    if dataset not in LAYOUT:
        raise DataError("unknown dataset %r: use 'cifar10' or 'cifar100'" % dataset)
    if os.path.exists(data_path) and not os.path.isdir(data_path):
        raise DataError('--data_path %s is a file: set it to the folder that holds the %s '
                        'pickles (or their %s/ folder)' % (data_path, dataset, LAYOUT[dataset][0]))
    folder = find_cifar_folder(data_path, dataset)
    if folder is None:
        refuse_partial_or_other(data_path, dataset)
    if folder is None and download:
        if distributed()[0] == 0:  # under torchrun one process downloads, the others wait
            download_cifar(data_path, dataset)
        barrier()
        folder = find_cifar_folder(data_path, dataset)
    if folder is None:
        subfolder, train_files, test_file, _ = LAYOUT[dataset]
        raise DataError('no %s data in %s: expected %s there or in %s/ (python version from '
                        'https://www.cs.toronto.edu/~kriz/cifar.html); set --data_path or '
                        'add --download'
                        % (dataset, data_path, ', '.join(train_files + [test_file]), subfolder))
    _, train_files, test_file, label_key = LAYOUT[dataset]
    parts = [_read_batch(os.path.join(folder, f), label_key) for f in train_files]
    train_images = np.concatenate([p[0] for p in parts])
    train_labels = np.concatenate([p[1] for p in parts])
    test_images, test_labels = _read_batch(os.path.join(folder, test_file), label_key)
    num_class = NUM_CLASSES[dataset]
    for name, labels in (('training', train_labels), ('test', test_labels)):
        if labels.min() < 0 or labels.max() >= num_class:
            bad = labels.min() if labels.min() < 0 else labels.max()
            raise DataError('%s labels in %s reach %d, but %s has %d classes: is --dataset right?'
                            % (name, folder, bad, dataset, num_class))
    return train_images, train_labels, test_images, test_labels


# CIFAR-N (Wei et al., ICLR 2022): human labels of the CIFAR training images, in the official
# files CIFAR-10_human.pt / CIFAR-100_human.pt (a torch zip holding a dict of numpy arrays).
CIFAR_N_FILES = {'cifar10': 'CIFAR-10_human.pt', 'cifar100': 'CIFAR-100_human.pt'}
CIFAR_N_LABELS = {'cifar10': ('aggre_label', 'random_label1', 'random_label2', 'random_label3',
                              'worse_label'),
                  'cifar100': ('noisy_label',)}


def _integer_labels(value):
    """`value` as a 1-D int64 array, or None when it is not a flat sequence of integers."""
    try:
        labels = np.asarray(value)
    except ValueError:  # ragged nesting
        return None
    if labels.ndim != 1 or labels.dtype.kind not in 'iu':
        return None
    return labels.astype(np.int64)


def read_cifar_n(path, key, clean_labels, num_class=None, chosen=None):
    """The human labels `key` for the training images: of image i, or of the images `chosen`
    (training_subset) when given. Read through the same allow-list as the CIFAR pickles (no
    code runs); refused when a label is outside [0, num_class) (default: the class count of
    the dataset whose CIFAR-N file has `key`) or when the file's own clean labels do not line
    up with the data."""
    if not os.path.isfile(path):
        raise DataError('CIFAR-N file %s %s: get CIFAR-10_human.pt / CIFAR-100_human.pt from '
                        'the CIFAR-N release and pass --cifar_n_file'
                        % (path, 'is a folder' if os.path.isdir(path) else 'does not exist'))
    if num_class is None:
        num_class = NUM_CLASSES['cifar100' if key in CIFAR_N_LABELS['cifar100'] else 'cifar10']
    try:
        with zipfile.ZipFile(path) as z:
            name = next(n for n in z.namelist() if n.endswith('data.pkl'))
            labels = _CIFARUnpickler(io.BytesIO(z.read(name))).load()
    except Exception as e:
        raise DataError('%s is not a readable CIFAR-N file (%s: %s): get CIFAR-10_human.pt / '
                        'CIFAR-100_human.pt from the CIFAR-N release and pass --cifar_n_file'
                        % (path, type(e).__name__, one_line(e))) from None
    if not isinstance(labels, dict) or key not in labels:
        raise DataError('%s has no %r labels; it has %s' % (path, key, one_line(
            ', '.join(sorted(map(str, labels))) if isinstance(labels, dict) else 'no dict')))
    noisy = _integer_labels(labels[key])
    if noisy is None:
        raise DataError('%s: %r is not a list of integer labels: it is not an official CIFAR-N '
                        'file' % (path, key))
    if len(noisy) != NUM_TRAIN:
        raise DataError('%s has %d labels, not one per CIFAR training image (%d): it is not an '
                        'official CIFAR-N file' % (path, len(noisy), NUM_TRAIN))
    outside = (noisy < 0) | (noisy >= num_class)
    if outside.any():
        raise DataError('%s: %r holds label %d (image %d), outside [0, %d): use the official '
                        'CIFAR-N file of this dataset'
                        % (path, key, noisy[outside][0], np.flatnonzero(outside)[0], num_class))
    n = len(clean_labels)
    if n > NUM_TRAIN:
        raise DataError('the training set has %d images, more than the %d CIFAR-N labels: use '
                        'the official CIFAR pickles' % (n, NUM_TRAIN))
    if chosen is None or isinstance(chosen, slice):  # the first images (training_subset)
        chosen = slice(None, n)
    if 'clean_label' in labels:
        clean = _integer_labels(labels['clean_label'])
        if clean is None or not np.array_equal(clean[chosen], clean_labels):
            raise DataError('the clean labels in %s do not match the training set in its '
                            'original order: use the official CIFAR pickles' % path)
    return noisy[chosen].tolist()


def noisy_labels_for(clean_labels, args, chosen=None):
    """CIFAR-N human labels (of the training images `chosen`, training_subset), or synthetic
    noise: read --noise_file (or the default path) when it exists, else generate and save it.
    A --noise_file that does not exist is refused unless --create_noise_file asks to generate
    labels there."""
    if args.noise_mode == 'cifar-n':
        return read_cifar_n(args.cifar_n_file, args.cifar_n_label, clean_labels,
                            args.num_class, chosen), \
            '%s[%s]' % (args.cifar_n_file, args.cifar_n_label)
    # Default: beside the pickles (the authors' <data_path> when it holds them), so CIFAR-10
    # and CIFAR-100 under one parent folder never share a noise file.
    folder = find_cifar_folder(args.data_path, args.dataset) or args.data_path
    path = args.noise_file or default_noise_file(folder, args.r, args.noise_mode, args.seed,
                                                 args.num_train, args.subset_seed)
    if os.path.isdir(path):
        raise DataError('noise file %s is a folder: pass --noise_file the path of a JSON file'
                        % path)
    if os.path.exists(path):
        return read_noise_file(path, len(clean_labels), args.num_class), path
    if args.noise_file:  # a path the user typed: a typo must not silently draw new labels
        if not getattr(args, 'create_noise_file', False):
            raise DataError('noise file %s does not exist: check the path, or add '
                            '--create_noise_file to generate labels there' % path)
        if not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            raise DataError('the folder of noise file %s does not exist: create it, or pass '
                            '--noise_file a path in an existing folder' % path)
    transition = asym_transition(args.dataset) if args.noise_mode == 'asym' else None
    labels = make_noisy_labels(clean_labels, args.r, args.noise_mode, args.num_class,
                               args.seed, transition)
    if distributed()[0] != 0:
        return labels, path  # every rank draws the same labels; rank 0 writes them
    try:
        write_noise_file(path, labels)
    except WriteError as e:
        raise DataError('cannot write the noise file %s (%s): free some space, or pass '
                        '--noise_file a writable path with --create_noise_file'
                        % (path, e.reason)) from None
    print0('save noisy labels to %s' % path)
    return labels, path


def transforms_for(dataset):
    mean, std = MEAN_STD[dataset]
    train = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                       T.ToTensor(), T.Normalize(mean, std)])
    test = T.Compose([T.ToTensor(), T.Normalize(mean, std)])
    return train, test


def strong_transform_for(dataset):
    """AugDesc-WS's strong augmentation: the train transform's crop and flip, then AutoAugment
    with its CIFAR-10 policy (for CIFAR-100 too, as AugDesc)."""
    mean, std = MEAN_STD[dataset]
    return T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(),
                      autoaugment('cifar10'), T.ToTensor(), T.Normalize(mean, std)])


class CIFARLoaders:
    """Builds the authors' loaders from data loaded once:
    warmup (all, train transform, 2B), eval_train (all, test transform), test, and train(pred,
    prob) -> (labeled loader, unlabeled loader), each of batch B with shuffling. strong=True
    (AugDesc-WS): warm-up on strongly augmented images; two strong views more per SSL item."""

    def __init__(self, dataset, train_images, noisy_labels, test_images, test_labels,
                 batch_size, num_workers=0, eval_batch_size=256):
        self.train_images, self.noisy_labels = train_images, np.asarray(noisy_labels)
        self.test_images, self.test_labels = test_images, np.asarray(test_labels)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.eval_batch_size = eval_batch_size
        self.train_transform, self.test_transform = transforms_for(dataset)
        self.strong_transform = strong_transform_for(dataset)

    def _loader(self, dataset, batch_size, shuffle):
        return make_loader(dataset, batch_size, shuffle, self.num_workers)

    def _train_set(self, transform, mode, indices=None, prob=None, strong=None):
        return NoisyLabelDataset(ImageArray(self.train_images), self.noisy_labels, transform,
                                 mode, indices, prob, strong)

    def warmup(self, strong=False):
        transform = self.strong_transform if strong else self.train_transform
        ds = self._train_set(transform, 'all')  # item index = image index
        return self._loader(ds, 2 * self.batch_size, shuffle=True)

    def eval_train(self, indices=None):
        """All training images (or those at `indices`) unaugmented, in order; batches yield
        (image, noisy label, position)."""
        ds = self._train_set(self.test_transform, 'all', indices)
        return self._loader(ds, self.eval_batch_size, shuffle=False)

    def test(self):
        ds = NoisyLabelDataset(ImageArray(self.test_images), self.test_labels,
                               self.test_transform, 'test')
        return self._loader(ds, self.eval_batch_size, shuffle=False)

    def train(self, pred, prob, augment=True, strong=False):
        """Labeled set = indices where pred is True (with their clean prob), unlabeled = rest;
        pred and prob are aligned with the training images. An empty set gives None instead
        of a loader. augment=False (ablation) gives both views without augmentation;
        strong=True adds two strongly augmented views (AugDesc-WS)."""
        pred = np.asarray(pred, dtype=bool)
        labeled_idx, unlabeled_idx = np.flatnonzero(pred), np.flatnonzero(~pred)
        transform = self.train_transform if augment else self.test_transform
        strong = self.strong_transform if strong else None
        labeled = self._train_set(transform, 'labeled', labeled_idx, np.asarray(prob)[labeled_idx],
                                  strong)
        unlabeled = self._train_set(transform, 'unlabeled', unlabeled_idx, strong=strong)
        return tuple(self._loader(ds, self.batch_size, shuffle=True) if len(ds) else None
                     for ds in (labeled, unlabeled))


# ---------------------------------------------------------------- fast path ------------------

def random_crop_flip(images, padding=4):
    """torchvision's RandomCrop(size, padding) + RandomHorizontalFlip() on a whole batch at
    once: images (B, C, H, W) of any dtype, zero padding, each image's crop offsets uniform in
    [0, 2 * padding] and a flip with probability 1/2, drawn from torch's RNG on the images'
    device. One gather does crop and flip together."""
    b, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (padding,) * 4)
    top = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device)
    left = torch.randint(0, 2 * padding + 1, (b, 1), device=images.device)
    flip = torch.rand(b, 1, device=images.device) < 0.5
    rows = top + torch.arange(h, device=images.device)
    cols = left + torch.arange(w, device=images.device)
    cols = torch.where(flip, cols.flip(1), cols)  # a flipped crop reads its columns backwards
    return padded[torch.arange(b, device=images.device)[:, None, None, None],
                  torch.arange(c, device=images.device)[None, :, None, None],
                  rows[:, None, :, None], cols[:, None, None, :]]


class DeviceBatches:
    """A loader over index positions 0..size-1 whose batches `make_batch(positions)` builds
    from tensors already on the training device: no workers, no per-image Python. Shuffles
    with torch's RNG (under torch.distributed: this rank's shard, as make_loader's), keeps the
    last partial batch (drop_last off, as the authors)."""

    def __init__(self, make_batch, size, batch_size, shuffle, device):
        self.make_batch, self.batch_size, self.device = make_batch, batch_size, device
        self.dataset = range(size)  # what callers ask len() of
        self.sampler = ShardSampler(self.dataset, shuffle) if distributed()[1] > 1 else None
        self.shuffle = shuffle

    def __len__(self):
        count = len(self.sampler) if self.sampler is not None else len(self.dataset)
        return -(-count // self.batch_size)

    def __iter__(self):
        if self.sampler is not None:
            order = torch.tensor(list(self.sampler))
        elif self.shuffle:
            order = torch.randperm(len(self.dataset))
        else:
            order = torch.arange(len(self.dataset))
        for positions in order.to(self.device).split(self.batch_size):
            yield self.make_batch(positions)


class DeviceCIFARLoaders:
    """CIFARLoaders' five loaders with the same batches in distribution, built on the training
    device: the images are one uint8 tensor there, augmentation is random_crop_flip on the
    whole batch (both views of a batch in one call), normalisation is one fused op, and eval
    batches are large; strong views add BatchAutoAugment after the crop and flip (the same
    distribution as strong_transform_for). Drop-in for CIFARLoaders (same constructor plus
    device)."""

    def __init__(self, dataset, train_images, noisy_labels, test_images, test_labels,
                 batch_size, device, eval_batch_size=1024):
        def as_tensor(images):  # (N, 32, 32, 3) uint8 -> (N, 3, 32, 32) on the device
            return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2)
        self.train_images, self.test_images = as_tensor(train_images), as_tensor(test_images)
        self.noisy_labels = torch.as_tensor(np.asarray(noisy_labels), device=device).long()
        self.test_labels = torch.as_tensor(np.asarray(test_labels), device=device).long()
        mean, std = (torch.tensor(v, device=device).view(1, 3, 1, 1) for v in MEAN_STD[dataset])
        self.shift, self.scale = 255 * mean, 255 * std  # ToTensor's /255 folded into Normalize
        self.batch_size, self.eval_batch_size, self.device = batch_size, eval_batch_size, device
        self.autoaugment = BatchAutoAugment('cifar10', (32, 32))

    def _normalise(self, images):
        return (images.float() - self.shift) / self.scale

    def _views(self, images, augment=True, copies=2):
        """`copies` independently augmented views of a batch, made in one call."""
        images = images.repeat(copies, 1, 1, 1)
        views = self._normalise(random_crop_flip(images) if augment else images)
        return views.chunk(copies)

    def _strong_views(self, images, copies=2):
        """`copies` strongly augmented views (AugDesc-WS): crop and flip, then AutoAugment."""
        views = self.autoaugment(random_crop_flip(images.repeat(copies, 1, 1, 1)))
        return self._normalise(views).chunk(copies)

    def _loader(self, make_batch, size, batch_size, shuffle):
        return DeviceBatches(make_batch, size, batch_size, shuffle, self.device)

    def warmup(self, strong=False):
        views = self._strong_views if strong else self._views

        def batch(idx):
            return views(self.train_images[idx], copies=1)[0], self.noisy_labels[idx], idx
        return self._loader(batch, len(self.noisy_labels), 2 * self.batch_size, shuffle=True)

    def eval_train(self, indices=None):
        indices = torch.as_tensor(np.arange(len(self.noisy_labels)) if indices is None
                                  else np.asarray(indices), device=self.device)

        def batch(positions):
            idx = indices[positions]
            return self._normalise(self.train_images[idx]), self.noisy_labels[idx], positions
        return self._loader(batch, len(indices), self.eval_batch_size, shuffle=False)

    def test(self):
        def batch(idx):
            return self._normalise(self.test_images[idx]), self.test_labels[idx]
        return self._loader(batch, len(self.test_labels), self.eval_batch_size, shuffle=False)

    def train(self, pred, prob, augment=True, strong=False):
        """As CIFARLoaders.train: (labeled loader, unlabeled loader), None for an empty set."""
        pred = torch.as_tensor(np.asarray(pred, dtype=bool), device=self.device)
        labeled_idx, unlabeled_idx = pred.nonzero()[:, 0], (~pred).nonzero()[:, 0]
        prob = torch.as_tensor(np.asarray(prob), device=self.device).float()[labeled_idx]

        def labeled(positions):
            idx = labeled_idx[positions]
            views = self._views(self.train_images[idx], augment)
            if strong:
                views += self._strong_views(self.train_images[idx])
            return (*views, self.noisy_labels[idx], prob[positions])

        def unlabeled(positions):
            images = self.train_images[unlabeled_idx[positions]]
            views = self._views(images, augment)
            return views + self._strong_views(images) if strong else views

        def loader(make_batch, size):
            return self._loader(make_batch, size, self.batch_size, shuffle=True) if size else None
        return loader(labeled, len(labeled_idx)), loader(unlabeled, len(unlabeled_idx))
