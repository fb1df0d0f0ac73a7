"""A self-supervised start (C2D): ResNet.py, Train_cifar.py --arch / --pretrained (the key
mapping of SimCLR checkpoints and the refusal of one that does not fit), C2D's schedule switches,
and the C2D cells of tools/paper_cells.py."""
import argparse
import contextlib
import io
import os

import pytest
import torch

import ResNet
import Train_cifar
from conftest import files_under, script_args
from tools import paper_cells
from utils.cli import run_cli
from utils.distributed import unwrap
from utils.models import backbone_tensors, cifar_net, self_supervised_backbone

WIDTH = 2
TINY = ['--width', str(WIDTH), '--num_epochs', '2', '--warm_up', '1', '--batch_size', '16',
        '--num_workers', '0', '--num_train', '100', '--num_test', '40', '--no-figures']


def backbone_of(arch, width=WIDTH, seed=0):
    """A network's tensors but its classifier, drawn from `seed`: what a checkpoint holds."""
    torch.manual_seed(seed)
    state = cifar_net(arch, 10, width).state_dict()
    return {k: v for k, v in state.items() if not k.startswith('linear.')}


def supcontrast_checkpoint(path, width=WIDTH, data_parallel=True):
    """What SupContrast's main_supcon.py --method SimCLR saves: its options (an
    argparse.Namespace), the SupConResNet's encoder (wrapped in DataParallel on several GPUs:
    'encoder.module.') and projection head, the optimizer, the epoch."""
    backbone = backbone_of('resnet18', width)
    prefix = 'encoder.module.' if data_parallel else 'encoder.'
    model = {prefix + k: v for k, v in backbone.items()}
    model.update({'head.0.weight': torch.randn(8 * width, 8 * width),
                  'head.0.bias': torch.randn(8 * width),
                  'head.2.weight': torch.randn(128, 8 * width), 'head.2.bias': torch.randn(128)})
    torch.save({'opt': argparse.Namespace(method='SimCLR', model='resnet18', epochs=1000),
                'model': model, 'optimizer': {'state': {}, 'param_groups': []}, 'epoch': 1000},
               path)
    return backbone


# ---------------------------------------------------------------- ResNet.py -------------------

def test_resnet18_shapes_and_parameter_count():
    for classes, count in ((10, 11173962), (100, 11220132)):
        assert sum(p.numel() for p in ResNet.ResNet18(classes).parameters()) == count
    net = ResNet.ResNet18(10, width=WIDTH)
    x = torch.randn(3, 3, 32, 32)
    assert net(x).shape == (3, 10) and net.features(x).shape == (3, 8 * WIDTH)
    # the CIFAR stem: a 3x3 stride-1 conv and no max-pool, so layer1 sees the full 32x32
    assert net.conv1.kernel_size == (3, 3) and net.conv1.stride == (1, 1)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    seen = []
    net.layer1.register_forward_hook(lambda m, i, out: seen.append(out.shape))
    net(x)
    assert seen == [(3, WIDTH, 32, 32)]
    # the shortcut projection has a BatchNorm (SupContrast's names: shortcut.0 conv, .1 BN)
    assert isinstance(net.layer2[0].shortcut[1], torch.nn.BatchNorm2d)


# ---------------------------------------------------------------- key mapping -----------------

@pytest.mark.parametrize('data_parallel', [True, False])
def test_supcontrast_checkpoint_maps_onto_resnet18(tmp_path, data_parallel):
    path = str(tmp_path / 'simclr.pth')
    backbone = supcontrast_checkpoint(path, data_parallel=data_parallel)
    tensors, line = self_supervised_backbone(path, 'resnet18', WIDTH)
    assert set(tensors) == set(backbone) and len(tensors) == 120
    assert all(torch.equal(tensors[k], backbone[k]) for k in backbone)
    assert line == ('loaded 120 tensors from %s (left out: head.*); not loaded (fresh): '
                    'linear.weight, linear.bias' % path)


