"""The data contract every loader follows: a dataset of images with noisy labels that yields
what each stage of DivideMix needs (NoisyLabelDataset), and the DataLoader every script uses
(with per-process shards under torch.distributed). Image files on disk are checked twice: all
present, not empty and images by their first bytes before training starts (check_images), each
decodable when read (open_rgb)."""
import os
import stat
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler

from utils.cli import InputError, TrainingError, one_line
from utils.distributed import distributed, print0


class ShardSampler(Sampler):
    """This process's share of a dataset under torch.distributed: with shuffling, a fresh
    permutation per pass whose seed comes from numpy's global RNG (kept identical on all ranks),
    padded so every rank runs the same number of steps; without, every world_size-th index."""

    def __init__(self, dataset, shuffle):
        self.size, self.shuffle = len(dataset), shuffle
        self.rank, self.world_size = distributed()
        self.per_rank = -(-self.size // self.world_size) if shuffle else len(
            range(self.rank, self.size, self.world_size))

    def __len__(self):
        return self.per_rank

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.rank, self.size, self.world_size))
        order = np.random.RandomState(np.random.randint(2 ** 31)).permutation(self.size)
        order = np.resize(order, self.per_rank * self.world_size)  # pad by wrapping around
        return iter(order[self.rank::self.world_size].tolist())


