"""The paper's figures from a run folder, finished or still running:

    python tools/figures.py RUN_DIR [--prefix PREFIX] [--epochs 10 50] [--out FOLDER]

For every run in RUN_DIR (each <prefix>.jsonl that Train_cifar.py, Train_clothing1M.py or
Train_webvision.py wrote; or only --prefix), into FOLDER (default RUN_DIR/figures/):

  <prefix>_accuracy.png            accuracy per epoch, best and last-10 mean, warm-up, λu ramp-up
                                   and learning-rate drops on the time axis          (the .jsonl)
  <prefix>_division.png            Fig. 3: AUC, precision, recall, size of each labeled set
  <prefix>_loss_epoch<E>.png       Fig. 2: loss histogram, clean / noisy, the mixture and τ, for
                                   every saved snapshot (or --epochs)   (<prefix>_division/)
  <prefix>_tsne.png                Fig. 5: t-SNE of the features by noisy and by true label
  <prefix>_unlabeled_examples.png  Fig. 4: images put in the unlabeled set, given and guessed label

The kind of run (which curves, axes and figures) is the training script that its
<prefix>_args.json names. The last three figures need the files utils/snapshots.py saves; a run
without them gets one line per figure saying what is missing and why. Each path written is
printed.

    python tools/figures.py labels LABELS_CSV [--data_path FOLDER] [--per_class 8] ...

draws a labels file (<run>_labels.csv, or tools/export_labels.py's) as pictures: the most
suspicious training images per class and the flagged images' given-by-predicted counts
(tools/label_figures.py; `labels --help`). A run folder named labels is given as ./labels.
"""
import json
import os
import sys
from functools import partial

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
import dividemix as dm  # noqa: E402 (after the path line above)
from utils.cli import ArgumentParser, InputError, TrainingError, one_line, run_cli  # noqa: E402
from utils.data import inside, open_rgb  # noqa: E402
# reading runs draws nothing: it lives in utils/runs.py, the tools that only read import it there
from utils.runs import (read_records, read_run, run_prefixes, script_of,  # noqa: E402,F401
                        script_of_old_run)
from utils.runlog import hold_run  # noqa: E402
from utils.snapshots import division_dir  # noqa: E402
from tools.drawing import (DPI, Figure, drawn_here, refuse_without_matplotlib,  # noqa: E402
                           save_png)

OLD_RUNS = 'runs saved before snapshots were added'  # they have no snapshot files at all
MAX_TSNE_POINTS = 2000  # t-SNE of 2,000 points takes well under a minute on one CPU core
MAX_EXAMPLES = 18  # Fig. 4 grid: 3 rows of 6
NOISY_COLORS = ['darkred', 'darkorange', 'purple', 'saddlebrown']  # Fig. 2, by mean loss

# Per kind: the accuracy curves (key, label); the first is the run's score, the one 'best'
# and 'last10' in the final line are computed from.
ACCURACY_CURVES = {
    'cifar': [('test_acc', 'ensemble'), ('net1_acc', 'net1'), ('net2_acc', 'net2')],
    'clothing1m': [('val_acc', 'ensemble'), ('net1_val_acc', 'net1'),
                   ('net2_val_acc', 'net2')],
    'webvision': [('webvision_top1', 'WebVision top-1'), ('webvision_top5', 'WebVision top-5'),
                  ('imagenet_top1', 'ILSVRC12 top-1'), ('imagenet_top5', 'ILSVRC12 top-5')],
}
ACCURACY_AXIS = {'cifar': 'test accuracy (%)', 'clothing1m': 'validation accuracy (%)',
                 'webvision': 'accuracy (%)'}
DIVISION_PANELS = [('auc', 'AUC of the clean/noisy division'),
                   ('precision', 'labeled-set precision (fraction clean)'),
                   ('recall', 'labeled-set recall (of all clean samples)'),
                   ('labeled', 'labeled-set size')]


class Missing(Exception):
    """A figure cannot be drawn: the message names it and says what is missing and why."""


def _number(value):
    """A logged number, NaN where it is missing or undefined (JSON null)."""
    return float(value) if isinstance(value, (int, float)) else np.nan


