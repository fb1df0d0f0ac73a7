"""The paper's other experiments: ablation switches (Table 5), the CE baseline, Table 6 noise,
CIFAR-N, and tools/paper_cells.py."""
import json
import os
import random
import shutil

import numpy as np
import pytest
import torch
import torch.nn as nn

import dividemix as dm
from tools import paper_cells
import Train_cifar
from conftest import ROOT, TABLE7, script_args
from dataloader_cifar import CIFARLoaders, load_cifar, make_noisy_labels, read_cifar_n
from utils.cli import InputError, run_cli

TINY = ['--width', '8', '--num_epochs', '3', '--warm_up', '1', '--batch_size', '16',
        '--num_workers', '0', '--no-figures']


class Spy:
    """Wraps a function of `owner` (a module) and records its calls."""
    def __init__(self, monkeypatch, owner, name):
        self.calls, self.real = [], getattr(owner, name)
        monkeypatch.setattr(owner, name, self)

    def __call__(self, *args, **kwargs):
        out = self.real(*args, **kwargs)
        self.calls.append((args, kwargs, out))
        return out


def run(cifar10_dir, tmp_path, monkeypatch, *extra):
    """A tiny Train_cifar run with co-divide and the two epoch functions spied on. Their calls
    hold the positional arguments: ssl_epoch's 8th is the run's args, warmup_epoch's 5th says
    whether the confidence penalty is on."""
    divide = Spy(monkeypatch, dm, 'co_divide')
    train, warm = (Spy(monkeypatch, Train_cifar, n) for n in ('ssl_epoch', 'warmup_epoch'))
    out = str(tmp_path / 'out')
    Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', out] + TINY + list(extra))
    # the training's divisions only: the labels file at the end co-divides the networks'
    # logits once more (utils/label_export.py, through an identity network)
    divide.calls = [c for c in divide.calls if not isinstance(c[0][0], nn.Identity)]
    jsonl = [p for p in os.listdir(out) if p.endswith('.jsonl')][0]
    with open(os.path.join(out, jsonl)) as f:
        records = [json.loads(line) for line in f][:-1]
    return divide, train, warm, records


@pytest.mark.slow
def test_default_cotraining_uses_the_other_networks_division(cifar10_dir, tmp_path, monkeypatch):
    divide, train, warm, records = run(cifar10_dir, tmp_path, monkeypatch, '--plain')
    # SSL epochs 1 and 2: both networks divide; net1 trains with net2 as partner and vice versa
    nets = [c[0][0] for c in divide.calls]
    assert len(nets) == 4 and nets[0] is not nets[1]
    pairs = [(c[0][0], c[0][1]) for c in train.calls]
    assert pairs[0] == (nets[0], nets[1]) and pairs[1] == (nets[1], nets[0])
    assert len(warm.calls) == 2  # warm-up epoch: both networks
    # net1's labeled set carries net2's clean probabilities, and vice versa
    for trained, divider in ((0, 1), (1, 0)):
        labeled_set = train.calls[trained][0][3].dataset
        division = divide.calls[divider][2].clean_prob
        assert np.allclose(labeled_set.prob, division[labeled_set.indices])


@pytest.mark.slow
def test_no_cotraining_is_one_network_dividing_for_itself(cifar10_dir, tmp_path, monkeypatch):
    divide, train, warm, records = run(cifar10_dir, tmp_path, monkeypatch, '--no_cotraining')
    assert len(warm.calls) == 1  # only net1 warms up
    divided_by = [c[0][0] for c in divide.calls]
    trained = [(c[0][0], c[0][1]) for c in train.calls]
    assert len(divided_by) == 2 and trained == [(divided_by[0], None), (divided_by[1], None)]
    assert all(not c[0][7].no_label_refinement for c in train.calls)
    assert all(r['test_acc'] == r['net1_acc'] for r in records)
    assert 'net2' not in records[-1]


@pytest.mark.slow
def test_ablation_switches_reach_the_ssl_step(cifar10_dir, tmp_path, monkeypatch):
    _, train, _, _ = run(cifar10_dir, tmp_path, monkeypatch, '--no_label_refinement')
    assert len(train.calls) == 4 and all(c[0][7].no_label_refinement for c in train.calls)
    assert all(c[0][1] is not None for c in train.calls)  # co-training untouched


@pytest.mark.slow
def test_divide_and_mixmatch_is_self_divide_without_refinement(cifar10_dir, tmp_path,
                                                               monkeypatch):
    _, train, _, _ = run(cifar10_dir, tmp_path, monkeypatch, '--divide_and_mixmatch')
    assert len(train.calls) == 2
    assert all(c[0][1] is None and c[0][7].no_label_refinement for c in train.calls)


