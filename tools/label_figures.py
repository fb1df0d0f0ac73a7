"""The label errors as pictures, from a labels file and the data folder:

    python tools/figures.py labels LABELS_CSV [--data_path FOLDER] [--per_class 8]
                                              [--classes NAME ...] [--max_classes 20] [--out FOLDER]

LABELS_CSV is the <run>_labels.csv a Train_*.py run wrote at its end, or the
<run>_labels_epoch<E>.csv of tools/export_labels.py (the columns: utils/label_export.py). Into
FOLDER (default: the labels file's folder), named after the labels file:

  <labels>_gallery.png    per class of given label, the --per_class training images with the
                          lowest label_quality (files written before that column: the mean
                          clean probability over the networks' columns), most suspicious first
                          (ties: a confident prediction of another class first); each tile
                          titled "given → predicted" (class names where the file or the data
                          has them), its quality q and, where known, its true label; red
                          titles: flagged as noisy
  <labels>_confusion.png  the images flagged as noisy (flagged_noisy 1), counted by given label
                          (rows) and predicted label (columns): where the noise goes

The images: a CIFAR file (empty path column) is read by index from the CIFAR-10 or CIFAR-100
pickles under the data folder (the training set in its original order); any other file opens
<data folder>/<path>. The data folder is --data_path, else the one the run's <run>_args.json
beside the labels file names. The gallery's classes: --classes, else those with flagged
images; the confusion's: those of the flagged images, given or predicted. Either way at most
--max_classes of them (the most flagged), so CIFAR-100 or WebVision stay readable.

Bad input (no labels file, a CSV that is not one, no data folder, an image that is not there,
a figure that exists already: files are never overwritten) is one line, exit code 2, and
nothing is written.
"""
import collections
import csv
import json
import os
import re
import sys
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
from utils.cli import (ArgumentParser, InputError, one_line,  # noqa: E402 (after the path)
                       run_cli)
from utils.label_export import COLUMNS, COLUMNS_BEFORE, TRUE_COLUMN  # noqa: E402
from utils.runs import script_of  # noqa: E402
from tools.drawing import (DPI, Figure, drawn_here,  # noqa: E402
                           refuse_without_matplotlib, save_png)

PER_CLASS = 8      # gallery tiles per class (one row each)
MAX_CLASSES = 20   # gallery rows and confusion classes at most: 20 rows of 8 still read well
NAME_CHARS = 14    # a class name longer than this is cut in a tile's title
GIVE = ('give the <run>_labels.csv a Train_*.py run wrote, or the <run>_labels_epoch<E>.csv '
        'of tools/export_labels.py')
LABELS_NAME = re.compile(r'(.+)_labels(_epoch\d+)?\.csv$')  # <run>_labels[_epoch<E>].csv


# ---------------------------------------------------------------- the labels file ------------

@dataclass
class Labels:
    """The rows of a labels file, as arrays aligned by row."""
    path: str
    index: np.ndarray      # int64: the image's position in the training set
    paths: list            # str: relative to the data folder; '' for CIFAR
    given: np.ndarray      # str: the label it was trained with (a name, or an integer as text)
    predicted: np.ndarray  # str
    quality: np.ndarray    # float64: label_quality (files written before it: the mean clean
                           # probability over the networks' columns), low = more suspicious
    confidence: np.ndarray  # float64
    flagged: np.ndarray    # bool
    true: np.ndarray       # str, '' where unknown; None without a true_label column

    @property
    def in_memory(self):
        """True for a CIFAR file: no paths, images read by index from the pickles."""
        return not any(self.paths)


def _number(text):
    try:
        return float(text)
    except ValueError:
        return np.inf  # not a probability either


