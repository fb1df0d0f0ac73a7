"""An experiment is a flag and a function: what follows from an argument's one declaration
(utils.cli.ArgumentParser) — its checks and rules, the run's name, what may change on resume,
what runs saved before it had — and a new mixture (dividemix.MIXTURES) reaching the division,
the labels file, tools/export_labels.py and Fig. 2 without a second edit."""
import argparse
import csv
import glob
import os
import shutil

import numpy as np
import pytest
import torch
from sklearn.mixture import GaussianMixture

import dividemix as dm
import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
from tools import export_labels, figures, paper_cells
from utils.cli import ArgumentParser, Range, Relation, at_least, check_args, run_cli
from utils.distributed import quiet

SCRIPTS = (Train_cifar, Train_clothing1M, Train_webvision, Train_imagefolder)
TINY = ['--width', '8', '--num_epochs', '3', '--warm_up', '1', '--batch_size', '16',
        '--num_workers', '0', '--no-figures']


def toy_parser():
    p = ArgumentParser(prog='toy')
    p.add_argument('--rate', type=float, default=0.1, check=Range(0, 1), names_run=True)
    p.add_argument('--model', default='small', choices=['small', 'large'], names_run=True)
    p.add_argument('--start', default=None, names_run=True)
    p.add_argument('--fancy', action='store_true', names_run=True,
                   rule=Relation(lambda a: not (a.fancy and a.model == 'large'),
                                 '--fancy is for the small model'))
    group = p.add_argument_group('shortcuts')
    group.add_argument('--both', action='store_true', names_run=True,
                       implies={'fancy': True, 'plain_too': True})
    p.add_argument('--plain_too', action='store_true', names_run=True)
    p.add_argument('--speed', action='store_true', resumable=True)
    p.add_argument('--added_later', type=int, default=7, check=at_least(0), before=3)
    return p, group


# ---------------------------------------------------------------- the declarations ------------

def test_a_run_name_says_every_method_switch_off_its_default():
    p, _ = toy_parser()
    assert p.run_name_parts(p.parse_args([])) == ''
    assert p.run_name_parts(p.parse_args(['--speed', '--added_later', '9'])) == ''
    assert p.run_name_parts(p.parse_args(['--rate', '0.25', '--model', 'large', '--start', 'f.pth',
                                          '--fancy'])) == '_rate0.25_large_start_fancy'
    # a switch that stands for others names the run alone; the declaration order is the name's
    args = p.parse_args(['--both'])
    assert args.fancy and args.plain_too and p.run_name_parts(args) == '_both'
    # a run's saved arguments (a dict) name it the same way; what it predates reads as `before`
    assert p.run_name_parts({'rate': 0.1, 'model': 'large'}) == '_large'


def test_checks_and_rules_come_from_the_declarations():
    p, group = toy_parser()
    assert list(p.rules)[:2] == ['rate', 'added_later']  # every check, then every rule
    assert isinstance(p.rules['fancy, rule 0'], Relation)
    check_args(p.parse_args([]), p.rules)
    with pytest.raises(ValueError, match=r'--rate 2.0: it must be in \[0, 1\]'):
        check_args(p.parse_args(['--rate', '2']), p.rules)
    with pytest.raises(ValueError, match='--fancy is for the small model'):
        check_args(p.parse_args(['--fancy', '--model', 'large']), p.rules)
    assert group.dests == ['both'] and 'help' not in p.declared  # (--help holds no value)


def test_resume_and_old_runs_follow_the_declarations():
    p, _ = toy_parser()
    assert p.resumable == {'speed'}
    # a run saved before --added_later existed had 3 (its `before`), one before --model the
    # default
    assert p.completed({'rate': 0.5}) == dict(vars(p.parse_args([])), rate=0.5, added_later=3)


@pytest.mark.parametrize('script', SCRIPTS)
def test_every_script_declares_what_its_runs_need(script):
    parser = script.argument_parser()
    # where things are and how fast they run may change on resume; the method may not
    assert {'num_epochs', 'num_workers', 'gpuid', 'out_dir', 'resume', 'data_path', 'plain',
            'compile', 'figures', 'tensorboard'} <= parser.resumable
    assert not {'lr', 'seed', 'p_threshold', 'mixture', 'strong_aug'} & parser.resumable
    # the mixture is chosen by name, in every script, from dividemix.MIXTURES
    assert parser.declared['mixture'].choices == sorted(dm.MIXTURES)
    assert parser.declared['mixture'].names_run and parser.declared['strong_aug'].names_run