def test_a_bare_state_dict_and_a_classifier_left_out(tmp_path):
    net = cifar_net('preact18', 10, WIDTH)
    path = str(tmp_path / 'bare.pth')
    torch.save(net.state_dict(), path)  # with its classifier: left out, the run's is fresh
    tensors, line = self_supervised_backbone(path, 'preact18', WIDTH)
    assert len(tensors) == len(net.state_dict()) - 2 and 'linear.weight' not in tensors
    assert '(left out: linear.*); not loaded (fresh): linear.weight, linear.bias' in line
    # 'module.' of DDP and a {'state_dict': ...} wrapper
    wrapped = {'state_dict': {'module.' + k: v for k, v in net.state_dict().items()}}
    assert set(backbone_tensors(wrapped)[0]) == set(tensors)


def test_a_pretrained_run_starts_both_networks_from_the_backbone(cifar10_dir, tmp_path,
                                                                monkeypatch, capsys):
    path = str(tmp_path / 'simclr.pth')
    backbone = supcontrast_checkpoint(path)
    started = []
    real = Train_cifar.warmup_epoch

    def first_seen(net, *args, **kwargs):  # the network as it enters its first epoch
        started.append({k: v.clone() for k, v in unwrap(net).state_dict().items()})
        return real(net, *args, **kwargs)

    monkeypatch.setattr(Train_cifar, 'warmup_epoch', first_seen)
    out = tmp_path / 'out'
    Train_cifar.main(['--data_path', cifar10_dir, '--out_dir', str(out), '--arch', 'resnet18',
                      '--pretrained', path] + TINY)
    assert ('loaded 120 tensors from %s (left out: head.*); not loaded (fresh): linear.weight, '
            'linear.bias' % path) in capsys.readouterr().out
    net1, net2 = started[:2]
    for state in (net1, net2):
        assert all(torch.equal(state[k], backbone[k]) for k in backbone)
    assert not torch.equal(net1['linear.weight'], net2['linear.weight'])  # each its own, fresh
    # its own files: another network and a pretrained start never share a prefix
    assert 'cifar10_0.5_sym_resnet18_pretrained.jsonl' in os.listdir(out)


# ---------------------------------------------------------------- refusals --------------------

def refused(argv, capsys, *folders):
    """Train_cifar through run_cli: exit 2, one line on stderr, `folders` unchanged (the out
    folder never made). Returns the line."""
    before = [files_under(f) for f in folders]
    assert run_cli(Train_cifar.main, argv) == 2
    err = capsys.readouterr().err
    assert err.startswith('error: ') and err.count('\n') == 1
    assert [files_under(f) for f in folders] == before
    return err


@pytest.mark.parametrize('held, arch, fix', [
    ('preact18', 'resnet18', 'holds a PreAct-ResNet18 backbone of width 2, this run builds a '
                             'ResNet-18 of width 2: pass --arch preact18'),
    ('resnet18', 'preact18', 'holds a ResNet-18 backbone of width 2, this run builds a '
                             'PreAct-ResNet18 of width 2: pass --arch resnet18'),
])
def test_the_other_network_is_refused_naming_the_switch(held, arch, fix, cifar10_dir,
                                                        tmp_path, capsys):
    path = str(tmp_path / 'held.pth')
    torch.save(backbone_of(held), path)
    out = str(tmp_path / 'out')
    err = refused(['--data_path', cifar10_dir, '--out_dir', out, '--arch', arch,
                   '--pretrained', path] + TINY, capsys, cifar10_dir)
    assert err == 'error: %s %s\n' % (path, fix)
    assert not os.path.exists(out)


def test_another_width_is_refused_naming_it(cifar10_dir, tmp_path, capsys):
    path = str(tmp_path / 'simclr.pth')
    supcontrast_checkpoint(path, width=4)
    err = refused(['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'out'),
                   '--arch', 'resnet18', '--pretrained', path] + TINY, capsys, cifar10_dir)
    assert err.endswith('holds a ResNet-18 backbone of width 4, this run builds a ResNet-18 of '
                        'width 2: pass --width 4\n')


