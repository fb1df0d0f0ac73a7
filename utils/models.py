"""The ResNet-50 of the Clothing1M experiments (Sec. 4.1: "ResNet-50 with ImageNet pretrained
weights"), from torchvision, for Train_clothing1M.py, Train_imagefolder.py and
tools/export_labels.py."""
import torch.nn as nn
import torchvision

from utils.checkpoint import load_checkpoint
from utils.cli import InputError, one_line

# ResNet-50 halves its input five times (rounding up), so an input of 32 px or less leaves a 1x1
# map; the BatchNorm layers of its last block then see one value per channel on a training
# batch of one image, which they refuse ("Expected more than 1 value per channel"). The last
# batch of an epoch can hold one image (drop_last is off), so inputs start at 33 px (a 2x2 map).
RESNET50_SMALLEST_INPUT = 33
RESNET50_INPUT_HINT = ('ResNet-50 halves it 5 times, and a 32-px input leaves a 1x1 map that '
                       'BatchNorm cannot train on with a batch of one image')


def resnet50(num_class, pretrained):
    """torchvision's ResNet-50 with a fresh num_class-way fc layer. pretrained: 'imagenet'
    (torchvision's IMAGENET1K_V1 weights, downloaded or cached), 'none' (random init), or the
    path of a local torchvision resnet50 weights file (a state_dict, or {'state_dict': ...})."""
    if pretrained == 'imagenet':
        try:
            net = torchvision.models.resnet50(
                weights=torchvision.models.ResNet50_Weights.IMAGENET1K_V1)
        except Exception as e:  # offline and not cached
            raise InputError('could not get the ImageNet ResNet-50 weights (%s): pass '
                             '--pretrained PATH to a local resnet50 weights file'
                             % one_line(e)) from None
    else:
        net = torchvision.models.resnet50()
        if pretrained != 'none':
            state = load_checkpoint(pretrained, "pass --pretrained a torchvision ResNet-50 "
                                    "weights file, 'imagenet' or 'none'")
            try:
                net.load_state_dict(state.get('state_dict', state))
            except (RuntimeError, AttributeError) as e:
                raise InputError('%s is not a torchvision ResNet-50 state_dict (%s)'
                                 % (pretrained, one_line(e))) from None
    net.fc = nn.Linear(net.fc.in_features, num_class)
    return net
