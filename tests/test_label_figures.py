"""tools/label_figures.py (python tools/figures.py labels LABELS_CSV): the label errors as
pictures, from labels files written here by the project's own writer (utils/label_export.py)
for a tiny fake CIFAR-10, a tiny CIFAR-100 and a tiny image folder; and the class names of
Fig. 4 for image-folder runs. Everything is read and written inside pytest's tmp_path."""
import collections
import csv
import json
import os

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from conftest import files_under, write_fake_cifar
from dataloader_cifar import CIFAR10_CLASSES, load_cifar
from test_imagefolder_data import make_image_folder
from tools import figures
from tools import label_figures as lf
from utils import snapshots
from utils.cli import InputError, run_cli
from utils.label_export import write_labels_csv

CLASSES = ['cat', 'dog', 'fox']


def noisy_run(true, num_class, seed=0, one_net=False):
    """Per-image given labels (40% redrawn), clean probabilities (one or two networks),
    predictions, confidences, label qualities and both flags, at random: what a run's end
    writes."""
    rng = np.random.RandomState(seed)
    n = len(true)
    given = np.where(rng.rand(n) < 0.4, rng.randint(0, num_class, n), true)
    probs = [rng.rand(n)] if one_net else [rng.rand(n), rng.rand(n)]
    quality = rng.rand(n)
    return dict(given=given, clean_probs=probs, predicted=rng.randint(0, num_class, n),
                confidence=rng.rand(n), quality=quality, flagged=(quality < 0.4).astype(int),
                flagged_by_co_divide=(np.mean(probs, axis=0) <= 0.5).astype(int))


def cifar_labels(tmp_path, run_name='cifar10_0.5_sym', args=True, one_net=False):
    """A fake CIFAR-10 under tmp_path/data and the labels file of a run on it in tmp_path/run,
    with the run's _args.json beside it (args=False: none). Returns (csv path, data folder,
    the arrays written)."""
    data = str(tmp_path / 'data')
    write_fake_cifar(data, 'cifar10', num_train=200)
    _, true, _, _ = load_cifar(data, 'cifar10')
    run = noisy_run(true, 10, one_net=one_net)
    os.makedirs(str(tmp_path / 'run'), exist_ok=True)
    path = str(tmp_path / 'run' / (run_name + '_labels.csv'))
    write_labels_csv(path, true=true, class_names=list(CIFAR10_CLASSES), **run)
    if args:
        with open(str(tmp_path / 'run' / (run_name + '_args.json')), 'w') as f:
            json.dump({'script': 'Train_cifar.py', 'dataset': 'cifar10', 'data_path': data}, f)
    return path, data, dict(run, true=true)


def folder_labels(tmp_path, per_class=5):
    """A tiny image folder (tmp_path/images/train/<cat|dog|fox>/...) and a labels file of an
    image-folder run on it in tmp_path/run, paths relative to the data folder."""
    data = tmp_path / 'images'
    made = make_image_folder(data / 'train', per_class=per_class, size=16)
    relpaths = [os.path.join('train', p) for p, _ in made]
    true = np.array([CLASSES.index(c) for _, c in made])
    run = noisy_run(true, 3, seed=1)
    os.makedirs(str(tmp_path / 'run'), exist_ok=True)
    path = str(tmp_path / 'run' / 'imagefolder_labels.csv')
    write_labels_csv(path, paths=relpaths, class_names=CLASSES, **run)
    with open(str(tmp_path / 'run' / 'imagefolder_args.json'), 'w') as f:
        json.dump({'script': 'Train_imagefolder.py', 'data_path': str(data)}, f)
    return path, str(data), dict(run, paths=relpaths)


def error_of(argv, capsys):
    """Run the command; it must refuse in one line with exit code 2. Returns the line."""
    capsys.readouterr()
    assert run_cli(figures.main, ['labels'] + argv) == 2
    captured = capsys.readouterr()
    assert captured.out == '' and captured.err.count('\n') == 1, captured
    assert captured.err.startswith('error: ')
    return captured.err


def rows_of(path):
    with open(path, newline='') as f:
        return list(csv.reader(f))


