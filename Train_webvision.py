"""DivideMix on mini-WebVision (paper Sec. 4.1, Table 4, Appendix B).

    python Train_webvision.py --data_path ./webvision
    torchrun --nproc_per_node=4 Train_webvision.py --data_path ./webvision

Inception-ResNet-v2 trained from scratch on the Google images of the first 50 WebVision classes,
tested on the WebVision validation set and on the same 50 classes of the ILSVRC12 validation set
(top-1 and top-5, ensemble of both networks). Paper schedule (Appendix B): 100 epochs, lr 0.01
/ 10 after 50, 1 warm-up epoch (CE only), batch 32, alpha 0.5, lambda_u 0 (only the labeled rows
are mixed), tau 0.5, T 0.5, weight decay 1e-3. The authors' single-GPU script differs: 80 epochs,
lr drop at 40, weight decay 5e-4 (pass those to match it).
Logs: checkpoint/<id>_acc.txt and _stats.txt (the authors' formats) and <id>.jsonl.
Beyond the paper: --strong_aug, --strong_warmup (AugDesc-WS, as Train_cifar.py; AutoAugment's
ImageNet policy) append _strong_aug, _strong_warmup to <id>.
"""
import argparse
import os
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

import dividemix as dm
from dataloader_webvision import WebVision, WebVisionLoaders
from InceptionResNetV2 import INPUT_SIZE, InceptionResNetV2
from utils.augment import add_strong_arguments
from utils.checkpoint import restore, rng_state, seed_everything, state_of
from utils.cli import (COMPILE_NEEDS_SPEED_UPS, CROP_WITHIN_RESIZE, FIGURES_NEED_MATPLOTLIB,
                       PLAIN_ID, TENSORBOARD_NEEDS_IT, WARM_UP_BEFORE_END, ArgumentParser,
                       InputError, Range, above, at_least, check_args, check_finite, run_cli)
from utils.data import default_workers, ssl_batches
from utils.distributed import distributed, init_distributed, pick_device, print0, unwrap
from utils.label_export import export_labels, relative_to
from utils.models import refuse_what_cannot_fit, training_memory
from utils.runlog import RunLog
from utils.progress import Progress, RunClock, describe_device
from utils.snapshots import (TensorBoardLog, division_epochs, save_division,
                             save_unlabeled_guesses)
from utils.speed import prepare, speed_ups