@pytest.mark.slow
def test_test_net1_only(cifar10_dir, tmp_path, monkeypatch):
    _, train, _, records = run(cifar10_dir, tmp_path, monkeypatch, '--test_net1_only')
    assert len(train.calls) == 4  # training unchanged
    assert all(r['test_acc'] == r['net1_acc'] for r in records)


@pytest.mark.slow
def test_ce_baseline_trains_one_network_with_ce_only(cifar10_dir, tmp_path, monkeypatch):
    divide, train, warm, records = run(cifar10_dir, tmp_path, monkeypatch, '--method', 'ce')
    assert divide.calls == [] and train.calls == []
    assert len(warm.calls) == 3 and not any(c[0][4] for c in warm.calls)
    assert all(r['test_acc'] == r['net1_acc'] and 'warmup_ce' in r['net1'] for r in records)


def test_no_augmentation_views_are_the_plain_images(cifar10_dir):
    train_images, clean, test_images, test_labels = load_cifar(cifar10_dir, 'cifar10')
    loaders = CIFARLoaders('cifar10', train_images, clean, test_images, test_labels, 8)
    pred = np.arange(200) < 100
    labeled, unlabeled = loaders.train(pred, np.ones(200), augment=False)
    x1, x2, _, _ = next(iter(labeled))
    u1, u2 = next(iter(unlabeled))
    assert torch.equal(x1, x2) and torch.equal(u1, u2)
    plain = next(iter(loaders.eval_train()))[0]  # all 200 images, test transform
    assert all(any(torch.equal(view, img) for img in plain) for view in x1)
    labeled, _ = loaders.train(pred, np.ones(200))
    x1, x2, _, _ = next(iter(labeled))
    assert not torch.equal(x1, x2)  # default: two augmented views


def test_without_refinement_targets_are_the_noisy_labels(monkeypatch):
    seen = {}
    real = dm.mixup

    def spy(inputs, targets, lam, perm):
        seen['targets'] = targets
        return real(inputs, targets, lam, perm)
    monkeypatch.setattr(dm, 'mixup', spy)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    x = torch.randn(2, 4)
    labels = torch.tensor([0, 2])
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)

    def step(no_label_refinement):
        args = script_args(Train_cifar, num_class=3, T=0.5,
                           no_label_refinement=no_label_refinement)
        Train_cifar.ssl_step(net, None, optimizer, x, x, labels, torch.tensor([0.3, 0.9]), x, x,
                             torch.tensor(0.7), torch.arange(8), torch.tensor(1.0), args=args)
    step(no_label_refinement=True)
    onehot = torch.eye(3)[labels]
    assert torch.equal(seen['targets'][:4], torch.cat([onehot, onehot]))
    step(no_label_refinement=False)
    assert not torch.equal(seen['targets'][:2], onehot)  # refined by default


def test_guess_without_partner_averages_two_views():
    u1 = torch.log(torch.tensor([[0.8, 0.2]]))
    u2 = torch.log(torch.tensor([[0.6, 0.4]]))
    # mean [0.7, 0.3]; sharpen T=0.5 -> [.49, .09] / .58
    out = dm.co_guess(dm.mean_prediction(u1, u2), None, 0.5)
    assert torch.allclose(out, torch.tensor([[0.49 / 0.58, 0.09 / 0.58]]), atol=1e-6)


def test_sym_exclusive_never_keeps_the_true_label():
    clean = np.arange(50000) % 10
    noisy = np.array(make_noisy_labels(clean, 0.4, 'sym_exclusive', 10, 123))
    order = list(range(50000))
    random.Random(123).shuffle(order)
    chosen = np.zeros(50000, bool)
    chosen[order[:20000]] = True
    assert (noisy[chosen] != clean[chosen]).all() and (noisy[~chosen] == clean[~chosen]).all()
    counts = np.bincount((noisy[chosen] - clean[chosen]) % 10, minlength=10)
    assert counts[0] == 0 and counts[1:].min() > 2000  # uniform over the 9 other classes


def write_cifar_n(path, clean, **labels):
    torch.save(dict(clean_label=clean, **labels), path)