def write_rows(path, rows):
    with open(path, 'w', newline='') as f:
        csv.writer(f, lineterminator='\n').writerows(rows)


# ---------------------------------------------------------------- reading and choosing -------

def test_reading_takes_the_label_quality_and_the_flag(tmp_path):
    path, _, run = cifar_labels(tmp_path)
    labels = lf.read_labels(path)
    np.testing.assert_allclose(labels.quality, run['quality'], atol=1e-6)  # 6 decimals on disk
    assert labels.given.tolist() == [CIFAR10_CLASSES[c] for c in run['given']]
    assert labels.flagged.tolist() == run['flagged'].astype(bool).tolist()
    assert labels.in_memory and labels.index.tolist() == list(range(200))


def test_a_file_written_before_label_quality_ranks_by_the_mean_clean_probability(tmp_path):
    path, _, run = cifar_labels(tmp_path)
    rows = rows_of(path)
    keep = [rows[0].index(name) for name in lf.COLUMNS_BEFORE + ('true_label',)]
    write_rows(path, [[row[k] for k in keep] for row in rows])  # as the file was then
    labels = lf.read_labels(path)
    p1, p2 = run['clean_probs']
    np.testing.assert_allclose(labels.quality, (p1 + p2) / 2, atol=1e-6)
    assert labels.flagged.tolist() == run['flagged'].astype(bool).tolist()
    # one network: net2's column is empty, the mean is net1's alone
    one, _, run = cifar_labels(tmp_path / 'one', one_net=True)
    rows = rows_of(one)
    write_rows(one, [[row[k] for k in keep] for row in rows])
    assert rows_of(one)[1][4] == ''
    np.testing.assert_allclose(lf.read_labels(one).quality, run['clean_probs'][0], atol=1e-6)


def test_most_suspicious_images_per_class_lowest_first(tmp_path):
    rows = [list(lf.COLUMNS_BEFORE)] + [
        [i, '', given, p1, p2, predicted, confidence, flag]
        for i, (given, p1, p2, predicted, confidence, flag) in enumerate([
            ('a', '0.9', '0.9', 'b', '0.5', 0),    # 0: a, mean 0.9
            ('a', '0.1', '0.3', 'b', '0.5', 1),    # 1: a, 0.2
            ('b', '0.5', '', 'a', '0.5', 1),       # 2: b, 0.5 (one network)
            ('a', '0.0', '0.2', 'b', '0.5', 1),    # 3: a, 0.1
            ('a', '0.2', '0.2', 'b', '0.5', 1),    # 4: a, 0.2: as 1, later index
            ('b', '0.05', '0.05', 'a', '0.5', 1),  # 5: b, 0.05
            ('c', '0.0', '0.0', 'a', '0.5', 1),    # 6: c, not shown
            ('a', '0.2', '0.2', 'a', '0.99', 1),   # 7: a, 0.2, predicted as given: after 1, 4
            ('a', '0.2', '0.2', 'b', '0.7', 1)])]  # 8: a, 0.2, more confident: before 1, 4
    path = str(tmp_path / 'x_labels.csv')
    write_rows(path, rows)
    labels = lf.read_labels(path)
    assert lf.most_suspicious(labels, ['a', 'b'], per_class=5) == {'a': [3, 8, 1, 4, 7],
                                                                   'b': [5, 2]}
    assert lf.most_suspicious(labels, ['b', 'a'], per_class=1) == {'b': [5], 'a': [3]}
    # the same as sorting each class by mean clean probability, on a real file
    path, _, _ = cifar_labels(tmp_path / 'big')
    labels = lf.read_labels(path)
    chosen = lf.most_suspicious(labels, list(CIFAR10_CLASSES), per_class=4)
    for c, picked in chosen.items():
        mine = sorted(np.flatnonzero(labels.given == c), key=lambda r: labels.quality[r])
        assert picked == mine[:4]


