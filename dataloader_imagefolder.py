"""Any image classification dataset with noisy labels: its files and labels, read and checked up
front (ImageFolderData), the transforms of the two networks (transforms_for; the strong ones of
AugDesc-WS: strong_transform_for), and the loaders DivideMix uses (ImageFolderLoaders).

Two layouts:
  folders (torchvision's ImageFolder):
    <data_path>/train/<class>/.../<image>   training images; the folder is the (noisy) label
    <data_path>/test/<class>/...            optional clean test set
    <data_path>/val/<class>/...             optional validation set
    The classes are the sorted names of the train/ class folders; images are found recursively
    under each, by extension (torchvision's IMG_EXTENSIONS, any case), in the order torchvision's
    ImageFolder gives; hidden files and folders (names starting with '.') are skipped.
  label lists (CSV, one '<image path>,<label>' row per image; a 'path,label' header, blank lines
  and a byte-order mark are allowed):
    --train_list, and optionally --test_list and --val_list. Paths are relative to --data_path
    when given, else to the list's own folder. A label is a class name or an integer (a class
    index). The classes are those of --classes_file (one name per line) when given; else
    '0' ... 'max' for integer labels, or the sorted names seen in the training list.
    Test and validation sets come from lists too, never from folders.
An optional --clean_list (same rows; paths relative to --data_path, e.g. train/cat/x.jpg in the
folder layout, else to its own folder) gives the true labels of some or all training images, to
measure the label noise and how well co-divide finds it; DivideMix itself never uses them.

Every list and folder is read, and every image checked (it exists, is not empty and begins as
an image file does: utils.data.check_images), before anything else happens; images are opened
only when a batch needs them (in DataLoader workers), so a dataset larger than memory works, and
one that cannot be decoded stops the run then, by name (utils.data.open_rgb).
Links are followed, to files and to folders; a folder link that leads back to a folder holding
it (a loop) is refused, and so is an image file reached by two paths within a set (a link, or a
path through a linked folder), which would count twice. List paths may lead outside --data_path
(absolute, or through '..'): lists often point into a shared image store.
"""
import csv
import os
import re

import numpy as np
import torch
import torchvision.transforms as T
from torch.utils.data import WeightedRandomSampler
from torchvision.datasets.folder import IMG_EXTENSIONS

from utils.augment import autoaugmented
from utils.cli import InputError, one_line
from utils.data import (ImageFiles, Loader, NoisyLabelDataset, check_images, inside,
                        make_loader)
from utils.distributed import distributed

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

# Per network: the side of the images it sees and the side they are resized to first.
DEFAULTS = {'preact18': dict(image_size=32, resize=32),    # CIFAR-style, trained from scratch
            'resnet50': dict(image_size=224, resize=256)}  # ImageNet-pretrained (Clothing1M)
# Per network: the AutoAugment policy of its strong views (AugDesc-WS): CIFAR-10's for the small
# images preact18 takes, ImageNet's for resnet50's photos (as AugDesc for Clothing1M).
POLICIES = {'preact18': 'cifar10', 'resnet50': 'imagenet'}

HEADER = ['path', 'label']
INTEGER = re.compile(r'-?[0-9]+')  # an integer label is a class index


# ---------------------------------------------------------------- folders --------------------

def _visible(name):
    return not name.startswith('.')


def _class_folders(folder):
    """The class folder names in `folder`, sorted (as torchvision's ImageFolder), hidden ones
    (e.g. .ipynb_checkpoints) left out."""
    with os.scandir(folder) as entries:
        return sorted(e.name for e in entries if e.is_dir() and _visible(e.name))


def _refuse_unlisted(error):
    """os.walk's onerror: a folder that cannot be listed would silently lose its images."""
    raise InputError('cannot list folder %s (%s): make it readable or remove it'
                     % (one_line(error.filename, 1000), one_line(error)))