def test_cifar_n_reading_and_alignment(tmp_path):
    clean = np.arange(50000) % 10
    worst = (clean + (np.arange(50000) % 5 == 0)) % 10
    path = str(tmp_path / 'CIFAR-10_human.pt')
    write_cifar_n(path, clean, worse_label=worst)
    assert read_cifar_n(path, 'worse_label', clean[:300]) == worst[:300].tolist()
    with pytest.raises(InputError, match='do not match the training set'):
        read_cifar_n(path, 'worse_label', (clean[:300] + 1) % 10)
    with pytest.raises(InputError, match="no 'aggre_label' labels"):
        read_cifar_n(path, 'aggre_label', clean)
    write_cifar_n(path, clean[:49999], worse_label=worst[:49999])
    with pytest.raises(InputError, match='has 49999 labels, not one per CIFAR training image'):
        read_cifar_n(path, 'worse_label', clean[:10])
    (tmp_path / 'bad.pt').write_bytes(b'not a zip')
    with pytest.raises(InputError, match='not a readable CIFAR-N file'):
        read_cifar_n(str(tmp_path / 'bad.pt'), 'worse_label', clean)


@pytest.mark.slow
def test_cifar_n_end_to_end(cifar10_dir, tmp_path, monkeypatch):
    _, clean, _, _ = load_cifar(cifar10_dir, 'cifar10')
    full = np.concatenate([clean, np.zeros(50000 - len(clean), np.int64)])
    worst = (full + (np.arange(50000) % 4 == 0)) % 10  # every 4th label wrong
    write_cifar_n(os.path.join(cifar10_dir, 'CIFAR-10_human.pt'), full, worse_label=worst)
    _, _, warm, records = run(cifar10_dir, tmp_path, monkeypatch, '--noise_mode', 'cifar-n')
    assert records[0]['noise_rate'] == pytest.approx(np.mean(worst[:200] != clean))
    assert os.path.exists(tmp_path / 'out' / 'cifar10_worse_label.jsonl')
    assert all(c[0][4] for c in warm.calls)  # class-dependent noise


def test_cifar_n_file_that_runs_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ('touch %s' % (tmp_path / 'pwned'),))
    torch.save({'worse_label': Evil()}, tmp_path / 'evil.pt')
    with pytest.raises(InputError, match='forbidden global'):
        read_cifar_n(str(tmp_path / 'evil.pt'), 'worse_label', np.zeros(3))
    assert not (tmp_path / 'pwned').exists()


def test_real_cifar_n_rates_and_alignment(real_cifar10, real_cifar10_n):
    path = real_cifar10_n
    _, clean, _, _ = load_cifar(real_cifar10, 'cifar10')
    rates = {k: np.mean(np.array(read_cifar_n(path, k, clean)) != clean)
             for k in ('aggre_label', 'random_label1', 'worse_label')}
    # the published CIFAR-10N noise rates: aggregate 9.03%, random-1 17.23%, worst 40.21%
    assert abs(rates['aggre_label'] - 0.0903) < 0.001
    assert abs(rates['random_label1'] - 0.1723) < 0.001
    assert abs(rates['worse_label'] - 0.4021) < 0.001


def test_cells_follow_table7():
    cifar_cells = [c for c in paper_cells.cells() if c[0] in '125']
    assert len(cifar_cells) == 9 * 7  # CE, DivideMix and 5 ablations per column
    for cell in cifar_cells:
        args = Train_cifar.complete_args(Train_cifar.parse_args(cell[3]))
        assert (args.lambda_u, args.p_threshold) == TABLE7[
            (args.dataset, args.noise_mode, args.r)], cell
    tables = [c[0] for c in paper_cells.cells()]
    assert tables.count('3') == 1 and tables.count('4') == 1 and tables.count('6') == 8


def test_jobs_file(tmp_path, capsys):
    path = str(tmp_path / 'jobs.txt')
    assert paper_cells.main(['jobs', path, '--tables', '2', '--seeds', '1', '2']) == 0
    lines = open(path).read().splitlines()
    assert len(lines) == 2 * 2  # Table 2: CE and DivideMix, two seeds each
    assert lines[0] == ('python Train_cifar.py --r 0.4 --noise_mode asym --method ce --seed 1 '
                        '--out_dir checkpoint/seed1')


