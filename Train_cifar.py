"""DivideMix on CIFAR-10/100 with synthetic label noise (paper Sec. 4.1, Tables 1, 2, 5, 7).

    python Train_cifar.py --r 0.5 --noise_mode sym
    python Train_cifar.py --dataset cifar100 --r 0.8
    python Train_cifar.py --r 0.9 --arch resnet18 --pretrained FILE  # C2D's start (see below)

Defaults are the paper's; lambda_u and tau follow Table 7 for the chosen cell unless given.
Logs go to checkpoint/<dataset>_<r>_<mode>_{acc,stats}.txt (the authors' formats) and .jsonl.
Beyond the paper, --pretrained starts both networks from a self-supervised (SimCLR) backbone
as C2D does (docs/beyond_the_paper.md).
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
from dataloader_cifar import (CIFAR_N_FILES, CIFAR_N_LABELS, NUM_CLASSES, CIFARLoaders,
                              DeviceCIFARLoaders, class_names, load_cifar, noisy_labels_for,
                              training_subset)
from utils.checkpoint import labels_digest, restore, rng_state, seed_everything, state_of
from utils.cli import (COMPILE_NEEDS_SPEED_UPS, FIGURES_NEED_MATPLOTLIB,
                       STRONG_WARMUP_NEEDS_WARM_UP, TENSORBOARD_NEEDS_IT, WARM_UP_BEFORE_END,
                       ArgumentParser, InputError, Range, Relation, above, at_least, check_args,
                       check_finite, run_cli)
from utils.data import default_workers, ssl_batches
from utils.distributed import distributed, init_distributed, pick_device, print0, unwrap
from utils.label_export import export_labels
from utils.models import (CIFAR_ARCHS, cifar_net, refuse_what_cannot_fit,
                          self_supervised_backbone, training_memory)
from utils.runlog import RunLog
from utils.progress import (Progress, RunClock, command_with, describe_device,
                            measured_width_ratio, preact_quick_look, unused_folder)
from utils.snapshots import (TensorBoardLog, division_epochs, penultimate_features,
                             save_division, save_features)
from utils.speed import (graphed, per_view, prepare, saves_in_background, speed_ups,
                         use_cuda_graphs)

# Table 7 (Appendix B): lambda_u per cell; tau is 0.5 except 0.6 at 90% noise.
PAPER_LAMBDA_U = {
    ('cifar10', 'sym', 0.2): 0, ('cifar10', 'sym', 0.5): 25, ('cifar10', 'sym', 0.8): 25,
    ('cifar10', 'sym', 0.9): 50, ('cifar10', 'asym', 0.4): 0,
    ('cifar100', 'sym', 0.2): 25, ('cifar100', 'sym', 0.5): 150, ('cifar100', 'sym', 0.8): 150,
    ('cifar100', 'sym', 0.9): 150,
}
# Not in Table 7, our choice (docs/data.md): Table 6's noise (true label never kept) takes the value
# of the nearest Table 7 cell; CIFAR-N takes the value of a Table 7 cell with a similar true
# noise rate (aggre 9%, random 17-18% -> as 20%; worst 40% and CIFAR-100N 40% -> as 50%).
EXTRA_LAMBDA_U = {
    ('cifar10', 'sym_exclusive', 0.2): 0, ('cifar10', 'sym_exclusive', 0.4): 25,
    ('cifar10', 'sym_exclusive', 0.6): 25, ('cifar10', 'sym_exclusive', 0.8): 25,
    ('cifar100', 'sym_exclusive', 0.2): 25, ('cifar100', 'sym_exclusive', 0.4): 150,
    ('cifar100', 'sym_exclusive', 0.6): 150, ('cifar100', 'sym_exclusive', 0.8): 150,
    ('cifar10', 'aggre_label'): 0, ('cifar10', 'random_label1'): 0,
    ('cifar10', 'random_label2'): 0, ('cifar10', 'random_label3'): 0,
    ('cifar10', 'worse_label'): 25, ('cifar100', 'noisy_label'): 150,
}
CODE_DEFAULTS = {'lambda_u': 25, 'p_threshold': 0.5}  # authors' argparse values, off-table


def paper_settings(dataset, noise_mode, r, cifar_n_label=None):
    """(lambda_u, p_threshold, source) for a cell: Table 7, our documented extension (Table 6
    noise, CIFAR-N), or the authors' code defaults for any other cell."""
    if noise_mode == 'cifar-n':
        return EXTRA_LAMBDA_U[(dataset, cifar_n_label)], 0.5, 'CIFAR-N, as docs/data.md says'
    key = (dataset, noise_mode, round(r, 2))
    tau = 0.6 if r >= 0.9 else 0.5
    if key in PAPER_LAMBDA_U:
        return PAPER_LAMBDA_U[key], tau, 'Table 7 settings'
    if key in EXTRA_LAMBDA_U:
        return EXTRA_LAMBDA_U[key], tau, 'Table 6 cell, lambda_u as docs/data.md says'
    return CODE_DEFAULTS['lambda_u'], CODE_DEFAULTS['p_threshold'], \
        "not a paper cell, the authors' code defaults"


