"""DivideMix on your own image classification dataset with noisy labels.

    python Train_imagefolder.py --data_path DIR            # DIR/train/<class>/<image>, test/, val/
    python Train_imagefolder.py --data_path DIR --train_list train.csv --test_list test.csv
    python Train_imagefolder.py --data_path DIR --arch resnet50   # ImageNet-pretrained ResNet-50

The given labels are the folder names (or the lists' labels); DivideMix trains two networks
through their noise and finds the mislabeled images (see the labels file at the end). Two
networks to choose from, each with its own defaults (SCHEDULES, printed at start):
  preact18   the paper's CIFAR network, trained from scratch, for small images (32 px): the
             paper's CIFAR schedule (Sec. 4.1) and the lambda_u of its 50% cells (Table 7)
  resnet50   torchvision's ResNet-50 from ImageNet weights, for photos (224 px): the paper's
             Clothing1M schedule (Appendix B), lambda_u 0 (only the labeled rows are mixed)
With a validation set (val/ or --val_list) the best checkpoint is the best validation epoch;
otherwise the best test epoch, or the last one when there is no test set either.
Logs: checkpoint/<id>_acc.txt, _stats.txt and <id>.jsonl; the label errors: <id>_labels.csv.
Beyond the paper: --strong_aug, --strong_warmup (AugDesc-WS, as Train_cifar.py; AutoAugment's
CIFAR-10 policy for preact18, its ImageNet policy for resnet50) append _strong_aug, _strong_warmup
to <id>.
"""
import argparse
import functools
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import dividemix as dm
from dataloader_imagefolder import (DEFAULTS, IMAGENET_MEAN, IMAGENET_STD, ImageFolderData,
                                    ImageFolderLoaders, strong_transform_for, transforms_for)
from PreResNet import ResNet18
from utils.augment import add_strong_arguments
from utils.checkpoint import restore, rng_state, seed_everything, state_of
from utils.cli import (COMPILE_NEEDS_SPEED_UPS, FIGURES_NEED_MATPLOTLIB, PLAIN_ID,
                       TENSORBOARD_NEEDS_IT, WARM_UP_BEFORE_END, ArgumentParser, Range, Relation,
                       above, at_least, check_args, check_finite, run_cli)
from utils.data import default_workers, ssl_batches
from utils.distributed import distributed, init_distributed, pick_device, print0, unwrap
from utils.label_export import export_labels
from utils.models import (RESNET50_INPUT_HINT, RESNET50_SMALLEST_INPUT, refuse_what_cannot_fit,
                          resnet50, training_memory)
from utils.progress import (QUICK_LOOK_S, Progress, RunClock, command_with, describe_device,
                            measured_width_ratio, preact_quick_look, unused_folder)
from utils.runlog import RunLog
from utils.snapshots import (TensorBoardLog, division_epochs, penultimate_features,
                             save_division, save_features, save_unlabeled_guesses)
from utils.speed import (graphed, per_view, prepare, saves_in_background, speed_ups,
                         use_cuda_graphs)

# The defaults of each network, every one a flag. preact18: the paper's CIFAR settings (Sec. 4.1;
# lambda_u 25 as Table 7's 50% cells, a middle noise level); resnet50: its Clothing1M settings
# (Appendix B). The warm-up confidence penalty is on for both: real label noise depends on the
# class, like the paper's asymmetric noise and Clothing1M, where it is used (Sec. 3.1).
SCHEDULES = {
    'preact18': dict(num_epochs=300, warm_up=10, lr=0.02, lr_drop_epoch=150, batch_size=64,
                     weight_decay=5e-4, alpha=4.0, lambda_u=25.0, p_threshold=0.5),
    'resnet50': dict(num_epochs=80, warm_up=1, lr=0.002, lr_drop_epoch=40, batch_size=32,
                     weight_decay=1e-3, alpha=0.5, lambda_u=0.0, p_threshold=0.5),
}
# A first look's time outside its epochs: reading and checking the images, then the labels
# file, the t-SNE of up to 2,000 images and the figures (29 s of 283 s on 3,000 CIFAR-10 JPEGs
# at width 16 on a 2-core CPU: results/quick_look)
QUICK_LOOK_START_S = 30