def test_classes_shown_and_their_cap(tmp_path):
    names = ['c%03d' % k for k in range(30)]
    given = [names[k % 30] for k in range(90)]
    flagged = [int(k < 60 or k % 30 == 7) for k in range(90)]  # c007 most flagged (3 times)
    rows = [list(lf.COLUMNS_BEFORE)] + [[i, '', given[i], '0.1', '0.1', 'c000', '0.5', flagged[i]]
                                 for i in range(90)]
    path = str(tmp_path / 'y_labels.csv')
    write_rows(path, rows)
    labels = lf.read_labels(path)
    order = lf.class_order(labels)
    assert order == sorted(names)
    shown, note = lf.chosen_classes(labels, order, max_classes=30)
    assert shown == names and note is None
    shown, note = lf.chosen_classes(labels, order, max_classes=5)
    assert len(shown) == 5 and shown[0] == 'c000' and 'c007' in shown  # in label order
    assert note.startswith('5 of the 30 classes with flagged images shown')
    assert lf.chosen_classes(labels, order, ['c009', 'c001'])[0] == ['c001', 'c009']
    with pytest.raises(InputError, match='--classes zebra: no such label'):
        lf.chosen_classes(labels, order, ['zebra'])
    # the confusion matrix: the classes of flagged images, given or predicted (c000 is the
    # prediction of all 63), capped to those in the most flagged pairs
    assert lf.confusion_classes(labels, order, 30) == (names, None)
    shown, note = lf.confusion_classes(labels, order, 2)
    assert shown == ['c000', 'c007'] and note.startswith('2 of the 30 classes of flagged')


def test_confusion_counts_are_the_flagged_rows_given_and_predicted(tmp_path):
    path, _, run = cifar_labels(tmp_path)
    labels = lf.read_labels(path)
    classes = list(CIFAR10_CLASSES)
    counts, outside = lf.confusion_counts(labels, classes)
    flagged = run['flagged'].astype(bool)
    expected = collections.Counter(zip(run['given'][flagged], run['predicted'][flagged]))
    assert counts.sum() == flagged.sum() > 0 and outside == 0
    for (given, predicted), n in expected.items():
        assert counts[given, predicted] == n
    assert counts.sum() == sum(expected.values())
    # the figure draws those counts, class names on both axes
    fig = lf.confusion_figure(labels, classes, None, {c: c for c in classes})
    ax = fig.axes[0]
    np.testing.assert_array_equal(ax.images[0].get_array(), counts)
    assert [t.get_text() for t in ax.get_xticklabels()] == classes
    assert [t.get_text() for t in ax.get_yticklabels()] == classes
    assert 'the %d images flagged as noisy' % flagged.sum() in ax.get_title()
    # classes left out: their flagged images are counted as outside
    counts, outside = lf.confusion_counts(labels, classes[:5])
    inside = sum(n for (g, p), n in expected.items() if g < 5 and p < 5)
    assert counts.sum() == inside and outside == flagged.sum() - inside


# ---------------------------------------------------------------- the figures ----------------

def test_cifar_gallery_reads_images_by_index_and_titles_with_class_names(tmp_path, capsys):
    path, data, run = cifar_labels(tmp_path)
    assert run_cli(figures.main, ['labels', path, '--per_class', '3']) == 0
    gallery = str(tmp_path / 'run' / 'cifar10_0.5_sym_labels_gallery.png')
    confusion = str(tmp_path / 'run' / 'cifar10_0.5_sym_labels_confusion.png')
    assert capsys.readouterr().out.split() == [gallery, confusion]
    for png in (gallery, confusion):
        with Image.open(png) as img:
            assert img.format == 'PNG' and 400 <= img.width <= 2000
    # the tiles: images from the pickles by index, titled given -> predicted by name
    labels = lf.read_labels(path)
    images = load_cifar(data, 'cifar10')[0]
    source = lf.Data(labels)
    classes = list(CIFAR10_CLASSES)
    chosen = lf.most_suspicious(labels, classes, 3)
    fig = lf.gallery_figure(labels, source, classes, 3, {c: c for c in classes})
    tiles = [ax for ax in fig.axes if ax.images]
    rows = [r for c in classes for r in chosen[c]]
    assert len(tiles) == len(rows) == 30
    for ax, row in zip(tiles, rows):
        np.testing.assert_array_equal(ax.images[0].get_array(), images[row])
        assert ax.get_title() == '%s → %s' % (CIFAR10_CLASSES[run['given'][row]],
                                              CIFAR10_CLASSES[run['predicted'][row]])
        assert ax.get_xlabel() == 'q %.3f  true %s' % (labels.quality[row],
                                                        CIFAR10_CLASSES[run['true'][row]])
    assert fig.axes[0].get_ylabel().split('\n')[0] == 'airplane'