def argument_parser():
    """Every argument, declared once with its range, its rules, and whether it changes the
    method (names_run: the run's name shows it) or may change on --resume (utils.cli)."""
    p = ArgumentParser(description='DivideMix on CIFAR-10/100 with synthetic label noise')
    p.add_argument('--dataset', default='cifar10', choices=['cifar10', 'cifar100'])
    p.add_argument('--data_path', default=None, resumable=True,
                   help='folder with the python pickles, or its parent (default ./cifar-10 or '
                        './cifar-100)')
    p.add_argument('--download', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True,
                   help='download the official archive (checksum verified) when the data is '
                        'not found; --no-download to never touch the network')
    p.add_argument('--r', type=float, default=0.5, help='noise ratio',
                   check=Range(0, 1, hint='give the noise ratio as a fraction, e.g. --r 0.5'))
    p.add_argument('--noise_mode', default='sym',
                   choices=['sym', 'asym', 'sym_exclusive', 'cifar-n'],
                   help='sym: uniform over all classes (the paper\'s Table 1); sym_exclusive: '
                        'never the true class (Table 6); cifar-n: human labels (CIFAR-N)')
    p.add_argument('--cifar_n_file', default=None,
                   help='CIFAR-N labels (default <data_path>/CIFAR-10_human.pt or '
                        'CIFAR-100_human.pt)',
                   rule=Relation(lambda a: a.noise_mode == 'cifar-n' or (
                       a.cifar_n_label is None and a.cifar_n_file is None),
                       '--cifar_n_label and --cifar_n_file are for --noise_mode cifar-n: add it '
                       'or drop them'))
    p.add_argument('--cifar_n_label', default=None,
                   help='aggre_label, random_label1..3 or worse_label (CIFAR-10N; default '
                        'worse_label), noisy_label (CIFAR-100N)')
    p.add_argument('--noise_file', default=None, resumable=True,
                   help='JSON list of noisy labels (default <data_path>/<r:.1f>_<mode>.json, '
                        'made when missing); a file named here must exist unless '
                        '--create_noise_file',
                   rule=Relation(lambda a: a.noise_mode != 'cifar-n' or a.noise_file is None,
                                 '--noise_file holds synthetic noise; CIFAR-N labels come from '
                                 '--cifar_n_file'))
    p.add_argument('--create_noise_file', action='store_true', resumable=True,
                   help='generate the labels into --noise_file when that file does not exist',
                   rule=Relation(lambda a: a.noise_file is not None or not a.create_noise_file,
                                 '--create_noise_file needs --noise_file PATH: the default noise '
                                 'file is always made when missing'))
    p.add_argument('--seed', type=int, default=123, check=Range(0, 2**32 - 1))  # numpy's range
    # optimisation (Sec. 4.1)
    p.add_argument('--num_epochs', type=int, default=300, check=at_least(1), resumable=True,
                   help='the authors\' loop runs 301 epochs (0..300): pass 301 to match it')
    p.add_argument('--warm_up', type=int, default=None, check=at_least(0),
                   help='default 10 (C10) / 30 (C100)',  # CE warms up throughout
                   rule=Relation(lambda a: a.method == 'ce' or WARM_UP_BEFORE_END.holds(a),
                                 WARM_UP_BEFORE_END.message, warn=True))
    p.add_argument('--batch_size', type=int, default=64, check=at_least(1),
                   help='labeled = unlabeled batch B')
    p.add_argument('--lr', '--learning_rate', type=float, default=0.02, check=above(0))
    p.add_argument('--lr_drop_epoch', type=int, default=150, check=at_least(0),
                   help='lr / 10 from this epoch')
    p.add_argument('--lr_drop_every', type=int, default=None, check=at_least(1),
                   help='instead of --lr_drop_epoch: lr / 10 every this many epochs (a step '
                        'schedule, C2D\'s code: 150)')
    p.add_argument('--momentum', type=float, default=0.9, check=Range(0, 1))
    p.add_argument('--weight_decay', type=float, default=5e-4, check=at_least(0))
    # DivideMix (Sec. 3, Appendix B)
    p.add_argument('--lambda_u', type=float, default=None, check=at_least(0),
                   help='default: Table 7')
    p.add_argument('--p_threshold', type=float, default=None, check=Range(0, 1, high_open=True),
                   help='clean probability threshold tau (default: 0.5, 0.6 at 90%% noise)')
    p.add_argument('--T', type=float, default=0.5, check=above(0),
                   help='sharpening temperature')
    p.add_argument('--alpha', type=float, default=4, check=above(0),
                   help='Beta(alpha, alpha) of mixup')
    p.add_argument('--rampup_epochs', type=int, default=16, check=at_least(1),
                   help='lambda_u ramps up linearly over this many epochs after warm-up')
    p.add_argument('--loss_history', type=int, default=None, check=at_least(1),
                   help='the mixture models the mean normalised loss of this many epochs '
                        '(default 5 at 90%% noise or more, else 1)')
    dm.add_co_divide_arguments(p, divided=lambda a: a.num_train)
    p.add_argument('--warmup_penalty', default='auto', choices=['auto', 'on', 'off'],
                   help='confidence penalty in warm-up; auto: for asym and CIFAR-N noise')
    p.add_argument('--warmup_clip_grad_norm', type=float, default=None, check=above(0),
                   help='clip the gradient norm of warm-up steps to this (C2D\'s code: 1; '
                        'default: no clipping, as the paper)')
    # the network; another one, or a self-supervised start, names the run
    p.add_argument('--num_class', type=int, default=None, help='follows --dataset',
                   rule=Relation(lambda a: a.num_class == NUM_CLASSES[a.dataset],
                                 '--num_class %(num_class)d disagrees with --dataset '
                                 '%(dataset)s: drop --num_class'))
    p.add_argument('--arch', default='preact18', choices=list(CIFAR_ARCHS), names_run=True,
                   help='preact18: the paper\'s PreAct-ResNet18; resnet18: the ResNet-18 with a '
                        'CIFAR stem that C2D starts from a SimCLR checkpoint (ResNet.py)')
    p.add_argument('--width', type=int, default=64, check=at_least(1),
                   help='the network\'s base width')
    p.add_argument('--pretrained', default=None, metavar='FILE', names_run=True,
                   help='start both networks from this self-supervised (SimCLR) checkpoint, '
                        'each with a fresh classifier (C2D; docs/beyond_the_paper.md)')
    # the baseline and the ablations (Tables 1 and 5); none of them is on by default
    ablations = p.add_argument_group('ablations (Table 5), off by default')
    p.add_argument('--method', default='dividemix', choices=['dividemix', 'ce'], names_run=True,
                   help='ce: the cross-entropy baseline, one network trained on the noisy labels',
                   rule=Relation(lambda a: a.method == 'dividemix' or all(  # (any kind of flag)
                       getattr(a, ablation) == p.declared[ablation].default
                       for ablation in ablations.dests),
                       '--method ce trains one network on the noisy labels: drop the DivideMix '
                       'ablation switches'))
    ablations.add_argument('--test_net1_only', action='store_true', names_run=True,
                           help='test with net1 alone instead of the ensemble')
    ablations.add_argument('--no_cotraining', action='store_true', names_run=True,
                           help='one network, divided by its own mixture (self-divide)')
    ablations.add_argument('--no_label_refinement', action='store_true', names_run=True,
                           help='labeled targets are the noisy labels')
    ablations.add_argument('--no_augmentation', action='store_true', names_run=True,
                           help='no augmentation of the SSL views (mixup stays)')
    ablations.add_argument('--divide_and_mixmatch', action='store_true', names_run=True,
                           implies={'no_cotraining': True, 'no_label_refinement': True},
                           help='self-divide plus the original MixMatch (no co-refinement, '
                                'no co-guessing)')
    # beyond the paper (docs/beyond_the_paper.md); off by default
    p.add_argument('--strong_aug', action='store_true', names_run=True,
                   help='AugDesc-WS (Nishi et al., CVPR 2021): two more views per image with '
                        'AutoAugment; the targets come from the weak views, the strong ones are '
                        'mixed and trained on',
                   rule=Relation(lambda a: not a.strong_aug or (
                       a.method == 'dividemix' and not a.no_augmentation),
                       '--strong_aug adds strongly augmented views to DivideMix\'s SSL epochs: '
                       'drop it with --method ce or --no_augmentation'))
    p.add_argument('--strong_warmup', action='store_true', names_run=True,
                   help='warm up on strongly augmented images (AugDesc\'s "SAW")',
                   rule=Relation(  # (the CE baseline warms up throughout)
                       lambda a: a.method == 'ce' or STRONG_WARMUP_NEEDS_WARM_UP.holds(a),
                       STRONG_WARMUP_NEEDS_WARM_UP.message))
    # quick runs, speed, machine
    p.add_argument('--num_train', type=int, default=None,
                   check=at_least(2),  # the mixture needs two samples
                   help='use only the first N training images (quick runs)')
    p.add_argument('--subset_seed', type=int, default=None, check=Range(0, 2**32 - 1),
                   help='with --num_train N: N training images drawn at random with this seed '
                        'instead of the first N (the noise and CIFAR-N labels follow them)',
                   rule=Relation(lambda a: a.subset_seed is None or a.num_train is not None,
                                 '--subset_seed draws --num_train images at random: add '
                                 '--num_train N'))
    p.add_argument('--num_test', type=int, default=None, check=at_least(1),
                   help='use only the first N test images (quick runs)')
    p.add_argument('--plain', action='store_true', resumable=True,
                   help='turn off the speed-ups that change the arithmetic: PIL transforms in '
                        'DataLoader workers, fp32, no channels_last, no CUDA graphs (the '
                        'reference path to check any doubt against)')
    p.add_argument('--cuda_graphs', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True,
                   help='on one GPU, replay each training step as a CUDA graph (2.5x faster '
                        'epochs on an H200; docs/speed.md)')
    p.add_argument('--compile', action='store_true', resumable=True,
                   rule=COMPILE_NEEDS_SPEED_UPS,
                   help='torch.compile both networks instead of the CUDA graphs (no gain '
                        'measured)')
    p.add_argument('--num_workers', type=int, default=default_workers(4), check=at_least(0),
                   resumable=True,
                   help='data workers of --plain (default: 4, or the CPUs there are where fewer)')
    p.add_argument('--gpuid', type=int, default=0, check=at_least(0), resumable=True,
                   help='which GPU to run on (0 is the first); the CPU when there is none')
    p.add_argument('--out_dir', default='checkpoint', resumable=True)
    p.add_argument('--figures', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True, rule=FIGURES_NEED_MATPLOTLIB,
                   help='save loss snapshots and features, draw the paper\'s figures at the end '
                        '(tools/figures.py)')
    p.add_argument('--tensorboard', action='store_true', resumable=True,
                   rule=TENSORBOARD_NEEDS_IT,
                   help='also log the per-epoch numbers for TensorBoard (needs tensorboard)')
    p.add_argument('--resume', action='store_true', resumable=True,
                   help='continue the run in --out_dir from its latest checkpoint')
    p.add_argument('--debug', action='store_true', resumable=True,
                   help='show tracebacks for input errors')
    p.set_defaults(script='Train_cifar.py')  # saved with the run: what tools/ read it as
    return p