def argument_parser():
    """Every argument, declared once with its range, its rules, and whether it changes the
    method (names_run: the run's name shows it) or may change on --resume (utils.cli). None:
    the network's SCHEDULES or DEFAULTS value, filled in by complete_args."""
    p = ArgumentParser(description='DivideMix on an image folder or image lists with noisy '
                                   'labels')
    p.add_argument('--data_path', default=None, resumable=True,
                   help='folder with train/<class>/<image> (and optionally test/, val/), or the '
                        'folder the paths in the lists are relative to',
                   rule=Relation(lambda a: a.data_path is not None or a.train_list is not None,
                                 'no data: pass --data_path DIR (DIR/train/<class>/<image>) or '
                                 '--train_list'))
    p.add_argument('--train_list', default=None,
                   help='CSV of "<image path>,<label>" rows instead of train/ folders')
    p.add_argument('--test_list', default=None, help='the same for a clean test set')
    p.add_argument('--val_list', default=None,
                   help='the same for a validation set (then it picks the best epoch)')
    p.add_argument('--classes', '--classes_file', dest='classes_file', default=None,
                   help='one class name per line; integer labels index it')
    p.add_argument('--clean_list', default=None,
                   help='"<image path>,<label>" rows with the true labels of some or all '
                        'training images: turns on division AUC, precision and recall')
    p.add_argument('--seed', type=int, default=123, check=Range(0, 2**32 - 1))  # numpy's range
    # network and images
    p.add_argument('--arch', default='preact18', choices=sorted(SCHEDULES),
                   help='preact18: from scratch, small images; resnet50: ImageNet-pretrained')
    p.add_argument('--pretrained', default='imagenet',
                   help="resnet50's start: 'imagenet' (torchvision's weights, downloaded or "
                        "cached), a local ResNet-50 weights file, or 'none'",
                   rule=Relation(lambda a: a.arch == 'resnet50' or a.pretrained in (
                       'imagenet', 'none'), '--pretrained is for --arch resnet50 (preact18 '
                       'trains from scratch)'))
    p.add_argument('--width', type=int, default=64, check=at_least(1),
                   help='preact18 base width')
    p.add_argument('--num_train', type=int, default=None, check=at_least(2),
                   help='train on N of the training images drawn at random (quick runs)',
                   rule=Relation(lambda a: a.num_train is None or a.num_train >= a.batch_size,
                                 '--num_train %(num_train)d is fewer images than a batch '
                                 '(--batch_size %(batch_size)d)'))
    p.add_argument('--image_size', type=int, default=None, check=at_least(8),
                   help='default 32 / 224 by --arch',
                   rule=[Relation(lambda a: a.arch != 'preact18' or a.image_size == 32,
                                  '--image_size %(image_size)d: preact18 takes 32-px images (its '
                                  'final pool fits a 4x4 map); pass --image_size 32, or --arch '
                                  'resnet50 for larger images'),
                         Relation(lambda a: a.arch != 'resnet50'
                                  or a.image_size >= RESNET50_SMALLEST_INPUT,
                                  '--image_size %(image_size)d: resnet50 takes images of at '
                                  'least ' + str(RESNET50_SMALLEST_INPUT) + ' px ('
                                  + RESNET50_INPUT_HINT + ')')])
    p.add_argument('--resize', type=int, default=None, check=at_least(8),
                   help='shorter side before cropping; default 32 / 256 by --arch',
                   rule=Relation(lambda a: a.resize >= a.image_size,
                                 '--resize %(resize)d is smaller than --image_size '
                                 '%(image_size)d: images are resized, then cropped'))
    # pixel values are 0 to 1: a mean or std far outside that scale overflows the inputs
    p.add_argument('--mean', type=float, nargs=3, default=list(IMAGENET_MEAN),
                   rule=Relation(lambda a: all(abs(m) <= 10 for m in a.mean),  # NaN fails too
                                 '--mean must be three numbers from -10 to 10 (pixel values '
                                 'are 0 to 1)'))
    p.add_argument('--std', type=float, nargs=3, default=list(IMAGENET_STD),
                   rule=Relation(lambda a: all(1e-3 <= v <= 1e3 for v in a.std),
                                 '--std must be three numbers from 0.001 to 1000 (pixel values '
                                 'are 0 to 1)'))
    # optimisation and DivideMix; None: the network's SCHEDULES value
    p.add_argument('--num_epochs', type=int, default=None, check=at_least(1), resumable=True)
    p.add_argument('--warm_up', type=int, default=None, check=at_least(0),
                   rule=WARM_UP_BEFORE_END)
    p.add_argument('--batch_size', type=int, default=None, check=at_least(1),
                   help='labeled = unlabeled batch B')
    p.add_argument('--lr', '--learning_rate', type=float, default=None, check=above(0))
    p.add_argument('--lr_drop_epoch', type=int, default=None, check=at_least(0),
                   help='lr / 10 from this epoch')
    p.add_argument('--momentum', type=float, default=0.9, check=Range(0, 1))
    p.add_argument('--weight_decay', type=float, default=None, check=at_least(0))
    p.add_argument('--lambda_u', type=float, default=None, check=at_least(0),
                   help='weight of Lu; 0: mix only the labeled rows (as for Clothing1M)')
    p.add_argument('--p_threshold', type=float, default=None, check=Range(0, 1, high_open=True),
                   help='clean probability tau')
    p.add_argument('--T', type=float, default=0.5, check=above(0),
                   help='sharpening temperature')
    p.add_argument('--alpha', type=float, default=None, check=above(0),
                   help='Beta(alpha, alpha) of mixup')
    p.add_argument('--rampup_epochs', type=int, default=16, check=at_least(1),
                   help='lambda_u ramps up linearly over this many epochs after warm-up')
    p.add_argument('--loss_history', type=int, default=1, check=at_least(1),
                   help='the mixture models the mean normalised loss of this many epochs (5 '
                        'helps at very high noise)')
    dm.add_co_divide_arguments(p, divided=lambda a: a.num_train)
    p.add_argument('--warmup_penalty', action=argparse.BooleanOptionalAction, default=True,
                   help='confidence penalty in warm-up (Sec. 3.1)')
    p.add_argument('--balanced_warmup', action='store_true',
                   help='warm up on class-balanced draws (for imbalanced classes)')
    # beyond the paper (docs/beyond_the_paper.md); off by default
    add_strong_arguments(p, "its CIFAR-10 policy for --arch preact18's small images, its "
                             "ImageNet policy for resnet50's photos")
    # machine and outputs
    p.add_argument('--plain', action='store_true', resumable=True,
                   help='turn the speed-ups off (fp32, no channels_last): the reference path')
    p.add_argument('--cuda_graphs', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True,
                   help='on one GPU, replay each training step as a CUDA graph')
    p.add_argument('--compile', action='store_true', resumable=True,
                   rule=COMPILE_NEEDS_SPEED_UPS, help='torch.compile both networks')
    p.add_argument('--num_workers', type=int, default=default_workers(4), check=at_least(0),
                   resumable=True,
                   help='image decoding workers (default: 4, or the CPUs there are where fewer)')
    p.add_argument('--gpuid', type=int, default=0, check=at_least(0), resumable=True,
                   help='which GPU to run on (0 is the first); the CPU when there is none')
    p.add_argument('--id', default='imagefolder', rule=PLAIN_ID,
                   help='prefix of the output files (a switch that changes the method, such as '
                        '--strong_aug, appends its name)')
    p.add_argument('--out_dir', default='checkpoint', resumable=True)
    p.add_argument('--figures', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True, rule=FIGURES_NEED_MATPLOTLIB,
                   help='save loss snapshots and unlabeled examples, draw the figures at the end')
    p.add_argument('--tensorboard', action='store_true', resumable=True,
                   rule=TENSORBOARD_NEEDS_IT,
                   help='also log the per-epoch numbers for TensorBoard (needs tensorboard)')
    p.add_argument('--resume', action='store_true', resumable=True,
                   help='continue the run in --out_dir from its latest checkpoint')
    p.add_argument('--debug', action='store_true', resumable=True,
                   help='show tracebacks for input errors')
    p.set_defaults(script='Train_imagefolder.py')  # saved with the run: what tools/ read it as
    return p


