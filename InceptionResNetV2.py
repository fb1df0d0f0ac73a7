"""Inception-ResNet-v2 (Szegedy et al., 2017) as the DivideMix authors trained it on WebVision.

The layout is the one of the released TF-slim checkpoint, which is not quite the paper's figures:
the stem ends in an extra Mixed_5b (320 channels at 35x35), and the block widths are 320 / 1088 /
2080. Residual branches are scaled (0.17, 0.10, 0.20) before the addition, as the paper advises
for wide residual Inception nets (Sec. 3.3), and the last Block8 has scale 1.0 and no ReLU.
Attribute names follow that widely used PyTorch layout (conv2d_1a, mixed_5b, repeat.0.branch1.1,
block8, last_linear, ...), so its state_dicts load unchanged. No dropout, default PyTorch init.
55,845,001 parameters for 1001 classes, 54,383,314 for 50.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

INPUT_SIZE = 299  # the fixed 8x8 average pool at the end only fits a 299-px input


class BasicConv2d(nn.Module):
    """conv (no bias: BN supplies the shift) -> BN -> ReLU; eps 0.001 as in the TF checkpoint."""

    def __init__(self, in_ch, out_ch, kernel_size, stride=1, padding=0):
        super().__init__()
        self.conv = nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=padding,
                              bias=False)
        self.bn = nn.BatchNorm2d(out_ch, eps=0.001, momentum=0.1)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


def chain(*layers):
    return nn.Sequential(*layers)


class Mixed(nn.Module):
    """Parallel branches branch0, branch1, ... on the same input, concatenated along channels."""

    def __init__(self, *branches):
        super().__init__()
        for i, branch in enumerate(branches):
            self.add_module('branch%d' % i, branch)
        self.num_branches = len(branches)

    def forward(self, x):
        return torch.cat([getattr(self, 'branch%d' % i)(x) for i in range(self.num_branches)], 1)


class Residual(Mixed):
    """Inception-ResNet block: out = ReLU(x + scale * conv1x1(concat(branches)))."""

    def __init__(self, branches, concat_ch, out_ch, scale, relu=True):
        super().__init__(*branches)
        self.conv2d = nn.Conv2d(concat_ch, out_ch, 1)  # plain conv with bias: no BN, no ReLU
        self.scale, self.apply_relu = scale, relu

    def forward(self, x):
        out = x + self.scale * self.conv2d(super().forward(x))
        return F.relu(out) if self.apply_relu else out


class Mixed_5b(Mixed):  # 35x35, 192 -> 96 + 64 + 96 + 64 = 320
    def __init__(self):
        super().__init__(
            BasicConv2d(192, 96, 1),
            chain(BasicConv2d(192, 48, 1), BasicConv2d(48, 64, 5, padding=2)),
            chain(BasicConv2d(192, 64, 1), BasicConv2d(64, 96, 3, padding=1),
                  BasicConv2d(96, 96, 3, padding=1)),
            chain(nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
                  BasicConv2d(192, 64, 1)))


class Block35(Residual):  # Inception-ResNet-A, 35x35, 320 -> 320
    def __init__(self, scale=0.17):
        super().__init__([
            BasicConv2d(320, 32, 1),
            chain(BasicConv2d(320, 32, 1), BasicConv2d(32, 32, 3, padding=1)),
            chain(BasicConv2d(320, 32, 1), BasicConv2d(32, 48, 3, padding=1),
                  BasicConv2d(48, 64, 3, padding=1)),
        ], 32 + 32 + 64, 320, scale)


class Mixed_6a(Mixed):  # reduction 35x35 -> 17x17, 320 -> 384 + 384 + 320 = 1088
    def __init__(self):
        super().__init__(
            BasicConv2d(320, 384, 3, stride=2),
            chain(BasicConv2d(320, 256, 1), BasicConv2d(256, 256, 3, padding=1),
                  BasicConv2d(256, 384, 3, stride=2)),
            nn.MaxPool2d(3, stride=2))


class Block17(Residual):  # Inception-ResNet-B, 17x17, 1088 -> 1088; 7x7 factored into 1x7, 7x1
    def __init__(self, scale=0.10):
        super().__init__([
            BasicConv2d(1088, 192, 1),
            chain(BasicConv2d(1088, 128, 1), BasicConv2d(128, 160, (1, 7), padding=(0, 3)),
                  BasicConv2d(160, 192, (7, 1), padding=(3, 0))),
        ], 192 + 192, 1088, scale)


class Mixed_7a(Mixed):  # reduction 17x17 -> 8x8, 1088 -> 384 + 288 + 320 + 1088 = 2080
    def __init__(self):
        super().__init__(
            chain(BasicConv2d(1088, 256, 1), BasicConv2d(256, 384, 3, stride=2)),
            chain(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, stride=2)),
            chain(BasicConv2d(1088, 256, 1), BasicConv2d(256, 288, 3, padding=1),
                  BasicConv2d(288, 320, 3, stride=2)),
            nn.MaxPool2d(3, stride=2))


class Block8(Residual):  # Inception-ResNet-C, 8x8, 2080 -> 2080; 3x3 factored into 1x3, 3x1
    def __init__(self, scale=0.20, relu=True):
        super().__init__([
            BasicConv2d(2080, 192, 1),
            chain(BasicConv2d(2080, 192, 1), BasicConv2d(192, 224, (1, 3), padding=(0, 1)),
                  BasicConv2d(224, 256, (3, 1), padding=(1, 0))),
        ], 192 + 256, 2080, scale, relu)


class InceptionResNetV2(nn.Module):
    def __init__(self, num_classes=50):
        super().__init__()
        # stem: 299 -> 149 -> 147 -> 147 -> 73 -> 73 -> 71 -> 35 (unpadded convs unless noted)
        self.conv2d_1a = BasicConv2d(3, 32, 3, stride=2)
        self.conv2d_2a = BasicConv2d(32, 32, 3)
        self.conv2d_2b = BasicConv2d(32, 64, 3, padding=1)
        self.maxpool_3a = nn.MaxPool2d(3, stride=2)
        self.conv2d_3b = BasicConv2d(64, 80, 1)
        self.conv2d_4a = BasicConv2d(80, 192, 3)
        self.maxpool_5a = nn.MaxPool2d(3, stride=2)
        self.mixed_5b = Mixed_5b()
        self.repeat = nn.Sequential(*[Block35() for _ in range(10)])
        self.mixed_6a = Mixed_6a()
        self.repeat_1 = nn.Sequential(*[Block17() for _ in range(20)])
        self.mixed_7a = Mixed_7a()
        self.repeat_2 = nn.Sequential(*[Block8() for _ in range(9)])
        self.block8 = Block8(scale=1.0, relu=False)  # last block: unscaled, no ReLU before 7b
        self.conv2d_7b = BasicConv2d(2080, 1536, 1)
        self.avgpool_1a = nn.AvgPool2d(8, count_include_pad=False)
        self.last_linear = nn.Linear(1536, num_classes)

    def features(self, x):
        """Pooled features, (N, 1536); x must be (N, 3, 299, 299)."""
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            raise ValueError('InceptionResNetV2 requires 299-px input (%dx%d): its final 8x8 '
                             'average pool needs an 8x8 map; got %s'
                             % (INPUT_SIZE, INPUT_SIZE, 'x'.join(map(str, x.shape[-2:]))))
        out = self.maxpool_3a(self.conv2d_2b(self.conv2d_2a(self.conv2d_1a(x))))
        out = self.maxpool_5a(self.conv2d_4a(self.conv2d_3b(out)))
        out = self.mixed_6a(self.repeat(self.mixed_5b(out)))  # 35x35 -> 17x17
        out = self.mixed_7a(self.repeat_1(out))  # 17x17 -> 8x8
        out = self.conv2d_7b(self.block8(self.repeat_2(out)))
        return self.avgpool_1a(out).flatten(1)

    def forward(self, x):
        return self.last_linear(self.features(x))