def test_image_folder_gallery_opens_the_paths(tmp_path, capsys):
    path, data, run = folder_labels(tmp_path)
    out = str(tmp_path / 'pictures')
    assert run_cli(figures.main, ['labels', path, '--out', out, '--classes', 'dog', 'cat',
                                  '--per_class', '2']) == 0
    assert sorted(os.listdir(out)) == ['imagefolder_labels_confusion.png',
                                       'imagefolder_labels_gallery.png']
    labels = lf.read_labels(path)
    assert not labels.in_memory and labels.paths == run['paths']
    source = lf.Data(labels)  # the data folder of the run's _args.json
    chosen = lf.most_suspicious(labels, ['cat', 'dog'], 2)
    fig = lf.gallery_figure(labels, source, ['cat', 'dog'], 2, {c: c for c in CLASSES})
    tiles = [ax for ax in fig.axes if ax.images]
    for ax, row in zip(tiles, chosen['cat'] + chosen['dog']):
        with Image.open(os.path.join(data, run['paths'][row])) as img:
            np.testing.assert_array_equal(ax.images[0].get_array(),
                                          np.asarray(img.convert('RGB')))
        assert ax.get_title() == '%s → %s' % (CLASSES[run['given'][row]],
                                              CLASSES[run['predicted'][row]])
    # the same images through --data_path when the run's arguments are gone
    os.remove(str(tmp_path / 'run' / 'imagefolder_args.json'))
    assert run_cli(figures.main, ['labels', path, '--data_path', data]) == 0
    assert os.path.exists(str(tmp_path / 'run' / 'imagefolder_labels_gallery.png'))


def test_integer_labels_are_shown_by_the_names_the_data_has(tmp_path, capsys):
    # CIFAR-100 whose file was written without names (no meta then); the meta is there now
    import pickle
    folder = write_fake_cifar(str(tmp_path / 'data'), 'cifar100', num_train=300)
    _, true, _, _ = load_cifar(str(tmp_path / 'data'), 'cifar100')
    run = noisy_run(true, 100)
    path = str(tmp_path / 'c100_labels.csv')
    write_labels_csv(path, true=true, **run)  # integers
    names = ['fine%02d' % k for k in range(100)]
    with open(os.path.join(folder, 'meta'), 'wb') as f:
        pickle.dump({'fine_label_names': names}, f)
    labels = lf.read_labels(path)
    source = lf.Data(labels, str(tmp_path / 'data'))  # found to be CIFAR-100 by its pickles
    shown = lf.display_names(labels, source.names)
    order = lf.class_order(labels, source.names)
    assert order == sorted(set(labels.given) | set(labels.predicted), key=int)
    classes, note = lf.chosen_classes(labels, order)
    assert len(classes) == lf.MAX_CLASSES and 'choose others with --classes' in note
    fig = lf.gallery_figure(labels, source, classes, 2, shown)
    row = lf.most_suspicious(labels, classes, 2)[classes[0]][0]
    tile = next(ax for ax in fig.axes if ax.images)
    assert tile.get_title() == 'fine%02d → fine%02d' % (run['given'][row], run['predicted'][row])
    # the command: a capped gallery, said in one line; --classes by name
    assert run_cli(figures.main, ['labels', path, '--data_path', str(tmp_path / 'data'),
                                  '--out', str(tmp_path / 'a')]) == 0
    assert 'gallery: 20 of the' in capsys.readouterr().out
    assert run_cli(figures.main, ['labels', path, '--data_path', str(tmp_path / 'data'),
                                  '--out', str(tmp_path / 'b'), '--classes', 'fine03',
                                  '7']) == 0