def parse_args(argv):
    return argument_parser().parse_args(argv)


def complete_args(args):
    """Fill in the network's defaults (SCHEDULES, DEFAULTS), check every argument, print them."""
    for name, value in dict(SCHEDULES[args.arch], **DEFAULTS[args.arch]).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    check_args(args, argument_parser().rules)
    drop = (' (/10 from %d)' % args.lr_drop_epoch if args.lr_drop_epoch < args.num_epochs
            else '')  # a drop the run never reaches is not shown
    print0('%s: epochs=%d warm_up=%d lr=%g%s batch=%d weight_decay=%g alpha=%g '
           'lambda_u=%g p_threshold=%g image_size=%d resize=%d warm-up penalty %s'
           % (args.arch, args.num_epochs, args.warm_up, args.lr, drop,
              args.batch_size, args.weight_decay, args.alpha, args.lambda_u, args.p_threshold,
              args.image_size, args.resize, 'on' if args.warmup_penalty else 'off'))
    return args


def create_model(args, num_class):
    """PreAct-ResNet18 from scratch, or ResNet-50 with ImageNet (or given) weights and a fresh
    num_class-way fc layer."""
    if args.arch == 'preact18':
        return ResNet18(num_class, args.width)
    return resnet50(num_class, args.pretrained)