def read_labels(path):
    """The labels file at `path`, every row checked: a missing file, a file without the
    labels header, or a row that does not fit it is one InputError saying what to fix."""
    if not os.path.isfile(path):
        raise InputError('no labels file %s (%s): %s' % (
            path, 'a folder' if os.path.isdir(path) else 'not found', GIVE))
    headers = [list(columns) + extra for columns in (COLUMNS, COLUMNS_BEFORE)
               for extra in ([], [TRUE_COLUMN])]
    rows, lines = [], []
    try:
        with open(path, encoding='utf-8-sig', newline='') as f:  # -sig: a spreadsheet's BOM
            reader = csv.reader(f)
            header = next(reader, [])
            if header not in headers:
                raise InputError('%s is not a labels file: its first line is %.80r, not %s[,%s]'
                                 '; %s' % (path, ','.join(header), ','.join(COLUMNS),
                                           TRUE_COLUMN, GIVE))
            for fields in reader:
                if len(fields) != len(header):
                    raise InputError('%s:%d: %d fields where the header has %d: this row is not '
                                     'what a labels file holds; %s'
                                     % (path, reader.line_num, len(fields), len(header), GIVE))
                rows.append(fields)
                lines.append(reader.line_num)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError('cannot read %s (%s): %s' % (path, one_line(e), GIVE)) from None
    if not rows:
        raise InputError('%s holds no image rows: %s' % (path, GIVE))
    column = dict(zip(header, (np.array(texts, object) for texts in zip(*rows))))

    def refuse_first(bad, what):
        """One line naming the first row where `bad` (a mask over the rows) holds."""
        if bad.any():
            k = int(np.argmax(bad))
            raise InputError('%s:%d: %s: this row is not what a labels file holds; %s'
                             % (path, lines[k], what(k), GIVE))

    refuse_first(np.array([not (t.isascii() and t.isdigit()) for t in column['index']]),
                 lambda k: 'index %r is not a position in the training set' % column['index'][k])
    first = {}  # index -> its first row
    refuse_first(np.array([first.setdefault(int(t), k) != k
                           for k, t in enumerate(column['index'])]),
                 lambda k: 'index %s again (first at line %d): one row per training image'
                 % (column['index'][k], lines[first[int(column['index'][k])]]))
    refuse_first((column['given_label'] == '') | (column['predicted_label'] == ''),
                 lambda k: 'an empty given or predicted label')
    for name in ('flagged_noisy', 'flagged_co_divide'):
        if name in column:  # (no flagged_co_divide in a file written before it)
            refuse_first(~np.isin(column[name], ['0', '1']),
                         lambda k: '%s %r is not 0 or 1' % (name, column[name][k]))
    probs = {}
    for name in ('clean_prob_net1', 'clean_prob_net2', 'confidence', 'label_quality'):
        if name not in column:  # a file written before label_quality
            continue
        empty = column[name] == ''
        values = np.array([_number(t) for t in column[name]], np.float64)
        values[empty] = np.nan
        bad = ~((values >= 0) & (values <= 1))  # also NaN
        refuse_first(bad & ~empty if name == 'clean_prob_net2' else bad,
                     lambda k: '%s %r is not a probability' % (name, column[name][k]))
        probs[name] = values
    refuse_first((column['path'] == '') if column['path'][0] else (column['path'] != ''),
                 lambda k: 'a path %s, unlike the first row' % ('missing' if column['path'][0]
                                                                 else 'given'))
    # before label_quality the ranking was the mean over the networks' clean probabilities
    # that are not empty (net2's is, with one network)
    quality = probs.get('label_quality', np.where(
        np.isnan(probs['clean_prob_net2']), probs['clean_prob_net1'],
        (probs['clean_prob_net1'] + probs['clean_prob_net2']) / 2))
    return Labels(path, column['index'].astype(np.int64), list(column['path']),
                  column['given_label'], column['predicted_label'], quality,
                  probs['confidence'], column['flagged_noisy'] == '1',
                  column.get(TRUE_COLUMN))


# ---------------------------------------------------------------- the run and its data -------

def run_args(labels_path):
    """The saved arguments of the run that wrote a labels file (<run>_args.json beside
    <run>_labels.csv or <run>_labels_epoch<E>.csv); None when there are none."""
    match = LABELS_NAME.fullmatch(os.path.basename(labels_path))
    if match is None:
        return None
    path = os.path.join(os.path.dirname(labels_path), match.group(1) + '_args.json')
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            args = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError('%s is not readable JSON (%s): pass --data_path, or restore it'
                         % (path, one_line(e))) from None
    return args if isinstance(args, dict) else None


def run_data_path(args):
    """The folder a run's image paths are relative to, as its arguments name it (an image
    folder run with lists and no --data_path: the training list's folder); None if unknown."""
    if args.get('data_path'):
        return args['data_path']
    if args.get('train_list'):
        return os.path.dirname(os.path.abspath(args['train_list']))
    return None


