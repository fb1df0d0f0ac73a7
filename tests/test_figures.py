"""utils/snapshots.py (what a run saves for its figures) and tools/figures.py (the figures), on
tiny run folders built here with the real snapshot API and the real log formats, and on a copy
of a measured run saved before snapshots were added."""
import dataclasses
import json
import math
import os
import shutil
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.mixture import GaussianMixture
from torch import nn

import dividemix
from tools import figures
from utils import snapshots
from conftest import ROOT
from utils.cli import InputError, importable, run_cli

MEASURED = os.path.join(ROOT, 'results', 'cifar10_cpu')


# ---------------------------------------------------------------- tiny runs ------------------

def cifar_records(num_epochs=12, warm_up=3, lr_drop=8):
    """Epoch records as Train_cifar.py writes them: warm-up, then SSL with division stats."""
    records = []
    for epoch in range(num_epochs):
        record = {'epoch': epoch, 'lr': 0.02 if epoch < lr_drop else 0.002, 'noise_rate': 0.45}
        for k, net in enumerate(('net1', 'net2')):
            record[net] = ({'warmup_ce': 2.3 - 0.1 * epoch} if epoch < warm_up else
                           {'labeled': 200 + epoch + k, 'auc': 0.8 + 0.01 * epoch,
                            'precision': 0.9, 'recall': 0.85, 'loss_x': 1.0, 'loss_u': 0.01})
        record.update(net1_acc=20.0 + epoch, net2_acc=21.0 + epoch, test_acc=22.0 + epoch,
                      seconds=1.5)
        records.append(record)
    return records


def write_log(run_dir, prefix, records, final=None, args=None, tail=''):
    """<prefix>.jsonl (records, the final line, then `tail` as written so far) and _args.json."""
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, prefix + '.jsonl'), 'w') as f:
        for record in records + ([dict(final, final=True)] if final else []):
            f.write(json.dumps(record) + '\n')
        f.write(tail)
    if args is not None:
        with open(os.path.join(run_dir, prefix + '_args.json'), 'w') as f:
            json.dump(args, f)


def bimodal_division(num_samples=400, seed=0):
    """Normalised losses of mostly clean samples (low loss) and noisy ones (high loss), and
    dividemix.gmm_clean_prob's clean probabilities and mixture components on them, beside
    the same GMM fitted here with sklearn (what the components must be)."""
    rng = np.random.RandomState(seed)
    is_clean = rng.rand(num_samples) < 0.7
    loss = np.where(is_clean, rng.normal(0.15, 0.05, num_samples),
                    rng.normal(0.7, 0.1, num_samples))
    loss = (loss - loss.min()) / (loss.max() - loss.min())
    clean_prob, mixture = dividemix.gmm_clean_prob([torch.tensor(loss)], random_state=0)
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4,
                          random_state=0).fit(loss.reshape(-1, 1))
    np.testing.assert_array_equal(mixture['means'], gmm.means_.ravel())
    np.testing.assert_array_equal(mixture['variances'], gmm.covariances_.ravel())
    np.testing.assert_array_equal(mixture['weights'], gmm.weights_)
    np.testing.assert_array_equal(
        clean_prob, gmm.predict_proba(loss.reshape(-1, 1))[:, gmm.means_.argmin()])
    return loss, clean_prob, mixture, gmm, is_clean


def make_run(run_dir, prefix='cifar10_0.5_sym', snapshot_epochs=(3, 11)):
    """A finished CIFAR run folder with everything snapshots.py saves."""
    args = {'script': 'Train_cifar.py', 'warm_up': 3, 'num_epochs': 12, 'lambda_u': 25,
            'rampup_epochs': 4, 'lr': 0.02, 'lr_drop_epoch': 8, 'p_threshold': 0.5,
            'method': 'dividemix'}
    write_log(run_dir, prefix, cifar_records(), {'best': 33.0, 'last10': 28.5, 'epochs': 12},
              args)
    rng = np.random.RandomState(1)
    noisy_labels = rng.randint(0, 10, 400)
    for epoch in snapshot_epochs:
        loss, clean_prob, mixture, _, is_clean = bimodal_division(seed=epoch)
        nets = {'net1': {'loss': loss, 'clean_prob': clean_prob, 'mixture': 'gmm',
                         'components': mixture},
                # as in Clothing1M, a GMM on a subset (here every other sample)
                'net2': {'loss': loss[::2], 'clean_prob': clean_prob[::2], 'mixture': 'gmm',
                         'components': mixture, 'indices': np.arange(0, 400, 2)}}
        snapshots.save_division(run_dir, prefix, epoch, 0.5, noisy_labels, nets, is_clean)
    clean_labels = rng.randint(0, 10, 60)
    features = np.eye(10)[clean_labels].repeat(2, 1) + 0.1 * rng.randn(60, 20)
    snapshots.save_features(run_dir, prefix, features, rng.randint(0, 10, 60), clean_labels,
                            np.arange(60))
    return prefix