# ---------------------------------------------------------------- one mini-batch --------------

def warmup_step(net, optimizer, inputs, labels, confidence_penalty):
    """Alg. 1 line 2 on one mini-batch of 2B images: cross-entropy on the noisy labels, plus
    the confidence penalty (minus Eq. 2) where asked. Returns the CE (0-dim tensor)."""
    logits = net(inputs)
    loss = F.cross_entropy(logits, labels)
    penalty = dm.negative_entropy(logits) if confidence_penalty else 0.0
    optimizer.zero_grad()
    (loss + penalty).backward()
    optimizer.step()
    return loss.detach()


def ssl_step(net, partner, optimizer, x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u,
             *strong, args):
    """Alg. 1 lines 12-29 on one mini-batch: x1, x2 (B, 3, S, S) two augmented views of
    labeled images with their noisy labels (B,) and clean probabilities (B,) from the
    partner's GMM; u1, u2 two views of unlabeled images (None when that set is empty); lam,
    perm the mixup draws (dm.draw_mix); weight_u the weight of Lu at this step (lambda_u ramped
    up by dm.linear_rampup). The frozen `partner` (eval mode) co-guesses. `strong`
    (--strong_aug): two strongly augmented views of the same labeled and unlabeled images
    (xs1, xs2, us1, us2). Returns Lx and Lu (0-dim tensors)."""
    with torch.no_grad():
        # The trained net stays in train mode for these passes (authors' code): its BatchNorm
        # sees each view alone, and the order u1, u2, x1, x2 sets its running statistics.
        # per_view: one call per view (on a GPU, one call with BatchNorm per view: the same)
        logits_u1, logits_u2, logits_x1, logits_x2 = per_view(net, u1, u2, x1, x2)
        if u1 is not None:
            pred_u = dm.mean_prediction(logits_u1, logits_u2)
            # eval mode: rows are independent, so both views go through the partner at once
            partner_pred_u = dm.mean_prediction(*partner(torch.cat([u1, u2])).chunk(2))
            targets_u = dm.co_guess(pred_u, partner_pred_u, args.T)        # Alg. 1 lines 21-23
        pred_x = dm.mean_prediction(logits_x1, logits_x2)
        targets_x = dm.co_refine(F.one_hot(labels, args.num_class).float(), clean_prob, pred_x,
                                 args.T)                                    # Eq. (3)-(4)

    if strong:  # AugDesc-WS: the targets came from the weak views; the strong ones are mixed
        x1, x2, u1, u2 = strong
    # MixMatch over the labeled rows first, then the unlabeled ones (Eq. 5-8)
    if u1 is None:
        inputs, targets = torch.cat([x1, x2]), torch.cat([targets_x, targets_x])
    else:
        inputs = torch.cat([x1, x2, u1, u2])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    mixed_inputs, mixed_targets = dm.mixup(inputs, targets, lam, perm)
    if args.lambda_u == 0:
        # As the paper for Clothing1M (Appendix B): only the 2B labeled rows are trained on,
        # each mixed with a partner drawn from the whole batch; no Lu.
        mixed_inputs, mixed_targets = mixed_inputs[:2 * len(x1)], mixed_targets[:2 * len(x1)]

    # One forward over the mixed batch (shared BatchNorm), Eq. (12)
    loss, loss_x, loss_u = dm.dividemix_loss(net(mixed_inputs), mixed_targets, 2 * len(x1),
                                             weight_u)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss_x.detach(), loss_u.detach()