# ---------------------------------------------------------------- the mixture of a snapshot --

def saved_mixtures(snapshot):
    """{network: (mixture, components)} of a division snapshot: the arrays it saved as
    <net>_<mixture>_<name> (utils.snapshots.save_division) for each mixture of dm.MIXTURES,
    found by their 'means'. A mixture this code does not have is named in a Missing."""
    found = {}
    for key in snapshot:
        net, _, rest = key.partition('_')  # networks are net1, net2
        if not rest.endswith('_means'):
            continue
        mixture = rest[:-len('_means')]
        if mixture not in dm.MIXTURES:
            raise Missing('its networks\' mixture %r is not one of dividemix.MIXTURES (%s)'
                          % (mixture, ', '.join(dm.MIXTURES)))
        prefix = '%s_%s_' % (net, mixture)
        found[net] = (mixture, {k[len(prefix):]: np.asarray(snapshot[k], np.float64)
                                for k in snapshot if k.startswith(prefix)})
    return dict(sorted(found.items()))


def clean_posterior(x, mixture, components):
    """Posterior of the clean (lowest-mean) component at the losses x: w_i of Sec. 3.1, from a
    mixture's saved components (dm.MIXTURES[mixture].log_density)."""
    log_joint = dm.MIXTURES[mixture].log_density(components, x)
    clean = np.argmin(components['means'])
    return np.exp(log_joint[clean] - np.logaddexp.reduce(log_joint, axis=0))


def clean_threshold(mixture, components, p_threshold, lo=0.0, hi=1.0, points=10001):
    """τ as a loss value: where the clean posterior crosses p_threshold, i.e. the edge of the
    labeled set (w > p_threshold), found on a grid over [lo, hi] and interpolated linearly.
    With unequal variances the posterior can cross twice; this is the first crossing above
    the clean mean. None when it never crosses on the grid."""
    x = np.linspace(lo, hi, points)
    gap = clean_posterior(x, mixture, components) - p_threshold
    crossings = np.flatnonzero(np.sign(gap[:-1]) != np.sign(gap[1:]))
    if len(crossings) == 0:
        return None
    above_mean = crossings[x[crossings + 1] >= np.min(components['means'])]
    i = (above_mean if len(above_mean) else crossings)[0]
    return float(x[i] + gap[i] / (gap[i] - gap[i + 1]) * (x[i + 1] - x[i]))


# ---------------------------------------------------------------- the figures ----------------

def _legend(ax, *more_axes, **kwargs):
    handles, labels = ax.get_legend_handles_labels()
    for other in more_axes:
        more_handles, more_labels = other.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels, fontsize='small', **kwargs)


def lambda_u_ramp(run, epochs):
    """The weight of Lu that training used, dividemix.linear_rampup, as (x, weight) on the
    accuracy plot's time axis (epoch e spans e - 0.5 to e + 0.5): at the start of each of
    `epochs` and at the end of the last. The ramp is linear between whole epochs, so these
    points draw it exactly. None where nothing ramps: CE baseline, lambda_u 0, no arguments,
    or rampup_epochs 0 (training cannot run that: linear_rampup divides by it)."""
    lambda_u, rampup = run.args.get('lambda_u'), run.args.get('rampup_epochs')
    if run.warm_up is None or not lambda_u or not rampup:
        return None
    starts = np.arange(epochs[0], epochs[-1] + 2)
    weights = np.array([dm.linear_rampup(e, run.warm_up, rampup, lambda_u) for e in starts])
    return starts - 0.5, weights