def _images_under(folder):
    """The image files under `folder`, recursively, in torchvision ImageFolder's order: folder
    by folder (sorted by path), file names sorted within each. Links are followed; a folder
    link to a folder that holds it is refused (os.walk would go round the loop until the path
    grew too long, then stop silently)."""
    found = []
    for parent, subfolders, files in os.walk(folder, onerror=_refuse_unlisted, followlinks=True):
        subfolders[:] = [name for name in subfolders if _visible(name)]
        real_parent = os.path.realpath(parent)
        for name in subfolders:
            link = os.path.join(parent, name)
            target = os.path.realpath(link)
            if os.path.islink(link) and os.path.commonpath([real_parent, target]) == target:
                raise InputError('folder link %s leads to %s, which holds the link: its images '
                                 'would be read over and over; remove the link'
                                 % (one_line(link, 1000), one_line(target, 1000)))
        found.append((parent, sorted(name for name in files if _visible(name)
                                     and name.lower().endswith(IMG_EXTENSIONS))))
    return [os.path.join(parent, name) for parent, names in sorted(found) for name in names]


def _read_folder(root, split, classes=None):
    """(paths relative to root, labels, classes) of <root>/<split>/<class>/... With `classes`
    (the training classes) a class folder outside them is refused; without, the folders are
    the classes."""
    split_dir = os.path.join(root, split)
    names = _class_folders(split_dir)
    if not names:
        raise InputError("%s holds no class folders: put each class's images in %s/<class>/ "
                         "(torchvision's ImageFolder layout)" % (split_dir, split_dir))
    if classes is None:
        classes = names
    extra = [name for name in names if name not in classes]
    if extra:
        raise InputError('%s has class folder %r, a class the training set lacks (its classes '
                         'are the folders in %s): rename or remove the folder'
                         % (split_dir, extra[0], os.path.join(root, 'train')))
    index = {name: i for i, name in enumerate(classes)}
    paths, labels = [], []
    for name in names:
        images = _images_under(os.path.join(split_dir, name))
        if not images:
            raise InputError('class folder %s holds no images (%s, any case): add its images '
                             'or remove the folder' % (os.path.join(split_dir, name),
                                                       ' '.join(IMG_EXTENSIONS)))
        paths += images
        labels += [index[name]] * len(images)
    relpaths = [os.path.relpath(path, root) for path in paths]
    check_images(paths, 'images in %s' % split_dir, 'replace it with a good copy or remove it',
                 distinct=True, shown=relpaths)
    return relpaths, np.asarray(labels, dtype=np.int64), classes


# ---------------------------------------------------------------- lists ----------------------

def _refuse_missing_file(path, what):
    if not os.path.isfile(path):
        raise InputError('%s %s %s: pass the path of a CSV file of "<image path>,<label>" rows'
                         % (what, path, 'is a folder' if os.path.isdir(path) else
                            'does not exist'))


def _read_rows(path, what):
    """(line number, image path, label text) of every row of a '<image path>,<label>' CSV
    list, in file order. Skips a leading 'path,label' header, blank lines and a byte-order mark;
    refuses a row that is not two non-empty fields, and a path listed twice."""
    _refuse_missing_file(path, what)
    rows, line_of = [], {}  # line_of: normalised path -> the line that lists it
    header_allowed, end = True, 0
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:  # -sig: a BOM is dropped
            reader = csv.reader(f)
            try:
                for fields in reader:
                    n, end = end + 1, reader.line_num  # a quoted field may span lines
                    fields = [field.strip() for field in fields]
                    if not any(fields):
                        continue  # a blank line
                    if header_allowed and [field.lower() for field in fields] == HEADER:
                        header_allowed = False
                        continue
                    header_allowed = False
                    where = '%s:%d' % (path, n)
                    if len(fields) != 2 or not fields[0] or not fields[1]:
                        raise InputError('%s: expected "<image path>,<label>", got %.80r: fix '
                                         'or delete the line' % (where, ','.join(fields)))
                    key = os.path.normpath(fields[0])
                    if key in line_of:
                        raise InputError('%s: %s is listed twice (first on line %d): keep one '
                                         'line' % (where, one_line(fields[0]), line_of[key]))
                    line_of[key] = n
                    rows.append((n, fields[0], fields[1]))
            except csv.Error as e:  # a NUL byte, an unclosed quote at the end, ...
                raise InputError('%s:%d: not a CSV row (%s): fix the line'
                                 % (path, end + 1, one_line(e))) from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError('cannot read %s %s (%s): save it as UTF-8 text'
                         % (what, path, one_line(e))) from None
    if not rows:
        raise InputError('%s %s lists no images: write one "<image path>,<label>" row per image'
                         % (what, path))
    return rows