# ---------------------------------------------------------------- one epoch -------------------

def warmup_epoch(net, optimizer, loader, device, confidence_penalty, cuda_graphs, label,
                 clock=None):
    """Alg. 1 line 2: one pass over the warm-up loader (batch 2B). Returns the mean CE.
    `clock` (utils.progress.RunClock) adds the run's time left to the progress line."""
    net.train()
    step = functools.partial(warmup_step, net, optimizer, confidence_penalty=confidence_penalty)
    if cuda_graphs:
        step = graphed(step)  # fewer kernel launches; a new graph per epoch captures the lr
    total = torch.zeros((), device=device)
    progress = Progress(label, len(loader), clock)  # images/s and time left, now and then
    for inputs, labels, _ in loader:
        loss = step(inputs.to(device, non_blocking=True), labels.to(device, non_blocking=True))
        total += loss
        progress.update(len(labels), 'CE-loss: %.4f', loss)
    progress.close()
    check_finite(total, 'warm-up')
    return total.item() / len(loader)


def ssl_epoch(net, partner, optimizer, labeled_loader, unlabeled_loader, epoch, device, args,
              cuda_graphs, label, clock=None):
    """Alg. 1 lines 9-30 for one network: a pass over its labeled set, each batch with the next
    unlabeled one. Returns the mean Lx and Lu."""
    net.train()
    partner.eval()
    step = functools.partial(ssl_step, net, partner, optimizer, args=args)
    if cuda_graphs and unlabeled_loader is not None:  # a graph's inputs are tensors, not None
        step = graphed(step)  # fewer kernel launches; a new graph per epoch captures the lr
    # Authors' iteration count (one too many when |labeled| is divisible by B); it sets the
    # fractional epoch of the lambda_u ramp-up. Under torch.distributed each process takes
    # 1/world_size of the steps.
    num_iter = len(labeled_loader.dataset) // (labeled_loader.batch_size * distributed()[1]) + 1
    sum_x = torch.zeros((), device=device)
    sum_u = torch.zeros((), device=device)
    batches = ssl_batches(labeled_loader, unlabeled_loader, device)
    progress = Progress(label, num_iter, clock)  # images/s and time left, now and then
    for batch_idx, (x1, x2, labels, clean_prob, u1, u2, strong) in enumerate(batches):
        rows = 2 * len(x1) + (2 * len(u1) if u1 is not None else 0)
        lam, perm = dm.draw_mix(rows, args.alpha, device)
        weight_u = torch.full((), dm.linear_rampup(epoch + batch_idx / num_iter, args.warm_up,
                                                   args.rampup_epochs, args.lambda_u),
                              device=device)  # a tensor, like lam: one arithmetic on all paths
        loss_x, loss_u = step(x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u,
                              *strong)
        sum_x += loss_x
        sum_u += loss_u
        progress.update(len(x1) + (len(u1) if u1 is not None else 0),
                        'Labeled loss: %.2f  Unlabeled loss: %.2f', loss_x, loss_u)
    progress.close()
    check_finite(sum_x + sum_u, 'SSL')
    return sum_x.item() / len(labeled_loader), sum_u.item() / len(labeled_loader)


# ---------------------------------------------------------------- the run ---------------------