def argument_parser():
    """Every argument, declared once with its range, its rules, and whether it changes the
    method (names_run: the run's name shows it) or may change on --resume (utils.cli)."""
    p = ArgumentParser(description='DivideMix on mini-WebVision')
    p.add_argument('--data_path', default='./webvision', resumable=True,
                   help='folder with info/, the Google images, val_images_256/ and imagenet/val/')
    p.add_argument('--num_class', type=int, default=50, check=Range(2, 1000),
                   help='the first N WebVision classes')
    p.add_argument('--seed', type=int, default=123, check=Range(0, 2**32 - 1))  # numpy's range
    # optimisation (Appendix B)
    p.add_argument('--num_epochs', type=int, default=100, check=at_least(1), resumable=True)
    p.add_argument('--warm_up', type=int, default=1, check=at_least(0), rule=WARM_UP_BEFORE_END)
    p.add_argument('--batch_size', type=int, default=32, check=at_least(1),
                   help='labeled = unlabeled batch B')
    p.add_argument('--lr', '--learning_rate', type=float, default=0.01, check=above(0))
    p.add_argument('--lr_drop_epoch', type=int, default=50, check=at_least(0),
                   help='lr / 10 from this epoch')
    p.add_argument('--momentum', type=float, default=0.9, check=Range(0, 1))
    p.add_argument('--weight_decay', type=float, default=1e-3, check=at_least(0))
    # DivideMix
    p.add_argument('--lambda_u', type=float, default=0, check=at_least(0),
                   help='0 (paper): mix only the labeled rows, no Lu; > 0: full MixMatch')
    p.add_argument('--p_threshold', type=float, default=0.5, check=Range(0, 1, high_open=True),
                   help='clean probability tau')
    p.add_argument('--T', type=float, default=0.5, check=above(0),
                   help='sharpening temperature')
    p.add_argument('--alpha', type=float, default=0.5, check=above(0),
                   help='Beta(alpha, alpha) of mixup')
    p.add_argument('--rampup_epochs', type=int, default=16, check=at_least(1),
                   help='lambda_u ramp (if > 0)')
    p.add_argument('--loss_history', type=int, default=1, check=at_least(1),
                   help='the mixture models the mean normalised loss of this many epochs')
    dm.add_co_divide_arguments(p)
    # beyond the paper (docs/beyond_the_paper.md); off by default
    add_strong_arguments(p, 'its ImageNet policy')
    # images, machine
    p.add_argument('--resize', type=int, default=320, check=at_least(1))
    p.add_argument('--crop', type=int, default=299, help='Inception-ResNet-v2 needs 299',
                   check=Range(INPUT_SIZE, INPUT_SIZE, hint='the final 8x8 average pool of '
                               'Inception-ResNet-v2 fits one input size'),
                   rule=CROP_WITHIN_RESIZE)
    p.add_argument('--plain', action='store_true', resumable=True,
                   help='turn the speed-ups off (fp32, no channels_last): the reference path')
    p.add_argument('--compile', action='store_true', resumable=True,
                   rule=COMPILE_NEEDS_SPEED_UPS, help='torch.compile both networks')
    p.add_argument('--num_workers', type=int, default=default_workers(5), check=at_least(0),
                   resumable=True,
                   help='image decoding workers (default: 5, or the CPUs there are where fewer)')
    p.add_argument('--gpuid', type=int, default=0, check=at_least(0), resumable=True,
                   help='which GPU to run on (0 is the first); the CPU when there is none')
    p.add_argument('--id', default='webvision', rule=PLAIN_ID,
                   help='prefix of the output files (a switch that changes the method, such as '
                        '--strong_aug, appends its name)')
    p.add_argument('--out_dir', default='checkpoint', resumable=True)
    p.add_argument('--figures', action=argparse.BooleanOptionalAction, default=True,
                   resumable=True, rule=FIGURES_NEED_MATPLOTLIB,
                   help='save loss snapshots and unlabeled examples, draw the paper\'s figures '
                        'at the end (tools/figures.py)')
    p.add_argument('--tensorboard', action='store_true', resumable=True,
                   rule=TENSORBOARD_NEEDS_IT,
                   help='also log the per-epoch numbers for TensorBoard (needs tensorboard)')
    p.add_argument('--resume', action='store_true', resumable=True,
                   help='continue the run in --out_dir from its latest checkpoint')
    p.add_argument('--debug', action='store_true', resumable=True,
                   help='show tracebacks for input errors')
    p.set_defaults(script='Train_webvision.py')  # saved with the run: what tools/ read it as
    return p


def parse_args(argv):
    return argument_parser().parse_args(argv)


def create_model(args):
    if args.crop != INPUT_SIZE:  # its final 8x8 average pool fits one input size
        raise InputError('--crop %d: Inception-ResNet-v2 takes %d-px images' % (args.crop,
                                                                              INPUT_SIZE))
    return InceptionResNetV2(num_classes=args.num_class)


# ---------------------------------------------------------------- one mini-batch --------------

def warmup_step(net, optimizer, inputs, labels):
    """Alg. 1 line 2 on one mini-batch: cross-entropy on the noisy labels (the authors'
    WebVision code has no confidence penalty).
    Returns the CE (0-dim tensor)."""
    logits = net(inputs)
    loss = F.cross_entropy(logits, labels)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss.detach()