@pytest.mark.slow
def test_table_from_logs_partial_and_missing(cifar10_dir, tmp_path, capsys):
    for seed in (1, 2):
        Train_cifar.main(['--data_path', cifar10_dir, '--seed', str(seed), '--out_dir',
                          str(tmp_path / 'runs' / ('seed%d' % seed))] + TINY)
    # a run still going: its JSONL has epochs but no final line
    partial = tmp_path / 'runs' / 'seed1' / 'cifar10_0.5_sym.jsonl'
    lines = partial.read_text().splitlines()
    partial.write_text('\n'.join(lines[:2]) + '\n')
    text = paper_cells.table([str(tmp_path / 'runs')], missing=True)
    row = [line for line in text.splitlines() if 'cifar10 sym 50% DivideMix' in line][0]
    cols = [c.strip() for c in row.split('|')]
    assert '(running: 2, 3 epochs)' in cols[2] and cols[4] == '1 2'
    assert cols[5] == '94.60' and cols[6] == '94.40'  # the paper's numbers
    assert '±' in cols[7] and '±' in cols[8]  # mean +- std over two seeds
    accs = [[json.loads(x)['test_acc'] for x in open(
        tmp_path / 'runs' / s / 'cifar10_0.5_sym.jsonl') if '"epoch"' in x] for s in ('seed1',
                                                                                      'seed2')]
    assert cols[7] == '%.2f ± %.2f' % (np.mean([max(a) for a in accs]),
                                       np.std([max(a) for a in accs]))
    assert cols[9].endswith('%')
    missing = [line for line in text.splitlines() if 'Clothing1M' in line][0]
    assert 'not run' in missing
    assert 'Clothing1M' not in paper_cells.table([str(tmp_path / 'runs')])


def test_table_has_the_cells_with_runs_and_with_all_every_cell(tmp_path, capsys):
    # one measured run (its log and arguments), where `table` looks by default: ./checkpoint
    run = tmp_path / 'checkpoint' / 'seed123'
    os.makedirs(run)
    for suffix in ('.jsonl', '_args.json'):
        shutil.copy(os.path.join(ROOT, 'results', 'authors_setting', 'cifar10_0.5_sym' + suffix),
                    str(run))

    def rows(*argv):
        assert paper_cells.main(['table'] + list(argv)) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith('| table | cell |') and lines[1].startswith('|---|')
        return lines[2:]

    (row,) = rows()  # the default: only the cell that has a run
    assert '| 1 | cifar10 sym 50% DivideMix |' in row and 'not run' not in row
    assert rows('--runs_only') == [row]  # the old flag, accepted: the default
    assert rows(str(tmp_path / 'checkpoint')) == [row]
    every = rows('--all')  # and a row for every other cell of the paper's Tables 1-6
    paper = [c for c in paper_cells.cells() if c[0] in paper_cells.PAPER_TABLES]
    assert len(every) == len(paper) == 73 and row in every
    assert sum('| not run | not run |' in r for r in every) == 72
    # beyond the paper, when named: C2D's 2 cells and AugDesc-WS's 18
    assert sum('not run' in r for r in rows('--all', '--tables', 'C2D', 'augdesc')) == 2 + 18
    table1 = [r for r in rows('--all', '--tables', '1', 'augdesc') if r.startswith('| 1 |')]
    assert len(table1) == sum(c[0] == '1' for c in paper_cells.cells()) and row in table1
    # a folder that is not there: one error naming it and --all; with no run anywhere and no
    # folder named, --all gives every cell as not run
    assert run_cli(paper_cells.main, ['table', str(tmp_path / 'none')]) == 2
    err = capsys.readouterr().err
    assert err == ('error: %s is not a folder (a run is <name>.jsonl beside its <name>_args.json,'
                   ' in the --out_dir of Train_*.py): pass the folders that hold runs, or add '
                   '--all for every cell of the paper\n' % (tmp_path / 'none'))
    shutil.rmtree(tmp_path / 'checkpoint')
    assert sum('not run' in r for r in rows('--all')) == 73
    # as a command: the table alone (the cells' argument checks print nothing)
    assert run_cli(paper_cells.main, ['table', '--all']) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2 + 73


def augdesc_cells():
    return [c for c in paper_cells.cells() if c[0] == 'augdesc']


def test_augdesc_cells_pass_the_argument_check_with_their_presets(capsys):
    cells = augdesc_cells()
    assert len(cells) == 9 * 2  # weak and strong warm-up per CIFAR column
    for k, (dataset, mode, r) in enumerate(paper_cells.CIFAR_COLUMNS):
        for variant in ('WAW', 'SAW'):
            (cell,) = [c for c in cells if c[1].startswith('%s %s %d%% ' % (dataset, mode, 100 * r))
                       and c[1].endswith('(%s)' % variant)]
            args = Train_cifar.complete_args(Train_cifar.parse_args(cell[3]))
            epochs, drop, best, last = paper_cells.PAPER_AUGDESC[k][variant]
            assert args.strong_aug and args.strong_warmup == (variant == 'SAW')
            assert (args.num_epochs, args.lr_drop_epoch, args.batch_size) == (epochs, drop, 128)
            assert cell[4:] == (best, last) and best >= last
            # their presets' lambda_u, p_threshold and loss averaging are the paper's Table 7
            assert (args.lambda_u, args.p_threshold) == TABLE7[(dataset, mode, r)]
            assert args.loss_history == (5 if r >= 0.9 else 1)
            assert args.warm_up == (10 if dataset == 'cifar10' else 30)
    assert paper_cells.PAPER_AUGDESC[3]['WAW'][2:] == (91.88, 91.76)  # their CIFAR-10 90%
    capsys.readouterr()
    assert paper_cells.main(['list', '--tables', 'augdesc']) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * 18 and all('--strong_aug' in x for x in lines[1::2])
    assert lines[6:8] == [
        '# Table augdesc: cifar10 sym 50% AugDesc-WS, strong warm-up (SAW)',
        'python Train_cifar.py --r 0.5 --strong_aug --strong_warmup --num_epochs 300 '
        '--lr_drop_epoch 200 --batch_size 128 --seed 123 --out_dir checkpoint/seed123']