def accuracy_figure(run):
    """Accuracy per epoch, with best and last-10 mean, and the schedule on the time axis."""
    if run.kind is None:
        raise Missing('%s_accuracy.png not drawn: %s_args.json is missing or names no '
                      'Train_*.py, so the kind of run is unknown' % (run.prefix, run.prefix))
    curves = ACCURACY_CURVES[run.kind]
    if not any(curves[0][0] in r for r in run.records):
        raise Missing('%s_accuracy.png not drawn: %s.jsonl has no epoch with %s yet'
                      % (run.prefix, run.prefix, curves[0][0]))
    if run.kind == 'cifar' and (run.networks == ['net1'] or run.args.get('test_net1_only')):
        # The reported accuracy is net1's (one network, or the ablation): one curve for it;
        # net2 only where it trained.
        curves = [('test_acc', 'net1')] + [c for c in curves if c[1] == 'net2' and
                                           'net2' in run.networks]
    epochs = np.array([r['epoch'] for r in run.records])
    fig = Figure(figsize=(12, 6), dpi=DPI, layout='constrained')
    ax = fig.add_subplot()
    for number, (key, label) in enumerate(curves):
        values = np.array([_number(r.get(key)) for r in run.records])
        if not np.isfinite(values).any():
            continue
        ax.plot(epochs, values, label=label, lw=2 if number == 0 else 1,
                ls='--' if run.kind == 'webvision' and key.endswith('top5') else '-')

    # Best and mean of the last 10 epochs of the score, as the paper reports them.
    score = np.array([_number(r.get(curves[0][0])) for r in run.records])
    so_far = '' if run.final else ' so far'
    final = run.final if run.final and 'best' in run.final else {}  # (older final lines: none)
    best = final.get('best', np.nanmax(score))
    last10 = final.get('last10', np.nanmean(score[-10:]))
    best_epoch = epochs[np.nanargmax(score)]
    ax.plot(best_epoch, best, '*', ms=14, color='gold', mec='k',
            label='best%s %.2f (epoch %d)' % (so_far, best, best_epoch))
    ax.hlines(last10, epochs[-10:][0], epochs[-1], colors='k', linestyles=':', lw=2,
              label='last-10 mean%s %.2f' % (so_far, last10))

    # The schedule: warm-up, learning-rate drops (from the logged lr), the λu ramp-up.
    if run.warm_up:
        ax.axvspan(epochs[0] - 0.5, run.warm_up - 0.5, color='0.92',
                   label='warm-up (%d epochs)' % run.warm_up)
    for before, after in zip(run.records, run.records[1:]):
        if _number(after.get('lr')) < _number(before.get('lr')):
            ax.axvline(after['epoch'] - 0.5, color='0.4', ls='--', lw=1,
                       label='lr %g → %g' % (before['lr'], after['lr']))
    ramp = lambda_u_ramp(run, epochs)
    more_axes = []
    if ramp is not None:
        twin = ax.twinx()
        twin.plot(*ramp, color='tab:purple', alpha=0.5, label='λu ramp-up (right axis)')
        twin.set_ylim(0, 1.05 * run.args['lambda_u'])
        twin.set_ylabel('weight of Lu (λu ramped)')
        more_axes.append(twin)
    ax.set_xlabel('epoch')
    ax.set_ylabel(ACCURACY_AXIS[run.kind])
    title = run.prefix + (' (cross-entropy baseline)' if run.args.get('method') == 'ce' else '')
    title += '' if run.final else ' (running)'
    if run.final and 'test_acc' in run.final and run.kind == 'clothing1m':
        title += ': test accuracy %.2f (best-validation weights)' % run.final['test_acc']
    if run.args.get('lambda_u') == 0:
        title += ', λu = 0'
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, *more_axes, loc='lower right')
    return fig