def test_nothing_flagged_draws_the_gallery_only(tmp_path, capsys):
    rows = rows_of(cifar_labels(tmp_path)[0])
    for row in rows[1:]:
        row[rows[0].index('flagged_noisy')] = '0'
    path = str(tmp_path / 'run' / 'clean_labels.csv')
    write_rows(path, rows)
    assert run_cli(figures.main, ['labels', path, '--data_path', str(tmp_path / 'data'),
                                  '--per_class', '1']) == 0
    out = capsys.readouterr().out
    assert 'clean_labels_confusion.png not drawn: no image' in out
    assert sorted(f for f in os.listdir(str(tmp_path / 'run')) if f.endswith('.png')) == [
        'clean_labels_gallery.png']


# ---------------------------------------------------------------- refusals -------------------

def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, capsys):
    path, data, _ = cifar_labels(tmp_path)
    rows = rows_of(path)
    other = tmp_path / 'other'
    other.mkdir()

    def variant(name, edit):
        changed = [list(r) for r in rows]
        edit(changed)
        target = str(other / name)
        write_rows(target, changed)
        return target

    not_labels = str(other / 'list.csv')
    write_rows(not_labels, [['path', 'label'], ['a.png', 'cat']])  # an image list, not labels
    bad_prob = variant('p_labels.csv', lambda r: r[5].__setitem__(3, '1.5'))
    bad_flag = variant('f_labels.csv', lambda r: r[5].__setitem__(8, 'yes'))  # flagged_noisy
    bad_quality = variant('q_labels.csv', lambda r: r[4].__setitem__(7, '1.5'))  # label_quality
    short = variant('s_labels.csv', lambda r: r[3].pop())
    mixed = variant('m_labels.csv', lambda r: r[6].__setitem__(1, 'x.png'))
    repeated = variant('r_labels.csv', lambda r: r[7].__setitem__(0, r[3][0]))  # index 2 again
    beyond = variant('b_labels.csv', lambda r: r[2].__setitem__(0, '5000'))
    other_truth = variant('t_labels.csv', lambda r: r[4].__setitem__(
        10, 'cat' if r[4][10] != 'cat' else 'dog'))  # true_label
    empty = variant('e_labels.csv', lambda r: r.__delitem__(slice(1, None)))
    no_args = variant('n_labels.csv', lambda r: None)  # a good file, no _args.json beside
    before = files_under(str(tmp_path))
    cases = [
        ([str(tmp_path / 'absent.csv')], 'no labels file'),
        ([str(other)], 'no labels file %s (a folder)' % other),
        ([not_labels, '--data_path', data], 'is not a labels file'),
        ([bad_prob, '--data_path', data], "clean_prob_net1 '1.5' is not a probability"),
        ([bad_flag, '--data_path', data], "flagged_noisy 'yes' is not 0 or 1"),
        ([bad_quality, '--data_path', data], "label_quality '1.5' is not a probability"),
        ([short, '--data_path', data], '10 fields where the header has 11'),
        ([mixed, '--data_path', data], 'm_labels.csv:7: a path given, unlike the first row'),
        ([repeated, '--data_path', data], 'r_labels.csv:8: index 2 again (first at line 4): one '
                                          'row per training image'),
        ([empty, '--data_path', data], 'holds no image rows'),
        ([path, '--data_path', str(tmp_path / 'nowhere')], 'is not a folder'),
        ([no_args], 'no --data_path'),
        ([beyond, '--data_path', data], 'index 5000, but the training set has 200 images'),
        ([other_truth, '--data_path', data], 'belongs to other data'),
        ([path, '--data_path', str(other)], 'holds no CIFAR-10 pickles (the run\'s dataset)'),
        ([no_args, '--data_path', str(other)], 'holds no CIFAR-10 or CIFAR-100 pickles'),
        ([path, '--classes', 'zebra'], '--classes zebra: no such label'),
        ([path, '--out', path], 'is a file'),
    ]
    for argv, message in cases:
        assert message in error_of(argv, capsys), argv
    with pytest.raises(SystemExit) as exit:  # argparse: one line, exit code 2
        run_cli(figures.main, ['labels', path, '--per_class', '0'])
    assert exit.value.code == 2
    assert capsys.readouterr().err.count('\n') == 1
    assert files_under(str(tmp_path)) == before  # not a byte written


