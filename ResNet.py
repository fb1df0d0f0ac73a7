"""ResNet-18 with a CIFAR stem, the backbone of C2D's self-supervised start (--arch resnet18).

The standard post-activation ResNet (He et al., 2015) as SupContrast's SimCLR trains it on
32x32 images: a 3x3 stride-1 stem conv -> BN -> ReLU and no max-pool, four stages of two basic
blocks (conv-BN-ReLU-conv-BN, plus the shortcut, then ReLU), a 1x1 conv + BN projection on the
shortcut where the shape changes, global average pooling. Unlike PreResNet.py it is the
canonical block, and the shortcut projection has a BatchNorm.
Parameter names (conv1, bn1, layer1.0.conv1, ..., layer2.0.shortcut.1, linear) are those of a
SimCLR checkpoint's encoder without its 'encoder.' prefix, so its tensors map one to one
(utils/models.py). 11,173,962 parameters for 10 classes, 11,220,132 for 100.
"""
import torch.nn as nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()  # identity; a 1x1 projection + BN when shapes change
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10, width=64):
        super().__init__()
        self.in_planes = width
        self.conv1 = nn.Conv2d(3, width, 3, stride=1, padding=1, bias=False)  # CIFAR stem
        self.bn1 = nn.BatchNorm2d(width)
        self.layer1 = self._make_layer(block, width, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 2 * width, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 4 * width, num_blocks[2], stride=2)
        self.layer4 = self._make_layer(block, 8 * width, num_blocks[3], stride=2)
        self.linear = nn.Linear(8 * width * block.expansion, num_classes)
        # He initialisation of the convolutions, unit BatchNorm, as torchvision's and
        # SupContrast's ResNets (a self-supervised start overwrites all but the classifier)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='relu')
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(self, block, planes, num_blocks, stride):
        layers = []
        for s in [stride] + [1] * (num_blocks - 1):
            layers.append(block(self.in_planes, planes, s))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def features(self, x):
        """Penultimate features, (N, 8*width)."""
        out = F.relu(self.bn1(self.conv1(x)))  # no max-pool: 32x32 images keep their size here
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x):
        return self.linear(self.features(x))


def ResNet18(num_classes=10, width=64):
    """ResNet-18 with a CIFAR stem; `width` < 64 gives a narrow net for CPU runs."""
    return ResNet(BasicBlock, [2, 2, 2, 2], num_classes=num_classes, width=width)
