"""Inception-ResNet-v2 as the authors trained it on WebVision."""
import pytest
import torch
import torch.nn as nn

from InceptionResNetV2 import Block8, Block17, Block35, InceptionResNetV2


def count(net):
    return sum(p.numel() for p in net.parameters())


def build(num_classes):
    with torch.device('meta'):  # shapes only: no memory, no init cost
        return InceptionResNetV2(num_classes)


# Parameter count written out layer by layer from the architecture.
def basic(cin, cout, kh, kw=None):
    """BasicConv2d: conv weight without bias, then BN gamma and beta."""
    kw = kh if kw is None else kw
    return cin * cout * kh * kw + 2 * cout


def projection(cin, cout):
    """The residual blocks' 1x1 conv, with bias and no BN."""
    return cin * cout + cout


def linear(num_classes):
    return 1536 * num_classes + num_classes


STEM = basic(3, 32, 3) + basic(32, 32, 3) + basic(32, 64, 3) + basic(64, 80, 1) + basic(80, 192, 3)
MIXED_5B = (basic(192, 96, 1)
            + basic(192, 48, 1) + basic(48, 64, 5)
            + basic(192, 64, 1) + basic(64, 96, 3) + basic(96, 96, 3)
            + basic(192, 64, 1))
BLOCK35 = (basic(320, 32, 1)
           + basic(320, 32, 1) + basic(32, 32, 3)
           + basic(320, 32, 1) + basic(32, 48, 3) + basic(48, 64, 3)
           + projection(32 + 32 + 64, 320))
MIXED_6A = basic(320, 384, 3) + basic(320, 256, 1) + basic(256, 256, 3) + basic(256, 384, 3)
BLOCK17 = (basic(1088, 192, 1)
           + basic(1088, 128, 1) + basic(128, 160, 1, 7) + basic(160, 192, 7, 1)
           + projection(192 + 192, 1088))
MIXED_7A = (basic(1088, 256, 1) + basic(256, 384, 3)
            + basic(1088, 256, 1) + basic(256, 288, 3)
            + basic(1088, 256, 1) + basic(256, 288, 3) + basic(288, 320, 3))
BLOCK8 = (basic(2080, 192, 1)
          + basic(2080, 192, 1) + basic(192, 224, 1, 3) + basic(224, 256, 3, 1)
          + projection(192 + 256, 2080))
BODY = (STEM + MIXED_5B + 10 * BLOCK35 + MIXED_6A + 20 * BLOCK17 + MIXED_7A + 10 * BLOCK8
        + basic(2080, 1536, 1))  # 9 scaled Block8 + the final one, then conv2d_7b


def test_parameter_counts_by_hand():
    assert BODY + linear(1001) == 55845001  # the TF checkpoint's 1001 classes (with background)
    assert count(build(1001)) == BODY + linear(1001)
    assert count(build(50)) == BODY + linear(50) == 55845001 - linear(1001) + linear(50)
    assert count(build(50)) == 54383314


def test_parameter_count_matches_keras_summary():
    # Keras's InceptionResNetV2 (1000 classes) is the same net with BN lacking gamma; its summary
    # reads 55,813,192 trainable and 60,544 non-trainable (BN moving mean + variance) parameters.
    # So it has 60,544 / 2 BN channels, and adding their gammas back gives this net's count.
    net = build(1000)
    bn_channels = sum(m.num_features for m in net.modules() if isinstance(m, nn.BatchNorm2d))
    assert bn_channels == 60544 // 2
    assert count(net) == BODY + linear(1000) == 55813192 + 60544 // 2


@pytest.fixture(scope='module')
def forward_pass():
    """One eval forward of a 2-image batch, recording the grid size after each stage."""
    torch.manual_seed(0)
    net = InceptionResNetV2(50).eval()
    shapes = {}
    for name in ['maxpool_5a', 'mixed_5b', 'repeat', 'mixed_6a', 'mixed_7a', 'conv2d_7b']:
        getattr(net, name).register_forward_hook(
            lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape)))
    x = torch.randn(2, 3, 299, 299)
    with torch.no_grad():
        features = net.features(x)
        logits = net(x)
    return net, features, logits, shapes


def test_output_and_feature_shapes(forward_pass):
    net, features, logits, _ = forward_pass
    assert features.shape == (2, 1536)
    assert logits.shape == (2, 50)
    with torch.no_grad():
        assert torch.allclose(logits, net.last_linear(features), atol=1e-5)