def run_class_names(args):
    """The class names of a run in label order, from its saved arguments and its data (for a
    run whose files do not hold them); None where the data is gone or names no classes."""
    script, data_path = script_of(args), args.get('data_path')
    try:
        if script == 'Train_cifar.py':
            from dataloader_cifar import class_names
            return class_names(data_path or '', args.get('dataset', 'cifar10'))
        if script == 'Train_clothing1M.py':
            from dataloader_clothing1M import CLASS_NAMES
            return list(CLASS_NAMES) if args.get('num_class', 14) == len(CLASS_NAMES) else None
        if script == 'Train_webvision.py' and data_path:
            from dataloader_webvision import SYNSETS, read_class_names
            return read_class_names(os.path.join(data_path, SYNSETS), args.get('num_class', 50))
        if script == 'Train_imagefolder.py':  # as ImageFolderData finds them, without images
            import dataloader_imagefolder as folder
            if args.get('classes_file'):
                return folder._read_classes(args['classes_file'])
            if args.get('train_list'):
                return folder._classes_of(folder._read_rows(args['train_list'], '--train_list'),
                                          args['train_list'])
            if data_path:
                return folder._class_folders(os.path.join(data_path, 'train')) or None
    except (InputError, OSError):
        return None
    return None


def _cifar_dataset(folder, args):
    """'cifar10' or 'cifar100': the run's --dataset, else whichever pickles `folder` holds."""
    from dataloader_cifar import PRETTY_NAME, find_cifar_folder
    found = [d for d in ('cifar10', 'cifar100') if find_cifar_folder(folder, d)]
    if args and args.get('dataset') in PRETTY_NAME:
        if args['dataset'] in found:
            return args['dataset']
        raise InputError('%s holds no %s pickles (the run\'s dataset): pass --data_path, the '
                         'folder holding the pickles the run read'
                         % (folder, PRETTY_NAME[args['dataset']]))
    if len(found) == 1:
        return found[0]
    raise InputError('%s %s: pass --data_path, the folder holding the pickles the run read'
                     % (folder, 'holds both CIFAR-10 and CIFAR-100' if found else
                        'holds no CIFAR-10 or CIFAR-100 pickles (a labels file without paths '
                        'is a CIFAR run\'s)'))


class Data:
    """The images of a labels file and the class names its data gives: CIFAR pickles read by
    index, or image files relative to a folder."""

    def __init__(self, labels, data_path=None):
        args = run_args(labels.path)
        given_path = data_path is not None
        if data_path is None:
            if args is None:
                raise InputError('no --data_path, and no <run>_args.json beside %s to find the '
                                 'run\'s data: pass --data_path' % labels.path)
            data_path = run_data_path(args)
            if data_path is None:
                raise InputError('the run\'s arguments beside %s name no data folder: pass '
                                 '--data_path' % labels.path)
        if not os.path.isdir(data_path):
            raise InputError('--data_path %s is not a folder: pass the folder the run read its '
                             'data from' % data_path if given_path else
                             'the run\'s data folder %s is not there (moved, or relative to '
                             'another folder): pass --data_path' % one_line(data_path, 1000))
        self.folder, self.labels = data_path, labels
        self.names = run_class_names(args) if args else None
        self.images = None
        if labels.in_memory:
            self._read_cifar(args)

    def _read_cifar(self, args):
        from dataloader_cifar import PRETTY_NAME, class_names, load_cifar
        dataset = _cifar_dataset(self.folder, args)
        images, true, _, _ = load_cifar(self.folder, dataset)
        names = class_names(self.folder, dataset)
        self.names = self.names or names
        where = '%s (%s under %s)' % (self.labels.path, PRETTY_NAME[dataset], self.folder)
        if self.labels.index.max() >= len(images):
            raise InputError('%s: index %d, but the training set has %d images: the labels file '
                             'belongs to other data; pass --data_path, the folder the run read'
                             % (where, self.labels.index.max(), len(images)))
        if self.labels.true is not None:  # the truth the file holds is the pickles' own
            known = self.labels.true != ''  # (by name, or as an integer where it has no names)
            as_name = np.array([names[c] if names else str(c) for c in true], object)
            as_integer = np.array([str(c) for c in true], object)
            wrong = np.flatnonzero(known & (self.labels.true != as_name[self.labels.index])
                                   & (self.labels.true != as_integer[self.labels.index]))
            if len(wrong):
                k = wrong[0]
                raise InputError('%s: image %d has true_label %s but is a %s there: the labels '
                                 'file belongs to other data; pass --data_path, the folder the '
                                 'run read' % (where, self.labels.index[k],
                                               one_line(self.labels.true[k]),
                                               as_name[self.labels.index[k]]))
        self.images = images

    def image_path(self, row):
        return os.path.join(self.folder, self.labels.paths[row])

    def check_images(self, rows):
        """Refuse, in one line, rows whose image file is not there."""
        if self.images is not None:
            return
        missing = [r for r in rows if not os.path.isfile(self.image_path(r))]
        if missing:
            raise InputError('%d of the %d images to show are not there, e.g. %s (index %d in %s):'
                             ' pass --data_path, the folder the paths are relative to'
                             % (len(missing), len(rows), one_line(self.image_path(missing[0]),
                                                                  1000),
                                self.labels.index[missing[0]], self.labels.path))

    def thumbnail(self, row, side=128):
        """The image of a row as a PIL image of at most side x side pixels."""
        from PIL import Image
        if self.images is not None:
            return Image.fromarray(self.images[self.labels.index[row]])
        from utils.data import open_rgb
        img = open_rgb(self.image_path(row))
        img.thumbnail((side, side))
        return img