def _read_classes(path):
    """Class names, one per line, in file order (a class's index is its position)."""
    if not os.path.isfile(path):
        raise InputError('--classes_file %s %s: pass a text file with one class name per line'
                         % (path, 'is a folder' if os.path.isdir(path) else 'does not exist'))
    classes = []
    try:
        with open(path, encoding='utf-8-sig') as f:
            for n, line in enumerate(f, 1):
                name = line.strip()
                if not name:
                    continue
                if name in classes:
                    raise InputError('%s:%d: class %r is listed twice: keep one line'
                                     % (path, n, name))
                # An integer label is an index into this list: a class named by another
                # integer would make labels ambiguous.
                if INTEGER.fullmatch(name) and int(name) != len(classes):
                    raise InputError('%s:%d: class name %r is an integer other than its index %d'
                                     ' (integer labels are indices into this list): list the '
                                     'classes in order or give them names'
                                     % (path, n, name, len(classes)))
                classes.append(name)
    except (OSError, UnicodeDecodeError) as e:
        raise InputError('cannot read --classes_file %s (%s): save it as UTF-8 text'
                         % (path, one_line(e))) from None
    if not classes:
        raise InputError('--classes_file %s lists no classes: write one class name per line'
                         % path)
    return classes


def _classes_of(rows, path):
    """The classes the training labels imply: '0' ... 'max' for integers, else the sorted
    names. A list that mixes both is refused."""
    is_integer = [INTEGER.fullmatch(label) is not None for _, _, label in rows]
    if all(is_integer):
        negative = next((row for row in rows if int(row[2]) < 0), None)
        if negative:
            raise InputError('%s:%d: label %s is negative: labels are class names or class '
                             'indices 0, 1, ...' % (path, negative[0], negative[2]))
        return [str(i) for i in range(max(int(label) for _, _, label in rows) + 1)]
    if not any(is_integer):
        return sorted({label for _, _, label in rows})
    k = is_integer.index(not is_integer[0])
    raise InputError('%s:%d: label %r is %s but line %d has %s %r: use class names or integers '
                     'throughout, or pass --classes_file'
                     % (path, rows[k][0], rows[k][2], 'an integer' if is_integer[k] else 'a name',
                        rows[0][0], 'a name' if is_integer[k] else 'an integer', rows[0][2]))


def _describe(classes):
    """'0 ... 9' for integer classes, else 'indices 0 ... 2 or cat, dog, fox' (5 names at most)."""
    last = len(classes) - 1
    if classes == [str(i) for i in range(len(classes))]:
        return '0 ... %d' % last
    return 'indices 0 ... %d or %s%s' % (last, ', '.join(classes[:5]),
                                         ', ...' if len(classes) > 5 else '')


def _label_indices(rows, path, classes, fix):
    """The class index of each row's label: an integer indexes `classes`, a name must be one
    of them; anything else is refused with `fix`."""
    index = {name: i for i, name in enumerate(classes)}
    labels = []
    for n, _, label in rows:
        if INTEGER.fullmatch(label):
            i = int(label) if 0 <= int(label) < len(classes) else None
        else:
            i = index.get(label)
        if i is None:
            raise InputError('%s:%d: label %r is not among the %d classes (%s): %s'
                             % (path, n, label, len(classes), _describe(classes), fix))
        labels.append(i)
    return np.asarray(labels, dtype=np.int64)


def _read_list(path, rows, root, classes, fix):
    """(paths as listed, absolute paths, labels) of a list's rows, given its classes; every
    listed image must pass utils.data.check_images, each file listed once."""
    root = root or os.path.dirname(os.path.abspath(path))
    relpaths = [image for _, image, _ in rows]
    paths = [os.path.join(root, image) for image in relpaths]
    labels = _label_indices(rows, path, classes, fix)
    check_images(paths, 'images listed in %s' % path,
                 'fix their paths (relative to %s) or restore the images' % root, distinct=True)
    return relpaths, paths, labels


# ---------------------------------------------------------------- the dataset ----------------