def main(argv=None):
    init_distributed()  # under torchrun: one process per GPU, each with both networks
    argv = sys.argv[1:] if argv is None else argv
    args = complete_args(parse_args(argv))
    # ---- data: lists and folders read and checked once, up front; images are read by the
    # loaders' workers
    data = ImageFolderData(args.data_path, args.train_list, args.test_list, args.val_list,
                           args.classes_file, args.clean_list)
    args.num_class = data.num_class  # saved with the run: a resume must see the same classes
    data.refuse_output_inside(args.out_dir)  # a run's outputs never become its images
    parser = argument_parser()
    log = RunLog(args.out_dir, args.id + parser.run_name_parts(args),
                 {'acc': '_acc.txt', 'stats': '_stats.txt'}, arguments=parser)
    checkpoint = log.check(args)  # refuses to overwrite a run; with --resume, its checkpoint
    log.record_training_set(checkpoint, data.train_keys, data.train_labels,  # a resume on other
                            data.train_relpaths)  # images or labels is refused, naming them
    if args.num_train is not None:  # a quick run on part of a large set, drawn from all the
        data.keep_train(args.num_train, args.seed)  # images recorded above
    run_name = log.prefix  # the prefix of its files (a resumed run keeps the one it has)
    seed_everything(args.seed)
    device = pick_device(args.gpuid)
    refuse_what_cannot_fit(  # an SSL step trains on 4B rows, each loader decodes at --resize
        training_memory(lambda: create_model(argparse.Namespace(**dict(
            vars(args), pretrained='none')), data.num_class), 4 * args.batch_size,
            args.image_size, args.resize, args.num_workers), device,
        '--resize %d, --image_size %d, --width %d and --batch_size %d'
        % (args.resize, args.image_size, args.width, args.batch_size),
        'the largest of them')
    sizes = (args.arch, args.image_size, args.resize, args.mean, args.std)
    train_transform, test_transform = transforms_for(*sizes)
    loaders = ImageFolderLoaders(data, args.batch_size, args.num_workers, train_transform,
                                 test_transform, balanced_warmup=args.balanced_warmup,
                                 strong_transform=strong_transform_for(*sizes))
    eval_loader, test_loader, val_loader = loaders.eval_train(), loaders.test(), loaders.val()
    noisy_labels = data.train_labels
    # where the true label is known (--clean_list): which given labels are right
    known = None if data.clean_labels is None else data.clean_labels >= 0
    is_clean = None if known is None else noisy_labels == data.clean_labels
    print0('%d training images in %d classes%s; %s test, %s validation images'
           % (len(noisy_labels), data.num_class,
              '' if known is None else ', %.2f%% of the %d with a known true label noisy'
              % (100 * (1 - is_clean[known].mean()), known.sum()),
              len(data.test_paths) if test_loader else 'no',
              len(data.val_paths) if val_loader else 'no'))

    # ---- two networks, each with its own optimizer
    net1, net2 = (create_model(args, data.num_class).to(device) for _ in range(2))
    optimizer1, optimizer2 = (torch.optim.SGD(net.parameters(), lr=args.lr,
                                              momentum=args.momentum,
                                              weight_decay=args.weight_decay)
                              for net in (net1, net2))
    loss_history = ([], [])  # per network: normalised per-sample losses of the last epochs
    parts = {'net1': net1, 'net2': net2, 'optimizer1': optimizer1, 'optimizer2': optimizer2}
    start_epoch = restore(checkpoint, parts, log.last_path)
    if checkpoint is not None:
        for history, saved in zip(loss_history, checkpoint['loss_history']):
            history.extend(saved)
    # The speed layer (docs/speed.md): channels_last and bf16 autocast, DDP under torchrun, the
    # steps replayed as CUDA graphs on one GPU, checkpoints written by a thread on a GPU;
    # --plain turns it off. Checkpoints hold the bare networks.
    net1, net2 = (prepare(net, device, not args.plain, args.compile) for net in (net1, net2))
    cuda_graphs = use_cuda_graphs(args.cuda_graphs, device, not args.plain, args.compile)
    log.save_in_background = saves_in_background(device, not args.plain)
    print0(describe_device(device, *speed_ups(net1), cuda_graphs, args.compile))
    snapshot_epochs = division_epochs(args.warm_up, args.num_epochs)
    log.begin(args, checkpoint)  # every input is checked: the run's files appear from here
    tensorboard = TensorBoardLog(os.path.join(args.out_dir, run_name + '_tb'), args.tensorboard)
    clock = RunClock(args.num_epochs, args.warm_up, device=device,  # the run's time left
                     quick_look=lambda epoch_seconds: quick_look(
                         args, argv, len(noisy_labels),
                         len(data.test_paths or []) + len(data.val_paths or []), epoch_seconds,
                         lambda width: prepare(ResNet18(data.num_class, width), device,
                                               not args.plain)))  # as this run trains it

    # ---- Algorithm 1
    for epoch in range(start_epoch, args.num_epochs):
        start = time.time()
        clock.begin(epoch)
        lr = args.lr if epoch < args.lr_drop_epoch else args.lr / 10
        for group in optimizer1.param_groups + optimizer2.param_groups:
            group['lr'] = lr
        record = {'epoch': epoch, 'lr': lr}
        banner = '%s | Epoch [%3d/%3d]' % (run_name, epoch, args.num_epochs)
        if epoch < args.warm_up:
            # Warm-up on all data with the noisy labels (optionally class-balanced draws).
            warmup_loader = loaders.warmup(strong=args.strong_warmup)
            for name, net, optimizer in (('net1', net1, optimizer1), ('net2', net2, optimizer2)):
                ce = warmup_epoch(net, optimizer, warmup_loader, device, args.warmup_penalty,
                                  cuda_graphs, '%s Warmup %s' % (banner, name), clock)
                record[name] = {'warmup_ce': ce}
        else:
            # Co-divide (lines 4-8): each network's mixture on its per-sample losses.
            divisions = [dm.co_divide(net, eval_loader, history, device, args)
                         for net, history in zip((net1, net2), loss_history)]
            if args.figures and log.writer and epoch in snapshot_epochs:
                # Fig. 2 (with the truth where --clean_list gives all of it), and Fig. 4:
                # images of net1's unlabeled set (from net2's division) with the guesses
                save_division(args.out_dir, run_name, epoch, args.p_threshold, noisy_labels,
                              {'net1': divisions[0]._asdict(), 'net2': divisions[1]._asdict()},
                              is_clean if known is not None and known.all() else None)
                noisy = np.flatnonzero(~divisions[1].labeled)
                save_unlabeled_guesses(args.out_dir, run_name, epoch, (unwrap(net1), unwrap(net2)),
                                       data.train_paths, noisy_labels, noisy,
                                       divisions[1].clean_prob[noisy], test_transform, device,
                                       args.seed, class_names=data.classes)
            # Lines 6-30: net1 trains on net2's division with net2 co-guessing, then vice versa.
            for name, net, partner, optimizer, (clean_prob, labeled, *_) in (
                    ('net1', net1, net2, optimizer1, divisions[1]),
                    ('net2', net2, net1, optimizer2, divisions[0])):
                record[name] = {'labeled': int(labeled.sum())}
                if known is not None and known.any():  # the division against the truth known
                    record[name] = dm.division_stats(clean_prob[known], labeled[known],
                                                     is_clean[known])
                    record[name]['labeled'] = int(labeled.sum())
                auc = record[name].get('auc')  # none without the truth (--clean_list)
                log.write('stats', 'Numer of labeled samples:%d%s\n' % (
                    labeled.sum(), '' if auc is None else '   AUC:%.3f' % auc))
                labeled_loader, unlabeled_loader = loaders.train(labeled, clean_prob,
                                                                 strong=args.strong_aug)
                if labeled_loader is None:
                    print0('\n%s: no sample has clean probability > %g; %s skips this epoch'
                           % (banner, args.p_threshold, name))
                    continue
                loss_x, loss_u = ssl_epoch(net, partner, optimizer, labeled_loader,
                                           unlabeled_loader, epoch, device, args, cuda_graphs,
                                           '%s Train %s' % (banner, name), clock)
                record[name].update(loss_x=loss_x, loss_u=loss_u)

        # Test and validation: the ensemble's summed logits (and each network alone).
        for key, loader in (('test', test_loader), ('val', val_loader)):
            if loader is not None:
                keys = (('test_acc', 'net1_acc', 'net2_acc') if key == 'test' else
                        ('val_acc', 'net1_val_acc', 'net2_val_acc'))  # as CIFAR and Clothing1M
                record.update(zip(keys, dm.test_ensemble(net1, net2, loader, device)))
        # The best checkpoint: best validation, else best test, else the last epoch.
        score = record.get('val_acc', record.get('test_acc', 0.0))
        record['seconds'] = time.time() - start
        log.write('acc', 'Epoch:%d   Accuracy:%.2f\n' % (epoch, record.get('test_acc', score)))
        log.epoch(record, score=score)
        tensorboard.epoch(record)
        log.save({'epoch': epoch, **state_of(parts),
                  'loss_history': loss_history, 'rng': rng_state(), 'args': vars(args)})
        clock.end()
        print0('\r%s  %s  %.1f s  %s' % (banner, '  '.join(
            '%s acc %.2f%%' % (key, record[key + '_acc']) for key in ('test', 'val')
            if key + '_acc' in record) or 'no test or validation set', record['seconds'],
            clock.outlook()))

    # The label errors, as a file: every training image's given label, each network's
    # co-divide on the final weights (on copies of the loss histories: the next epoch's
    # division), the test's prediction and the flag; the truth where --clean_list gives it.
    labels = export_labels(log.labels_path, [net1, net2],
                           eval_loader, device, epoch=args.num_epochs - 1,
                           args=args, loss_histories=loss_history,
                           true=data.clean_labels, paths=data.train_relpaths,
                           class_names=data.classes)
    print0(labels.line)
    summary = log.summary(**labels.record)
    tensorboard.close()
    if test_loader is not None or val_loader is not None:
        print0('best %s %.2f%%  last-10 mean %.2f%%  (%s)'
               % ('validation' if val_loader is not None else 'test', summary['best'],
                  summary['last10'], log.jsonl_path))
    if args.figures and log.writer:
        if distributed()[1] == 1:  # (under torchrun the loader would see one shard only)
            # Fig. 5: net1's penultimate features of up to 2,000 training images, chosen with
            # their own RNG so the run's random streams stay untouched.
            chosen = np.random.RandomState(args.seed).choice(
                len(noisy_labels), min(len(noisy_labels), 2000), replace=False)
            features = penultimate_features(unwrap(net1), loaders.eval_train(chosen), device)
            truth = data.clean_labels if known is not None and known.all() else None
            save_features(args.out_dir, run_name, features, noisy_labels[chosen],
                          None if truth is None else truth[chosen], chosen)
        from tools.figures import write_figures_after_run  # matplotlib only when drawing
        write_figures_after_run(args.out_dir, run_name)
    return summary