def write_images(folder, count):
    os.makedirs(folder, exist_ok=True)
    paths = []
    for k in range(count):
        path = os.path.join(folder, 'img%d.%s' % (k, 'png' if k % 2 else 'jpg'))
        Image.fromarray(np.full((24, 20, 3), 20 * k, np.uint8)).save(path)
        paths.append(path)
    return paths


def check_png(path, max_bytes=300_000):
    assert 2_000 < os.path.getsize(path) < max_bytes, (path, os.path.getsize(path))
    with Image.open(path) as img:
        assert img.format == 'PNG'
        width, height = img.size
    assert 400 <= width <= 1200 and 300 <= height <= 900, (path, img.size)


# ---------------------------------------------------------------- snapshots.py ---------------

def test_division_epochs():
    assert snapshots.division_epochs(10, 300) == [10, 11, 50, 100, 150, 200, 250, 299]
    assert snapshots.division_epochs(30, 300) == [30, 31, 50, 100, 150, 200, 250, 299]
    assert snapshots.division_epochs(1, 80, every=20) == [1, 2, 20, 40, 60, 79]
    assert snapshots.division_epochs(10, 11) == [10]  # a single co-divide epoch
    assert snapshots.division_epochs(10, 10) == []  # warm-up only: nothing divides


def test_save_division_round_trip(tmp_path):
    loss, clean_prob, mixture, gmm, is_clean = bimodal_division()
    other = {'means': mixture['means'][::-1], 'variances': mixture['variances'] * 2,
             'weights': mixture['weights'][::-1]}  # net2's own GMM: other numbers
    nets = {'net1': {'loss': torch.tensor(loss), 'clean_prob': clean_prob, 'mixture': 'gmm',
                     'components': mixture},
            'net2': {'loss': loss[::-1].copy(), 'clean_prob': clean_prob[::-1], 'mixture': 'gmm',
                     'components': other}}
    labels = np.arange(400) % 14
    path = snapshots.save_division(str(tmp_path), 'run', 7, 0.6, labels, nets, is_clean)
    assert path == str(tmp_path / 'run_division' / 'epoch_007.npz')
    assert os.listdir(tmp_path / 'run_division') == ['epoch_007.npz']  # no temporary left
    with np.load(path) as saved:
        assert saved['epoch'] == 7 and saved['p_threshold'] == 0.6
        assert saved['noisy_labels'].dtype == np.int16
        np.testing.assert_array_equal(saved['noisy_labels'], labels)
        assert saved['is_clean'].dtype == bool
        np.testing.assert_array_equal(saved['is_clean'], is_clean)
        for net in ('net1', 'net2'):
            for part in ('loss', 'clean_prob'):
                values = saved['%s_%s' % (net, part)]
                assert values.dtype == np.float16 and values.shape == (400,)
                expected = nets[net][part]
                np.testing.assert_allclose(values, np.asarray(expected), atol=1e-3)
            for part in ('means', 'variances', 'weights'):
                assert saved['%s_gmm_%s' % (net, part)].dtype == np.float64
                assert saved['%s_gmm_%s' % (net, part)].shape == (2,)
                np.testing.assert_array_equal(saved['%s_gmm_%s' % (net, part)],
                                              nets[net]['components'][part])
        assert not any(key.endswith('_mixture') for key in saved.files)  # the format is kept
        np.testing.assert_array_equal(saved['net1_gmm_means'], gmm.means_.ravel())
        np.testing.assert_array_equal(saved['net1_gmm_variances'], gmm.covariances_.ravel())
        np.testing.assert_array_equal(saved['net1_gmm_weights'], gmm.weights_)
    # Clothing1M: no truth, no is_clean; each GMM on its own subset of the training set
    nets['net2']['indices'] = np.arange(400) + 1000
    path = snapshots.save_division(str(tmp_path), 'run', 8, 0.5, np.arange(2000) % 14, nets)
    with np.load(path) as saved:
        assert 'is_clean' not in saved.files and 'net1_indices' not in saved.files
        assert saved['net2_indices'].dtype == np.int32
        np.testing.assert_array_equal(saved['net2_indices'], np.arange(400) + 1000)


