"""Every argument of every script is checked before anything is read or written: a bad value
or a contradiction is one line on stderr and exit code 2, and no file or folder appears."""
import os
import types

import pytest

import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
from utils.cli import Range, Relation, check_args, run_cli

SCRIPTS = {'cifar': Train_cifar, 'clothing1M': Train_clothing1M, 'webvision': Train_webvision,
           'imagefolder': Train_imagefolder}

REFUSED = [
    # (script, arguments, what the line says)
    ('cifar', ['--batch_size', '0'], '--batch_size 0: it must be >= 1'),
    ('cifar', ['--batch_size', '-4'], '--batch_size -4: it must be >= 1'),
    ('cifar', ['--num_epochs', '0'], '--num_epochs 0: it must be >= 1'),
    ('cifar', ['--warm_up', '-1'], '--warm_up -1: it must be >= 0'),
    ('cifar', ['--width', '0'], '--width 0: it must be >= 1'),
    ('cifar', ['--lr', '0'], '--lr 0.0: it must be > 0'),
    ('cifar', ['--lr', '-0.02'], '--lr -0.02: it must be > 0'),
    ('cifar', ['--lr', 'nan'], '--lr nan: it must be > 0'),
    ('cifar', ['--lr', 'inf'], '--lr inf: it must be > 0'),
    ('cifar', ['--T', '0'], '--T 0.0: it must be > 0'),
    ('cifar', ['--alpha', '0'], '--alpha 0.0: it must be > 0'),
    ('cifar', ['--rampup_epochs', '0'], '--rampup_epochs 0: it must be >= 1'),
    ('cifar', ['--loss_history', '0'], '--loss_history 0: it must be >= 1'),
    ('cifar', ['--loss_history', '-2'], '--loss_history -2: it must be >= 1'),
    ('cifar', ['--p_threshold', '2'], '--p_threshold 2.0: it must be in [0, 1)'),
    ('cifar', ['--p_threshold', '1'], '--p_threshold 1.0: it must be in [0, 1)'),
    ('cifar', ['--lambda_u', '-1'], '--lambda_u -1.0: it must be >= 0'),
    ('cifar', ['--r', '50'], '--r 50.0: it must be in [0, 1] (give the noise ratio as a fraction'),
    ('cifar', ['--momentum', '1.5'], '--momentum 1.5: it must be in [0, 1]'),
    ('cifar', ['--weight_decay=-1e-4'], '--weight_decay -0.0001: it must be >= 0'),
    ('cifar', ['--gmm_max_iter', '0'], '--gmm_max_iter 0: it must be >= 1'),
    ('cifar', ['--gmm_tol', '-1'], '--gmm_tol -1.0: it must be >= 0'),
    ('cifar', ['--gmm_reg_covar', '-1'], '--gmm_reg_covar -1.0: it must be >= 0'),
    ('cifar', ['--seed', '-1'], '--seed -1: it must be in [0, 4294967295]'),
    ('cifar', ['--num_train', '1'], '--num_train 1: it must be >= 2'),
    ('cifar', ['--num_test', '0'], '--num_test 0: it must be >= 1'),
    ('cifar', ['--num_workers', '-1'], '--num_workers -1: it must be >= 0'),
    ('cifar', ['--gpuid', '-1'], '--gpuid -1: it must be >= 0'),
    ('cifar', ['--lr_drop_epoch', '-1'], '--lr_drop_epoch -1: it must be >= 0'),
    ('cifar', ['--num_class', '100'], '--num_class 100 disagrees with --dataset cifar10'),
    ('cifar', ['--cifar_n_label', 'worse_label'], 'are for --noise_mode cifar-n'),
    ('cifar', ['--noise_mode', 'cifar-n', '--noise_file', 'x.json'],
     'CIFAR-N labels come from --cifar_n_file'),
    ('cifar', ['--create_noise_file'], '--create_noise_file needs --noise_file PATH'),
    ('cifar', ['--method', 'ce', '--no_cotraining'], 'drop the DivideMix ablation switches'),
    ('cifar', ['--plain', '--compile'], '--compile is a speed-up and --plain turns them off'),
    ('clothing1M', ['--num_batches', '0'], '--num_batches 0: it must be >= 1'),
    ('clothing1M', ['--batch_size', '0'], '--batch_size 0: it must be >= 1'),
    ('clothing1M', ['--lr', '-1'], '--lr -1.0: it must be > 0'),
    ('clothing1M', ['--p_threshold', '-0.1'], '--p_threshold -0.1: it must be in [0, 1)'),
    ('clothing1M', ['--num_class', '1'], '--num_class 1: it must be >= 2'),
    ('clothing1M', ['--crop', '300'], '--crop 300 is larger than --resize 256'),
    ('clothing1M', ['--resize', '8', '--crop', '8'], '--resize 8: it must be >= 33'),
    ('clothing1M', ['--id', '../elsewhere'], 'must be a plain file name prefix'),
    ('webvision', ['--crop', '0'], '--crop 0: it must be 299'),
    ('webvision', ['--resize', '256'], '--crop 299 is larger than --resize 256'),
    ('webvision', ['--num_class', '1001'], '--num_class 1001: it must be in [2, 1000]'),
    ('webvision', ['--loss_history', '0'], '--loss_history 0: it must be >= 1'),
    ('webvision', ['--T', '-1'], '--T -1.0: it must be > 0'),
    ('webvision', ['--id', ''], 'must be a plain file name prefix'),
    ('imagefolder', ['--image_size', '64'], 'preact18 takes 32-px images'),
    ('imagefolder', ['--arch', 'resnet50', '--resize', '200'],
     '--resize 200 is smaller than --image_size 224'),
    ('imagefolder', ['--std', '0.2', '0', '0.2'], '--std must be three numbers from 0.001 to'),
    ('imagefolder', ['--std', '1e-50', '0.2', '0.2'], '--std must be three numbers from 0.001'),
    ('imagefolder', ['--std', '0.2', '0.2', 'inf'], '--std must be three numbers from 0.001'),
    ('imagefolder', ['--mean', '1e300', '0.5', '0.5'], '--mean must be three numbers from -10'),
    ('imagefolder', ['--mean', '0.5', 'nan', '0.5'], '--mean must be three numbers from -10'),
    ('imagefolder', ['--pretrained', 'w.pth'], '--pretrained is for --arch resnet50'),
    ('imagefolder', ['--lambda_u', '-1'], '--lambda_u -1.0: it must be >= 0'),
    ('imagefolder', ['--batch_size', '0'], '--batch_size 0: it must be >= 1'),
    ('imagefolder', ['--num_train', '1'], '--num_train 1: it must be >= 2'),
    ('imagefolder', ['--num_train', '40'], '--num_train 40 is fewer images than a batch'),
]