def parse_args(argv):
    return argument_parser().parse_args(argv)


def complete_args(args):
    """Fill in the per-cell defaults, then check every argument (their declarations' rules)."""
    if args.num_class is None:
        args.num_class = NUM_CLASSES[args.dataset]
    args.data_path = args.data_path or ('./cifar-10' if args.dataset == 'cifar10'
                                        else './cifar-100')
    args.warm_up = args.warm_up if args.warm_up is not None else (
        10 if args.dataset == 'cifar10' else 30)
    if args.loss_history is None:
        args.loss_history = 5 if args.r >= 0.9 else 1
    if args.noise_mode == 'cifar-n':
        choices = CIFAR_N_LABELS[args.dataset]
        args.cifar_n_label = args.cifar_n_label or choices[-1]
        if args.cifar_n_label not in choices:
            raise InputError('--cifar_n_label %s is not a %s CIFAR-N label: use one of %s'
                             % (args.cifar_n_label, args.dataset, ', '.join(choices)))
        args.cifar_n_file = args.cifar_n_file or os.path.join(args.data_path,
                                                              CIFAR_N_FILES[args.dataset])
    lambda_u, p_threshold, source = paper_settings(args.dataset, args.noise_mode, args.r,
                                                   args.cifar_n_label)
    from_table = args.lambda_u is None or args.p_threshold is None
    args.lambda_u = lambda_u if args.lambda_u is None else args.lambda_u
    args.p_threshold = p_threshold if args.p_threshold is None else args.p_threshold
    check_args(args, argument_parser().rules)
    if from_table:
        cell = args.cifar_n_label if args.noise_mode == 'cifar-n' else '%s %g%%' % (
            args.noise_mode, 100 * args.r)
        print0('%s %s: %s' % (args.dataset, cell, source))
    print0('lambda_u=%g  p_threshold=%g  warm_up=%d  loss_history=%d  epochs=%d'
           % (args.lambda_u, args.p_threshold, args.warm_up, args.loss_history, args.num_epochs))
    return args


