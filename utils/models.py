"""The networks the scripts build and the weights they start from: the ResNet-50 of the
Clothing1M experiments (Sec. 4.1: "ResNet-50 with ImageNet pretrained weights"), from
torchvision, for Train_clothing1M.py, Train_imagefolder.py and tools/export_labels.py; the CIFAR
networks of Train_cifar.py (--arch) and their self-supervised start (--pretrained, C2D)."""
import argparse
import contextlib
import os

import torch
import torch.nn as nn
import torchvision

import PreResNet
import ResNet
from utils.checkpoint import load_checkpoint, non_finite
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
            refuse_non_finite(state, pretrained)
            try:
                net.load_state_dict(state.get('state_dict', state))
            except (RuntimeError, AttributeError) as e:
                raise InputError('%s is not a torchvision ResNet-50 state_dict (%s)'
                                 % (pretrained, one_line(e))) from None
    net.fc = nn.Linear(net.fc.in_features, num_class)
    return net


def refuse_non_finite(state, path):
    """Refuse weights with a NaN or an infinity in one line naming the file and the tensor
    (training from them fails later, blaming the learning rate)."""
    broken = non_finite(state)
    if broken:
        raise InputError('--pretrained %s holds non-finite numbers (in %s): these weights are '
                         'broken; pass another file' % (path, broken))


# ---------------------------------------------------------------- CIFAR networks (--arch) ----

# name -> (constructor(num_classes, width), its name in messages)
CIFAR_ARCHS = {'preact18': (PreResNet.ResNet18, 'PreAct-ResNet18'),
               'resnet18': (ResNet.ResNet18, 'ResNet-18')}
CLASSIFIER = 'linear'  # the CIFAR networks' last layer: a self-supervised start leaves it fresh
SELF_SUPERVISED_FIX = ("give a SimCLR checkpoint: SupContrast's main_supcon.py --method SimCLR "
                       "writes one ({'model': {'encoder.*', 'head.*'}, ...}), or a bare "
                       "state_dict of the backbone")


def cifar_net(arch, num_class, width):
    """Train_cifar.py's network: --arch preact18 (the paper's) or resnet18 (C2D's)."""
    return CIFAR_ARCHS[arch][0](num_class, width)


def backbone_tensors(checkpoint):
    """The backbone tensors of a self-supervised checkpoint under the CIFAR networks' names,
    and the sorted top-level names of what was left out. Layouts: SupContrast's
    {'model': {'encoder.<name>', 'head.<k>'}, 'opt', 'optimizer', 'epoch'} (the projection
    head is left out), a {'state_dict': ...}, or a bare state_dict; 'module.' (DataParallel,
    DDP) is dropped wherever it stands, and a classifier ('fc.', 'linear.') is left out: the
    run's classifier starts fresh."""
    state = checkpoint
    if isinstance(checkpoint, dict):
        state = next((checkpoint[k] for k in ('model', 'state_dict')
                      if isinstance(checkpoint.get(k), dict)), checkpoint)
    if not isinstance(state, dict):
        return {}, []
    named = {'.'.join(p for p in key.split('.') if p != 'module'): value
             for key, value in state.items() if isinstance(key, str) and torch.is_tensor(value)}
    has_encoder = any(key.startswith('encoder.') for key in named)
    tensors, left_out = {}, set()
    for key, value in named.items():
        if has_encoder:  # SupContrast's SupConResNet: encoder (the backbone) + head
            if key.startswith('encoder.'):
                tensors[key[len('encoder.'):]] = value
            else:
                left_out.add(key.split('.')[0])
        elif key.split('.')[0] in ('head', 'fc', CLASSIFIER):
            left_out.add(key.split('.')[0])
        else:
            tensors[key] = value
    return tensors, sorted(left_out)


def _backbone_shapes(arch, width):
    """{name: shape} of the network's tensors but its classifier's, and the classifier's
    names; the network is built without touching the run's random streams, and without
    memory on the meta device (torch 2.0 or newer), whatever width a checkpoint claims."""
    on_meta = torch.device('meta') if hasattr(torch.device, '__enter__') else (
        contextlib.nullcontext())
    with torch.random.fork_rng(devices=[]), on_meta:
        state = cifar_net(arch, 10, width).state_dict()
    shapes = {k: tuple(v.shape) for k, v in state.items() if k.split('.')[0] != CLASSIFIER}
    return shapes, [k for k in state if k not in shapes]


def _mismatch(tensors, shapes):
    """(missing, unexpected, other shapes) of checkpoint tensors against the network's."""
    missing = [k for k in shapes if k not in tensors]
    unexpected = [k for k in tensors if k not in shapes]
    reshaped = ['%s %s, not %s' % (k, 'x'.join(map(str, tensors[k].shape)),
                                   'x'.join(map(str, shapes[k])))
                for k in shapes if k in tensors and tuple(tensors[k].shape) != shapes[k]]
    return missing, unexpected, reshaped