def ssl_step(net, partner, optimizer, x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u,
             *strong, args):
    """Alg. 1 lines 12-29 on one mini-batch: x1, x2 (B, 3, 299, 299) two augmented views of
    labeled images with their noisy labels (B,) and clean probabilities (B,) from the
    partner's GMM; u1, u2 two views of unlabeled images (None when that set is empty); lam,
    perm the mixup draws (dm.draw_mix); weight_u the weight of Lu at this step (lambda_u ramped
    up by dm.linear_rampup). The frozen `partner` (eval mode) co-guesses. `strong`
    (--strong_aug): two strongly augmented views of the same labeled and unlabeled images
    (xs1, xs2, us1, us2). Returns Lx and Lu (0-dim tensors)."""
    with torch.no_grad():
        # The trained net stays in train mode for these passes (authors' code): its BatchNorm
        # sees each view alone, and the order u1, u2, x1, x2 sets its running statistics.
        if u1 is not None:
            pred_u = dm.mean_prediction(net(u1), net(u2))
            # eval mode: rows are independent, so both views go through the partner at once
            partner_pred_u = dm.mean_prediction(*partner(torch.cat([u1, u2])).chunk(2))
            targets_u = dm.co_guess(pred_u, partner_pred_u, args.T)        # Alg. 1 lines 21-23
        pred_x = dm.mean_prediction(net(x1), net(x2))
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
        # The paper's setting here (Appendix B): only the 2B labeled rows are trained on, each
        # mixed with a partner drawn from the whole batch; no Lu.
        mixed_inputs, mixed_targets = mixed_inputs[:2 * len(x1)], mixed_targets[:2 * len(x1)]

    # One forward over the mixed batch (shared BatchNorm), Eq. (12)
    loss, loss_x, loss_u = dm.dividemix_loss(net(mixed_inputs), mixed_targets, 2 * len(x1),
                                             weight_u)
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss_x.detach(), loss_u.detach()


# ---------------------------------------------------------------- one epoch -------------------

def warmup_epoch(net, optimizer, loader, device, label, clock=None):
    """Alg. 1 line 2: one pass over the warm-up loader. Returns the mean CE."""
    net.train()
    total = torch.zeros((), device=device)
    progress = Progress(label, len(loader), clock)  # images/s and time left, now and then
    for inputs, labels, _ in loader:
        loss = warmup_step(net, optimizer, inputs.to(device), labels.to(device))
        total += loss
        progress.update(len(labels), 'CE-loss: %.4f', loss)
    progress.close()
    check_finite(total, 'warm-up')
    return total.item() / len(loader)


def ssl_epoch(net, partner, optimizer, labeled_loader, unlabeled_loader, epoch, device, args,
              label, clock=None):
    """Alg. 1 lines 9-30 for one network: a pass over its labeled set, each batch with the next
    unlabeled one. Returns the mean Lx and Lu."""
    net.train()
    partner.eval()
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
                              device=device)
        loss_x, loss_u = ssl_step(net, partner, optimizer, x1, x2, labels, clean_prob, u1, u2,
                                  lam, perm, weight_u, *strong, args=args)
        sum_x += loss_x
        sum_u += loss_u
        progress.update(len(x1) + (len(u1) if u1 is not None else 0),
                        'Labeled loss: %.2f  Unlabeled loss: %.2f', loss_x, loss_u)
    progress.close()
    check_finite(sum_x + sum_u, 'SSL')
    return sum_x.item() / len(labeled_loader), sum_u.item() / len(labeled_loader)


# ---------------------------------------------------------------- the run ---------------------