def division_figure(run):
    """Fig. 3 and more: per epoch, the quality and size of the labeled set each network
    trains on. Panels without data (no truth: Clothing1M, WebVision) are left out."""
    divided = run.divided
    if not divided:
        why = ('a CE baseline does not divide' if run.args.get('method') == 'ce' else
               'the run has not reached its first co-divide yet' if not run.final else
               'no epoch with a co-divide in %s.jsonl' % run.prefix)
        raise Missing('%s_division.png not drawn: %s' % (run.prefix, why))
    epochs = [r['epoch'] for r in divided]
    noise_rate = _number(divided[-1].get('noise_rate'))  # injected; CIFAR logs it
    panels = []
    for key, title in DIVISION_PANELS:
        lines = {net: np.array([_number(r.get(net, {}).get(key)) for r in divided])
                 for net in run.networks}
        if any(np.isfinite(values).any() for values in lines.values()):
            panels.append((key, title, lines))
    rows = 1 if len(panels) <= 2 else 2
    from matplotlib import ticker
    fig = Figure(figsize=(12, 4 * rows + 1), dpi=DPI, layout='constrained')
    mixture = dm.MIXTURES.get(run.args.get('mixture', 'gmm'), dm.MIXTURES['gmm']).label
    made_by = ('its own ' + mixture if len(run.networks) == 1 or run.args.get('no_cotraining')
               else "the other network's " + mixture)
    title = '%s: the division each network trains on (made by %s)' % (run.prefix, made_by)
    if [key for key, _, _ in panels] == ['labeled']:  # the others need the true labels
        title += ('\n(no true labels known, so no AUC, precision or recall%s)'
                  % (': --clean_list FILE gives them' if run.script == 'Train_imagefolder.py'
                     else ''))
    fig.suptitle(title)
    for number, (key, title, lines) in enumerate(panels):
        ax = fig.add_subplot(rows, -(-len(panels) // rows), number + 1)
        for net, values in lines.items():
            ax.plot(epochs, values, '.-', label=net)
        if key == 'precision' and np.isfinite(noise_rate):
            ax.axhline(1 - noise_rate, color='0.5', ls=':',
                       label='all samples (1 - noise rate)')
        if key == 'labeled' and any('divided' in r.get(net, {}) for r in divided
                                    for net in run.networks):
            ax.plot(epochs, [_number(r[run.networks[0]].get('divided')) for r in divided],
                    color='0.5', ls=':', label='samples divided')
        ax.set_title(title)
        ax.set_xlabel('epoch')
        ax.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # no half epochs
        ax.grid(alpha=0.3)
        ax.legend(fontsize='small')
    return fig


def _load_npz(path):
    try:
        with np.load(path) as saved:
            return {key: saved[key] for key in saved.files}
    except (OSError, ValueError) as e:
        raise InputError('cannot read %s (%s): delete it' % (path, one_line(e))) from None


def loss_snapshots(run, epochs=None):
    """{epoch: path} of the saved division snapshots (only `epochs` when given)."""
    folder = division_dir(run.run_dir, run.prefix)
    saved = {}
    if os.path.isdir(folder):
        saved = {int(name[len('epoch_'):-len('.npz')]): os.path.join(folder, name)
                 for name in os.listdir(folder)
                 if name.startswith('epoch_') and name.endswith('.npz')}
    figure = '%s_loss_epoch*.png not drawn: ' % run.prefix
    if not saved:
        if run.args.get('method') == 'ce':
            raise Missing(figure + 'a CE baseline does not divide, so it saves no loss '
                          'snapshots')
        if not run.divided and not run.final:
            raise Missing(figure + 'no loss snapshot yet: the first is saved at the first '
                          'co-divide')
        raise Missing(figure + 'no loss snapshots in %s/: %s or with --no-figures did not '
                      'save them; rerun to get Fig. 2' % (folder, OLD_RUNS))
    if epochs:
        absent = sorted(set(epochs) - set(saved))
        if len(absent) == len(set(epochs)):
            raise InputError('--epochs %s: %s saved no loss snapshot at %s (saved: %s)' % (
                ' '.join(map(str, epochs)), run.prefix, 'that epoch' if len(absent) == 1
                else 'these epochs', ', '.join(map(str, sorted(saved)))))
        if absent:
            print('%s: no loss snapshot for epoch %s in %s/ (saved: %s)'
                  % (run.prefix, ', '.join(map(str, absent)), folder,
                     ', '.join(map(str, sorted(saved)))))
        saved = {e: p for e, p in saved.items() if e in epochs}
    return dict(sorted(saved.items()))


def loss_figure(path, prefix):
    """Fig. 2: for each network, the histogram of the normalised per-sample loss its mixture
    was fitted on (clean and noisy samples stacked where the truth is known), the fitted
    mixture (named: dm.MIXTURES' label) scaled to the histogram, and τ: the loss where the
    clean posterior equals p_threshold."""
    snap = _load_npz(path)
    try:
        mixtures = saved_mixtures(snap)
    except Missing as e:
        raise Missing('%s_loss_epoch%d.png not drawn: %s' % (prefix, snap['epoch'], e)) from None
    labels = sorted({dm.MIXTURES[mixture].label for mixture, _ in mixtures.values()})
    fig = Figure(figsize=(12, 5), dpi=DPI, layout='constrained')
    fig.suptitle('%s, epoch %d: normalised per-sample loss and the %s of each network'
                 % (prefix, snap['epoch'], ' / '.join(labels)))
    for number, (net, (mixture, components)) in enumerate(mixtures.items()):
        label = dm.MIXTURES[mixture].label
        ax = fig.add_subplot(1, len(mixtures), number + 1)
        loss = snap[net + '_loss'].astype(np.float64)
        lo, hi = min(0.0, loss.min()), max(1.0, loss.max())
        bins = np.linspace(lo, hi, 51)
        if 'is_clean' in snap:
            clean = snap['is_clean']
            if net + '_indices' in snap:  # the mixture saw a subset
                clean = clean[snap[net + '_indices']]
            counts, _, _ = ax.hist([loss[clean], loss[~clean]], bins, stacked=True,
                                   color=['tab:blue', 'tab:red'],
                                   label=['clean (%d)' % clean.sum(),
                                          'noisy (%d)' % (~clean).sum()])
        else:
            counts, _, _ = ax.hist(loss, bins, color='tab:gray',
                                   label='all samples (%d)' % len(loss))
        # Densities in samples per bin, so they sit on the histogram.
        x = np.linspace(lo, hi, 1000)
        per_bin = (np.exp(dm.MIXTURES[mixture].log_density(components, x)) * len(loss)
                   * (bins[1] - bins[0]))
        means = components['means']
        for rank, k in enumerate(np.argsort(means)):  # the clean one, then the noisy by mean
            name, color = ('clean component', 'navy') if rank == 0 else (
                'noisy component' + (' %d' % rank if len(means) > 2 else ''),
                NOISY_COLORS[(rank - 1) % len(NOISY_COLORS)])
            ax.plot(x, per_bin[k], color=color, ls='--', lw=1,
                    label='%s %s (mean %.3f)' % (label, name, means[k]))
        ax.plot(x, per_bin.sum(0), color='k', lw=1.5, label=label)
        tau = clean_threshold(mixture, components, snap['p_threshold'], lo, hi)
        if tau is not None:
            ax.axvline(tau, color='green', lw=2, label='τ: clean posterior %g at loss %.3f'
                       % (snap['p_threshold'], tau))
        # A narrow component can peak far above the bars: keep the bars readable.
        ax.set_ylim(0, 1.15 * np.max(counts))
        ax.set_title('%s loss' % net)
        ax.set_xlabel('normalised loss')
        ax.set_ylabel('samples')
        # below the axes, where it covers neither peak, in the order drawn in every panel
        ax.legend(fontsize='small', loc='upper center', bbox_to_anchor=(0.5, -0.12), ncol=2)
    return fig


def _saved_at_the_end(run, paper_figure):
    """Why a file that a run saves when it finishes is not there."""
    if run.final:
        return ('%s, with --no-figures or (features) under torchrun did not save it; rerun to '
                'get %s' % (OLD_RUNS, paper_figure))
    return 'the run has not finished (it is saved at the end)'


def tsne_figure(run):
    """Fig. 5: t-SNE of the saved features (at most MAX_TSNE_POINTS, drawn at random with a
    fixed seed), coloured by the noisy training label and, where known, by the true label."""
    from sklearn.manifold import TSNE  # here: it is the slowest import, and only this needs it
    path = run.path('_features.npz')
    if not os.path.exists(path):
        raise Missing('%s_tsne.png not drawn: no %s: %s'
                      % (run.prefix, path, _saved_at_the_end(run, 'Fig. 5')))
    saved = _load_npz(path)
    features = saved['features']
    if len(features) < 5:
        raise Missing('%s_tsne.png not drawn: %s holds %d feature vectors, too few for t-SNE'
                      % (run.prefix, path, len(features)))
    keep = np.sort(np.random.RandomState(0).choice(
        len(features), min(len(features), MAX_TSNE_POINTS), replace=False))
    embedding = TSNE(n_components=2, perplexity=min(30.0, (len(keep) - 1) / 3), init='pca',
                     random_state=0).fit_transform(features[keep].astype(np.float32))
    panels = [('(a) noisy training labels', saved['noisy_labels'][keep])]
    if 'clean_labels' in saved:
        panels.append(('(b) true labels', saved['clean_labels'][keep]))
    num_class = int(max(labels.max() for _, labels in panels)) + 1
    colors = 'tab10' if num_class <= 10 else 'tab20' if num_class <= 20 else 'turbo'
    fig = Figure(figsize=(12, 6), dpi=DPI, layout='constrained')
    fig.suptitle('%s: t-SNE of %d training images\' features' % (run.prefix, len(keep)))
    for number, (title, labels) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), number + 1)
        points = ax.scatter(embedding[:, 0], embedding[:, 1], c=labels, cmap=colors, s=4,
                            vmin=-0.5, vmax=num_class - 0.5, linewidths=0)
        ax.set_title(title)
        ax.set_xticks([])
        ax.set_yticks([])
    if num_class <= 20:
        from matplotlib.lines import Line2D
        from tools.label_figures import run_class_names
        names = run_class_names(run.args) if run.args else None
        if not names or len(names) < num_class:  # no names, or data with other classes now
            names = [str(k) for k in range(num_class)]
        ax.legend(handles=[Line2D([], [], ls='', marker='o', color=points.cmap(points.norm(k)),
                                  label=names[k]) for k in range(num_class)],
                  title='class', fontsize='small', loc='upper left', bbox_to_anchor=(1, 1))
    return fig