# ---------------------------------------------------------------- one mini-batch --------------

def warmup_step(net, optimizer, inputs, labels, confidence_penalty, *, args):
    """Alg. 1 line 2 on one mini-batch of 2B images: cross-entropy on the noisy labels, plus
    the confidence penalty (minus Eq. 2) where asked; the gradient's norm clipped to
    --warmup_clip_grad_norm where given (C2D's code). Returns the CE (0-dim tensor)."""
    logits = net(inputs)
    loss = F.cross_entropy(logits, labels)
    penalty = dm.negative_entropy(logits) if confidence_penalty else 0.0
    optimizer.zero_grad()
    (loss + penalty).backward()
    if args.warmup_clip_grad_norm is not None:
        torch.nn.utils.clip_grad_norm_(net.parameters(), args.warmup_clip_grad_norm)
    optimizer.step()
    return loss.detach()


def ssl_step(net, partner, optimizer, x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u,
             *strong, args):
    """Alg. 1 lines 12-29 on one mini-batch: x1, x2 (B, 3, 32, 32) two augmented views of
    labeled images with their noisy labels (B,) and clean probabilities (B,) from the
    partner's GMM; u1, u2 (U, 3, 32, 32) two views of unlabeled images (None when that set
    is empty); lam, perm the mixup draws (dm.draw_mix); weight_u the weight of Lu at this step
    (lambda_u ramped up by dm.linear_rampup). `partner` (frozen, eval mode) co-guesses; None
    for the ablations without co-training. `strong` (--strong_aug): two strongly augmented
    views of the same labeled and unlabeled images (xs1, xs2, us1, us2). Returns Lx and Lu
    (0-dim tensors)."""
    refine = not args.no_label_refinement
    with torch.no_grad():
        # The trained net stays in train mode for these passes (authors' code): its BatchNorm
        # sees each view alone, and the order u1, u2, x1, x2 sets its running statistics.
        # per_view: one call per view (on a GPU, one call with BatchNorm per view: the same)
        logits_u1, logits_u2, logits_x1, logits_x2 = per_view(
            net, u1, u2, *((x1, x2) if refine else (None, None)))
        if u1 is not None:
            pred_u = dm.mean_prediction(logits_u1, logits_u2)
            partner_pred_u = None
            if partner is not None:  # eval mode: rows are independent, both views in one call
                partner_pred_u = dm.mean_prediction(*partner(torch.cat([u1, u2])).chunk(2))
            targets_u = dm.co_guess(pred_u, partner_pred_u, args.T)        # Alg. 1 lines 21-23
        targets_x = F.one_hot(labels, args.num_class).float()
        if refine:
            pred_x = dm.mean_prediction(logits_x1, logits_x2)
            targets_x = dm.co_refine(targets_x, clean_prob, pred_x, args.T)  # Eq. (3)-(4)

    if strong:  # AugDesc-WS: the targets came from the weak views; the strong ones are mixed
        x1, x2, u1, u2 = strong
    # MixMatch over the labeled rows first, then the unlabeled ones (Eq. 5-8)
    if u1 is None:
        inputs, targets = torch.cat([x1, x2]), torch.cat([targets_x, targets_x])
    else:
        inputs = torch.cat([x1, x2, u1, u2])
        targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    mixed_inputs, mixed_targets = dm.mixup(inputs, targets, lam, perm)

    # One forward over the whole mixed batch (shared BatchNorm), Eq. (12)
    loss, loss_x, loss_u = dm.dividemix_loss(net(mixed_inputs), mixed_targets, 2 * len(x1),
                                             weight_u)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss_x.detach(), loss_u.detach()