def quick_look(args, argv, num_train, num_eval, epoch_seconds, net_at=None):
    """What a slow or long CPU run advises: the same run (preact18 at width 16, or the same
    network) with its warm-up (10 epochs at most) and 5 SSL epochs, on as many of the training
    images as fit in QUICK_LOOK_S here: all of them, else 5,000, 2,000 or 1,000 drawn at random
    (--num_train; the 1,000 even where they take longer), in a folder of its own. Returns
    (command, seconds projected from this run's epochs, the change of width measured with
    net_at(width), a network as this run trains it; None: width_cost's), or None where the run
    is that first look already."""
    warm_up, ssl_epochs = min(args.warm_up, 10), 5
    width = 16 if args.arch == 'preact18' else args.width
    ratio = None
    if args.arch == 'preact18' and width != args.width:
        ratio = measured_width_ratio(net_at, args.width, width) if net_at else None
    choices = [num_train] + [n for n in (5000, 2000, 1000) if n < num_train]
    for images in choices:
        if args.arch == 'preact18':
            seconds = preact_quick_look(epoch_seconds, num_train, args.width, images, width,
                                        warm_up, ssl_epochs, num_eval, width_ratio=ratio,
                                        start_seconds=QUICK_LOOK_START_S)
        else:  # the same network: this run's own epochs, on fewer images
            seconds = (warm_up * epoch_seconds['warmup'] + ssl_epochs * epoch_seconds['ssl']
                       ) * images / num_train + QUICK_LOOK_START_S
        if seconds <= QUICK_LOOK_S or images == choices[-1]:
            break
    if (images, width, warm_up, warm_up + ssl_epochs) == (num_train, args.width, args.warm_up,
                                                          args.num_epochs):
        return None
    flags = {'--num_train': images} if images < num_train else {}
    if args.arch == 'preact18':
        flags['--width'] = width
    flags.update({'--warm_up': warm_up, '--num_epochs': warm_up + ssl_epochs,
                  '--out_dir': unused_folder(os.path.join(args.out_dir, 'quick_look'))})
    return command_with(__file__, argv, flags), seconds


if __name__ == '__main__':
    sys.exit(run_cli(main))