def examples_figure(run):
    """Fig. 4: images that the division put in the unlabeled set, the given (noisy) label
    above in red, the label the networks co-guessed below in blue."""
    path = run.path('_unlabeled_examples.json')
    if not os.path.exists(path):
        raise Missing('%s_unlabeled_examples.png not drawn: no %s: %s'
                      % (run.prefix, path, _saved_at_the_end(run, 'Fig. 4')))
    with open(path) as f:
        saved = json.load(f)
    names = saved.get('class_names')
    if not names and run.args:  # saved before the scripts passed them: from the run's data
        from tools.label_figures import run_class_names
        names = run_class_names(run.args)
        if names and max(max(e['given'], e['guessed'])
                         for e in saved['examples']) >= len(names):
            names = None  # the data has other classes now
    shown, unreadable = [], []
    for example in saved['examples']:
        if len(shown) == MAX_EXAMPLES:
            break
        try:
            thumbnail = open_rgb(example['path'])
        except TrainingError:  # an image that cannot be decoded: the others are drawn
            unreadable.append(example['path'])
            continue
        thumbnail.thumbnail((200, 200))
        shown.append((thumbnail, example))
    if unreadable:
        print('%s: %d example images could not be opened (first: %s)'
              % (run.prefix, len(unreadable), unreadable[0]))
    if not shown:
        raise Missing('%s_unlabeled_examples.png not drawn: none of the images in %s can be '
                      'opened' % (run.prefix, path))
    columns = min(6, len(shown))
    rows = -(-len(shown) // columns)
    fig = Figure(figsize=(12, 2.4 * rows + 0.6), dpi=DPI, layout='constrained')
    fig.suptitle('%s, epoch %d: images put in the unlabeled set' % (run.prefix, saved['epoch']))
    for number, (img, example) in enumerate(shown):
        ax = fig.add_subplot(rows, columns, number + 1)
        ax.imshow(img)
        ax.set_xticks([])
        ax.set_yticks([])
        given, guessed = (names[example[k]] if names else example[k] for k in ('given', 'guessed'))
        ax.set_title('given: %s' % given, color='tab:red', fontsize='small')
        ax.set_xlabel('guessed: %s' % guessed, color='tab:blue', fontsize='small')
    return fig


# ---------------------------------------------------------------- writing --------------------

def _drawings(run, epochs):
    """(file name, draw) for each figure of a run, where draw() returns the Figure or raises
    Missing; prints why there are no loss figures when there are none. Fig. 4 is expected
    only where the training images are files (Clothing1M, WebVision), Fig. 5 only on CIFAR
    (the paper's, and the only one whose true labels are known)."""
    yield run.prefix + '_accuracy.png', partial(accuracy_figure, run)
    yield run.prefix + '_division.png', partial(division_figure, run)
    try:
        snapshots = loss_snapshots(run, epochs)
    except Missing as e:
        print(e)
        snapshots = {}
    for epoch, path in snapshots.items():
        yield '%s_loss_epoch%d.png' % (run.prefix, epoch), partial(loss_figure, path, run.prefix)
    if run.kind == 'cifar' or os.path.exists(run.path('_features.npz')):
        yield run.prefix + '_tsne.png', partial(tsne_figure, run)
    if (run.kind in ('clothing1m', 'webvision')
            or os.path.exists(run.path('_unlabeled_examples.json'))):
        yield run.prefix + '_unlabeled_examples.png', partial(examples_figure, run)


def write_figures_after_run(run_dir, prefix):
    """write_figures at the end of a training run, and the pictures of its labels file
    (tools/label_figures.py) beside them, where a failure is one line instead of a failed
    run: its logs, checkpoints and labels file are written already."""
    from tools.label_figures import write_label_figures
    labels = os.path.join(run_dir, prefix + '_labels.csv')
    written = []
    drawings = [(partial(write_figures, run_dir, prefix=prefix),
                 'python tools/figures.py %s --prefix %s' % (run_dir, prefix))]
    if os.path.exists(labels):
        drawings.append((partial(write_label_figures, labels, out=os.path.join(
            run_dir, 'figures'), replace_drawn=True), 'python tools/figures.py labels %s' % labels))
    for draw, command in drawings:
        try:
            written += draw()
        except Exception as e:  # matplotlib, t-SNE, a damaged file: the run itself is fine
            print('figures not drawn (%s): try  %s'
                  % (str(e) if isinstance(e, (InputError, TrainingError)) else one_line(e),
                     command))  # the project's own messages are one line already
    return written


def write_figures(run_dir, prefix=None, epochs=None, out=None):
    """Draw every figure of every run in `run_dir` (or of `prefix` only; loss figures of
    `epochs` only) into `out` (default run_dir/figures). Prints each path written and one
    line per figure that cannot be drawn. Returns the paths written."""
    out = os.path.join(run_dir, 'figures') if out is None else out
    if os.path.exists(out) and not os.path.isdir(out):
        raise InputError('--out %s is a file: pass a folder' % out)
    names = run_prefixes(run_dir, prefix)
    if inside(out, run_dir):  # held, as a training run holds it: one writer at a time
        for name in names:
            hold_run(os.path.join(run_dir, name + '.jsonl'), name, run_dir,
                     'or draw it into another folder with --out DIR')
    planned = [(os.path.join(out, filename), draw) for name in names
               for filename, draw in _drawings(read_run(run_dir, name), epochs)]
    for path, _ in planned:  # all checked before the first is written
        if os.path.lexists(path) and not drawn_here(path):
            raise InputError('%s exists and is not a figure drawn here, so it is never '
                             'overwritten: move it away, or pass --out another folder' % path)
    written = []
    for path, draw in planned:
        try:
            fig = draw()
        except Missing as e:
            print(e)
            continue
        written.append(save_png(fig, path))
    return written


def epoch_number(text):
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ['labels']:  # python tools/figures.py labels LABELS_CSV ...
        from tools import label_figures
        return label_figures.main(argv[1:], prog='figures.py labels')
    p = ArgumentParser(description='Draw the paper\'s figures from a run folder; '
                                   '"figures.py labels --help": pictures of a labels file.')
    p.add_argument('run_dir', help='the --out_dir of a Train_*.py run')
    p.add_argument('--prefix', help='only this run (the name of its .jsonl; default: all)')
    p.add_argument('--epochs', type=epoch_number, nargs='+',
                   help='loss figures of these snapshot epochs only (default: all saved)')
    p.add_argument('--out', help='folder for the PNGs (default: RUN_DIR/figures)')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = p.parse_args(argv)
    refuse_without_matplotlib()
    return write_figures(args.run_dir, args.prefix, args.epochs, args.out)


if __name__ == '__main__':
    sys.exit(run_cli(main))