def test_run_key_keeps_strong_runs_apart_from_the_paper_cells():
    with open(os.path.join(ROOT, 'results', 'authors_setting', 'cifar10_0.5_sym_args.json')) as f:
        saved = json.load(f)  # a run saved before the strong switches existed
    assert 'strong_aug' not in saved
    keys = {c[1]: paper_cells.cell_key(c) for c in paper_cells.cells()}
    dividemix = keys['cifar10 sym 50% DivideMix']
    waw = keys['cifar10 sym 50% AugDesc-WS, weak warm-up (WAW)']
    saw = keys['cifar10 sym 50% AugDesc-WS, strong warm-up (SAW)']
    assert len({dividemix, waw, saw}) == 3 and len(set(keys.values())) == len(keys)
    assert paper_cells.run_key('Train_cifar.py', saved) == dividemix
    off = dict(saved, strong_aug=False, strong_warmup=False)
    assert paper_cells.run_key('Train_cifar.py', off) == dividemix
    strong = dict(saved, strong_aug=True, strong_warmup=False)
    assert paper_cells.run_key('Train_cifar.py', strong) == waw
    assert paper_cells.run_key('Train_cifar.py', dict(strong, strong_warmup=True)) == saw
    # the schedule and batch size are a run's scale, not its cell
    assert paper_cells.run_key('Train_cifar.py', dict(strong, num_epochs=3, batch_size=16)) == waw


def test_table_shows_augdesc_numbers_beside_a_strong_run(tmp_path):
    source = os.path.join(ROOT, 'results', 'authors_setting', 'cifar10_0.5_sym')
    with open(source + '_args.json') as f:
        saved = json.load(f)
    runs = {'cifar10_0.5_sym': {}, 'cifar10_0.5_sym_strong_aug': dict(strong_aug=True),
            'cifar10_0.5_sym_strong_aug_strong_warmup': dict(strong_aug=True,
                                                             strong_warmup=True)}
    for name, switches in runs.items():
        shutil.copy(source + '.jsonl', str(tmp_path / (name + '.jsonl')))
        with open(tmp_path / (name + '_args.json'), 'w') as f:
            json.dump(dict(saved, batch_size=128, **switches), f)
    rows = paper_cells.table([str(tmp_path)]).splitlines()[2:]
    cols = {r.split('|')[2].strip(): [c.strip() for c in r.split('|')[1:-1]] for r in rows}
    assert len(rows) == 3
    waw = cols['cifar10 sym 50% AugDesc-WS, weak warm-up (WAW)']
    saw = cols['cifar10 sym 50% AugDesc-WS, strong warm-up (SAW)']
    plain = cols['cifar10 sym 50% DivideMix']
    assert waw[0] == saw[0] == 'augdesc' and plain[0] == '1'
    assert waw[4:6] == ['95.36', '95.13'] and saw[4:6] == ['95.64', '95.42']
    assert plain[4:6] == ['94.60', '94.40']
    assert waw[6:] == saw[6:] == plain[6:]  # the same log: the same numbers of ours


@pytest.mark.slow
def test_a_run_extended_with_resume_shows_its_true_epochs(cifar10_dir, tmp_path):
    out = str(tmp_path / 'runs' / 'seed1')
    argv = ['--data_path', cifar10_dir, '--seed', '1', '--out_dir', out] + TINY  # 3 epochs
    Train_cifar.main(argv)
    Train_cifar.main(argv + ['--num_epochs', '4', '--resume'])  # one more
    row = [line for line in paper_cells.table([str(tmp_path / 'runs')]).splitlines()
           if 'sym 50%' in line][0]
    assert '4 epochs' in row and '3 epochs' not in row