def test_threshold_from_saved_gmm_is_where_its_posterior_is_p_threshold(tmp_path):
    loss, clean_prob, mixture, gmm, _ = bimodal_division()
    path = snapshots.save_division(str(tmp_path), 'run', 3, 0.5, np.zeros(400),
                                   {'net1': {'loss': loss, 'clean_prob': clean_prob,
                                             'mixture': 'gmm', 'components': mixture}})
    with np.load(path) as saved:
        (mixture, components), = figures.saved_mixtures(saved).values()
        tau = figures.clean_threshold(mixture, components, 0.5)
    posterior = gmm.predict_proba([[tau]])[0, gmm.means_.argmin()]
    assert abs(posterior - 0.5) < 1e-4
    assert gmm.means_.min() < tau < gmm.means_.max()


def test_clean_threshold_hand_cases():
    # Equal variances v: the log-odds of clean (mean 0.2) vs noisy (mean 0.8) at loss x is
    # log(w_c / w_n) + (0.6 - 1.2 x) / (2 v), so tau = 0.5 + (2 v log(w_c / w_n) - 2 v
    # logit(p)) / 1.2.
    v = np.array([0.01, 0.01])

    def gmm(means, weights):
        return {'means': np.array(means), 'variances': v, 'weights': np.array(weights)}
    tau = figures.clean_threshold('gmm', gmm([0.2, 0.8], [0.5, 0.5]), 0.5)
    assert abs(tau - 0.5) < 1e-6
    tau = figures.clean_threshold('gmm', gmm([0.8, 0.2], [0.5, 0.5]), 0.9)
    assert abs(tau - (0.5 - 0.02 * math.log(9) / 1.2)) < 1e-5  # 0.46338; components swapped
    tau = figures.clean_threshold('gmm', gmm([0.2, 0.8], [0.75, 0.25]), 0.5)
    assert abs(tau - (0.5 + 0.02 * math.log(3) / 1.2)) < 1e-5  # 0.51831
    # p_threshold 1: the posterior never reaches it, no tau
    assert figures.clean_threshold('gmm', gmm([0.2, 0.8], [0.5, 0.5]), 1.0) is None


def test_penultimate_features_are_the_input_of_the_last_linear():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.5), nn.Linear(8, 3))
    net.train()
    inputs = torch.randn(10, 5)
    loader = [(inputs[:6], torch.zeros(6)), (inputs[6:], torch.zeros(4))]
    features = snapshots.penultimate_features(net, loader, torch.device('cpu'))
    with torch.no_grad():
        expected = torch.relu(net[0](inputs)).numpy()  # dropout is off in eval mode
    assert features.dtype == np.float32 and features.shape == (10, 8)
    np.testing.assert_allclose(features, expected, rtol=1e-6)
    assert net.training  # mode restored
    assert not net[3]._forward_pre_hooks  # hook removed


def test_save_features_and_examples(tmp_path):
    features = np.random.RandomState(0).randn(7, 4)
    path = snapshots.save_features(str(tmp_path), 'run', features, [1, 2, 3, 4, 5, 6, 7],
                                   None, np.arange(10, 17))
    with np.load(path) as saved:
        assert saved['features'].dtype == np.float16
        np.testing.assert_allclose(saved['features'], features, atol=2e-3)
        np.testing.assert_array_equal(saved['indices'], np.arange(10, 17))
        assert 'clean_labels' not in saved.files  # Clothing1M: true labels unknown
    path = snapshots.save_unlabeled_examples(str(tmp_path), 'run', 4, ['a.jpg', 'b.jpg'],
                                             np.array([1, 2]), torch.tensor([3, 0]),
                                             [0.1, 0.2], ['T-Shirt', 'Shirt', 'Knitwear',
                                                          'Chiffon'])
    with open(path) as f:
        saved = json.load(f)
    assert saved['epoch'] == 4 and saved['class_names'][3] == 'Chiffon'
    assert saved['examples'][1] == {'path': 'b.jpg', 'given': 2, 'guessed': 0,
                                    'clean_prob': 0.2}