def test_wrong_shapes_missing_and_extra_tensors_are_named(cifar10_dir, tmp_path, capsys):
    state = backbone_of('resnet18')
    state['layer1.0.conv1.weight'] = torch.zeros(3, 3, 3, 3)
    del state['bn1.bias']
    state['extra.weight'] = torch.zeros(1)
    path = str(tmp_path / 'odd.pth')
    torch.save(state, path)
    err = refused(['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'out'),
                   '--arch', 'resnet18', '--pretrained', path] + TINY, capsys, cifar10_dir)
    assert ("does not hold the backbone of the ResNet-18 of width 2 this run builds: 1 of the "
            "network's tensors missing (bn1.bias), 1 not in the network (extra.weight), 1 of "
            "other shapes (layer1.0.conv1.weight 3x3x3x3, not 2x2x3x3); give a SimCLR "
            "checkpoint") in err


@pytest.mark.parametrize('broken', ['nan', 'inf', '-inf'])
def test_non_finite_weights_are_refused_naming_the_file_and_tensor(broken, cifar10_dir,
                                                                   tmp_path, capsys):
    state = backbone_of('resnet18')
    state['layer2.0.bn1.running_var'][1] = float(broken)
    path = str(tmp_path / 'broken.pth')
    torch.save(state, path)
    err = refused(['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'out'),
                   '--arch', 'resnet18', '--pretrained', path] + TINY, capsys, cifar10_dir)
    assert err.endswith('--pretrained %s holds non-finite numbers (in layer2.0.bn1.running_var):'
                        ' these weights are broken; pass another file\n' % path)
    # the ResNet-50 of Train_imagefolder.py and Train_clothing1M.py alike
    import torchvision
    from utils.cli import InputError
    from utils.models import resnet50
    weights = torchvision.models.resnet50().state_dict()
    weights['fc.bias'][0] = float(broken)
    torch.save(weights, path)
    with pytest.raises(InputError, match=r'holds non-finite numbers \(in fc.bias\)'):
        resnet50(14, path)


@pytest.mark.parametrize('content', [os.urandom(200), b'', None, {'epoch': 3}])
def test_what_is_not_a_checkpoint_is_refused(content, cifar10_dir, tmp_path, capsys):
    path = str(tmp_path / 'not_a_checkpoint.pth')
    if isinstance(content, bytes):
        with open(path, 'wb') as f:
            f.write(content)
    elif content is not None:  # a PyTorch file without weights
        torch.save(content, path)
    err = refused(['--data_path', cifar10_dir, '--out_dir', str(tmp_path / 'out'),
                   '--pretrained', path] + TINY, capsys, cifar10_dir)
    assert path in err and 'give a SimCLR checkpoint' in err


# ---------------------------------------------------------------- C2D's schedule --------------

def test_lr_drop_every_is_torch_steplr_and_the_default_is_unchanged():
    args = Train_cifar.parse_args([])
    assert [Train_cifar.learning_rate(args, e) for e in (0, 149, 150, 299, 300)] == [
        0.02, 0.02, 0.002, 0.002, 0.002]
    args = Train_cifar.parse_args(['--lr_drop_every', '150'])
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.02)
    steplr = torch.optim.lr_scheduler.StepLR(optimizer, 150, gamma=0.1)
    for epoch in range(361):  # C2D: lr / 10 at 150 and at 300
        assert Train_cifar.learning_rate(args, epoch) == optimizer.param_groups[0]['lr']
        optimizer.step()
        steplr.step()


def test_warmup_clip_grad_norm_clips_the_warmup_gradient():
    torch.manual_seed(0)
    inputs, labels = 50 * torch.randn(8, 3, 32, 32), torch.randint(0, 10, (8,))

    def grad_norm(max_grad_norm):
        torch.manual_seed(1)
        net = cifar_net('resnet18', 10, WIDTH)
        optimizer = torch.optim.SGD(net.parameters(), lr=0.0)  # the gradients stay to be seen
        args = script_args(Train_cifar, warmup_clip_grad_norm=max_grad_norm)
        Train_cifar.warmup_step(net, optimizer, inputs, labels, False, args=args)
        return torch.norm(torch.stack([p.grad.norm() for p in net.parameters()])).item()

    assert grad_norm(None) > 1.5
    assert grad_norm(1.0) == pytest.approx(1.0, rel=1e-4)