# ---------------------------------------------------------------- what is shown --------------

def _is_integer(label):
    return re.fullmatch(r'-?[0-9]+', label) is not None


def display_names(labels, names):
    """{label in the file: the name to show}: the label itself, or, where the file holds
    integers and the data names the classes, the class's name."""
    seen = set(labels.given) | set(labels.predicted)
    if labels.true is not None:
        seen |= set(labels.true) - {''}
    if names and all(_is_integer(x) and 0 <= int(x) < len(names) for x in seen):
        return {x: names[int(x)] for x in seen}
    return {x: x for x in seen}


def class_order(labels, names=None):
    """The classes of a file in label order: the data's order (`names`) where it holds every
    label, else integers by value or names sorted."""
    seen = set(labels.given) | set(labels.predicted)
    if names and seen <= set(names):
        return [x for x in names if x in seen]
    if all(_is_integer(x) for x in seen):
        return sorted(seen, key=int)
    return sorted(seen)


def flagged_per_class(labels, classes):
    """How many flagged images each class has as given label, in `classes` order."""
    flagged = labels.given[labels.flagged]
    return np.array([(flagged == c).sum() for c in classes], np.int64)


def chosen_classes(labels, classes, wanted=None, max_classes=MAX_CLASSES):
    """The classes to show, in label order, and a line saying what was left out (or None).
    wanted: the --classes given (names, or integers as the file has them); else the classes
    with flagged images (every class when none is flagged), at most max_classes of them: those
    with the most flagged images."""
    if wanted:
        unknown = [c for c in wanted if c not in classes]
        if unknown:
            raise InputError('--classes %s: no such label in %s (its labels: %s%s)'
                             % (unknown[0], labels.path, ', '.join(classes[:12]),
                                ', ...' if len(classes) > 12 else ''))
        return [c for c in classes if c in wanted], None
    counts = flagged_per_class(labels, classes)
    candidates = [c for c, n in zip(classes, counts) if n] or list(classes)
    if len(candidates) <= max_classes:
        return candidates, None
    count = dict(zip(classes, counts))
    ranked = sorted(candidates, key=lambda c: (-count[c], classes.index(c)))[:max_classes]
    note = ('%d of the %d classes%s shown (the most flagged): choose others with --classes'
            % (max_classes, len(candidates), ' with flagged images' if counts.any() else ''))
    return [c for c in classes if c in ranked], note


def most_suspicious(labels, classes, per_class=PER_CLASS):
    """{class: rows}: per class of given label, the per_class rows with the lowest label
    quality, lowest first. Ties (common among the clean probabilities older files rank by,
    at 0.000000): a prediction of another class first, the more confident first, then the
    lower index."""
    agrees = labels.predicted == labels.given
    order = np.lexsort((labels.index, -labels.confidence, agrees, labels.quality))
    chosen = {c: [] for c in classes}
    for row in order:
        picked = chosen.get(labels.given[row])
        if picked is not None and len(picked) < per_class:
            picked.append(int(row))
    return chosen


def confusion_counts(labels, classes):
    """counts[i, j]: flagged images given classes[i] and predicted classes[j], and how many
    flagged images fall outside `classes` (given or predicted)."""
    position = {c: k for k, c in enumerate(classes)}
    counts = np.zeros((len(classes), len(classes)), np.int64)
    outside = 0
    for given, predicted in zip(labels.given[labels.flagged], labels.predicted[labels.flagged]):
        if given in position and predicted in position:
            counts[position[given], position[predicted]] += 1
        else:
            outside += 1
    return counts, outside


