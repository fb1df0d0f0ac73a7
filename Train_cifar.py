"""DivideMix on CIFAR-10/100 with synthetic label noise (paper Sec. 4.1, Tables 1, 2, 5, 7).

    python Train_cifar.py --r 0.5 --noise_mode sym
    python Train_cifar.py --dataset cifar100 --r 0.8

Defaults are the paper's; lambda_u and tau follow Table 7 for the chosen cell unless given.
Logs go to checkpoint/<dataset>_<r>_<mode>_{acc,stats}.txt (the authors' formats) and .jsonl.
"""
import sys
import time

import numpy as np
import torch

import dividemix as dm
from dataloader_cifar import NUM_CLASSES, CIFARLoaders, load_cifar, noisy_labels_for
from PreResNet import ResNet18
from run_utils import (ArgumentParser, InputError, RunLog, init_distributed, labels_digest,
                       pick_device, restore, rng_state, run_cli, seed_everything, state_of,
                       wrap_ddp)

# Table 7 (Appendix B): lambda_u per cell; tau is 0.5 except 0.6 at 90% noise.
PAPER_LAMBDA_U = {
    ('cifar10', 'sym', 0.2): 0, ('cifar10', 'sym', 0.5): 25, ('cifar10', 'sym', 0.8): 25,
    ('cifar10', 'sym', 0.9): 50, ('cifar10', 'asym', 0.4): 0,
    ('cifar100', 'sym', 0.2): 25, ('cifar100', 'sym', 0.5): 150, ('cifar100', 'sym', 0.8): 150,
    ('cifar100', 'sym', 0.9): 150,
}
CODE_DEFAULTS = {'lambda_u': 25, 'p_threshold': 0.5}  # authors' argparse values, off-table


def paper_settings(dataset, noise_mode, r):
    """(lambda_u, p_threshold, found) for a cell of Table 7; the authors' code defaults when
    the cell is not in the paper."""
    key = (dataset, noise_mode, round(r, 2))
    if key not in PAPER_LAMBDA_U:
        return CODE_DEFAULTS['lambda_u'], CODE_DEFAULTS['p_threshold'], False
    return PAPER_LAMBDA_U[key], 0.6 if r >= 0.9 else 0.5, True


def parse_args(argv):
    p = ArgumentParser(description='DivideMix on CIFAR-10/100 with synthetic label noise')
    p.add_argument('--dataset', default='cifar10', choices=['cifar10', 'cifar100'])
    p.add_argument('--data_path', default=None,
                   help='folder with the python pickles, or its parent (default ./cifar-10 or '
                        './cifar-100)')
    p.add_argument('--download', action='store_true',
                   help='download the official archive when the data is not found')
    p.add_argument('--r', type=float, default=0.5, help='noise ratio')
    p.add_argument('--noise_mode', default='sym', choices=['sym', 'asym'])
    p.add_argument('--noise_file', default=None,
                   help='JSON list of noisy labels (default <data_path>/<r:.1f>_<mode>.json)')
    p.add_argument('--seed', type=int, default=123)
    # optimisation (Sec. 4.1)
    p.add_argument('--num_epochs', type=int, default=300,
                   help='the authors\' loop runs 301 epochs (0..300): pass 301 to match it')
    p.add_argument('--warm_up', type=int, default=None, help='default 10 (C10) / 30 (C100)')
    p.add_argument('--batch_size', type=int, default=64, help='labeled = unlabeled batch B')
    p.add_argument('--lr', '--learning_rate', type=float, default=0.02)
    p.add_argument('--lr_drop_epoch', type=int, default=150, help='lr / 10 from this epoch')
    p.add_argument('--momentum', type=float, default=0.9)
    p.add_argument('--weight_decay', type=float, default=5e-4)
    # DivideMix (Sec. 3, Appendix B)
    p.add_argument('--lambda_u', type=float, default=None, help='default: Table 7')
    p.add_argument('--p_threshold', type=float, default=None,
                   help='clean probability threshold tau (default: 0.5, 0.6 at 90%% noise)')
    p.add_argument('--T', type=float, default=0.5, help='sharpening temperature')
    p.add_argument('--alpha', type=float, default=4, help='Beta(alpha, alpha) of mixup')
    p.add_argument('--rampup_epochs', type=int, default=16,
                   help='lambda_u ramps up linearly over this many epochs after warm-up')
    p.add_argument('--loss_history', type=int, default=None,
                   help='GMM on the mean normalised loss of this many epochs (default 5 at '
                        '90%% noise or more, else 1)')
    p.add_argument('--gmm_max_iter', type=int, default=10)
    p.add_argument('--gmm_tol', type=float, default=1e-2)
    p.add_argument('--gmm_reg_covar', type=float, default=5e-4)
    # model, quick runs, machine
    p.add_argument('--num_class', type=int, default=None, help='follows --dataset')
    p.add_argument('--width', type=int, default=64, help='PreAct-ResNet18 base width')
    p.add_argument('--num_train', type=int, default=None,
                   help='use only the first N training images (quick runs)')
    p.add_argument('--num_test', type=int, default=None,
                   help='use only the first N test images (quick runs)')
    p.add_argument('--num_workers', type=int, default=4)
    p.add_argument('--gpuid', type=int, default=0)
    p.add_argument('--out_dir', default='checkpoint')
    p.add_argument('--resume', action='store_true',
                   help='continue the run in --out_dir from its latest checkpoint')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    return p.parse_args(argv)