def test_run_names_of_another_network_and_a_pretrained_start():
    def name(*argv):
        return Train_cifar.run_name_of(Train_cifar.parse_args(list(argv)))
    assert name() == 'cifar10_0.5_sym'
    assert name('--arch', 'resnet18') == 'cifar10_0.5_sym_resnet18'
    assert name('--pretrained', 'x.pth') == 'cifar10_0.5_sym_pretrained'
    assert name('--arch', 'resnet18', '--pretrained', 'x.pth', '--method', 'ce') == \
        'cifar10_0.5_sym_resnet18_pretrained_ce'


# ---------------------------------------------------------------- paper_cells -----------------

def test_paper_cells_lists_the_c2d_cells_with_a_placeholder(capsys):
    assert paper_cells.main(['list', '--tables', 'C2D']) == 0
    out = capsys.readouterr().out
    assert '--pretrained \'<--pretrained_cifar10 FILE>\' --arch resnet18 --warm_up 5 ' \
           '--num_epochs 361 --lr_drop_every 150 --gmm_max_iter 200 ' \
           '--warmup_clip_grad_norm 1' in out
    assert '--dataset cifar100 --r 0.9 --pretrained \'<--pretrained_cifar100 FILE>\'' in out
    assert {c[1]: c[4] for c in paper_cells.cells() if c[0] == 'C2D'} == {
        'cifar10 sym 90% C2D (DivideMix from a SimCLR ResNet-18)': 93.6,
        'cifar100 sym 90% C2D (DivideMix from a SimCLR ResNet-18)': 58.7}


@pytest.mark.parametrize('action', ['run', 'jobs'])
def test_paper_cells_refuses_c2d_cells_without_their_checkpoint(action, tmp_path, capsys):
    jobs = str(tmp_path / 'jobs.txt')
    argv = [action] + ([jobs] if action == 'jobs' else []) + [
        '--tables', 'C2D', '--pretrained_cifar10', 'a.pth']
    assert run_cli(paper_cells.main, argv) == 2
    assert capsys.readouterr().err == (
        'error: the C2D cells start both networks from a self-supervised checkpoint '
        '(docs/beyond_the_paper.md): pass --pretrained_cifar100 FILE\n')
    assert os.listdir(tmp_path) == []


def test_paper_cells_jobs_of_c2d_cells_and_the_default_leaving_them_out(tmp_path):
    jobs = str(tmp_path / 'jobs.txt')
    assert paper_cells.main(['jobs', jobs, '--tables', 'C2D', '--pretrained_cifar10', 'a.pth',
                             '--pretrained_cifar100', 'b.pth']) == 0
    lines = open(jobs).read().splitlines()
    assert len(lines) == 2 and '--pretrained a.pth' in lines[0] and '--pretrained b.pth' in \
        lines[1]
    assert paper_cells.main(['jobs', str(tmp_path / 'all.txt')]) == 0  # the default: the paper's
    default = open(tmp_path / 'all.txt').read().splitlines()
    assert len(default) == sum(c[0] in paper_cells.PAPER_TABLES for c in paper_cells.cells()) == 73
    assert not any('--pretrained' in line or '--strong_aug' in line for line in default)


def test_run_key_tells_a_pretrained_run_and_another_network_from_the_paper_cell():
    def key(*argv):
        with contextlib.redirect_stdout(io.StringIO()):
            args = Train_cifar.complete_args(Train_cifar.parse_args(list(argv)))
        return paper_cells.run_key('Train_cifar.py', vars(args))

    cells = {c[1]: paper_cells.cell_key(c) for c in paper_cells.cells(
        {'cifar10': 'a.pth', 'cifar100': 'b.pth'})}
    dividemix = cells['cifar10 sym 90% DivideMix']
    c2d = cells['cifar10 sym 90% C2D (DivideMix from a SimCLR ResNet-18)']
    assert dividemix != c2d
    assert key('--r', '0.9') == dividemix
    assert key('--r', '0.9', '--arch', 'resnet18', '--pretrained', 'other.pth') == c2d
    others = {key('--r', '0.9', '--arch', 'resnet18'), key('--r', '0.9', '--pretrained', 'x')}
    assert len(others) == 2 and not others & set(cells.values())