# ---------------------------------------------------------------- one epoch -------------------

def warmup_epoch(net, optimizer, loader, device, confidence_penalty, cuda_graphs, label,
                 clock=None, *, args):
    """Alg. 1 line 2: one pass over all training images (batch 2B). Returns the mean CE.
    `clock` (utils.progress.RunClock) adds the run's time left to the progress line."""
    net.train()
    step = functools.partial(warmup_step, net, optimizer, confidence_penalty=confidence_penalty,
                             args=args)
    if cuda_graphs:
        step = graphed(step)  # fewer kernel launches; a new graph per epoch captures the lr
    total = torch.zeros((), device=device)
    progress = Progress(label, len(loader), clock)  # images/s and time left, now and then
    for inputs, labels, _ in loader:
        loss = step(inputs.to(device), labels.to(device))
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
    if partner is not None:
        partner.eval()
    step = functools.partial(ssl_step, net, partner, optimizer, args=args)
    if cuda_graphs and unlabeled_loader is not None:  # a graph's inputs are tensors, not None
        step = graphed(step)  # fewer kernel launches; a new graph per epoch captures the lr
    # Authors' iteration count (one too many when |labeled| is divisible by B); it sets the
    # fractional epoch of the lambda_u ramp-up, so it is kept. Under torch.distributed each
    # process takes 1/world_size of the steps.
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
    parser = argument_parser()
    args = complete_args(parser.parse_args(argv))
    log = RunLog(args.out_dir, run_name_of(args), {'acc': '_acc.txt', 'stats': '_stats.txt'},
                 arguments=parser)
    checkpoint = log.check(args)  # refuses to overwrite a run; with --resume, its checkpoint
    run_name = log.prefix  # the prefix of its files (a resumed run keeps the one it has)
    backbone = None  # C2D: a self-supervised start, checked whole before anything is written
    if args.pretrained and checkpoint is None:  # (a resumed run's networks are in checkpoint)
        backbone, loaded = self_supervised_backbone(args.pretrained, args.arch, args.width)
        print0(loaded)
    seed_everything(args.seed)
    device = pick_device(args.gpuid)
    refuse_what_cannot_fit(  # an SSL step trains on 4B rows: a size that cannot fit, up front
        training_memory(lambda: cifar_net(args.arch, args.num_class, args.width),
                        4 * args.batch_size, 32), device,
        '--width %d and --batch_size %d' % (args.width, args.batch_size),
        '--width or --batch_size')

    # ---- data: loaded once; noisy labels from the noise file, generated the authors' way
    train_images, clean_labels, test_images, test_labels = load_cifar(
        args.data_path, args.dataset, args.download)
    for name, limit, total in (('num_train', args.num_train, len(clean_labels)),
                               ('num_test', args.num_test, len(test_labels))):
        if limit is not None and limit > total:
            raise InputError('--%s %d is more than the %d images there are'
                             % (name, limit, total))
    chosen = training_subset(len(clean_labels), args.num_train, args.subset_seed)
    positions = np.arange(len(clean_labels))[chosen]  # in the data set, for messages
    train_images, clean_labels = train_images[chosen], clean_labels[chosen]
    test_images, test_labels = test_images[:args.num_test], test_labels[:args.num_test]
    noisy_labels, noise_path = noisy_labels_for(clean_labels, args, chosen)
    # each image by its pixels (a resume on other images or labels is refused, naming them)
    log.record_training_set(checkpoint, (image.tobytes() for image in train_images),
                            noisy_labels, ['training image %d' % i for i in positions])
    is_clean = np.asarray(noisy_labels) == clean_labels
    if (checkpoint is not None and 'training_set' not in checkpoint  # (saved before the record)
            and checkpoint['noisy_labels'] != labels_digest(noisy_labels)):
        raise InputError('the noisy labels in %s differ from those the run in %s started with: '
                         'restore that noise file' % (noise_path, args.out_dir))
    noise_rate = float(1 - is_clean.mean())  # what was injected, e.g. r(1-1/C) for sym
    print0('%d training images, %.2f%% of labels noisy (%s); %d test images'
           % (len(clean_labels), 100 * noise_rate, noise_path, len(test_labels)))
    if args.plain:
        loaders = CIFARLoaders(args.dataset, train_images, noisy_labels, test_images,
                               test_labels, args.batch_size, args.num_workers)
    else:  # the images live on the device; batches are augmented there (docs/speed.md)
        loaders = DeviceCIFARLoaders(args.dataset, train_images, noisy_labels, test_images,
                                     test_labels, args.batch_size, device)
    warmup_loader = loaders.warmup(strong=args.strong_warmup)
    eval_loader, test_loader = loaders.eval_train(), loaders.test()

    # ---- two networks, each with its own optimizer (the CE baseline and the ablations without
    # co-training train net1 alone)
    def make_net():
        net = cifar_net(args.arch, args.num_class, args.width)
        if backbone is not None:  # all but the classifier, which keeps its fresh weights
            net.load_state_dict(backbone, strict=False)
        return net.to(device)

    def make_optimizer(net):
        return torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)

    net1, net2 = make_net(), make_net()
    optimizer1, optimizer2 = make_optimizer(net1), make_optimizer(net2)
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
    networks = [('net1', net1, optimizer1), ('net2', net2, optimizer2)]
    single = args.method == 'ce' or args.no_cotraining
    if single:
        networks = networks[:1]
    snapshot_epochs = division_epochs(args.warm_up, args.num_epochs)
    confidence_penalty = args.warmup_penalty == 'on' or (
        args.warmup_penalty == 'auto' and args.method == 'dividemix'
        and args.noise_mode in ('asym', 'cifar-n'))
    log.begin(args, checkpoint)  # every input is checked: the run's files appear from here
    tensorboard = TensorBoardLog(os.path.join(args.out_dir, run_name + '_tb'), args.tensorboard)
    clock = RunClock(args.num_epochs, args.num_epochs if args.method == 'ce' else args.warm_up,
                     passes=len(networks), device=device,  # the run's time left
                     quick_look=lambda epoch_seconds: quick_look(
                         args, argv, len(clean_labels), len(test_labels), len(networks),
                         epoch_seconds, lambda width: prepare(  # a network as this run trains
                             cifar_net(args.arch, args.num_class, width), device, not args.plain)))

    # ---- Algorithm 1
    for epoch in range(start_epoch, args.num_epochs):
        start = time.time()
        clock.begin(epoch)
        lr = learning_rate(args, epoch)
        for group in optimizer1.param_groups + optimizer2.param_groups:
            group['lr'] = lr
        record = {'epoch': epoch, 'lr': lr, 'noise_rate': noise_rate}
        banner = '%s | Epoch [%3d/%3d]' % (run_name, epoch, args.num_epochs)
        if epoch < args.warm_up or args.method == 'ce':
            # Warm-up (the CE baseline: every epoch) on all data with the noisy labels; the
            # confidence penalty for class-dependent noise only (Sec. 3.1).
            for name, net, optimizer in networks:
                ce = warmup_epoch(net, optimizer, warmup_loader, device, confidence_penalty,
                                  cuda_graphs, '%s Warmup %s' % (banner, name), clock, args=args)
                record[name] = {'warmup_ce': ce}
        else:
            # Co-divide (lines 4-8): each network's mixture on its per-sample losses.
            divisions = [dm.co_divide(net, eval_loader, history, device, args)
                         for (_, net, _), history in zip(networks, loss_history)]
            if args.figures and log.writer and epoch in snapshot_epochs:  # Fig. 2
                save_division(args.out_dir, run_name, epoch, args.p_threshold, noisy_labels,
                              {name: division._asdict() for (name, _, _), division
                               in zip(networks, divisions)}, is_clean)
            # Lines 6-30: net1 trains on net2's division with net2 co-guessing, then vice versa.
            # Without co-training, net1 trains on its own division and guesses alone.
            plan = ([('net1', net1, net2, optimizer1, divisions[1]),
                     ('net2', net2, net1, optimizer2, divisions[0])] if not single else
                    [('net1', net1, None, optimizer1, divisions[0])])
            for name, net, partner, optimizer, (clean_prob, labeled, *_) in plan:
                stats = dm.division_stats(clean_prob, labeled, is_clean)
                log.write('stats', 'Numer of labeled samples:%d   AUC:%.3f\n'
                          % (stats['labeled'], stats['auc']))
                labeled_loader, unlabeled_loader = loaders.train(
                    labeled, clean_prob, augment=not args.no_augmentation, strong=args.strong_aug)
                if labeled_loader is None:
                    print0('\n%s: no sample has clean probability > %g; %s skips this epoch'
                           % (banner, args.p_threshold, name))
                    record[name] = stats
                    continue
                loss_x, loss_u = ssl_epoch(net, partner, optimizer, labeled_loader,
                                           unlabeled_loader, epoch, device, args, cuda_graphs,
                                           '%s Train %s' % (banner, name), clock)
                record[name] = dict(stats, loss_x=loss_x, loss_u=loss_u)

        # Test: the ensemble's summed logits, or net1 alone (one network, or the ablation).
        ensemble_acc, record['net1_acc'], record['net2_acc'] = dm.test_ensemble(
            net1, net2, test_loader, device)
        record['test_acc'] = record['net1_acc'] if single or args.test_net1_only else ensemble_acc
        record['seconds'] = time.time() - start
        log.write('acc', 'Epoch:%d   Accuracy:%.2f\n' % (epoch, record['test_acc']))
        log.epoch(record, score=record['test_acc'])
        tensorboard.epoch(record)
        log.save({'epoch': epoch, **state_of(parts),
                  'loss_history': loss_history, 'rng': rng_state(), 'args': vars(args),
                  'noisy_labels': labels_digest(noisy_labels), 'noise_file': noise_path})
        clock.end()
        print0('\r%s  test acc %.2f%% (net1 %.2f, net2 %.2f)  %s  %.1f s  %s'
               % (banner, record['test_acc'], record['net1_acc'], record['net2_acc'],
                  '  '.join(_division_summary(record, n) for n, _, _ in networks),
                  record['seconds'], clock.outlook()))

    # The label errors, as a file: every training image's given label, each network's
    # co-divide on the final weights (on copies of the loss histories: the next epoch's
    # division), the test's prediction and the flag; the truth is known here.
    labels = export_labels(log.labels_path,
                           [net for _, net, _ in networks], eval_loader, device,
                           epoch=args.num_epochs - 1, args=args, loss_histories=loss_history,
                           predict_with=1 if args.test_net1_only else None, true=clean_labels,
                           class_names=class_names(args.data_path, args.dataset))
    print0(labels.line)
    summary = log.summary(**labels.record)
    tensorboard.close()
    print0('best %.2f%%  last-10 mean %.2f%%  (%s)'
           % (summary['best'], summary['last10'], log.jsonl_path))
    if args.figures and log.writer:
        if distributed()[1] == 1:  # (under torchrun the loader would see one shard only)
            # Fig. 5: net1's penultimate features of 2,000 training images, chosen with their
            # own RNG so the run's random streams stay untouched.
            chosen = np.random.RandomState(args.seed).choice(
                len(noisy_labels), min(len(noisy_labels), 2000), replace=False)
            features = penultimate_features(unwrap(net1), loaders.eval_train(chosen), device)
            save_features(args.out_dir, run_name, features, np.asarray(noisy_labels)[chosen],
                          np.asarray(clean_labels)[chosen], chosen)
        from tools.figures import write_figures_after_run  # matplotlib only when drawing
        write_figures_after_run(args.out_dir, run_name)
    return summary