def test_a_missing_image_or_data_folder_is_refused(tmp_path, capsys):
    path, data, run = folder_labels(tmp_path)
    # the run's data folder moved: its arguments name a folder that is gone
    moved = str(tmp_path / 'moved')
    os.rename(data, moved)
    before = files_under(str(tmp_path))
    assert "the run's data folder %s is not there" % data in error_of([path], capsys)
    # one image of those to show is gone
    labels = lf.read_labels(path)
    first = lf.most_suspicious(labels, ['cat'], 1)['cat'][0]
    os.remove(os.path.join(moved, run['paths'][first]))
    before = files_under(str(tmp_path))
    line = error_of([path, '--data_path', moved, '--classes', 'cat'], capsys)
    assert '1 of the' in line and os.path.join(moved, run['paths'][first]) in line
    assert files_under(str(tmp_path)) == before


def test_no_file_is_ever_overwritten(tmp_path, capsys):
    path, _, _ = cifar_labels(tmp_path)
    assert run_cli(figures.main, ['labels', path, '--per_class', '1']) == 0
    before = files_under(str(tmp_path))
    line = error_of([path], capsys)
    assert 'cifar10_0.5_sym_labels_gallery.png exists and is never overwritten' in line
    assert files_under(str(tmp_path)) == before
    # only one of the two there: still refused, and that one is kept as it was
    os.remove(str(tmp_path / 'run' / 'cifar10_0.5_sym_labels_gallery.png'))
    before = files_under(str(tmp_path))
    assert 'confusion.png exists' in error_of([path], capsys)
    assert files_under(str(tmp_path)) == before
    # --out elsewhere writes both there
    assert run_cli(figures.main, ['labels', path, '--out', str(tmp_path / 'new'),
                                  '--per_class', '1']) == 0
    assert len(os.listdir(str(tmp_path / 'new'))) == 2


def test_a_run_folder_is_still_drawn_as_before(tmp_path, capsys):
    # "labels" is the subcommand only as the first argument; a run folder works as ever
    with pytest.raises(InputError, match='not a folder'):
        figures.main([str(tmp_path / 'absent')])
    with pytest.raises(SystemExit) as exit:  # argparse's --help
        run_cli(figures.main, ['labels', '--help'])
    assert exit.value.code == 0 and 'usage: figures.py labels' in capsys.readouterr().out


# ---------------------------------------------------------------- Fig. 4: class names --------

class Guess(nn.Module):
    """Answers class 2 for every image."""

    def forward(self, x):
        return torch.nn.functional.one_hot(torch.full((len(x),), 2), 3).float()


def test_unlabeled_examples_of_an_image_folder_run_use_class_names(tmp_path, capsys):
    made = make_image_folder(tmp_path / 'data' / 'train', per_class=3, size=16)
    paths = [str(tmp_path / 'data' / 'train' / p) for p, _ in made]
    labels = [CLASSES.index(c) for _, c in made]
    run_dir = str(tmp_path / 'run')
    import torchvision.transforms as T
    # what Train_imagefolder.py saves now: the class names with the examples
    snapshots.save_unlabeled_guesses(run_dir, 'imagefolder', 1, (Guess(), Guess()), paths,
                                     labels, np.arange(9), np.full(9, 0.2),
                                     T.Compose([T.Resize((16, 16)), T.ToTensor()]),
                                     torch.device('cpu'), seed=0, count=4,
                                     class_names=CLASSES)
    with open(os.path.join(run_dir, 'imagefolder_unlabeled_examples.json')) as f:
        saved = json.load(f)
    assert saved['class_names'] == CLASSES
    with open(os.path.join(run_dir, 'imagefolder.jsonl'), 'w') as f:
        f.write(json.dumps({'epoch': 0, 'lr': 0.02, 'test_acc': 50.0}) + '\n')
    with open(os.path.join(run_dir, 'imagefolder_args.json'), 'w') as f:
        json.dump({'script': 'Train_imagefolder.py', 'data_path': str(tmp_path / 'data')}, f)

    def titles():
        fig = figures.examples_figure(figures.read_run(run_dir, 'imagefolder'))
        return [(ax.get_title(), ax.get_xlabel()) for ax in fig.axes]
    expected = [('given: %s' % CLASSES[e['given']], 'guessed: fox') for e in saved['examples']]
    assert titles() == expected and len(expected) == 4
    # a run saved before the names were passed: they come from its data (the train/ folders)
    saved['class_names'] = None
    with open(os.path.join(run_dir, 'imagefolder_unlabeled_examples.json'), 'w') as f:
        json.dump(saved, f)
    assert titles() == expected
    # no names anywhere (the arguments name a data folder that is not there): the integers
    with open(os.path.join(run_dir, 'imagefolder_args.json'), 'w') as f:
        json.dump({'script': 'Train_imagefolder.py', 'data_path': str(tmp_path / 'gone')}, f)
    assert titles() == [('given: %d' % e['given'], 'guessed: 2') for e in saved['examples']]