@pytest.mark.parametrize('argv, name', [
    ([], 'cifar10_0.5_sym'),
    (['--method', 'ce'], 'cifar10_0.5_sym_ce'),
    (['--test_net1_only'], 'cifar10_0.5_sym_test_net1_only'),
    (['--no_cotraining', '--no_label_refinement', '--no_augmentation'],
     'cifar10_0.5_sym_no_cotraining_no_label_refinement_no_augmentation'),
    (['--divide_and_mixmatch'], 'cifar10_0.5_sym_divide_and_mixmatch'),
    (['--strong_aug', '--strong_warmup'], 'cifar10_0.5_sym_strong_aug_strong_warmup'),
    (['--arch', 'resnet18', '--pretrained', 'x.pth', '--strong_aug'],
     'cifar10_0.5_sym_resnet18_pretrained_strong_aug'),
    (['--noise_mode', 'cifar-n', '--cifar_n_label', 'aggre_label', '--no_augmentation'],
     'cifar10_aggre_label_no_augmentation'),
    # what does not change the method never names the run
    (['--plain', '--lr', '0.1', '--gmm_max_iter', '20', '--num_train', '100'], 'cifar10_0.5_sym'),
])
def test_cifar_run_names_are_the_ones_runs_were_saved_with(argv, name):
    assert Train_cifar.run_name_of(Train_cifar.parse_args(argv)) == name


def test_the_baseline_refuses_every_ablation_its_group_declares(tmp_path, capsys):
    ablations = [a for a in Train_cifar.argument_parser()._action_groups
                 if a.title.startswith('ablations')][0].dests
    assert set(ablations) >= {'test_net1_only', 'no_cotraining', 'no_label_refinement',
                              'no_augmentation', 'divide_and_mixmatch'}  # Table 5's, and yours
    for ablation in ablations:
        code = run_cli(Train_cifar.main, ['--method', 'ce', '--' + ablation, '--out_dir',
                                          str(tmp_path / 'out'), '--data_path', str(tmp_path)])
        assert code == 2 and 'drop the DivideMix ablation switches' in capsys.readouterr().err


# ---------------------------------------------------------------- resume ----------------------

def test_a_run_saved_under_an_earlier_name_resumes_under_it(cifar10_dir, tmp_path, capsys):
    """Run names follow the declarations; a run saved before a rule changed (e.g. the name once
    left --strong_aug out beside --divide_and_mixmatch) resumes under the name it has."""
    out = str(tmp_path / 'run')
    argv = ['--data_path', cifar10_dir, '--out_dir', out] + TINY + ['--divide_and_mixmatch',
                                                                     '--strong_aug']
    assert run_cli(Train_cifar.main, argv[:-1] + ['--num_epochs', '2', '--strong_aug']) == 0
    now, earlier = 'cifar10_0.5_sym_divide_and_mixmatch_strong_aug', \
        'cifar10_0.5_sym_divide_and_mixmatch'
    for path in glob.glob(os.path.join(out, now + '*')):
        os.rename(path, path.replace(now, earlier))
    capsys.readouterr()
    assert run_cli(Train_cifar.main, argv + ['--resume']) == 0
    said = capsys.readouterr().out
    assert 'resuming %s, which has these settings' % earlier in said
    assert 'resuming after epoch 1' in said
    assert not glob.glob(os.path.join(out, now + '*'))
    assert torch.load(os.path.join(out, earlier + '_last.pth'), weights_only=True)['epoch'] == 2
    # with other settings, nothing is taken for it: a new run starts under its own name
    assert run_cli(Train_cifar.main, argv + ['--resume', '--lr', '0.01']) == 0
    assert 'nothing to resume' in capsys.readouterr().out
    assert os.path.exists(os.path.join(out, now + '_last.pth'))


# ---------------------------------------------------------------- a new mixture ---------------

# A researcher's new mixture: one entry of dm.MIXTURES, the rest follows from it.
GMM3 = dm.Mixture('3-component GMM', lambda history, seed, args: dm.gmm_clean_prob(
    history, seed, args.gmm_max_iter, args.gmm_tol, args.gmm_reg_covar, n_components=3),
    dm.gmm_log_density, num_components=3)


def test_a_k_component_gmm_is_sklearns():
    rng = np.random.RandomState(0)
    loss = torch.tensor(np.concatenate([rng.normal(m, 0.05, 100) for m in (0.1, 0.5, 0.9)]))
    prob, components = dm.gmm_clean_prob([loss], 0, n_components=3)
    gmm = GaussianMixture(3, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=0).fit(
        loss.double().numpy().reshape(-1, 1))
    assert np.array_equal(prob, gmm.predict_proba(loss.double().numpy().reshape(-1, 1))[
        :, gmm.means_.argmin()])
    assert all(components[k].shape == (3,) for k in ('means', 'variances', 'weights'))
    # Fig. 2's posterior from the saved components is the division's
    x = loss.double().numpy()
    np.testing.assert_allclose(figures.clean_posterior(x, 'gmm', components), prob, atol=1e-9)