def quick_look(args, argv, num_train, num_test, passes, epoch_seconds, net_at=None):
    """What a slow or long CPU run advises: the same command on 5,000 images at width 16 (at
    its own width when it starts from a self-supervised checkpoint, which has that width) with
    10 warm-up and 5 SSL epochs (co-divide and co-training are seen), in a folder of its own,
    and its time here projected from this run's epochs, the change of width measured with
    net_at(width), a network as this run trains it (None: width_cost's; the ResNet-18 costs
    about what the PreAct-ResNet18 does: the same convolutions). Returns (command, seconds), or
    None where the run is that first look already."""
    images, warm_up, ssl_epochs = min(5000, num_train), 10, 5
    width = args.width if args.pretrained else 16
    if (images, width, warm_up, warm_up + ssl_epochs) == (num_train, args.width, args.warm_up,
                                                          args.num_epochs):
        return None
    flags = {'--num_train': images, '--width': width, '--warm_up': warm_up,
             '--num_epochs': warm_up + ssl_epochs,
             '--out_dir': unused_folder(os.path.join(args.out_dir, 'quick_look'))}
    ratio = (measured_width_ratio(net_at, args.width, width)
             if net_at is not None and width != args.width else None)
    seconds = preact_quick_look(epoch_seconds, num_train, args.width, images, width, warm_up,
                                ssl_epochs, num_test, passes, ratio)
    return command_with(__file__, argv, flags), seconds