def _short(name):
    return name if len(name) <= NAME_CHARS else name[:NAME_CHARS - 1] + '…'


# ---------------------------------------------------------------- the figures ----------------

def gallery_figure(labels, data, classes, per_class, shown):
    """Per class a row of its most suspicious images (most_suspicious), titled given →
    predicted, with the label quality and the true label where known."""
    chosen = most_suspicious(labels, classes, per_class)
    columns = max(1, max(len(rows) for rows in chosen.values()))
    counts = dict(zip(classes, flagged_per_class(labels, classes)))
    fig = Figure(figsize=(max(6.5, 1.3 * columns + 1.3), 1.55 * len(classes) + 0.8), dpi=DPI,
                 layout='constrained')
    fig.suptitle('%s\nper given label, the images with the lowest label quality q '
                 '(red: flagged noisy)' % os.path.basename(labels.path), fontsize='medium')
    for r, c in enumerate(classes):
        for k in range(columns):
            ax = fig.add_subplot(len(classes), columns, r * columns + k + 1)
            ax.set_xticks([])
            ax.set_yticks([])
            if k == 0:
                ax.set_ylabel('%s\n%d flagged' % (_short(shown[c]), counts[c]),
                              rotation=0, ha='right', va='center', fontsize='small')
            if k >= len(chosen[c]):
                ax.set_frame_on(False)
                continue
            row = chosen[c][k]
            ax.imshow(data.thumbnail(row))
            ax.set_title('%s → %s' % (_short(shown[labels.given[row]]),
                                      _short(shown[labels.predicted[row]])),
                         fontsize=7, color='tab:red' if labels.flagged[row] else '0.2')
            below = 'q %.3f' % labels.quality[row]
            if labels.true is not None and labels.true[row] != '':
                below += '  true %s' % _short(shown[labels.true[row]])
            ax.set_xlabel(below, fontsize=6.5, labelpad=1)
    return fig


def confusion_figure(labels, classes, note, shown):
    """The flagged images as a matrix of counts: given label (rows) by predicted label."""
    counts, outside = confusion_counts(labels, classes)
    side = min(14.0, 3.5 + 0.42 * len(classes))
    fig = Figure(figsize=(side + 1.5, side), dpi=DPI, layout='constrained')
    ax = fig.add_subplot()
    image = ax.imshow(counts, cmap='Blues', vmin=0)
    fig.colorbar(image, ax=ax, shrink=0.8, label='flagged images')
    ticks = np.arange(len(classes))
    names = [_short(shown[c]) for c in classes]
    fontsize = 'small' if len(classes) <= 20 else 6
    ax.set_xticks(ticks, names, rotation=60, ha='right', rotation_mode='anchor',
                  fontsize=fontsize)
    ax.set_yticks(ticks, names, fontsize=fontsize)
    ax.set_xlabel('predicted label')
    ax.set_ylabel('given label (trained with)')
    top = counts.max() if counts.size else 0
    for i, j in zip(*np.nonzero(counts)):
        ax.text(j, i, str(counts[i, j]), ha='center', va='center',
                fontsize=8 if len(classes) <= 20 else 5,
                color='white' if counts[i, j] > 0.55 * top else 'black')
    title = ('%s\nthe %d images flagged as noisy, by given and predicted label'
             % (os.path.basename(labels.path), labels.flagged.sum()))
    if outside:
        title += '\n(%d of them have a label outside the %d classes shown)' % (outside,
                                                                             len(classes))
    if note:
        title += '\n(%s)' % note
    ax.set_title(title, fontsize='medium')
    return fig


# ---------------------------------------------------------------- the command ----------------

def output_paths(labels_path, out=None):
    """Where the two figures go: `out`, else beside the labels file, named after it."""
    folder = out if out is not None else os.path.dirname(os.path.abspath(labels_path))
    stem = os.path.splitext(os.path.basename(labels_path))[0]
    return (os.path.join(folder, stem + '_gallery.png'),
            os.path.join(folder, stem + '_confusion.png'))


def _refuse_unwritable(paths, out, replace_drawn=False):
    for path in paths:
        if os.path.lexists(path) and not (replace_drawn and drawn_here(path)):
            raise InputError('%s exists and is never overwritten: pass --out with another folder'
                             ' (or move the file away)' % path)
    folder = os.path.dirname(paths[0])
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise InputError('--out %s is a file: pass a folder' % out)
    existing = folder
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.access(existing, os.W_OK):
        raise InputError('cannot write into %s: pass --out in a writable folder' % existing)


