"""PreAct-ResNet18 exactly as the DivideMix authors trained it on CIFAR.

This is *not* the canonical pre-activation ResNet (He et al., 2016); three details differ and
are kept on purpose so that results and checkpoints match the authors' network:
  1. the stem is conv -> BN -> ReLU, and the first block pre-activates again (double BN-ReLU);
  2. the identity shortcut carries the pre-activated ReLU(BN(x)), not the raw x;
  3. there is no final BN-ReLU before the global pooling.
Parameter names match the authors' layout (conv1, bn1, layer1.0.bn1, ..., shortcut.0, linear),
so their state_dicts load unchanged. 11,171,274 parameters for 10 classes, 11,217,444 for 100.
"""
import torch.nn as nn
import torch.nn.functional as F


class PreActBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut = nn.Sequential()  # identity; a 1x1 projection (no BN) when shapes change
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False))

    def forward(self, x):
        out = F.relu(self.bn1(x))
        shortcut = self.shortcut(out)  # authors' quirk: the identity path is pre-activated too
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + shortcut


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, width=64):
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def features(self, x):
        """Penultimate features, (N, 8*width) for 32x32 inputs."""
        out = F.relu(self.bn1(self.conv1(x)))  # stem BN-ReLU (the first block pre-activates again)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.avg_pool2d(out, 4)  # 4x4 map -> 1x1; no final BN-ReLU (authors' variant)
        return out.flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


def ResNet18(num_classes=10, width=64):
    """PreAct-ResNet18 as used by DivideMix; `width` < 64 gives a narrow net for CPU runs."""
    return ResNet(PreActBlock, [2, 2, 2, 2], num_classes=num_classes, width=width)
