"""Time the plain and the fast path of Train_cifar.py side by side, in one run on one machine.

    python tools/benchmark_speed.py --data_path ./cifar-10 --num_train 2000 --width 64
    python tools/benchmark_speed.py --data_path ./cifar-10 --num_train 50000 \
        --paths plain fast compile

Per path, with the same seed and data, Train_cifar.py's own epochs: one warm-up epoch of both
networks, then one SSL epoch (co-divide of both networks, training of each on the other's
division, test of the ensemble). SSL training is broken down into the SSL step (the time inside
Train_cifar.ssl_step: co-guessing, co-refinement, mixup, forward-backward and the optimizer step;
Alg. 1 lines 12-29) and the rest (loading and augmenting batches, the mixup draws). The division
is fixed to the true clean set, so every path trains the same number of steps. Prints seconds,
images per second and the ratio to the first path, and the machine.

Paths: plain (--plain: PIL transforms in DataLoader workers, fp32), fast (the default of
Train_cifar.py: the dataset on the device, batched augmentation, channels_last, bf16 autocast
where the device has bf16 units, on one GPU the training steps replayed as CUDA graphs), eager
(fast without the CUDA graphs), compile (fast with --compile instead of the graphs),
views_apart (fast with the trained network's four no-grad passes of a step as four calls, as
before utils.speed.per_view made them one on a GPU).
On a GPU each stage runs once untimed first on a subset (cuDNN autotuning; compile: on all
images, since compiled code recompiles for every new batch shape), and the breakdown is timed
in a further pass, since the waits it needs around every step slow the GPU down (the parts are
scaled to the unbroken pass's total); on a CPU the one timed pass gives both. A path that
replays CUDA graphs gets no breakdown: a timed step, which waits for the GPU, cannot be captured.
"""
import collections
import contextlib
import json
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
import dividemix as dm  # noqa: E402 (after the path line above)
import Train_cifar  # noqa: E402
from dataloader_cifar import (CIFARLoaders, DeviceCIFARLoaders, load_cifar,  # noqa: E402
                              make_noisy_labels)
from PreResNet import ResNet18  # noqa: E402
from utils.checkpoint import atomic_write, seed_everything  # noqa: E402
from utils.cli import (ArgumentParser, InputError, Range, at_least, check_args,  # noqa: E402
                       run_cli)
from utils.distributed import pick_device, release_output  # noqa: E402
from utils.speed import has_bf16, prepare, use_cuda_graphs  # noqa: E402