class ImageFolderData:
    """The images and labels of one dataset, read and checked up front (see the module
    docstring for the two layouts); each problem is one InputError naming the file (and line)
    and the fix.
      classes, num_class            class names (label i is classes[i]) and their count
      train_paths, train_labels     absolute paths and the given (noisy) labels, int64
      train_relpaths                the paths as listed (folders: relative to data_path)
      test_paths, test_labels       the clean test set, or None
      val_paths, val_labels         the validation set, or None
      clean_labels                  --clean_list's true labels aligned with train, -1 where it
                                    has none; None without --clean_list
      layout                        'folders' or 'lists'
      root                          data_path as an absolute path, or None
    """

    def __init__(self, data_path=None, train_list=None, test_list=None, val_list=None,
                 classes_file=None, clean_list=None):
        self.root = None
        if data_path is not None:
            if not os.path.isdir(data_path):
                raise InputError('--data_path %s %s: pass the folder that holds train/<class>/'
                                 ' (or the one the paths in --train_list are relative to)'
                                 % (data_path, 'is a file' if os.path.exists(data_path)
                                    else 'does not exist'))
            self.root = os.path.abspath(data_path)
        self.test_paths = self.test_labels = self.val_paths = self.val_labels = None
        if train_list is not None:
            self.layout = 'lists'
            self._read_lists(train_list, test_list, val_list, classes_file)
        elif self.root is None:
            raise InputError('no training images: pass --data_path (a folder holding '
                             "train/<class>/<image>, torchvision's ImageFolder layout) or "
                             '--train_list (a CSV of "<image path>,<label>" rows)')
        else:
            stray = [flag for flag, value in (('--test_list', test_list),
                                              ('--val_list', val_list),
                                              ('--classes_file', classes_file)) if value]
            if stray:
                raise InputError('%s %s only with --train_list: in the folder layout the '
                                 'classes are the folders in train/ and the test and validation'
                                 ' images lie in test/<class>/ and val/<class>/; drop %s or '
                                 'pass --train_list' % (' and '.join(stray),
                                                        'works' if len(stray) == 1 else 'work',
                                                        ' and '.join(stray)))
            self.layout = 'folders'
            self._read_folders()
        self.num_class = len(self.classes)
        self.clean_labels = None
        if clean_list is not None:
            self.clean_labels = self._read_clean(clean_list)

    def _read_folders(self):
        train = os.path.join(self.root, 'train')
        if not os.path.isdir(train):
            raise InputError("%s has no train/ folder: put the training images in "
                             "train/<class>/<image> (torchvision's ImageFolder layout) or pass "
                             "--train_list" % self.root)
        self.train_relpaths, self.train_labels, self.classes = _read_folder(self.root, 'train')
        self._refuse_one_class(train)
        self.train_paths = [os.path.join(self.root, p) for p in self.train_relpaths]
        for split in ('test', 'val'):
            if os.path.isdir(os.path.join(self.root, split)):
                relpaths, labels, _ = _read_folder(self.root, split, self.classes)
                setattr(self, split + '_paths', [os.path.join(self.root, p) for p in relpaths])
                setattr(self, split + '_labels', labels)

    def _read_lists(self, train_list, test_list, val_list, classes_file):
        rows = _read_rows(train_list, '--train_list')
        if classes_file is not None:
            self.classes = _read_classes(classes_file)
            fix = 'fix the line, or add the class to %s' % classes_file
        else:
            self.classes = _classes_of(rows, train_list)
            fix = 'fix the line'
        self._refuse_one_class(classes_file or train_list)
        self.train_relpaths, self.train_paths, self.train_labels = _read_list(
            train_list, rows, self.root, self.classes, fix)
        for split, path in (('test', test_list), ('val', val_list)):
            if path is not None:
                rows = _read_rows(path, '--%s_list' % split)
                _, paths, labels = _read_list(
                    path, rows, self.root, self.classes,
                    'the training set has no such class; fix the line or delete it')
                setattr(self, split + '_paths', paths)
                setattr(self, split + '_labels', labels)

    def _refuse_one_class(self, source):
        if len(self.classes) < 2:
            raise InputError('the training set has one class (%s, from %s): DivideMix needs '
                             'at least 2 classes' % (self.classes[0], source))

    def _read_clean(self, path):
        """True labels of training images, matched by path; -1 for the images it lacks."""
        rows = _read_rows(path, '--clean_list')
        root = self.root or os.path.dirname(os.path.abspath(path))
        position = {os.path.normpath(p): i for i, p in enumerate(self.train_paths)}
        labels = _label_indices(rows, path, self.classes, 'fix the line or delete it')
        clean = np.full(len(self.train_paths), -1, dtype=np.int64)
        for (n, image, _), label in zip(rows, labels):
            i = position.get(os.path.normpath(os.path.join(root, image)))
            if i is None:
                raise InputError('%s:%d: %s is not a training image (paths are relative to %s): '
                                 'fix the line or delete it' % (path, n, one_line(image), root))
            clean[i] = label
        return clean

    def refuse_output_inside(self, out_dir):
        """An InputError where `out_dir` (or the folder a link there points to) lies where
        this data set's images are read from: in the folder layout train/, test/ and val/
        (every image below them is read), with lists each list's deepest common folder. The
        run's figures would be read as images of a class by the next run."""
        listed = (self.train_paths, self.test_paths or [], self.val_paths or [])
        folders = ([os.path.join(self.root, split) for split in ('train', 'test', 'val')]
                   if self.layout == 'folders' else
                   [os.path.commonpath([os.path.dirname(p) for p in paths])
                    for paths in listed if paths])
        for folder in folders:
            if os.path.isdir(folder) and inside(out_dir, folder):
                raise InputError('--out_dir %s is inside %s, where the images of this data set '
                                 "are read from: the run's outputs would be read as images by "
                                 'the next run; pass an --out_dir outside it' % (out_dir, folder))

    @property
    def train_keys(self):
        """What names each training image whatever its label (so a relabelled image is told
        from one added): in the folder layout its path below its class folder, in a list its
        path as listed."""
        if self.layout == 'folders':
            return [path.split(os.sep, 2)[2] for path in self.train_relpaths]
        return list(self.train_relpaths)

    def keep_train(self, count, seed):
        """Train on `count` of the training images drawn at random (seeded, in their listed
        order; a quick run on a large set): every class keeps about its share."""
        if count > len(self.train_paths):
            raise InputError('--num_train %d is more than the %d training images there are'
                             % (count, len(self.train_paths)))
        keep = np.sort(np.random.RandomState(seed).permutation(len(self.train_paths))[:count])
        self.train_relpaths = [self.train_relpaths[i] for i in keep]
        self.train_paths = [self.train_paths[i] for i in keep]
        self.train_labels = self.train_labels[keep]
        if self.clean_labels is not None:
            self.clean_labels = self.clean_labels[keep]


