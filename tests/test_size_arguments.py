"""Every size argument has a rule that keeps the network valid: at the boundary the network
trains (one forward and backward pass in train mode, on a batch of one image: the last batch of
an epoch can hold one), one below it the script refuses in one line and writes nothing."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import dividemix as dm
import Train_cifar
import Train_clothing1M
import Train_imagefolder
import Train_webvision
from InceptionResNetV2 import INPUT_SIZE, InceptionResNetV2
from PreResNet import ResNet18
from utils.cli import check_args, run_cli
from utils.models import RESNET50_SMALLEST_INPUT, resnet50


def train_step(net, size, batch=1, num_class=2):
    """One SGD step of `net` in train mode on `batch` random size x size images."""
    net.train()
    optimizer = torch.optim.SGD(net.parameters(), lr=0.01)
    loss = F.cross_entropy(net(torch.randn(batch, 3, size, size)),
                           torch.zeros(batch, dtype=torch.long))
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)


def refused(main, argv, tmp_path, capsys, message):
    """The script refuses argv in one line naming the fix, exit code 2, nothing written."""
    out = tmp_path / 'out'
    code = run_cli(main, ['--out_dir', str(out), '--data_path', str(tmp_path / 'data')] + argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1 and err.startswith('error: '), err
    assert message in err, err
    assert not out.exists()


@pytest.fixture(scope='module')
def small_resnet50():
    torch.manual_seed(0)
    return resnet50(2, 'none')


def test_resnet50_limit_is_real(small_resnet50):
    """Why the rule is 33: a 32-px image leaves ResNet-50 a 1x1 map that BatchNorm refuses
    on a training batch of one image (the authors' loop can end an epoch on such a batch)."""
    with pytest.raises(ValueError, match='more than 1 value per channel'):
        train_step(small_resnet50, RESNET50_SMALLEST_INPUT - 1)
    train_step(small_resnet50, RESNET50_SMALLEST_INPUT - 1, batch=2)  # two images: fine


def test_clothing1m_crop_33_trains_and_32_is_refused(small_resnet50, tmp_path, capsys):
    args = Train_clothing1M.parse_args(['--crop', '33', '--resize', '33'])
    check_args(args, Train_clothing1M.argument_parser().rules)
    train_step(small_resnet50, args.crop)
    refused(Train_clothing1M.main, ['--crop', '32', '--resize', '40'], tmp_path, capsys,
            '--crop 32: it must be >= 33 (ResNet-50 halves it 5 times')


def test_clothing1m_resize_below_33_is_refused(tmp_path, capsys):
    check_args(Train_clothing1M.parse_args(['--crop', '33', '--resize', '33']),
               Train_clothing1M.argument_parser().rules)
    refused(Train_clothing1M.main, ['--crop', '33', '--resize', '32'], tmp_path, capsys,
            '--resize 32: it must be >= 33')


def test_imagefolder_resnet50_image_size_33_trains_and_32_is_refused(small_resnet50, tmp_path,
                                                                    capsys):
    args = Train_imagefolder.complete_args(Train_imagefolder.parse_args(
        ['--data_path', 'DIR', '--arch', 'resnet50', '--image_size', '33', '--resize', '33']))
    train_step(small_resnet50, args.image_size)
    refused(Train_imagefolder.main, ['--arch', 'resnet50', '--image_size', '32', '--resize',
                                     '32'], tmp_path, capsys,
            '--image_size 32: resnet50 takes images of at least 33 px')
    capsys.readouterr()


def test_clothing1m_co_divide_needs_two_images(tmp_path, capsys):
    """num_batches x batch_size images are co-divided: two give the GMM its two components,
    one is refused (sklearn: 'Found array with 1 sample(s)')."""
    args = Train_clothing1M.parse_args(['--num_batches', '1', '--batch_size', '2'])
    check_args(args, Train_clothing1M.argument_parser().rules)
    prob, _ = dm.gmm_clean_prob([torch.tensor([0.1, 0.9])], 0)
    assert prob.shape == (2,) and np.all((0 <= prob) & (prob <= 1))
    with pytest.raises(ValueError, match='1 sample'):
        dm.gmm_clean_prob([torch.tensor([0.5])], 0)
    refused(Train_clothing1M.main, ['--num_batches', '1', '--batch_size', '1'], tmp_path, capsys,
            '--num_batches 1 x --batch_size 1 is one image to co-divide')


def test_webvision_crop_299_trains_and_others_are_refused(tmp_path, capsys):
    args = Train_webvision.parse_args(['--crop', str(INPUT_SIZE)])
    check_args(args, Train_webvision.argument_parser().rules)
    torch.manual_seed(0)
    train_step(InceptionResNetV2(num_classes=2), args.crop)  # a batch of one: an 8x8 final map
    for crop in (INPUT_SIZE - 1, INPUT_SIZE + 1):
        refused(Train_webvision.main, ['--crop', str(crop), '--resize', '320'], tmp_path, capsys,
                '--crop %d: it must be 299 (the final 8x8 average pool' % crop)


@pytest.mark.parametrize('argument, smallest', [('width', 1), ('batch_size', 1),
                                                ('num_train', 2), ('num_test', 1)])
def test_cifar_smallest_sizes_train_and_below_is_refused(argument, smallest, tmp_path, capsys):
    """PreAct-ResNet18 ends on a 4x4 map of a 32-px image: width 1 and a batch of one train;
    two training images are the fewest the GMM divides."""
    Train_cifar.complete_args(Train_cifar.parse_args(['--%s' % argument, str(smallest)]))
    capsys.readouterr()
    if argument in ('width', 'batch_size'):
        torch.manual_seed(0)
        train_step(ResNet18(10, 1), 32, batch=1)
    refused(Train_cifar.main, ['--%s' % argument, str(smallest - 1)], tmp_path, capsys,
            '--%s %d: it must be >= %d' % (argument, smallest - 1, smallest))