def learning_rate(args, epoch):
    """Sec. 4.1: lr / 10 from --lr_drop_epoch on; with --lr_drop_every, lr / 10 every that
    many epochs, multiplied step by step as torch's StepLR (C2D's code)."""
    if args.lr_drop_every is None:
        return args.lr if epoch < args.lr_drop_epoch else args.lr / 10
    lr = args.lr
    for _ in range(epoch // args.lr_drop_every):
        lr *= 0.1
    return lr


def run_name_of(args):
    """The authors' file prefix <dataset>_<r>_<mode> (or <dataset>_<CIFAR-N label>), plus a part
    for each argument declared names_run that is not at its default (another network, a
    self-supervised start, the baseline, an ablation, ...), so different experiments never
    share files."""
    if args.noise_mode == 'cifar-n':
        name = '%s_%s' % (args.dataset, args.cifar_n_label)
    else:
        # one decimal as the authors' names; a finer ratio keeps its digits (0.45 is not 0.5)
        ratio = '%.1f' % args.r if round(args.r, 1) == args.r else repr(args.r)
        name = '%s_%s_%s' % (args.dataset, ratio, args.noise_mode)
    return name + argument_parser().run_name_parts(args)


def _division_summary(record, name):
    r = record.get(name, {})
    if 'labeled' not in r:
        return '%s CE %.3f' % (name, r.get('warmup_ce', float('nan')))
    return '%s labeled %d AUC %.3f' % (name, r['labeled'], r['auc'])


if __name__ == '__main__':
    sys.exit(run_cli(main))