# ---------------------------------------------------------------- transforms -----------------

def transforms_for(arch, image_size, resize, mean, std):
    """(train transform, test transform) for a network: PIL image of any size -> float tensor
    3 x image_size x image_size, normalised with mean and std. Both first resize the shorter
    side to `resize` and crop to image_size (test: the centre).
      'preact18' (small images, trained from scratch): train adds CIFAR's augmentation on the
                 centre crop, a random crop with padding image_size // 8 and a flip
      'resnet50' (ImageNet-pretrained, as for Clothing1M): train crops at random and flips
    """
    if arch not in DEFAULTS:
        raise InputError('unknown network %r: use %s' % (arch, ' or '.join(DEFAULTS)))
    if resize < image_size:
        raise InputError('--resize %d is smaller than --image_size %d: images are resized to '
                         '--resize, then cropped to --image_size' % (resize, image_size))
    to_tensor = [T.ToTensor(), T.Normalize(mean, std)]
    centre = [T.Resize(resize), T.CenterCrop(image_size)]
    if arch == 'preact18':
        train = centre + [T.RandomCrop(image_size, padding=image_size // 8),
                          T.RandomHorizontalFlip()]
    else:
        train = [T.Resize(resize), T.RandomCrop(image_size), T.RandomHorizontalFlip()]
    return T.Compose(train + to_tensor), T.Compose(centre + to_tensor)


def strong_transform_for(arch, image_size, resize, mean, std):
    """AugDesc-WS's strong augmentation for a network: its train transform (transforms_for)
    with AutoAugment after the crop and flip, with the policy POLICIES gives the network."""
    train, _ = transforms_for(arch, image_size, resize, mean, std)
    return autoaugmented(train, POLICIES[arch])


# ---------------------------------------------------------------- loaders --------------------

class ImageFolderLoaders:
    """Builds DivideMix's loaders from an ImageFolderData (the API of CIFARLoaders):
      warmup()              all training images, train transform, batch 2B, shuffled
      eval_train(indices)   all training images (or those at indices) in order, test transform;
                            items (image, noisy label, position)
      train(pred, prob)     -> (labeled, unlabeled) loaders, batch B, shuffled; None for an
                            empty set
      test(), val()         clean labels, test transform, in order; None when the set is absent
    B = batch_size; eval_train, test and val use eval_batch_size (default 4B).
    balanced_warmup: warm-up draws images with replacement, each with weight 1 / (its class's
    count), as many as there are training images, so each class is seen about equally often;
    the draws come from torch's global RNG, so seeding torch and saving its state cover them.
    Under torch.distributed it is ignored: each process reads its usual shard.
    strong_transform (strong_transform_for): warmup(strong=True) warms up on it, and
    train(..., strong=True) adds two views with it to each item (AugDesc-WS).
    """

    def __init__(self, data, batch_size, num_workers, train_transform, test_transform,
                 eval_batch_size=None, balanced_warmup=False, strong_transform=None):
        if len(data.train_paths) < batch_size:
            raise InputError('the training set has %d images, fewer than one batch '
                             '(--batch_size %d): lower --batch_size'
                             % (len(data.train_paths), batch_size))
        self.data, self.batch_size, self.num_workers = data, batch_size, num_workers
        self.train_transform, self.test_transform = train_transform, test_transform
        self.eval_batch_size = eval_batch_size or 4 * batch_size
        self.balanced_warmup = balanced_warmup
        self.strong_transform = strong_transform

    def _loader(self, dataset, batch_size, shuffle):
        return make_loader(dataset, batch_size, shuffle, self.num_workers)

    def _train_set(self, transform, mode, indices=None, prob=None, strong=None):
        return NoisyLabelDataset(ImageFiles(self.data.train_paths), self.data.train_labels,
                                 transform, mode, indices, prob, strong)

    def _strong(self):
        if self.strong_transform is None:
            raise ValueError('strong views need the loaders built with a strong_transform')
        return self.strong_transform

    def warmup(self, strong=False):
        transform = self._strong() if strong else self.train_transform
        ds = self._train_set(transform, 'all')  # item index = image index
        if not self.balanced_warmup or distributed()[1] > 1:
            return self._loader(ds, 2 * self.batch_size, shuffle=True)
        labels = self.data.train_labels
        weights = 1.0 / np.bincount(labels, minlength=self.data.num_class)[labels]
        sampler = WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double),
                                        num_samples=len(ds), replacement=True)
        return Loader(ds, batch_size=2 * self.batch_size, sampler=sampler,
                      num_workers=self.num_workers, pin_memory=torch.cuda.is_available())

    def eval_train(self, indices=None):
        """All training images (or those at `indices`) unaugmented, in order; batches yield
        (image, noisy label, position)."""
        ds = self._train_set(self.test_transform, 'all', indices)
        return self._loader(ds, self.eval_batch_size, shuffle=False)

    def train(self, pred, prob, augment=True, strong=False):
        """Labeled set = images where pred is True (with their clean prob), unlabeled = rest;
        pred and prob are aligned with the training images. An empty set gives None instead
        of a loader. augment=False (ablation) gives both views without augmentation;
        strong=True adds two strongly augmented views (AugDesc-WS)."""
        pred, prob = np.asarray(pred, dtype=bool), np.asarray(prob)
        if not len(pred) == len(prob) == len(self.data.train_paths):
            raise ValueError('pred and prob need one value per training image (%d): got %d, %d'
                             % (len(self.data.train_paths), len(pred), len(prob)))
        labeled_idx, unlabeled_idx = np.flatnonzero(pred), np.flatnonzero(~pred)
        transform = self.train_transform if augment else self.test_transform
        strong = self._strong() if strong else None
        labeled = self._train_set(transform, 'labeled', labeled_idx, prob[labeled_idx], strong)
        unlabeled = self._train_set(transform, 'unlabeled', unlabeled_idx, strong=strong)
        return tuple(self._loader(ds, self.batch_size, shuffle=True) if len(ds) else None
                     for ds in (labeled, unlabeled))

    def _clean_set(self, paths, labels):
        if paths is None:
            return None
        ds = NoisyLabelDataset(ImageFiles(paths), labels, self.test_transform, 'test')
        return self._loader(ds, self.eval_batch_size, shuffle=False)

    def test(self):
        return self._clean_set(self.data.test_paths, self.data.test_labels)

    def val(self):
        return self._clean_set(self.data.val_paths, self.data.val_labels)