def complete_args(args):
    """Check the arguments and fill in the per-cell defaults; print what was chosen."""
    if not 0 <= args.r <= 1:
        raise InputError('--r %g is outside [0, 1]: give the noise ratio as a fraction, e.g. '
                         '--r 0.5' % args.r)
    if args.num_class not in (None, NUM_CLASSES[args.dataset]):
        raise InputError('--num_class %d disagrees with --dataset %s (%d classes): drop '
                         '--num_class' % (args.num_class, args.dataset, NUM_CLASSES[args.dataset]))
    for name in ('num_train', 'num_test'):
        if getattr(args, name) is not None and getattr(args, name) < 1:
            raise InputError('--%s must be a positive number of images' % name)
    args.num_class = NUM_CLASSES[args.dataset]
    args.data_path = args.data_path or ('./cifar-10' if args.dataset == 'cifar10'
                                        else './cifar-100')
    args.warm_up = args.warm_up if args.warm_up is not None else (
        10 if args.dataset == 'cifar10' else 30)
    args.loss_history = args.loss_history or (5 if args.r >= 0.9 else 1)
    lambda_u, p_threshold, in_paper = paper_settings(args.dataset, args.noise_mode, args.r)
    if args.lambda_u is None or args.p_threshold is None:
        print('%s %s %g%%: %s' % (args.dataset, args.noise_mode, 100 * args.r,
                                  'Table 7 settings' if in_paper else
                                  'not a paper cell, the authors\' code defaults'))
    args.lambda_u = lambda_u if args.lambda_u is None else args.lambda_u
    args.p_threshold = p_threshold if args.p_threshold is None else args.p_threshold
    print('lambda_u=%g  p_threshold=%g  warm_up=%d  loss_history=%d  epochs=%d'
          % (args.lambda_u, args.p_threshold, args.warm_up, args.loss_history, args.num_epochs))
    return args