@pytest.mark.parametrize('script, argv, message', REFUSED)
def test_bad_argument_is_one_line_and_writes_nothing(script, argv, message, tmp_path, capsys):
    out = tmp_path / 'out'
    code = run_cli(SCRIPTS[script].main, ['--out_dir', str(out), '--data_path',
                                          str(tmp_path / 'data')] + argv)
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.count('\n') == 1 and err.startswith('error: ') and 'Traceback' not in err
    assert message in err
    assert os.listdir(tmp_path) == []  # no output folder, no data folder, no noise file


def test_webvision_crop_must_fit_inception_resnet_v2():
    with pytest.raises(ValueError, match='--crop 224: Inception-ResNet-v2 takes 299-px images'):
        Train_webvision.create_model(Train_webvision.parse_args(['--crop', '224']))


@pytest.mark.parametrize('script', sorted(SCRIPTS))
def test_every_numeric_argument_has_a_rule(script):
    parser = SCRIPTS[script].argument_parser()
    numeric = {action.dest for action in parser._actions if action.type in (int, float)}
    ruled = {dest for dest, declared in parser.declared.items()
             if declared.check is not None or declared.rules}
    assert numeric and numeric <= ruled, numeric - ruled


@pytest.mark.parametrize('script, argv', [
    ('cifar', ['--warm_up', '5', '--num_epochs', '5']),
    ('clothing1M', ['--warm_up', '3', '--num_epochs', '2']),
    ('webvision', ['--warm_up', '100']),
])
def test_warm_up_only_run_gets_a_warning(script, argv, capsys):
    module = SCRIPTS[script]
    args = module.parse_args(argv)
    if script == 'cifar':
        Train_cifar.complete_args(args)
    else:
        check_args(args, module.argument_parser().rules)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('warning: ')
    assert 'DivideMix never starts' in err[0]


def test_the_defaults_pass_without_a_word(capsys):
    for module in SCRIPTS.values():
        if module is Train_imagefolder:  # its data has no default place
            Train_imagefolder.complete_args(module.parse_args(['--data_path', 'DIR']))
            continue
        args = module.parse_args([])
        if module is Train_cifar:
            Train_cifar.complete_args(args)
        else:
            check_args(args, module.argument_parser().rules)
    assert capsys.readouterr().err == ''


def test_range_bounds_open_and_closed():
    closed, half_open = Range(0, 1), Range(0, 1, high_open=True)
    assert closed.allows(0) and closed.allows(1) and not closed.allows(1.0001)
    assert half_open.allows(0) and not half_open.allows(1) and not half_open.allows(-1e-9)
    assert Range(0, low_open=True).allows(1e-12) and not Range(0, low_open=True).allows(0)
    assert not Range(0).allows(float('nan')) and not Range(0).allows(float('inf'))
    assert str(closed) == 'in [0, 1]' and str(half_open) == 'in [0, 1)'


def test_relation_message_names_the_values():
    args = types.SimpleNamespace(a=3, b=2)
    with pytest.raises(ValueError, match='a=3 must stay below b=2'):
        check_args(args, {'a < b': Relation(lambda x: x.a < x.b, 'a=%(a)d must stay below '
                                                                   'b=%(b)d')})


