"""utils/models.py: the ResNet-50 of Train_clothing1M.py and Train_imagefolder.py --arch resnet50
(torchvision's, with a fresh classifier), from ImageNet weights, a local file or none."""
import urllib.error

import pytest
import torch
import torchvision

import Train_clothing1M
import Train_imagefolder
from utils.cli import InputError
from utils.models import resnet50


def test_resnet50_parameter_count():
    # torchvision's ResNet-50 has 25,557,032 parameters with its 1000-way fc (2048*1000 + 1000);
    # Clothing1M replaces it with a 14-way one (2048*14 + 14).
    net = resnet50(14, 'none')
    assert sum(p.numel() for p in net.parameters()) == 25557032 - 2049000 + 28686
    net.eval()
    assert net(torch.zeros(1, 3, 224, 224)).shape == (1, 14)


def test_resnet50_local_pretrained_weights(tmp_path):
    torch.manual_seed(0)
    backbone = torchvision.models.resnet50()
    torch.save(backbone.state_dict(), tmp_path / 'resnet50.pth')
    torch.save({'state_dict': backbone.state_dict()}, tmp_path / 'wrapped.pth')
    for name in ('resnet50.pth', 'wrapped.pth'):
        net = resnet50(3, str(tmp_path / name))
        assert torch.equal(net.conv1.weight, backbone.conv1.weight)
        assert torch.equal(net.layer4[2].conv3.weight, backbone.layer4[2].conv3.weight)
        assert net.fc.out_features == 3  # a fresh 3-way classifier


def test_imagefolder_resnet50_takes_its_weights_file(tmp_path):
    torch.manual_seed(0)
    backbone = torchvision.models.resnet50()
    torch.save(backbone.state_dict(), tmp_path / 'resnet50.pth')
    args = Train_imagefolder.parse_args(['--data_path', str(tmp_path), '--arch', 'resnet50',
                                         '--pretrained', str(tmp_path / 'resnet50.pth')])
    net = Train_imagefolder.create_model(args, num_class=5)
    assert torch.equal(net.conv1.weight, backbone.conv1.weight) and net.fc.out_features == 5


@pytest.mark.parametrize('content, reason', [
    (b'not weights', 'it is damaged, truncated or not a PyTorch file'),
    (None, 'No such file or directory'),
])
def test_resnet50_unusable_pretrained_file(content, reason, tmp_path):
    path = tmp_path / 'resnet50.pth'
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError) as e:
        resnet50(14, str(path))
    message = str(e.value)
    assert message == "%s cannot be loaded: %s; pass --pretrained a torchvision ResNet-50 " \
        "weights file, 'imagenet' or 'none'" % (path, reason)


def test_resnet50_weights_of_another_network(tmp_path):
    torch.save({'conv1.weight': torch.zeros(1)}, tmp_path / 'other.pth')
    with pytest.raises(InputError, match=r'other.pth is not a torchvision ResNet-50 state_dict'):
        resnet50(14, str(tmp_path / 'other.pth'))


def test_resnet50_offline_weights_error(monkeypatch):
    def offline(weights=None):
        if weights is not None:
            raise urllib.error.URLError('Name or service not known')
        return torchvision.models.ResNet(torchvision.models.resnet.Bottleneck, [3, 4, 6, 3])
    monkeypatch.setattr(torchvision.models, 'resnet50', offline)
    assert Train_clothing1M.parse_args([]).pretrained == 'imagenet'  # the paper's start
    with pytest.raises(InputError, match='could not get the ImageNet ResNet-50 weights .*'
                                         '--pretrained PATH'):
        resnet50(14, 'imagenet')