def write_label_figures(labels_path, data_path=None, per_class=PER_CLASS, classes=None,
                        max_classes=MAX_CLASSES, out=None, replace_drawn=False):
    """Draw the gallery and the confusion figure of a labels file (module docstring); every
    input is read and checked, and every image opened, before anything is written. Prints
    each path written; returns them. replace_drawn: figures drawn here before (a run's own,
    drawn again when it ends after a resume) are replaced; other files never are."""
    paths = output_paths(labels_path, out)
    _refuse_unwritable(paths, out, replace_drawn)  # first: a refusal costs no reading
    labels = read_labels(labels_path)
    data = Data(labels, data_path)
    order = class_order(labels, data.names)
    shown = display_names(labels, data.names)
    wanted = None
    if classes:  # names as shown, or the labels as the file holds them
        by_name = {name: label for label, name in shown.items()}
        wanted = [by_name.get(c, c) for c in classes]
    chosen, note = chosen_classes(labels, order, wanted, max_classes)
    rows = [r for picked in most_suspicious(labels, chosen, per_class).values() for r in picked]
    data.check_images(rows)
    gallery = gallery_figure(labels, data, chosen, per_class, shown)
    confusion = matrix_note = None
    if labels.flagged.any():  # the classes of the flagged images (not only --classes)
        matrix_classes, matrix_note = confusion_classes(labels, order, max_classes)
        confusion = confusion_figure(labels, matrix_classes, matrix_note, shown)
    for figure, line in (('gallery', note), ('confusion', matrix_note)):
        if line:
            print('%s: %s' % (figure, line))
    written = [save_png(gallery, paths[0])]  # (save_png makes the folder)
    if confusion is None:
        print('%s not drawn: no image in %s is flagged as noisy' % (paths[1], labels_path))
    else:
        written.append(save_png(confusion, paths[1]))
    return written


def confusion_classes(labels, order, max_classes):
    """The classes of the confusion matrix: those of flagged images (given or predicted), at
    most max_classes, those in the most flagged pairs; and a note when some are left out."""
    involved = set(labels.given[labels.flagged]) | set(labels.predicted[labels.flagged])
    classes = [c for c in order if c in involved]
    if len(classes) <= max_classes:
        return classes, None
    count = collections.Counter(labels.given[labels.flagged])
    count.update(labels.predicted[labels.flagged])
    ranked = sorted(classes, key=lambda c: (-count[c], order.index(c)))[:max_classes]
    return ([c for c in classes if c in ranked],
            '%d of the %d classes of flagged images shown (the most flagged): choose others '
            'with --classes' % (max_classes, len(classes)))


def positive(text):
    value = int(text)
    if value < 1:
        raise ValueError(text)
    return value


def parser(prog=None):
    p = ArgumentParser(prog=prog, description='The label errors as pictures: the most '
                       'suspicious training images per class, and where the flagged images\' '
                       'labels go, from a labels file and the data folder.')
    p.add_argument('labels_csv', help='<run>_labels.csv of a run, or tools/export_labels.py\'s '
                                      '<run>_labels_epoch<E>.csv')
    p.add_argument('--data_path', help='the data folder the run read (default: the one its '
                                       '<run>_args.json beside the file names); CIFAR: the '
                                       'pickles\' folder or its parent')
    p.add_argument('--per_class', type=positive, default=PER_CLASS,
                   help='gallery images per class (default %d)' % PER_CLASS)
    p.add_argument('--classes', nargs='+', metavar='NAME',
                   help='the gallery shows these classes (names, or integers where the file '
                        'has no names); default: those with flagged images')
    p.add_argument('--max_classes', type=positive, default=MAX_CLASSES,
                   help='show at most this many classes, the most flagged: gallery rows '
                        '(without --classes) and confusion classes (default %d)' % MAX_CLASSES)
    p.add_argument('--out', help='folder for the PNGs (default: the labels file\'s folder); '
                                 'existing files are never overwritten')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    return p


def main(argv=None, prog=None):
    args = parser(prog).parse_args(argv)
    refuse_without_matplotlib()
    return write_label_figures(args.labels_csv, args.data_path, args.per_class, args.classes,
                               args.max_classes, args.out)


if __name__ == '__main__':
    sys.exit(run_cli(main))