class StageTimer:
    """Seconds per named stage; waits for the GPU at each boundary so asynchronous work is
    charged to the stage that queued it."""

    def __init__(self, device):
        self.device, self.seconds = device, collections.defaultdict(float)

    def sync(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize(self.device)

    @contextlib.contextmanager
    def __call__(self, stage):
        self.sync()
        start = time.perf_counter()
        yield
        self.sync()
        self.seconds[stage] += time.perf_counter() - start


@contextlib.contextmanager
def timed_ssl_step(timer):
    """Within the block, every call of Train_cifar.ssl_step is charged to timer('SSL step')."""
    ssl_step = Train_cifar.ssl_step

    def timed(*args, **kwargs):
        with timer('SSL step'):
            return ssl_step(*args, **kwargs)

    # Set on the module, not passed in: ssl_epoch looks its step up there at each epoch, so
    # the algorithm carries no timer.
    Train_cifar.ssl_step = timed
    try:
        yield
    finally:
        Train_cifar.ssl_step = ssl_step


def machine(device):
    if device.type == 'cuda':
        return '%s, torch %s' % (torch.cuda.get_device_name(device), torch.__version__)
    cpu = platform.processor() or platform.machine()
    try:
        with open('/proc/cpuinfo') as f:
            cpu = next(line.split(':', 1)[1].strip() for line in f if 'model name' in line)
    except (OSError, StopIteration):
        pass
    return '%s, %d threads, torch %s' % (cpu, torch.get_num_threads(), torch.__version__)


def run_path(path, args, train_args, data, device):
    """Time one path with Train_cifar.py's epochs under `train_args`; returns {stage: seconds}."""
    train_images, noisy, is_clean, test_images, test_labels = data
    seed_everything(args.seed)
    clean_prob = np.where(is_clean, np.random.uniform(0.5, 1, len(noisy)), 0.1)
    nets = [prepare(ResNet18(10, args.width).to(device), device, path != 'plain',
                    path == 'compile') for _ in range(2)]
    if path == 'views_apart':
        for net in nets:
            net.views_in_one_call = False
    graphs = use_cuda_graphs(path in ('fast', 'views_apart'), device, path != 'plain',
                             path == 'compile')
    optimizers = [torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
                  for net in nets]

    def loaders_for(n):  # the first n training images
        if path == 'plain':
            loaders = CIFARLoaders('cifar10', train_images[:n], noisy[:n], test_images,
                                   test_labels, args.batch_size, args.num_workers)
        else:
            loaders = DeviceCIFARLoaders('cifar10', train_images[:n], noisy[:n], test_images,
                                         test_labels, args.batch_size, device)
        return loaders, is_clean[:n], clean_prob[:n]

    def warmup(data):
        loader = data[0].warmup()
        for net, optimizer in zip(nets, optimizers):
            Train_cifar.warmup_epoch(net, optimizer, loader, device, confidence_penalty=False,
                                     cuda_graphs=graphs, label='warm-up', args=train_args)

    def co_divide(data):
        loader = data[0].eval_train()
        for net in nets:
            dm.co_divide(net, loader, [], device, train_args)

    def ssl(data):
        loaders, labeled, prob = data
        for net, partner, optimizer in ((nets[0], nets[1], optimizers[0]),
                                        (nets[1], nets[0], optimizers[1])):
            labeled_loader, unlabeled_loader = loaders.train(labeled, prob)
            Train_cifar.ssl_epoch(net, partner, optimizer, labeled_loader, unlabeled_loader,
                                  epoch=train_args.warm_up + 10, device=device, args=train_args,
                                  cuda_graphs=graphs, label='SSL')  # mid lambda_u ramp-up

    def test(data):
        dm.test_ensemble(nets[0], nets[1], data[0].test(), device)

    full = loaders_for(len(noisy))
    gpu = device.type == 'cuda'
    # Compiled code recompiles for every new batch shape, so only a full pass warms it up.
    warm = full if path == 'compile' else loaders_for(min(args.gpu_warm_images, len(noisy)))
    seconds = {}
    for stage, run in (('warm-up epoch', warmup), ('co-divide', co_divide),
                       ('SSL training', ssl), ('test', test)):
        if gpu:
            run(warm)  # cuDNN autotuning, compilation, CUDA graph capture
        # the breakdown times eager steps: none for a path that replays CUDA graphs
        breakdown = stage == 'SSL training' and not args.no_breakdown and not graphs
        timer = StageTimer(device)
        # on a CPU the timed pass also gives the breakdown; on a GPU a further pass does
        timing = timed_ssl_step(timer) if breakdown and not gpu else contextlib.nullcontext()
        with timing, timer('total'):
            run(full)
        seconds[stage] = timer.seconds['total']
        if breakdown:
            if gpu:  # the waits around every step slow the GPU down: not in the timed pass
                timer = StageTimer(device)
                with timed_ssl_step(timer), timer('total'):
                    run(full)
            step = timer.seconds['SSL step'] * seconds[stage] / timer.seconds['total']
            seconds['  SSL step'], seconds['  rest'] = step, seconds[stage] - step
    seconds['SSL epoch'] = seconds['co-divide'] + seconds['SSL training'] + seconds['test']
    return seconds


def check_options(args, parser):
    """Refuse what means nothing before the data is read or anything is timed."""
    check_args(args, parser.rules)
    if len(set(args.paths)) < len(args.paths):
        raise InputError('--paths %s: a path named twice is timed once' % ' '.join(args.paths))
    if args.json is not None:
        if os.path.lexists(args.json):
            raise InputError('%s exists and is never overwritten: give --json another file name,'
                             ' or move it away' % args.json)
        folder = os.path.dirname(os.path.abspath(args.json))
        if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
            raise InputError('cannot write into %s: give --json a file in a writable folder'
                             % folder)
    if not os.path.isdir(args.data_path):
        raise InputError('--data_path %s is not a folder: give the folder holding the CIFAR-10 '
                         'pickles' % args.data_path)
    return args


def main(argv=None):
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data_path', default='./cifar-10')
    p.add_argument('--num_train', type=int, default=2000,
                   check=at_least(2))  # the division's mixture needs two losses
    p.add_argument('--num_test', type=int, default=1000, check=at_least(1))
    p.add_argument('--width', type=int, default=64, check=at_least(1))
    p.add_argument('--batch_size', type=int, default=64, check=at_least(1))
    p.add_argument('--r', type=float, default=0.5, check=Range(0, 1), help='sym noise ratio')
    p.add_argument('--paths', nargs='+', default=['plain', 'fast'],
                   choices=['plain', 'eager', 'fast', 'compile', 'views_apart'])
    p.add_argument('--no_breakdown', action='store_true',
                   help='on a GPU, skip the extra pass that breaks the SSL training time down')
    p.add_argument('--num_workers', type=int, default=4, check=at_least(0),
                   help="the plain path's workers")
    p.add_argument('--seed', type=int, default=123, check=Range(0, 2**32 - 1))
    p.add_argument('--gpu_warm_images', type=int, default=4096, check=at_least(1),
                   help='on a GPU, each stage first runs untimed on this many images')
    p.add_argument('--json', default=None,
                   help='also write the numbers to this new file (never overwritten)')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = check_options(p.parse_args(argv), p)
    release_output()  # the options are good: what the timed runs say comes as it is said

    device = pick_device(0)
    train_images, clean, test_images, test_labels = load_cifar(args.data_path, 'cifar10', False)
    train_images, clean = train_images[:args.num_train], np.asarray(clean[:args.num_train])
    noisy = np.asarray(make_noisy_labels(clean, args.r, 'sym', 10, seed=args.seed))
    data = (train_images, noisy, noisy == clean, test_images[:args.num_test],
            test_labels[:args.num_test])
    # Train_cifar.py's defaults for this noise: lambda_u, T, alpha, warm-up, ramp-up, co-divide
    train_args = Train_cifar.complete_args(Train_cifar.parse_args(['--r', str(args.r)]))
    results = {path: run_path(path, args, train_args, data, device) for path in args.paths}

    labeled = int((noisy == clean).sum())
    images = {'warm-up epoch': 2 * len(noisy), 'co-divide': 2 * len(noisy),
              'SSL training': 2 * labeled, 'test': len(data[4]), 'SSL epoch': 2 * labeled}
    print('\n%s; %d training images (%d labeled), width %d, batch %d; bf16 on this device: %s'
          % (machine(device), len(noisy), labeled, args.width, args.batch_size,
             'yes' if has_bf16(device) else 'no'))
    header = '%-20s' % 'stage' + ''.join('%12s s %9s' % (path, 'img/s') for path in args.paths)
    print(header + ''.join('  %s/%s' % (path, args.paths[0]) for path in args.paths[1:]))
    for stage in max(results.values(), key=len):
        row = '%-20s' % stage
        for path in args.paths:
            s = results[path].get(stage)
            row += ('%14s %9s' % ('', '') if s is None else
                    '%14.2f %9s' % (s, '%.0f' % (images[stage] / s) if stage in images else ''))
        base = results[args.paths[0]].get(stage)
        row += ''.join('  %8.2fx' % (base / results[path][stage]) if base and stage in
                       results[path] else '' for path in args.paths[1:])
        print(row)
    if args.json:
        text = json.dumps({'machine': machine(device), 'args': vars(args), 'seconds': results,
                           'images': images}, indent=1)
        atomic_write(lambda f: f.write(text.encode()), args.json)  # checked new at the start


if __name__ == '__main__':
    sys.exit(run_cli(main))