def test_argparse_type_errors_are_one_line(capsys):
    with pytest.raises(SystemExit) as e:
        Train_cifar.parse_args(['--batch_size', '2.5'])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count('\n') == 1 and 'invalid int value' in err


@pytest.mark.parametrize('r, name', [(0.5, 'cifar10_0.5_sym'), (0.45, 'cifar10_0.45_sym'),
                                     (0.54, 'cifar10_0.54_sym'), (0.2, 'cifar10_0.2_sym')])
def test_noise_ratios_that_round_alike_get_their_own_run_name(r, name):
    args = Train_cifar.parse_args(['--r', str(r)])
    assert Train_cifar.run_name_of(args) == name


def test_imagefolder_classes_flag_and_its_long_name():
    for flag in ('--classes', '--classes_file'):
        assert Train_imagefolder.parse_args([flag, 'names.txt']).classes_file == 'names.txt'


@pytest.mark.parametrize('argv, message', [
    # the cell's settings and a warning are said before the data is found missing
    (['--warm_up', '5', '--num_epochs', '5', '--no-download'], 'no cifar10 data in'),
    (['--num_workers', '64', '--plain', '--no-download'], 'no cifar10 data in'),
])
def test_a_refused_run_prints_its_error_line_alone(argv, message, tmp_path, capsys):
    argv = argv + ['--data_path', str(tmp_path / 'nothing'), '--out_dir', str(tmp_path / 'o')]
    assert run_cli(Train_cifar.main, argv) == 2
    out, err = capsys.readouterr()
    assert out == '' and len(err.splitlines()) == 1 and err.startswith('error: ')
    assert message in err


def test_a_started_run_says_what_it_held_first_in_order(cifar10_dir, tmp_path, capsys):
    argv = ['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'o'), '--width', '4',
            '--num_epochs', '1', '--warm_up', '1', '--no-figures']
    assert run_cli(Train_cifar.main, argv) == 0
    lines = capsys.readouterr().out.splitlines()
    settings = lines.index('lambda_u=25  p_threshold=0.5  warm_up=1  loss_history=1  epochs=1')
    device = next(k for k, line in enumerate(lines) if line.startswith('training on the CPU'))
    epoch = next(k for k, line in enumerate(lines) if '| Epoch [  0/  1]' in line)
    assert settings < device < epoch


def test_a_download_is_announced_at_once_and_its_failure_is_one_line(tmp_path, capsys,
                                                                      monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise OSError('no network')
    monkeypatch.setattr(torchvision.datasets, 'CIFAR10', offline)
    argv = ['--data_path', str(tmp_path / 'data'), '--out_dir', str(tmp_path / 'o')]
    assert run_cli(Train_cifar.main, argv) == 2
    out, err = capsys.readouterr()
    assert out.splitlines() == ['cifar10 not found under %s: downloading the official archive'
                                % (tmp_path / 'data')]
    assert len(err.splitlines()) == 1 and 'could not download cifar10' in err
    assert not (tmp_path / 'data').exists() and not (tmp_path / 'o').exists()


def test_the_start_line_shows_the_lr_drop_only_when_the_run_reaches_it(capsys):
    def start_line(*argv):
        Train_imagefolder.complete_args(Train_imagefolder.parse_args(['--data_path', 'DIR']
                                                                     + list(argv)))
        return capsys.readouterr().out
    assert 'lr=0.02 (/10 from 150) batch' in start_line()
    assert 'lr=0.02 batch' in start_line('--num_epochs', '15')
    assert 'lr=0.02 (/10 from 10) batch' in start_line('--num_epochs', '15',
                                                        '--lr_drop_epoch', '10')


@pytest.mark.parametrize('cpus, expected', [(2, {'cifar': 2, 'clothing1M': 2, 'webvision': 2}),
                                            (1, {'cifar': 1, 'clothing1M': 1, 'webvision': 1}),
                                            (16, {'cifar': 4, 'clothing1M': 5, 'webvision': 5}),
                                            (None, {'cifar': 4, 'clothing1M': 5,
                                                    'webvision': 5})])
def test_default_workers_fit_the_machine(monkeypatch, cpus, expected):
    import utils.data
    monkeypatch.setattr(utils.data, 'usable_cpus', lambda: cpus)  # None: unknown
    monkeypatch.setattr(utils.data.torch.cuda, 'is_available', lambda: True)  # with a GPU
    for script, workers in expected.items():
        assert SCRIPTS[script].parse_args([]).num_workers == workers
    assert Train_imagefolder.parse_args(['--data_path', 'D']).num_workers == expected['cifar']
    assert Train_cifar.parse_args(['--num_workers', '3']).num_workers == 3  # as given
    # without a GPU the training process loads: workers would take the cores it trains on
    monkeypatch.setattr(utils.data.torch.cuda, 'is_available', lambda: False)
    for script in expected:
        assert SCRIPTS[script].parse_args([]).num_workers == 0
    assert Train_imagefolder.parse_args(['--data_path', 'D']).num_workers == 0