def test_grid_sizes(forward_pass):
    shapes = forward_pass[3]
    assert shapes['maxpool_5a'] == (2, 192, 35, 35)
    assert shapes['mixed_5b'] == shapes['repeat'] == (2, 320, 35, 35)
    assert shapes['mixed_6a'] == (2, 1088, 17, 17)
    assert shapes['mixed_7a'] == (2, 2080, 8, 8)
    assert shapes['conv2d_7b'] == (2, 1536, 8, 8)  # exactly the 8x8 the final pool expects


def test_other_input_sizes_are_refused(forward_pass):
    net = forward_pass[0]
    for h, w in [(224, 224), (299, 224), (320, 320)]:
        with pytest.raises(ValueError, match='299-px input'):
            net(torch.zeros(1, 3, h, w))
        with pytest.raises(ValueError, match='299-px input'):
            net.features(torch.zeros(1, 3, h, w))


def test_state_dict_uses_the_usual_layout():
    state = build(50).state_dict()
    shapes = {
        'conv2d_1a.conv.weight': (32, 3, 3, 3),
        'conv2d_1a.bn.running_var': (32,),
        'conv2d_4a.conv.weight': (192, 80, 3, 3),
        'mixed_5b.branch0.conv.weight': (96, 192, 1, 1),
        'mixed_5b.branch1.1.conv.weight': (64, 48, 5, 5),
        'mixed_5b.branch3.1.conv.weight': (64, 192, 1, 1),
        'repeat.0.branch1.1.conv.weight': (32, 32, 3, 3),
        'repeat.9.branch2.2.conv.weight': (64, 48, 3, 3),
        'repeat.9.conv2d.bias': (320,),
        'mixed_6a.branch1.2.conv.weight': (384, 256, 3, 3),
        'repeat_1.19.branch1.1.conv.weight': (160, 128, 1, 7),
        'repeat_1.19.branch1.2.conv.weight': (192, 160, 7, 1),
        'mixed_7a.branch2.2.conv.weight': (320, 288, 3, 3),
        'repeat_2.8.branch1.2.conv.weight': (256, 224, 3, 1),
        'block8.conv2d.weight': (2080, 448, 1, 1),
        'conv2d_7b.bn.weight': (1536,),
        'last_linear.weight': (50, 1536),
        'last_linear.bias': (50,),
    }
    for key, shape in shapes.items():
        assert tuple(state[key].shape) == shape, key
    for key in ['repeat.10.conv2d.weight', 'repeat_1.20.conv2d.weight',
                'repeat_2.9.conv2d.weight', 'mixed_6a.branch2.weight', 'mixed_7a.branch3.weight',
                'block8.branch2.0.conv.weight']:
        assert key not in state  # 10 / 20 / 9 repeats; pool branches and Block8 hold no weights


def test_bn_eps_and_which_convs_have_a_bias():
    net = build(50)
    bns = [m for m in net.modules() if isinstance(m, nn.BatchNorm2d)]
    assert bns and all(bn.eps == 0.001 and bn.momentum == 0.1 and bn.affine for bn in bns)
    residual = [m for m in net.modules() if isinstance(m, (Block35, Block17, Block8))]
    assert len(residual) == 10 + 20 + 10
    projections = {id(block.conv2d) for block in residual}
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            assert (m.bias is not None) == (id(m) in projections)
    assert not any(isinstance(m, nn.Dropout) for m in net.modules())


def test_residual_scales_and_head():
    net = build(50)
    assert [b.scale for b in net.repeat] == [0.17] * 10
    assert [b.scale for b in net.repeat_1] == [0.10] * 20
    assert [b.scale for b in net.repeat_2] == [0.20] * 9
    assert all(b.apply_relu for b in list(net.repeat) + list(net.repeat_1) + list(net.repeat_2))
    assert net.block8.scale == 1.0 and not net.block8.apply_relu
    assert net.avgpool_1a.kernel_size == 8 and not net.avgpool_1a.count_include_pad
    assert not net.mixed_5b.branch3[0].count_include_pad


def test_residual_block_arithmetic():
    torch.manual_seed(0)
    block = Block35(scale=0.17).eval()
    x = torch.randn(1, 320, 9, 9)
    with torch.no_grad():
        mixed = torch.cat([block.branch0(x), block.branch1(x), block.branch2(x)], 1)  # 128 ch
        assert mixed.shape == (1, 128, 9, 9)
        assert torch.allclose(block(x), torch.relu(x + 0.17 * block.conv2d(mixed)), atol=1e-5)
        last = Block8(scale=1.0, relu=False).eval()
        y = torch.randn(1, 2080, 3, 3)
        mixed = torch.cat([last.branch0(y), last.branch1(y)], 1)  # 448 ch
        assert torch.allclose(last(y), y + last.conv2d(mixed), atol=1e-5)
        assert (last(y) < 0).any()  # no ReLU after the final block
