"""PreAct-ResNet18 as the authors wrote it (the authors' PreResNet.py)."""
import torch
import torch.nn.functional as F

from PreResNet import PreActBlock, ResNet18


def count(net):
    return sum(p.numel() for p in net.parameters())


def test_parameter_counts():
    assert count(ResNet18(10)) == 11171274
    assert count(ResNet18(100)) == 11217444


def test_output_shapes_and_width():
    x = torch.randn(2, 3, 32, 32)
    assert ResNet18(10)(x).shape == (2, 10)
    narrow = ResNet18(100, width=8)
    assert narrow(x).shape == (2, 100)
    assert narrow.features(x).shape == (2, 64)
    assert count(narrow) < count(ResNet18(100)) / 50


def test_state_dict_uses_authors_layout():
    keys = set(ResNet18(10).state_dict())
    for key in ['conv1.weight', 'bn1.running_mean', 'layer1.0.bn1.weight',
                'layer1.0.conv1.weight', 'layer1.0.bn2.weight', 'layer1.0.conv2.weight',
                'layer2.0.shortcut.0.weight', 'layer4.1.conv2.weight', 'linear.weight',
                'linear.bias']:
        assert key in keys
    assert 'layer1.0.shortcut.0.weight' not in keys  # identity shortcut has no weights
    assert not any(k.startswith('bn.') or k.startswith('bn_final') for k in keys)


def test_identity_shortcut_carries_preactivated_input():
    torch.manual_seed(0)
    block = PreActBlock(4, 4).eval()
    with torch.no_grad():
        block.bn1.running_mean.uniform_(-1, 1)  # make BN1 non-trivial
        x = torch.randn(1, 4, 8, 8)
        pre = F.relu(block.bn1(x))
        main = block.conv2(F.relu(block.bn2(block.conv1(pre))))
        assert torch.allclose(block(x), main + pre, atol=1e-6)
        assert not torch.allclose(block(x), main + x, atol=1e-3)


def test_projection_shortcut_is_conv_without_bn():
    block = PreActBlock(4, 8, stride=2)
    assert len(block.shortcut) == 1 and isinstance(block.shortcut[0], torch.nn.Conv2d)
    assert block.shortcut[0].stride == (2, 2) and block.shortcut[0].bias is None
