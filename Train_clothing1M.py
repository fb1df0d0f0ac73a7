"""DivideMix on Clothing1M (paper Sec. 4.1, Table 3, Appendix B).

    python Train_clothing1M.py --data_path ./clothing1m
    torchrun --nproc_per_node=4 Train_clothing1M.py --data_path ./clothing1m

ImageNet-pretrained ResNet-50 (torchvision), 14 classes. As in the paper and the authors' code:
80 epochs, 1 warm-up epoch (CE + confidence penalty), lr 0.002 / 10 after 40, batch 32, alpha 0.5,
lambda_u 0 (only the labeled rows are mixed), tau 0.5, T 0.5, weight decay 1e-3; every epoch each
network divides a fresh class-balanced subset of num_batches * B images and the other network
trains on it. Each network keeps its best-validation weights; the final test is the ensemble of
the two. Logs: checkpoint/<id>.txt (the authors' format) and <id>.jsonl.
Beyond the paper: --strong_aug, --strong_warmup (AugDesc-WS, as Train_cifar.py; AutoAugment's
ImageNet policy) append _strong_aug, _strong_warmup to <id>.
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

import dividemix as dm
from dataloader_clothing1M import Clothing1M, Clothing1MLoaders
from utils.augment import add_strong_arguments
from utils.checkpoint import (atomic_save, load_checkpoint, restore, rng_state, seed_everything,
                              state_of)
from utils.cli import (COMPILE_NEEDS_SPEED_UPS, CROP_WITHIN_RESIZE, FIGURES_NEED_MATPLOTLIB,
                       PLAIN_ID, TENSORBOARD_NEEDS_IT, WARM_UP_BEFORE_END, ArgumentParser, Range,
                       Relation, TrainingError, above, at_least, check_args, check_finite,
                       run_cli)
from utils.data import default_workers, ssl_batches
from utils.distributed import (barrier, distributed, init_distributed, pick_device, print0,
                               unwrap)
from utils.label_export import Exported, export_labels, relative_to
from utils.models import (RESNET50_INPUT_HINT, RESNET50_SMALLEST_INPUT, refuse_what_cannot_fit,
                          resnet50, training_memory)
from utils.runlog import RunLog
from utils.progress import Progress, RunClock, describe_device
from utils.snapshots import (TensorBoardLog, division_epochs, save_division,
                             save_unlabeled_guesses)
from utils.speed import prepare, speed_ups


def argument_parser():
    """Every argument, declared once with its range, its rules, and whether it changes the
    method (names_run: the run's name shows it) or may change on --resume (utils.cli)."""
    p = ArgumentParser(description='DivideMix on Clothing1M')
    p.add_argument('--data_path', default='./clothing1m', resumable=True,
                   help='folder with the annotation files and the image folders 0/ .. 9/')
    p.add_argument('--num_class', type=int, default=14, check=at_least(2))
    p.add_argument('--seed', type=int, default=123, check=Range(0, 2**32 - 1))  # numpy's range
    # optimisation (Appendix B)
    p.add_argument('--num_epochs', type=int, default=80, check=at_least(1), resumable=True,
                   help='the authors\' loop runs 81 epochs (0..80): pass 81 to match it')
    p.add_argument('--warm_up', type=int, default=1, check=at_least(0), rule=WARM_UP_BEFORE_END)
    p.add_argument('--batch_size', type=int, default=32, check=at_least(1),
                   help='labeled = unlabeled batch B')
    p.add_argument('--num_batches', type=int, default=1000, check=at_least(1),
                   help='per epoch: warm-up on 2*N*B images, co-divide on N*B (class-balanced)',
                   rule=Relation(  # each network's mixture fits two components to these losses
                       lambda a: a.num_batches * a.batch_size >= 2,
                       '--num_batches %(num_batches)d x --batch_size %(batch_size)d is one '
                       'image to co-divide: the GMM needs at least two (raise either)'))
    p.add_argument('--lr', '--learning_rate', type=float, default=0.002, check=above(0))
    p.add_argument('--lr_drop_epoch', type=int, default=40, check=at_least(0),
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
    dm.add_co_divide_arguments(p, divided=lambda a: a.num_batches * a.batch_size)
    # beyond the paper (docs/beyond_the_paper.md); off by default
    add_strong_arguments(p, 'its ImageNet policy')
    # model, images, machine
    p.add_argument('--pretrained', default='imagenet',
                   help="'imagenet' (torchvision's IMAGENET1K_V1 weights, downloaded or cached), "
                        "a local ResNet-50 weights file, or 'none'")
    p.add_argument('--resize', type=int, default=256,
                   check=Range(RESNET50_SMALLEST_INPUT, hint=RESNET50_INPUT_HINT))
    p.add_argument('--crop', type=int, default=224,
                   check=Range(RESNET50_SMALLEST_INPUT, hint=RESNET50_INPUT_HINT),
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
    p.add_argument('--id', default='clothing1m', rule=PLAIN_ID,
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
    p.set_defaults(script='Train_clothing1M.py')  # saved with the run: what tools/ read it as
    return p


def parse_args(argv):
    return argument_parser().parse_args(argv)


# ---------------------------------------------------------------- one mini-batch --------------

def warmup_step(net, optimizer, inputs, labels):
    """Alg. 1 line 2 on one mini-batch: cross-entropy on the noisy labels plus the confidence
    penalty (minus Eq. 2), which keeps a network from memorising the noise in its one warm-up
    epoch. Returns the CE (0-dim tensor)."""
    logits = net(inputs)
    loss = F.cross_entropy(logits, labels)
    penalty = dm.negative_entropy(logits)
    optimizer.zero_grad()
    (loss + penalty).backward()
    optimizer.step()
    return loss.detach()


def ssl_step(net, partner, optimizer, x1, x2, labels, clean_prob, u1, u2, lam, perm, weight_u,
             *strong, args):
    """Alg. 1 lines 12-29 on one mini-batch: x1, x2 (B, 3, 224, 224) two augmented views of
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
    log = RunLog(args.out_dir, args.id + parser.run_name_parts(args), {'log': '.txt'},
                 other_files=('_net1_best.pth', '_net2_best.pth'), arguments=parser)
    checkpoint = log.check(args)  # refuses to overwrite a run; with --resume, its checkpoint
    run_name = log.prefix  # the prefix of its files (a resumed run keeps the one it has)
    seed_everything(args.seed)
    device = pick_device(args.gpuid)
    refuse_what_cannot_fit(  # an SSL step trains on 4B rows, each loader decodes at --resize
        training_memory(lambda: resnet50(args.num_class, 'none'), 4 * args.batch_size,
                        args.crop, args.resize, args.num_workers), device,
        '--resize %d, --crop %d and --batch_size %d' % (args.resize, args.crop, args.batch_size),
        'the largest of them')

    # ---- data: annotations parsed once, up front; images are read by the loaders
    data = Clothing1M(args.data_path, args.num_class)
    log.record_training_set(checkpoint, relative_to(data.root, data.train_paths),
                            data.train_labels)  # a resume on other images or labels is refused
    loaders = Clothing1MLoaders(data, args.batch_size, args.num_workers, args.resize, args.crop)
    val_loader = loaders.val()
    print0('%d noisy training images, %d validation, %d test'
           % (len(data.train_paths), len(data.val_paths), len(data.test_paths)))

    # ---- two networks from the same pretrained backbone, each with its own optimizer
    net1, net2 = (resnet50(args.num_class, args.pretrained).to(device) for _ in range(2))
    optimizer1, optimizer2 = (torch.optim.SGD(net.parameters(), lr=args.lr,
                                              momentum=args.momentum,
                                              weight_decay=args.weight_decay)
                              for net in (net1, net2))
    best_paths = [log.last_path.replace('_last.pth', '_net%d_best.pth' % k) for k in (1, 2)]
    best_val, best_epoch = [0.0, 0.0], [-1, -1]
    parts = {'net1': net1, 'net2': net2, 'optimizer1': optimizer1, 'optimizer2': optimizer2}
    start_epoch = restore(checkpoint, parts, log.last_path)
    if checkpoint is not None:
        best_val, best_epoch = list(checkpoint['best_val']), list(checkpoint['best_epoch'])
    # The speed layer (docs/speed.md): channels_last and bf16 autocast, DDP under torchrun;
    # --plain turns it off. Checkpoints hold the bare networks.
    net1, net2 = (prepare(net, device, not args.plain, args.compile) for net in (net1, net2))
    print0(describe_device(device, *speed_ups(net1), False, args.compile))
    # The paper's per-epoch budgets are global: with N processes each one samples 1/N of them.
    images_per_epoch = args.num_batches * args.batch_size * distributed()[1]
    snapshot_epochs = division_epochs(args.warm_up, args.num_epochs)
    log.begin(args, checkpoint)  # every input is checked: the run's files appear from here
    if checkpoint is not None and log.writer:
        # A kill between the checkpoint and a best-weights file: the weights are in the former.
        for net, path, epoch in zip((net1, net2), best_paths, best_epoch):
            if epoch == checkpoint['epoch']:
                atomic_save(unwrap(net).state_dict(), path)
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
        banner = 'Clothing1M | Epoch [%3d/%3d]' % (epoch, args.num_epochs)
        if epoch < args.warm_up:
            # Warm-up with the confidence penalty, each network on its own balanced subset.
            for name, net, optimizer in (('net1', net1, optimizer1), ('net2', net2, optimizer2)):
                warmup_loader = loaders.warmup(2 * images_per_epoch,
                                               strong=args.strong_warmup)
                ce = warmup_epoch(net, optimizer, warmup_loader, device,
                                  '%s Warmup %s' % (banner, name), clock)
                record[name] = {'warmup_ce': ce}
        else:
            # Co-divide: each network's mixture on a fresh balanced subset (no loss history).
            divisions = []
            for net in (net1, net2):
                eval_loader = loaders.eval_train(images_per_epoch)
                division = dm.co_divide(net, eval_loader, [], device, args)
                divisions.append((division, eval_loader.dataset.indices))
            if args.figures and log.writer and epoch in snapshot_epochs:
                # Fig. 2 (each mixture saw its own subset: indices kept) and Fig. 4 (images of
                # net1's unlabeled set, from net2's division, with the networks' guesses)
                save_division(args.out_dir, run_name, epoch, args.p_threshold, data.train_labels,
                              {name: dict(division._asdict(), indices=indices)
                               for name, (division, indices) in zip(('net1', 'net2'),
                                                                    divisions)})
                division, indices = divisions[1]
                noisy = ~division.labeled
                save_unlabeled_guesses(args.out_dir, run_name, epoch, (unwrap(net1), unwrap(net2)),
                                       data.train_paths, data.train_labels, indices[noisy],
                                       division.clean_prob[noisy], loaders.test_transform,
                                       device, args.seed, class_names=data.class_names)
            # net1 trains on net2's division with net2 co-guessing, then vice versa.
            for name, net, partner, optimizer, (division, indices) in (
                    ('net1', net1, net2, optimizer1, divisions[1]),
                    ('net2', net2, net1, optimizer2, divisions[0])):
                clean_prob, labeled = division.clean_prob, division.labeled
                labeled_loader, unlabeled_loader = loaders.train(labeled, clean_prob, indices,
                                                                 strong=args.strong_aug)
                record[name] = {'labeled': int(labeled.sum()), 'divided': len(labeled)}
                if labeled_loader is None:
                    print0('\n%s: no sample has clean probability > %g; %s skips this epoch'
                           % (banner, args.p_threshold, name))
                    continue
                loss_x, loss_u = ssl_epoch(net, partner, optimizer, labeled_loader,
                                           unlabeled_loader, epoch, device, args,
                                           '%s Train %s' % (banner, name), clock)
                record[name].update(loss_x=loss_x, loss_u=loss_u)

        # Validation of each network; each keeps its best weights for the final test.
        record['val_acc'], record['net1_val_acc'], record['net2_val_acc'] = dm.test_ensemble(
            net1, net2, val_loader, device)
        log.write('log', 'Validation Epoch:%d      Acc1:%.2f  Acc2:%.2f\n'
                  % (epoch, record['net1_val_acc'], record['net2_val_acc']))
        improved = [record['net%d_val_acc' % (k + 1)] > best_val[k] for k in (0, 1)]
        for k in (0, 1):
            if improved[k]:
                best_val[k], best_epoch[k] = record['net%d_val_acc' % (k + 1)], epoch
        record['seconds'] = time.time() - start
        tensorboard.epoch(record)
        log.epoch(record, score=record['val_acc'])
        log.save({'epoch': epoch, **state_of(parts), 'best_val': best_val,
                  'best_epoch': best_epoch, 'rng': rng_state(), 'args': vars(args)})
        clock.end()
        for net, path, better in zip((net1, net2), best_paths, improved):
            if better and log.writer:  # after the checkpoint, which can restore it
                atomic_save(unwrap(net).state_dict(), path)
        print0('\r%s  val acc %.2f%% (net1 %.2f, net2 %.2f)  %.1f s  %s'
               % (banner, record['val_acc'], record['net1_val_acc'], record['net2_val_acc'],
                  record['seconds'], clock.outlook()))

    # The label errors, as a file: the whole noisy pool (not an epoch's subset) in one more
    # pass of each network with the last epoch's weights, co-divided as an epoch would do it
    # (no loss history); the truth is known where clean_label_kv covers an image. It reads
    # images no epoch's subset drew: one that cannot be decoded fails the run after the test.
    labels_failure = None
    try:
        labels = export_labels(log.labels_path, [net1, net2],
                               loaders.eval_train(), device, epoch=args.num_epochs - 1,
                               args=args, true=data.train_clean_labels,
                               paths=relative_to(data.root, data.train_paths),
                               class_names=data.class_names)
        print0(labels.line)
    except TrainingError as e:
        labels, labels_failure = Exported('', {}), e

    # ---- Test: the ensemble of each network's best-validation weights.
    barrier()  # under torch.distributed: wait until rank 0 has written the best weights
    for net, path in zip((net1, net2), best_paths):
        unwrap(net).load_state_dict(load_checkpoint(path, 'its run cannot be tested: train it '
                                                    'again in another --out_dir'))
    test_acc, test_acc1, test_acc2 = dm.test_ensemble(net1, net2, loaders.test(), device)
    log.write('log', 'Test Accuracy:%.2f\n' % test_acc)
    summary = log.summary(test_acc=test_acc, net1_test_acc=test_acc1, net2_test_acc=test_acc2,
                          best_val=best_val, **labels.record)
    tensorboard.close()
    print0('test accuracy %.2f%% (best-validation weights of each network; %s)'
           % (test_acc, log.jsonl_path))
    if args.figures and log.writer:
        from tools.figures import write_figures_after_run  # matplotlib only when drawing
        write_figures_after_run(args.out_dir, run_name)
    if labels_failure is not None:
        raise labels_failure
    return summary


if __name__ == '__main__':
    sys.exit(run_cli(main))