def _few(names, shown=3):
    return ', '.join(names[:shown]) + (', ...' if len(names) > shown else '')


def self_supervised_backbone(path, arch, width):
    """The backbone tensors of the checkpoint `path` for the CIFAR network (arch, width), all
    of them there with their shapes, and the line that says what was loaded and what starts
    fresh. A file that does not hold that backbone is refused in one line: it names the
    --arch and --width to pass where the checkpoint holds one of the CIFAR networks."""
    tensors, left_out = backbone_tensors(load_checkpoint(path, SELF_SUPERVISED_FIX,
                                                         allowed=[argparse.Namespace]))
    if not tensors:
        raise InputError('%s holds no network weights: %s' % (path, SELF_SUPERVISED_FIX))
    refuse_non_finite(tensors, path)
    shapes, fresh = _backbone_shapes(arch, width)
    missing, unexpected, reshaped = _mismatch(tensors, shapes)
    if not (missing or unexpected or reshaped):
        return tensors, 'loaded %d tensors from %s%s; not loaded (fresh): %s' % (
            len(tensors), path,
            ' (left out: %s)' % ', '.join(k + '.*' for k in left_out) if left_out else '',
            ', '.join(fresh))
    stem = tensors.get('conv1.weight')  # both networks' stem: (width, 3, 3, 3)
    held_width = stem.shape[0] if stem is not None and stem.dim() == 4 else None
    for other in CIFAR_ARCHS if held_width is not None else ():
        if (other, held_width) != (arch, width) and not any(
                _mismatch(tensors, _backbone_shapes(other, held_width)[0])):
            switches = ([] if other == arch else ['--arch %s' % other]) + (
                [] if held_width == width else ['--width %d' % held_width])
            raise InputError('%s holds a %s backbone of width %d, this run builds a %s of width '
                             '%d: pass %s' % (path, CIFAR_ARCHS[other][1], held_width,
                                              CIFAR_ARCHS[arch][1], width, ' '.join(switches)))
    parts = [template % (len(names), _few(names)) for template, names in (
        ("%d of the network's tensors missing (%s)", missing),
        ('%d not in the network (%s)', unexpected), ('%d of other shapes (%s)', reshaped))
        if names]
    raise InputError('%s does not hold the backbone of the %s of width %d this run builds: %s; '
                     '%s' % (path, CIFAR_ARCHS[arch][1], width, ', '.join(parts),
                             SELF_SUPERVISED_FIX))


# ---------------------------------------------------------------- will it fit ----------------

def training_memory(make_net, rows, image_size, resize=0, num_workers=0):
    """Bytes a training step of two networks make_net() needs at the very least, counted on the
    meta device (nothing is allocated): each network's weights, gradients and momentum
    (float32), the batch of `rows` images of image_size px and its largest layer output; with
    `resize`, an image decoded at that size (8-bit RGB, its shorter side) in each loading
    process (the run's and its `num_workers`). A run needs more (every layer's output is kept
    for the backward pass): a size this refuses cannot train, and one it lets through may
    still not fit."""
    with torch.device('meta'):
        net = make_net()
        weights = sum(p.numel() for p in net.parameters())
        outputs = []
        for module in net.modules():
            if not list(module.children()):
                module.register_forward_hook(
                    lambda m, i, out: outputs.append(out.numel() if torch.is_tensor(out) else 0))
        batch = torch.empty(rows, 3, image_size, image_size)
        with contextlib.suppress(Exception):  # a size the network refuses: the layers before
            net(batch)
    decoded = 3 * resize ** 2 * (1 + num_workers)
    return 4 * (2 * 3 * weights + max(outputs, default=0) + batch.numel()) + decoded


def available_memory(device):
    """Bytes free for this process on `device`: the GPU's free memory, or the CPU's available
    memory (Linux's MemAvailable, else the physical memory); None where neither can be read."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open('/proc/meminfo') as f:
            return 1024 * int(next(line.split()[1] for line in f
                                   if line.startswith('MemAvailable:')))
    with contextlib.suppress(OSError, ValueError, AttributeError):
        return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
    return None


def _size(num_bytes):
    for unit in ('bytes', 'KB', 'MB', 'GB', 'TB', 'PB'):
        if num_bytes < 1000 or unit == 'PB':
            return ('%d %s' if unit == 'bytes' else '%.3g %s') % (num_bytes, unit)
        num_bytes /= 1000


def refuse_what_cannot_fit(needed, device, sizes, lower):
    """An InputError when `needed` bytes (training_memory, plus what else the run holds) are
    more than `device` has free: the arguments that set the sizes (`sizes`, as given on the
    command line) with the estimate and the memory there is, and what to lower."""
    free = available_memory(device)
    if free is not None and needed > free:
        raise InputError('%s need at least %s of memory to train, more than the %s free on %s: '
                         'lower %s' % (sizes, _size(needed), _size(free),
                                       'the GPU' if torch.device(device).type == 'cuda'
                                       else 'this machine', lower))