def main(argv=None):
    args = complete_args(parse_args(argv))
    init_distributed()  # under torchrun: one process per GPU, each with both networks
    run_name = '%s_%.1f_%s' % (args.dataset, args.r, args.noise_mode)
    log = RunLog(args.out_dir, run_name, {'acc': '_acc.txt', 'stats': '_stats.txt'})
    checkpoint = log.check(args)  # refuses to overwrite a run; with --resume, its checkpoint
    seed_everything(args.seed)
    device = pick_device(args.gpuid)

    # ---- data: loaded once; noisy labels from the noise file, generated the authors' way
    train_images, clean_labels, test_images, test_labels = load_cifar(
        args.data_path, args.dataset, args.download)
    for name, limit, total in (('num_train', args.num_train, len(clean_labels)),
                               ('num_test', args.num_test, len(test_labels))):
        if limit is not None and limit > total:
            raise InputError('--%s %d is more than the %d images there are'
                             % (name, limit, total))
    train_images, clean_labels = train_images[:args.num_train], clean_labels[:args.num_train]
    test_images, test_labels = test_images[:args.num_test], test_labels[:args.num_test]
    noisy_labels, noise_path = noisy_labels_for(clean_labels, args)
    is_clean = np.asarray(noisy_labels) == clean_labels
    if checkpoint is not None and checkpoint['noisy_labels'] != labels_digest(noisy_labels):
        raise InputError('the noisy labels in %s differ from those the run in %s started with: '
                         'restore that noise file' % (noise_path, args.out_dir))
    print('%d training images, %.2f%% of labels noisy (%s); %d test images'
          % (len(clean_labels), 100 * (1 - is_clean.mean()), noise_path, len(test_labels)))
    loaders = CIFARLoaders(args.dataset, train_images, noisy_labels, test_images, test_labels,
                           args.batch_size, args.num_workers)
    warmup_loader, eval_loader, test_loader = loaders.warmup(), loaders.eval_train(), loaders.test()

    # ---- two networks, each with its own optimizer
    def make_net():
        return ResNet18(args.num_class, args.width).to(device)

    def make_optimizer(net):
        return torch.optim.SGD(net.parameters(), lr=args.lr, momentum=args.momentum,
                               weight_decay=args.weight_decay)

    net1, net2 = make_net(), make_net()
    optimizer1, optimizer2 = make_optimizer(net1), make_optimizer(net2)
    loss_history = ([], [])  # per network: normalised per-sample losses of the last epochs
    gmm_kwargs = dict(max_iter=args.gmm_max_iter, tol=args.gmm_tol, reg_covar=args.gmm_reg_covar)
    log.begin(args, checkpoint)
    parts = {'net1': net1, 'net2': net2, 'optimizer1': optimizer1, 'optimizer2': optimizer2}
    start_epoch = restore(checkpoint, parts, log.last_path)
    if checkpoint is not None:
        for history, saved in zip(loss_history, checkpoint['loss_history']):
            history.extend(saved)
    net1, net2 = wrap_ddp(net1, device), wrap_ddp(net2, device)

    # ---- Algorithm 1
    for epoch in range(start_epoch, args.num_epochs):
        start = time.time()
        lr = args.lr if epoch < args.lr_drop_epoch else args.lr / 10
        dm.set_lr(optimizer1, lr)
        dm.set_lr(optimizer2, lr)
        record = {'epoch': epoch, 'lr': lr}
        banner = '%s:%.1f-%s | Epoch [%3d/%3d]' % (args.dataset, args.r, args.noise_mode,
                                                   epoch, args.num_epochs)
        if epoch < args.warm_up:
            # Warm-up on all data; the confidence penalty only for asymmetric noise (Sec. 3.1).
            for name, net, optimizer in (('net1', net1, optimizer1), ('net2', net2, optimizer2)):
                ce = dm.warmup_epoch(net, optimizer, warmup_loader, device,
                                     confidence_penalty=args.noise_mode == 'asym',
                                     label='%s Warmup %s' % (banner, name))
                record[name] = {'warmup_ce': ce}
        else:
            # Co-divide (lines 4-5): each network's GMM divides the data for the other one.
            clean_prob1 = dm.co_divide(net1, eval_loader, loss_history[0], args.loss_history,
                                       device, **gmm_kwargs)
            clean_prob2 = dm.co_divide(net2, eval_loader, loss_history[1], args.loss_history,
                                       device, **gmm_kwargs)
            # Lines 6-30: net1 trains on net2's division with net2 co-guessing, then vice versa.
            for name, net, partner, optimizer, clean_prob in (
                    ('net1', net1, net2, optimizer1, clean_prob2),
                    ('net2', net2, net1, optimizer2, clean_prob1)):
                labeled = clean_prob > args.p_threshold  # authors' strict '>' (paper: >=)
                stats = dm.division_stats(clean_prob, labeled, is_clean)
                log.write('stats', 'Numer of labeled samples:%d   AUC:%.3f\n'
                          % (stats['labeled'], stats['auc']))
                labeled_loader, unlabeled_loader = loaders.train(labeled, clean_prob)
                if labeled_loader is None:
                    print('\n%s: no sample has clean probability > %g; %s skips this epoch'
                          % (banner, args.p_threshold, name))
                    record[name] = stats
                    continue
                loss_x, loss_u = dm.ssl_epoch(
                    net, partner, optimizer, labeled_loader, unlabeled_loader, epoch=epoch,
                    num_class=args.num_class, warm_up=args.warm_up, lambda_u=args.lambda_u,
                    rampup_epochs=args.rampup_epochs, T=args.T, alpha=args.alpha,
                    device=device, label='%s Train %s' % (banner, name))
                record[name] = dict(stats, loss_x=loss_x, loss_u=loss_u)

        record['test_acc'], record['net1_acc'], record['net2_acc'] = dm.test_ensemble(
            net1, net2, test_loader, device)
        record['seconds'] = time.time() - start
        log.write('acc', 'Epoch:%d   Accuracy:%.2f\n' % (epoch, record['test_acc']))
        log.epoch(record, score=record['test_acc'])
        log.save({'epoch': epoch, **state_of(parts),
                  'loss_history': loss_history, 'rng': rng_state(), 'args': vars(args),
                  'noisy_labels': labels_digest(noisy_labels), 'noise_file': noise_path})
        print('\r%s  test acc %.2f%% (net1 %.2f, net2 %.2f)  %s  %.1f s'
              % (banner, record['test_acc'], record['net1_acc'], record['net2_acc'],
                 '  '.join(_division_summary(record, n) for n in ('net1', 'net2')),
                 record['seconds']))

    summary = log.summary()
    print('best %.2f%%  last-10 mean %.2f%%  (%s)'
          % (summary['best'], summary['last10'], log.jsonl_path))
    return summary


def _division_summary(record, name):
    r = record.get(name, {})
    if 'labeled' not in r:
        return '%s CE %.3f' % (name, r.get('warmup_ce', float('nan')))
    return '%s labeled %d AUC %.3f' % (name, r['labeled'], r['auc'])


if __name__ == '__main__':
    sys.exit(run_cli(main))