def test_a_mixture_needs_as_many_images_as_components(monkeypatch, tmp_path, capsys):
    monkeypatch.setitem(dm.MIXTURES, 'gmm3', GMM3)
    for script, argv in ((Train_cifar, ['--num_train', '2']),
                         (Train_clothing1M, ['--num_batches', '1', '--batch_size', '2'])):
        code = run_cli(script.main, ['--mixture', 'gmm3', '--out_dir', str(tmp_path / 'out'),
                                     '--data_path', str(tmp_path)] + argv)
        err = capsys.readouterr().err
        assert code == 2 and err.startswith('error: --mixture gmm3 fits more components than')


def read_probs(path):
    with open(path) as f:
        return [(r['clean_prob_net1'], r['clean_prob_net2'], r['flagged_noisy'])
                for r in csv.DictReader(f)]


@pytest.mark.slow
def test_a_new_mixture_reaches_the_division_the_labels_file_and_fig2(cifar10_dir, tmp_path,
                                                                     monkeypatch, capsys):
    monkeypatch.setitem(dm.MIXTURES, 'gmm3', GMM3)
    fitted = []
    real = dm.gmm_clean_prob
    monkeypatch.setattr(dm, 'gmm_clean_prob', lambda *a, **k: fitted.append(
        k.get('n_components', 2)) or real(*a, **k))
    out = str(tmp_path / 'run')
    argv = ['--data_path', cifar10_dir, '--out_dir', out] + TINY[:-1] + ['--mixture', 'gmm3']
    assert run_cli(Train_cifar.main, argv) == 0
    # 3 components in training (2 SSL epochs x 2 networks) and the labels file (2 networks)
    assert fitted == [3] * 6
    prefix = os.path.join(out, 'cifar10_0.5_sym_gmm3')
    # the division snapshots hold its three components, Fig. 2 names it
    snapshot = np.load(sorted(glob.glob(prefix + '_division/*.npz'))[0])
    assert snapshot['net1_gmm3_means'].shape == (3,)
    mixtures = figures.saved_mixtures(snapshot)
    assert [m for m, _ in mixtures.values()] == ['gmm3', 'gmm3']
    fig = figures.loss_figure(sorted(glob.glob(prefix + '_division/*.npz'))[0], 'run')
    assert 'the 3-component GMM of each network' in fig.get_suptitle()
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert [t.split(' (')[0] for t in legend if '(mean' in t] == [
        '3-component GMM clean component', '3-component GMM noisy component 1',
        '3-component GMM noisy component 2']  # the clean one first, the noisy ones by mean
    # the labels file of the run and tools/export_labels.py's of its last checkpoint agree
    shutil.copy(prefix + '_labels.csv', str(tmp_path / 'run_labels.csv'))
    assert run_cli(export_labels.main, [prefix + '_last.pth', '--out',
                                        str(tmp_path / 'exported.csv')]) == 0
    assert read_probs(str(tmp_path / 'exported.csv')) == read_probs(prefix + '_labels.csv')


@pytest.mark.parametrize('script, argv', [
    (Train_cifar, ['--test_net1_only', '--strong_aug']),
    (Train_clothing1M, ['--strong_aug']),
    (Train_webvision, ['--strong_warmup']),
])
def test_a_run_that_changes_the_method_is_never_a_paper_cell(script, argv):
    paper = {paper_cells.cell_key(cell) for cell in paper_cells.cells()}
    name = os.path.basename(script.__file__)
    with quiet():
        complete = Train_cifar.complete_args if script is Train_cifar else (lambda a: a)
        assert paper_cells.run_key(name, vars(complete(script.parse_args([])))) in paper
        assert paper_cells.run_key(name, vars(complete(script.parse_args(argv)))) not in paper


def test_a_run_saved_before_an_argument_existed_resumes_whatever_its_default(tmp_path):
    # --lr, --alpha, ... default to None and the script fills them in (per --arch): a run that
    # predates such an argument resumes with the value it has now, never "(was None)"; one
    # with a declared default keeps being compared with it
    from utils.runlog import RunLog
    parser = Train_imagefolder.argument_parser()
    now = Train_imagefolder.complete_args(parser.parse_args(['--data_path', 'D']))
    log = RunLog(str(tmp_path), 'imagefolder', {}, arguments=parser)
    older = {k: v for k, v in vars(now).items() if k not in ('alpha', 'lr', 'seed')}
    assert log._refused_changes(older, now)[0] == []
    assert log._refused_changes(older, argparse.Namespace(**dict(vars(now), seed=5)))[0] == [
        'seed']  # a declared default: such a run had it