def test_tensorboard_missing_prints_one_line_and_does_nothing(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard', None)  # import fails
    log = snapshots.TensorBoardLog(str(tmp_path / 'tb'), enabled=True)
    log.epoch({'epoch': 0, 'test_acc': 10.0})
    log.close()
    out = capsys.readouterr().out
    assert out.count('\n') == 1 and 'pip install tensorboard' in out
    assert not (tmp_path / 'tb').exists()
    snapshots.TensorBoardLog(str(tmp_path / 'tb'), enabled=False).close()
    assert capsys.readouterr().out == ''  # not asked for: not a word


def test_tensorboard_writes_flattened_finite_scalars(tmp_path, monkeypatch):
    written = []

    class RecordingWriter:
        def __init__(self, log_dir):
            self.log_dir = log_dir

        def add_scalar(self, name, value, step):
            written.append((name, value, step))

        def flush(self):
            pass

        def close(self):
            written.append('closed')

    monkeypatch.setitem(sys.modules, 'torch.utils.tensorboard',
                        types.SimpleNamespace(SummaryWriter=RecordingWriter))
    log = snapshots.TensorBoardLog(str(tmp_path), enabled=True)
    log.epoch({'epoch': 12, 'lr': 0.02, 'test_acc': 40, 'note': 'text', 'flag': True,
               'net1': {'labeled': 1104, 'auc': float('nan'), 'precision': None},
               'net2': {'inner': {'x': np.float32(0.5)}}})
    log.close()
    assert written == [('lr', 0.02, 12), ('test_acc', 40.0, 12), ('net1/labeled', 1104.0, 12),
                       ('net2/inner/x', 0.5, 12), 'closed']


def test_tensorboard_real_event_file(tmp_path):
    pytest.importorskip('tensorboard')
    log = snapshots.TensorBoardLog(str(tmp_path), enabled=True)
    log.epoch({'epoch': 0, 'test_acc': 10.0, 'net1': {'auc': 0.9}})
    log.close()
    assert any(name.startswith('events.out.tfevents') for name in os.listdir(tmp_path))


# ---------------------------------------------------------------- figures.py -----------------

def test_every_figure_of_a_run_with_snapshots(tmp_path, capsys):
    run_dir = str(tmp_path / 'run')
    prefix = make_run(run_dir)
    paths = figures.write_figures(run_dir)
    names = ['accuracy', 'division', 'loss_epoch3', 'loss_epoch11', 'tsne']
    assert paths == [os.path.join(run_dir, 'figures', '%s_%s.png' % (prefix, name))
                     for name in names]
    for path in paths:
        check_png(path)
    assert capsys.readouterr().out.split() == paths  # each path printed, nothing missing


def test_loss_figures_of_chosen_epochs_from_the_command_line(tmp_path, capsys):
    run_dir, out = str(tmp_path / 'run'), str(tmp_path / 'pictures')
    prefix = make_run(run_dir)
    write_log(run_dir, 'other', cifar_records(), args={})  # a second run, not asked for
    assert run_cli(figures.main, [run_dir, '--prefix', prefix, '--epochs', '11', '5',
                                  '--out', out]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert sorted(os.listdir(out)) == sorted('%s_%s.png' % (prefix, name) for name in
                                             ('accuracy', 'division', 'loss_epoch11', 'tsne'))
    assert sum('no loss snapshot for epoch 5' in line and 'saved: 3, 11' in line
               for line in lines) == 1


def test_the_loss_legend_sits_below_each_panel_in_one_order(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    run_dir = str(tmp_path / 'run')
    prefix = make_run(run_dir)
    fig = figures.loss_figure(figures.loss_snapshots(figures.read_run(run_dir, prefix))[11],
                              prefix)
    FigureCanvasAgg(fig).draw()
    orders = []
    for ax in fig.axes:
        legend = ax.get_legend()
        # under the axes (display coordinates grow upwards): it covers no bar or curve
        assert legend.get_window_extent().y1 <= ax.get_window_extent().y0
        orders.append([t.get_text().split(' (')[0] for t in legend.get_texts()])
    assert orders[0] == orders[1] and orders[0][:2] == ['clean', 'noisy']


def test_unlabeled_examples_grid(tmp_path, capsys):
    run_dir = str(tmp_path / 'run')
    records = [{'epoch': e, 'lr': 0.002, 'net1': {'labeled': 30, 'divided': 64},
                'net2': {'labeled': 31, 'divided': 64}, 'val_acc': 60.0 + e,
                'net1_val_acc': 59.0, 'net2_val_acc': 58.0, 'seconds': 1.0} for e in range(3)]
    write_log(run_dir, 'clothing1m', records, {'best': 62.0, 'last10': 61.0, 'test_acc': 70.0},
              {'script': 'Train_clothing1M.py', 'warm_up': 1, 'lambda_u': 0,
               'rampup_epochs': 16})
    paths = write_images(str(tmp_path / 'images'), 8) + [str(tmp_path / 'gone.jpg')]
    snapshots.save_unlabeled_examples(run_dir, 'clothing1m', 2, paths, np.arange(9) % 14,
                                      (np.arange(9) + 3) % 14, np.full(9, 0.1),
                                      ['class %d' % k for k in range(14)])
    figures.write_figures(run_dir)
    check_png(os.path.join(run_dir, 'figures', 'clothing1m_unlabeled_examples.png'))
    out = capsys.readouterr().out
    assert '1 example images could not be opened (first: %s)' % paths[-1] in out


def test_a_real_image_grid_stays_small(tmp_path):
    # Photos compress badly: 18 of them in a 256-colour PNG must still stay under 300 KB.
    import matplotlib
    photo = os.path.join(matplotlib.get_data_path(), 'sample_data', 'grace_hopper.jpg')
    run_dir = str(tmp_path / 'run')
    write_log(run_dir, 'webvision', [{'epoch': 0, 'webvision_top1': 1.0}],
              args={'script': 'Train_webvision.py'})
    snapshots.save_unlabeled_examples(run_dir, 'webvision', 0, [photo] * 20, np.zeros(20),
                                      np.ones(20), np.zeros(20))
    figures.write_figures(run_dir)
    check_png(os.path.join(run_dir, 'figures', 'webvision_unlabeled_examples.png'))


def test_clothing1m_and_webvision_logs(tmp_path, capsys):
    run_dir = str(tmp_path / 'run')
    clothing = [{'epoch': e, 'lr': 0.002 if e < 2 else 0.0002,
                 'net1': {'warmup_ce': 1.0} if e == 0 else {'labeled': 20 + e, 'divided': 64},
                 'net2': {'warmup_ce': 1.0} if e == 0 else {'labeled': 22 + e, 'divided': 64},
                 'val_acc': 60.0 + e, 'net1_val_acc': 59.0 + e, 'net2_val_acc': 58.0 + e,
                 'seconds': 1.0} for e in range(4)]
    write_log(run_dir, 'clothing1m', clothing, {'best': 63.0, 'last10': 61.5, 'test_acc': 70.0},
              {'script': 'Train_clothing1M.py', 'warm_up': 1, 'lambda_u': 0,
               'rampup_epochs': 16, 'lr_drop_epoch': 2})
    run = figures.read_run(run_dir, 'clothing1m')
    assert run.kind == 'clothing1m' and run.warm_up == 1
    division = figures.division_figure(run)
    assert [ax.get_title() for ax in division.axes] == ['labeled-set size']  # no truth: no AUC
    assert 'no true labels known, so no AUC, precision or recall)' in (
        division.get_suptitle())  # said, not left to guess
    assert all(float(t).is_integer() for t in division.axes[0].get_xticks())  # whole epochs
    folder = dataclasses.replace(run, args=dict(run.args, script='Train_imagefolder.py'))
    assert ': --clean_list FILE gives them)' in figures.division_figure(folder).get_suptitle()
    accuracy = figures.accuracy_figure(run)
    assert 'test accuracy 70.00' in accuracy.axes[0].get_title()
    labels = accuracy.axes[0].get_legend_handles_labels()[1]
    assert 'lr 0.002 → 0.0002' in labels and 'best 63.00 (epoch 3)' in labels

    webvision = [{'epoch': e, 'lr': 0.01, 'net1': {'labeled': 40}, 'net2': {'labeled': 41},
                  'webvision_top1': 50.0 + e, 'webvision_top5': 70.0 + e,
                  'imagenet_top1': 45.0 + e, 'imagenet_top5': 65.0 + e, 'seconds': 1.0}
                 for e in range(1, 3)]
    write_log(run_dir, 'webvision', webvision,
              args={'script': 'Train_webvision.py', 'warm_up': 1, 'lambda_u': 0})
    run = figures.read_run(run_dir, 'webvision')
    labels = figures.accuracy_figure(run).axes[0].get_legend_handles_labels()[1]
    assert labels[:4] == ['WebVision top-1', 'WebVision top-5', 'ILSVRC12 top-1',
                          'ILSVRC12 top-5']
    assert 'best so far 52.00 (epoch 2)' in labels  # no final line: still running
    capsys.readouterr()
    figures.write_figures(run_dir, prefix='webvision')
    out = capsys.readouterr().out
    assert 'webvision_unlabeled_examples.png not drawn' in out  # Fig. 4 expected here


def test_the_kind_of_run_is_the_script_its_args_name(tmp_path):
    # Records that carry every kind's score: only the declared script decides how they are drawn.
    records = [{'epoch': e, 'lr': 0.02, 'test_acc': 30.0 + e, 'val_acc': 60.0 + e,
                'webvision_top1': 50.0 + e, 'net1': {}, 'net2': {}} for e in range(3)]
    for script, kind, axis, score in [
            ('Train_cifar.py', 'cifar', 'test accuracy (%)', 'ensemble'),
            ('Train_clothing1M.py', 'clothing1m', 'validation accuracy (%)', 'ensemble'),
            ('Train_webvision.py', 'webvision', 'accuracy (%)', 'WebVision top-1')]:
        write_log(str(tmp_path), kind, records, args={'script': script, 'num_batches': 10})
        run = figures.read_run(str(tmp_path), kind)
        assert (run.script, run.kind) == (script, kind)
        ax = figures.accuracy_figure(run).axes[0]
        assert ax.get_ylabel() == axis and ax.get_legend_handles_labels()[1][0] == score
        np.testing.assert_array_equal(ax.get_lines()[0].get_ydata(),
                                      [r[figures.ACCURACY_CURVES[kind][0][0]] for r in records])
    # Runs saved before the arguments named their script: each script's own arguments tell.
    old_args = {'Train_cifar.py': {'dataset': 'cifar10', 'noise_mode': 'sym', 'r': 0.5},
                'Train_clothing1M.py': {'num_batches': 1000, 'resize': 256, 'crop': 224},
                'Train_webvision.py': {'resize': 320, 'crop': 299}}
    for script, args in old_args.items():
        assert figures.script_of(args) == script == figures.script_of_old_run(args)
        assert figures.script_of(dict(args, script='Train_other.py')) == 'Train_other.py'
    assert figures.script_of({}) is None
    # no _args.json at all: the kind is unknown, said in one line, not guessed from the records
    write_log(str(tmp_path / 'bare'), 'run', records)
    run = figures.read_run(str(tmp_path / 'bare'), 'run')
    assert run.kind is None
    with pytest.raises(figures.Missing, match='run_args.json is missing or names no Train'):
        figures.accuracy_figure(run)


def test_old_run_fallback_matches_what_each_script_saves():
    # The fallback must keep telling the three scripts apart by the arguments they save today.
    import Train_cifar
    import Train_clothing1M
    import Train_webvision
    for module in (Train_cifar, Train_clothing1M, Train_webvision):
        saved = vars(module.parse_args([]))
        assert saved['script'] == module.__name__ + '.py'
        assert figures.script_of(saved) == saved['script']
        del saved['script']
        assert figures.script_of_old_run(saved) == module.__name__ + '.py'


def test_lambda_u_ramp_is_the_one_training_uses(tmp_path, monkeypatch):
    run_dir = str(tmp_path / 'run')
    prefix = make_run(run_dir)  # warm_up 3, rampup_epochs 4, lambda_u 25, epochs 0-11
    run = figures.read_run(run_dir, prefix)
    fig = figures.accuracy_figure(run)
    (line,) = fig.axes[1].get_lines()  # the right axis
    assert line.get_label() == 'λu ramp-up (right axis)'
    x, weights = line.get_xdata(), line.get_ydata()
    np.testing.assert_array_equal(x, np.arange(13) - 0.5)  # epoch e spans e - 0.5 to e + 0.5
    # training's weight at the start of each epoch, and mid-epoch where the line interpolates
    for t in np.arange(0, 12.01, 0.25):
        assert np.interp(t - 0.5, x, weights) == pytest.approx(
            dividemix.linear_rampup(t, 3, 4, 25), abs=1e-12), t
    assert weights[3] == 0 and weights[5] == 12.5 and weights[7] == 25 and weights[-1] == 25
    # drawn by dividemix.linear_rampup itself, not a copy of it
    monkeypatch.setattr(dividemix, 'linear_rampup', lambda current, *_: float(current))
    x, weights = figures.lambda_u_ramp(run, np.arange(12))
    np.testing.assert_array_equal(weights, np.arange(13))
    # nothing ramps: lambda_u 0, the CE baseline, rampup_epochs 0
    args = run.args
    for changed in ({'lambda_u': 0}, {'method': 'ce'}, {'rampup_epochs': 0}):
        run.args = dict(args, **changed)
        assert figures.lambda_u_ramp(run, np.arange(12)) is None, changed


def test_a_run_still_going_with_a_half_written_line(tmp_path, capsys):
    run_dir = str(tmp_path / 'run')
    write_log(run_dir, 'cifar10_0.8_sym', cifar_records(6),
              args={'script': 'Train_cifar.py', 'warm_up': 3},
              tail='{"epoch": 6, "lr": 0.02, "noise_ra')
    records, final = figures.read_records(os.path.join(run_dir, 'cifar10_0.8_sym.jsonl'))
    assert [r['epoch'] for r in records] == list(range(6)) and final is None
    paths = figures.write_figures(run_dir)
    assert [os.path.basename(p) for p in paths] == ['cifar10_0.8_sym_accuracy.png',
                                                    'cifar10_0.8_sym_division.png']
    out = capsys.readouterr().out
    assert 'cifar10_0.8_sym_tsne.png not drawn' in out and 'has not finished' in out


def test_a_damaged_line_inside_the_log_is_an_input_error(tmp_path):
    path = tmp_path / 'run.jsonl'
    path.write_text('{"epoch": 0, "test_acc": 1}\n{"epoch": 1, "te\n{"epoch": 2}\n')
    with pytest.raises(InputError, match='line 2'):
        figures.read_records(str(path))


def test_measured_run_from_before_the_snapshots(tmp_path, capsys):
    """results/cifar10_cpu: a real 40-epoch run saved before snapshots were added (and before
    the arguments named their script)."""
    for suffix in ('.jsonl', '_args.json'):
        shutil.copy(os.path.join(MEASURED, 'cifar10_0.5_sym' + suffix), tmp_path)
    paths = figures.write_figures(str(tmp_path))
    assert [os.path.basename(p) for p in paths] == ['cifar10_0.5_sym_accuracy.png',
                                                    'cifar10_0.5_sym_division.png']
    for path in paths:
        check_png(path)
    missing = [line for line in capsys.readouterr().out.splitlines() if 'not drawn' in line]
    assert len(missing) == 2
    assert missing[0].startswith('cifar10_0.5_sym_loss_epoch*.png not drawn: no loss '
                                 'snapshots in %s' % tmp_path)
    assert 'rerun to get Fig. 2' in missing[0] and 'rerun to get Fig. 5' in missing[1]
    run = figures.read_run(str(tmp_path), 'cifar10_0.5_sym')
    assert 'script' not in run.args and run.script == 'Train_cifar.py' and run.kind == 'cifar'
    labels = figures.accuracy_figure(run).axes[0].get_legend_handles_labels()[1]
    # the final line's numbers; best at epoch 34 (41.65) by the log; lr drop at 25
    assert 'best 41.65 (epoch 34)' in labels and 'last-10 mean 40.88' in labels
    assert 'lr 0.02 → 0.002' in labels and 'warm-up (10 epochs)' in labels


def test_measured_ce_baseline_draws_net1_only(tmp_path, capsys):
    for suffix in ('.jsonl', '_args.json'):
        shutil.copy(os.path.join(MEASURED, 'cifar10_0.5_sym_ce' + suffix), tmp_path)
    run = figures.read_run(str(tmp_path), 'cifar10_0.5_sym_ce')
    labels = figures.accuracy_figure(run).axes[0].get_legend_handles_labels()[1]
    assert labels[0] == 'net1' and 'net2' not in labels  # net2 never trains in the baseline
    assert not any(label.startswith('warm-up') or label.startswith('λu') for label in labels)
    with pytest.raises(figures.Missing, match='CE baseline does not divide'):
        figures.division_figure(run)


def test_no_run_is_one_line_error(tmp_path, capsys):
    with pytest.raises(InputError, match='no run in'):
        figures.write_figures(str(tmp_path))
    with pytest.raises(InputError, match='not a folder'):
        figures.write_figures(str(tmp_path / 'absent'))
    write_log(str(tmp_path), 'cifar10_0.5_sym', cifar_records(2))
    with pytest.raises(InputError, match='runs there: cifar10_0.5_sym'):
        figures.write_figures(str(tmp_path), prefix='cifar10_0.8_sym')
    assert run_cli(figures.main, [str(tmp_path / 'absent')]) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: ')


# ---------------------------------------------------------------- a real tiny run ------------

@pytest.mark.slow
def test_a_cifar_run_saves_snapshots_and_draws_its_figures(cifar10_dir, tmp_path, capsys):
    import Train_cifar
    out = str(tmp_path / 'run')
    # --tensorboard where the package is there (without it, the run is refused at its start:
    # tests/test_tools_rules.py)
    has_tensorboard = importable('torch.utils.tensorboard')
    Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', out, '--width', '8',
                      '--num_epochs', '4', '--warm_up', '2', '--batch_size', '16',
                      '--num_workers', '0'] + ['--tensorboard'] * has_tensorboard)
    prefix = 'cifar10_0.5_sym'
    written = capsys.readouterr().out
    assert os.path.isdir(os.path.join(out, prefix + '_tb')) == has_tensorboard
    if has_tensorboard:
        assert os.listdir(os.path.join(out, prefix + '_tb'))
    # snapshots at the epochs division_epochs names, each with what the GMM saw
    saved = sorted(os.listdir(snapshots.division_dir(out, prefix)))
    assert saved == ['epoch_%03d.npz' % e for e in snapshots.division_epochs(2, 4)]
    snap = np.load(os.path.join(snapshots.division_dir(out, prefix), saved[0]))
    noisy = json.load(open(os.path.join(cifar10_dir, 'cifar-10-batches-py', '0.5_sym.json')))
    assert np.array_equal(snap['noisy_labels'], noisy)
    assert snap['net1_loss'].shape == (200,) and 0 <= snap['net1_loss'].min()
    mixtures = figures.saved_mixtures(snap)
    assert sorted(mixtures) == ['net1', 'net2']
    for net, (mixture, components) in mixtures.items():  # the GMM that gave the saved w_i
        assert mixture == 'gmm' and sorted(components) == ['means', 'variances', 'weights']
        posterior = figures.clean_posterior(snap[net + '_loss'], mixture, components)
        # float16 loss and clean_prob on disk: 1e-3 at most, measured
        np.testing.assert_allclose(posterior, snap[net + '_clean_prob'], atol=5e-3)
    from dataloader_cifar import load_cifar
    clean = load_cifar(cifar10_dir, 'cifar10', False)[1]
    assert np.array_equal(snap['is_clean'], np.asarray(noisy) == clean)
    features = np.load(os.path.join(out, prefix + '_features.npz'))
    assert features['features'].shape == (200, 64)  # width 8: 8 * 8 features per image
    # the t-SNE's legend names the classes
    tsne = figures.tsne_figure(figures.read_run(out, prefix))
    from dataloader_cifar import CIFAR10_CLASSES
    assert [t.get_text() for t in tsne.axes[-1].get_legend().get_texts()] == list(
        CIFAR10_CLASSES)
    for name in ('accuracy', 'division', 'loss_epoch2', 'loss_epoch3', 'tsne',
                 'labels_gallery', 'labels_confusion'):  # the labels file's pictures too
        path = os.path.join(out, 'figures', '%s_%s.png' % (prefix, name))
        assert path in written
        with Image.open(path) as img:
            assert img.format == 'PNG' and 400 <= img.width <= 2000
        assert 5_000 < os.path.getsize(path) < 500_000