def main(argv=None):
    parser = argument_parser()
    args = check_args(parser.parse_args(argv), parser.rules)
    init_distributed()  # under torchrun: one process per GPU, each with both networks
    log = RunLog(args.out_dir, args.id + parser.run_name_parts(args),
                 {'acc': '_acc.txt', 'stats': '_stats.txt'}, arguments=parser)
    checkpoint = log.check(args)  # refuses to overwrite a run; with --resume, its checkpoint
    run_name = log.prefix  # the prefix of its files (a resumed run keeps the one it has)
    seed_everything(args.seed)
    device = pick_device(args.gpuid)
    refuse_what_cannot_fit(  # an SSL step trains on 4B rows, each loader decodes at --resize
        training_memory(lambda: create_model(args), 4 * args.batch_size, args.crop,
                        args.resize, args.num_workers), device,
        '--resize %d, --crop %d and --batch_size %d' % (args.resize, args.crop, args.batch_size),
        'the largest of them')

    # ---- data: file lists parsed once, up front; images are read by the loaders
    data = WebVision(args.data_path, args.num_class)
    log.record_training_set(checkpoint, relative_to(data.root, data.train_paths),
                            data.train_labels)  # a resume on other images or labels is refused
    loaders = WebVisionLoaders(data, args.batch_size, args.num_workers, args.resize, args.crop)
    eval_loader, webvision_loader, imagenet_loader = (
        loaders.eval_train(), loaders.webvision_val(), loaders.imagenet_val())
    print0('%d training images, %d WebVision val, %d ILSVRC12 val'
           % (len(data.train_paths), len(data.val_paths), len(data.imagenet_paths)))

    # ---- two networks trained from scratch, each with its own optimizer
    net1, net2 = create_model(args).to(device), create_model(args).to(device)
    optimizer1, optimizer2 = (torch.optim.SGD(net.parameters(), lr=args.lr,
                                              momentum=args.momentum,
                                              weight_decay=args.weight_decay)
                              for net in (net1, net2))
    loss_history = ([], [])
    parts = {'net1': net1, 'net2': net2, 'optimizer1': optimizer1, 'optimizer2': optimizer2}
    start_epoch = restore(checkpoint, parts, log.last_path)
    if checkpoint is not None:
        for history, saved in zip(loss_history, checkpoint['loss_history']):
            history.extend(saved)
    # The speed layer (docs/speed.md): channels_last and bf16 autocast, DDP under torchrun;
    # --plain turns it off. Checkpoints hold the bare networks.
    net1, net2 = (prepare(net, device, not args.plain, args.compile) for net in (net1, net2))
    print0(describe_device(device, *speed_ups(net1), False, args.compile))
    snapshot_epochs = division_epochs(args.warm_up, args.num_epochs)
    log.begin(args, checkpoint)  # every input is checked: the run's files appear from here
    tensorboard = TensorBoardLog(os.path.join(args.out_dir, run_name + '_tb'), args.tensorboard)
    clock = RunClock(args.num_epochs, args.warm_up, device=device)  # the run's time left

    # ---- Algorithm 1
    for epoch in range(start_epoch, args.num_epochs):
        start = time.time()
        clock.begin(epoch)
        lr = args.lr if epoch < args.lr_drop_epoch else args.lr / 10
        for group in optimizer1.param_groups + optimizer2.param_groups:
            group['lr'] = lr
        record = {'epoch': epoch, 'lr': lr}
        banner = 'WebVision | Epoch [%3d/%3d]' % (epoch, args.num_epochs)
        if epoch < args.warm_up:
            # Warm-up with plain CE (the authors' WebVision code has no confidence penalty).
            warmup_loader = loaders.warmup(strong=args.strong_warmup)
            for name, net, optimizer in (('net1', net1, optimizer1), ('net2', net2, optimizer2)):
                ce = warmup_epoch(net, optimizer, warmup_loader, device,
                                  '%s Warmup %s' % (banner, name), clock)
                record[name] = {'warmup_ce': ce}
        else:
            # Co-divide: each network's mixture divides all training images for the other one.
            divisions = [dm.co_divide(net, eval_loader, history, device, args)
                         for net, history in ((net1, loss_history[0]), (net2, loss_history[1]))]
            if args.figures and log.writer and epoch in snapshot_epochs:
                # Fig. 2, and Fig. 4: images of net1's unlabeled set (from net2's division)
                save_division(args.out_dir, run_name, epoch, args.p_threshold, data.train_labels,
                              {'net1': divisions[0]._asdict(), 'net2': divisions[1]._asdict()})
                noisy = np.flatnonzero(~divisions[1].labeled)
                save_unlabeled_guesses(args.out_dir, run_name, epoch, (unwrap(net1), unwrap(net2)),
                                       data.train_paths, data.train_labels, noisy,
                                       divisions[1].clean_prob[noisy], loaders.test_transform,
                                       device,
                                       args.seed, class_names=data.class_names)
            for name, net, partner, optimizer, (clean_prob, labeled, *_) in (
                    ('net1', net1, net2, optimizer1, divisions[1]),
                    ('net2', net2, net1, optimizer2, divisions[0])):
                log.write('stats', 'Numer of labeled samples:%d \n' % labeled.sum())
                record[name] = {'labeled': int(labeled.sum())}
                labeled_loader, unlabeled_loader = loaders.train(labeled, clean_prob,
                                                                 strong=args.strong_aug)
                if labeled_loader is None:
                    print0('\n%s: no sample has clean probability > %g; %s skips this epoch'
                           % (banner, args.p_threshold, name))
                    continue
                loss_x, loss_u = ssl_epoch(net, partner, optimizer, labeled_loader,
                                           unlabeled_loader, epoch, device, args,
                                           '%s Train %s' % (banner, name), clock)
                record[name].update(loss_x=loss_x, loss_u=loss_u)

        # Test the ensemble (sum of logits) on WebVision val and ILSVRC12 val, top-1 and top-5.
        for key, loader in (('webvision', webvision_loader), ('imagenet', imagenet_loader)):
            top1, _, _, top5 = dm.test_ensemble(net1, net2, loader, device, top5=True)
            record[key + '_top1'], record[key + '_top5'] = top1, top5
        log.write('acc', 'Epoch:%d \t WebVision Acc: %.2f%% (%.2f%%) \t ImageNet Acc: %.2f%% '
                  '(%.2f%%)\n' % (epoch, record['webvision_top1'], record['webvision_top5'],
                                  record['imagenet_top1'], record['imagenet_top5']))
        record['seconds'] = time.time() - start
        tensorboard.epoch(record)
        log.epoch(record, score=record['webvision_top1'])
        log.save({'epoch': epoch, **state_of(parts),
                  'loss_history': loss_history, 'rng': rng_state(), 'args': vars(args)})
        clock.end()
        print0('\r%s  WebVision %.2f%% (%.2f%%)  ImageNet %.2f%% (%.2f%%)  %.1f s  %s'
               % (banner, record['webvision_top1'], record['webvision_top5'],
                  record['imagenet_top1'], record['imagenet_top5'], record['seconds'],
                  clock.outlook()))

    # The label errors, as a file: each network's co-divide on the final weights (on copies
    # of the loss histories: the next epoch's division), the ensemble's prediction, the flag.
    labels = export_labels(log.labels_path, [net1, net2],
                           eval_loader, device, epoch=args.num_epochs - 1,
                           args=args, loss_histories=loss_history,
                           paths=relative_to(data.root, data.train_paths),
                           class_names=data.class_names)
    print0(labels.line)
    summary = log.summary(**labels.record)
    tensorboard.close()
    print0('WebVision top-1 best %.2f%%, last-10 mean %.2f%% (%s)'
           % (summary['best'], summary['last10'], log.jsonl_path))
    if args.figures and log.writer:
        from tools.figures import write_figures_after_run  # matplotlib only when drawing
        write_figures_after_run(args.out_dir, run_name)
    return summary


if __name__ == '__main__':
    sys.exit(run_cli(main))