def usable_cpus():
    """The CPUs this process may run on (torch's count for its DataLoader warning)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count()


def default_workers(most):
    """A script's default --num_workers: with a GPU, `most`, or the CPUs this process may use
    where there are fewer (more workers than CPUs only slows loading down); without one, 0:
    the training threads use every core, and workers beside them slowed an SSL epoch of
    Train_imagefolder.py 2.6x on 2 cores (results/cpu_workers)."""
    if not torch.cuda.is_available():
        return 0
    return max(1, min(most, usable_cpus() or most))


_workers_said = []


def say_workers_once(num_workers):
    """One warning line per process when `num_workers` exceeds the usable CPUs."""
    cpus = usable_cpus()
    if _workers_said or not cpus or num_workers <= cpus:
        return
    _workers_said.append(num_workers)
    print0("warning: --num_workers %d is more than the %d CPUs this process may use, which "
           "can slow data loading down: lower it (a seeded run's augmentations depend on "
           "the number of workers)" % (num_workers, cpus), file=sys.stderr)


class Loader(DataLoader):
    """torch's DataLoader, whose warning about more workers than CPUs comes once per process,
    as the workers first start (after every start-up check: a refused run prints its error
    line alone). torch's own warns when each loader is made and at every pass, and Python
    shows it again after each GMM fit: sklearn's input checks enter warnings.catch_warnings,
    which resets the record of warnings already shown."""

    def check_worker_number_rationality(self):
        pass  # said by __iter__, once

    def __iter__(self):
        if self.num_workers > 0:
            say_workers_once(self.num_workers)
        return super().__iter__()


def make_loader(dataset, batch_size, shuffle, num_workers=0):
    """The DataLoader every script uses. Single process: plain shuffling (drop_last off, as the
    authors). Under torch.distributed: each rank reads its own shard (see ShardSampler)."""
    sampler = ShardSampler(dataset, shuffle) if distributed()[1] > 1 else None
    return Loader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                  sampler=sampler, num_workers=num_workers, pin_memory=torch.cuda.is_available())


def ssl_batches(labeled_loader, unlabeled_loader, device):
    """The mini-batches of an SSL epoch, on `device`: each labeled batch (x1, x2, labels,
    clean_prob) with the next unlabeled batch (u1, u2), the unlabeled loader restarting whenever
    it runs out, as in the authors' code; u1 = u2 = None when there is no unlabeled set. Each
    comes with `strong`: () or, with strong augmentation, the strong views (xs1, xs2, us1, us2)
    (us1 = us2 = None without an unlabeled set)."""
    unlabeled_iter = iter(unlabeled_loader) if unlabeled_loader is not None else None
    for x1, x2, *strong_x, labels, clean_prob in labeled_loader:
        u1 = u2 = None
        strong_u = [None] * len(strong_x)
        if unlabeled_iter is not None:
            try:
                u1, u2, *strong_u = next(unlabeled_iter)
            except StopIteration:
                unlabeled_iter = iter(unlabeled_loader)
                u1, u2, *strong_u = next(unlabeled_iter)
            u1, u2 = u1.to(device), u2.to(device)
        strong = tuple(None if v is None else v.to(device) for v in strong_x + strong_u)
        yield (x1.to(device), x2.to(device), labels.to(device), clean_prob.to(device), u1, u2,
               strong)


def inside(path, folder):
    """Whether `path` is `folder` or lies below it, links followed (the places they point to)."""
    path, folder = os.path.realpath(path), os.path.realpath(folder)
    return os.path.commonpath([path, folder]) == folder


def open_rgb(path):
    """The image at `path` as RGB. A file PIL cannot decode (damaged after a good header, gone
    since the up-front check) is one TrainingError naming it: met mid-run, it stops the run with
    its last checkpoint kept. 16-bit and 32-bit grey images are scaled to 8 bits first (PIL's
    convert would clip every value above 255 to white)."""
    try:
        with Image.open(path) as img:
            if img.mode.startswith('I') or img.mode == 'F':
                return Image.fromarray(_eight_bits(np.asarray(img)), 'L').convert('RGB')
            return img.convert('RGB')
    except Exception as e:  # missing, unidentified, truncated, decompression bomb: all "bad file"
        raise TrainingError('cannot read image %s (%s): replace it with a good copy from the '
                            'dataset archive' % (one_line(path, 1000), one_line(e))) from None


def _eight_bits(grey):
    """A grey image of any integer or float type as uint8: 16-bit (and 'I' images holding
    16-bit values) divided by 257, floats in [0, 1] times 255, anything else clipped."""
    if grey.dtype == np.uint16 or (grey.dtype.kind in 'iu' and grey.max(initial=0) > 255):
        grey = grey / 257.0
    elif grey.dtype.kind == 'f' and grey.max(initial=0) <= 1:
        grey = grey * 255.0
    return np.clip(np.rint(grey), 0, 255).astype(np.uint8)


# ---------------------------------------------------------------- the up-front check ---------

# The first bytes (magic numbers) of the image formats a dataset holds that PIL decodes.
IMAGE_SIGNATURES = (('JPEG', (b'\xff\xd8\xff',)), ('PNG', (b'\x89PNG\r\n\x1a\n',)),
                    ('GIF', (b'GIF87a', b'GIF89a')), ('BMP', (b'BM',)),
                    ('TIFF', (b'II*\x00', b'MM\x00*')),
                    ('PPM', tuple(b'P%d' % k for k in range(1, 8))),  # PBM, PGM, PPM, PAM
                    ('JPEG 2000', (b'\x00\x00\x00\x0cjP  \r\n', b'\xffO\xffQ')),
                    ('ICO', (b'\x00\x00\x01\x00',)))
HEAD_BYTES = 16
# Files in the page cache take ~12 us each in one thread, and more in several (they contend for
# Python's lock); files that wait on a disk or a network (~0.1-10 ms each) are read in threads,
# which overlap the waits (results/input_check).
CHECK_CHUNK = 1024  # the first chunk, timed in this thread, says which
WAITING_FILE_SECONDS = 100e-6
CHECK_THREADS, THREAD_CHUNK = 16, 64


def image_format(head):
    """The format whose magic number `head` (a file's first bytes) starts with, or None."""
    if head[:4] == b'RIFF' and head[8:12] == b'WEBP':
        return 'WebP'
    return next((name for name, magics in IMAGE_SIGNATURES if head.startswith(magics)), None)


def _inspect(path):
    """(what is wrong with the image file at `path` that a stat and its first bytes show, or
    None; its (st_dev, st_ino), or None)."""
    try:
        info = os.stat(path)  # follows links: a link to an image is that image
        if not stat.S_ISREG(info.st_mode):
            return ('a folder' if stat.S_ISDIR(info.st_mode) else 'not a regular file'), None
        if info.st_size == 0:
            return 'empty', None
        with open(path, 'rb') as f:
            head = f.read(HEAD_BYTES)
    except FileNotFoundError:  # also a link whose target is gone
        return 'missing', None
    except OSError as e:
        return 'unreadable: %s' % one_line(e), None
    if image_format(head) is None:
        return 'not an image file: it begins with %s, no image format\'s first bytes' % (
            one_line(repr(head[:8]))), None
    return None, (info.st_dev, info.st_ino)


def _inspect_all(paths):
    """_inspect of each path, in order: in this thread while the files come from the cache, in
    CHECK_THREADS threads when the first chunk shows them waiting on the storage."""
    start = time.perf_counter()
    results = [_inspect(p) for p in paths[:CHECK_CHUNK]]
    rest = paths[CHECK_CHUNK:]
    if time.perf_counter() - start < WAITING_FILE_SECONDS * len(results) or not rest:
        return results + [_inspect(p) for p in rest]
    with ThreadPoolExecutor(CHECK_THREADS) as pool:
        chunks = pool.map(lambda chunk: [_inspect(p) for p in chunk],
                          [rest[i:i + THREAD_CHUNK] for i in range(0, len(rest), THREAD_CHUNK)])
        return results + [result for chunk in chunks for result in chunk]


def check_images(paths, what, fix, distinct=False, shown=None):
    """Refuse, before training starts, a list of image files of which any is missing, empty or
    not an image (its first bytes are no format's in IMAGE_SIGNATURES, nor WebP's), in one line
    naming the first bad one and counting them all: `what` says which images (e.g. 'images
    listed in X'), `fix` how to restore them. With `distinct`, the same file reached by two of
    the paths (a link to it, or another path through a linked folder) is refused too, naming
    both. `shown`: the paths as the message shows them (default `paths`). A stat and 16 bytes
    per file: ~12 s per million cached files (docs/data.md). A file whose header is fine
    but whose data is damaged is found only when decoded (open_rgb)."""
    shown = paths if shown is None else shown
    results = _inspect_all(list(paths))
    bad = [(i, problem) for i, (problem, _) in enumerate(results) if problem]
    if bad:
        i, problem = bad[0]
        if all(problem == 'missing' for _, problem in bad):
            raise InputError('%d of the %d %s are missing, e.g. %s: %s'
                             % (len(bad), len(paths), what, one_line(shown[i], 1000), fix))
        raise InputError('%d of the %d %s are missing, empty or not images, e.g. %s is %s: %s'
                         % (len(bad), len(paths), what, one_line(shown[i], 1000), problem, fix))
    if distinct:
        first = {}  # (st_dev, st_ino) -> the first path that reached the file
        for i, (_, file_id) in enumerate(results):
            j = first.setdefault(file_id, i)
            if j != i:
                raise InputError('%s and %s are the same image file (a link, or a path through '
                                 'a linked folder), so it would count twice among the %s: keep '
                                 'one' % (one_line(shown[j], 1000), one_line(shown[i], 1000),
                                          what))


class ImageFiles:
    """Images on disk (Clothing1M, WebVision), opened when indexed: files[i] = open_rgb(paths[i]).
    Holds only the paths, so it is cheap to pickle into DataLoader workers."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return open_rgb(self.paths[i])


class ImageArray:
    """Images in memory (CIFAR), an N x H x W x 3 uint8 array: arr[i] is a PIL image."""

    def __init__(self, array):
        self.array = array

    def __len__(self):
        return len(self.array)

    def __getitem__(self, i):
        return Image.fromarray(self.array[i])


class NoisyLabelDataset(Dataset):
    """Every loader's dataset: `images` (ImageFiles or ImageArray) with `labels` aligned to them
    (noisy for training, clean for testing). `indices` selects the subset (image indices, default
    all); `prob[k]` is item k's clean probability. What item k is depends on `mode`:
      'all':       (img, label, k)          warm-up and co-divide; k is the position in this
                                            dataset, not the image index (that is indices[k];
                                            the two agree when indices is None), so the
                                            per-sample losses fill exactly len(dataset) slots
                                            and no zeros reach the GMM (the authors'
                                            Clothing1M code lets zeros in)
      'labeled':   (img_view1, img_view2, label, clean_prob)
      'unlabeled': (img_view1, img_view2)
      'test':      (img, label)
    Every view is a fresh call of `transform` (so two augmentations per labeled/unlabeled item).
    With a `strong_transform` (AugDesc-WS, utils/augment.py) a labeled or unlabeled item has two
    more views, after the first two: (view1, view2, strong1, strong2[, label, clean_prob]).
    """
    MODES = ('all', 'labeled', 'unlabeled', 'test')

    def __init__(self, images, labels, transform, mode, indices=None, prob=None,
                 strong_transform=None):
        if mode not in self.MODES:
            raise ValueError('mode %r is not one of %s' % (mode, ', '.join(self.MODES)))
        self.images, self.labels, self.transform, self.mode = images, labels, transform, mode
        self.strong_transform = strong_transform
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        if mode == 'labeled' and (prob is None or len(prob) != len(self.indices)):
            raise ValueError("'labeled' needs one clean prob per item (prob is aligned with "
                             "indices): got %s for %d items"
                             % ('none' if prob is None else len(prob), len(self.indices)))
        self.prob = prob

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = int(self.indices[k])
        img = self.images[i]
        if self.mode == 'all':
            return self.transform(img), int(self.labels[i]), k
        if self.mode in ('labeled', 'unlabeled'):
            views = (self.transform(img), self.transform(img))
            if self.strong_transform is not None:
                views += (self.strong_transform(img), self.strong_transform(img))
            if self.mode == 'unlabeled':
                return views
            return views + (int(self.labels[i]), float(self.prob[k]))
        return self.transform(img), int(self.labels[i])