def test_run_class_names_from_the_arguments(tmp_path):
    make_image_folder(tmp_path / 'data' / 'train', per_class=1)
    assert lf.run_class_names({'script': 'Train_imagefolder.py',
                               'data_path': str(tmp_path / 'data')}) == CLASSES
    classes = tmp_path / 'classes.txt'
    classes.write_text('zebra\nant\n')
    assert lf.run_class_names({'script': 'Train_imagefolder.py', 'classes_file': str(classes),
                               'train_list': 'x.csv'}) == ['zebra', 'ant']
    listed = tmp_path / 'train.csv'
    listed.write_text('a.png,owl\nb.png,bee\n')
    assert lf.run_class_names({'script': 'Train_imagefolder.py',
                               'train_list': str(listed)}) == ['bee', 'owl']
    assert lf.run_class_names({'script': 'Train_clothing1M.py'})[3] == 'Chiffon'
    assert lf.run_class_names({'script': 'Train_clothing1M.py', 'num_class': 5}) is None
    assert lf.run_class_names({'script': 'Train_cifar.py', 'dataset': 'cifar10'}) == list(
        CIFAR10_CLASSES)
    assert lf.run_class_names({'script': 'Train_imagefolder.py',
                               'data_path': str(tmp_path / 'gone')}) is None


@pytest.mark.slow
def test_an_image_folder_run_saves_and_draws_class_names(tmp_path):
    import Train_imagefolder
    make_image_folder(tmp_path / 'data' / 'train', per_class=8, size=16)
    out = str(tmp_path / 'run')
    Train_imagefolder.main(['--data_path', str(tmp_path / 'data'), '--out_dir', out,
                            '--num_epochs', '3', '--warm_up', '1', '--width', '8',
                            '--batch_size', '8', '--num_workers', '0', '--seed', '1'])
    with open(os.path.join(out, 'imagefolder_unlabeled_examples.json')) as f:
        saved = json.load(f)
    assert saved['class_names'] == CLASSES and saved['examples']
    fig = figures.examples_figure(figures.read_run(out, 'imagefolder'))
    assert [ax.get_title() for ax in fig.axes] == [
        'given: %s' % CLASSES[e['given']] for e in saved['examples']]
    # and the run's labels file as pictures, its data found through its arguments
    assert len(lf.write_label_figures(os.path.join(out, 'imagefolder_labels.csv'),
                                      per_class=2)) in (1, 2)


def test_a_file_saved_by_a_spreadsheet_with_a_bom_is_read(tmp_path):
    path, _, run = cifar_labels(tmp_path)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    with open(path, 'w', encoding='utf-8-sig', newline='') as f:  # a leading BOM
        f.write(text.replace('\n', '\r\n'))  # and a spreadsheet's line ends
    labels = lf.read_labels(path)
    np.testing.assert_allclose(labels.quality, run['quality'], atol=1e-6)
    assert labels.index.tolist() == list(range(200))
