"""On a GPU: does replaying the SSL and warm-up steps as CUDA graphs train the same way as
eager steps? From one state and seed, train net1 for one warm-up and one SSL epoch three
times (eager, eager again, graphed) and compare: eager vs eager shows the GPU's own
run-to-run spread (atomics, cuDNN algorithm choice), eager vs graphed must be of that size.

    python results/speed/graph_check.py --data_path ./cifar-10 --num_train 10000
"""
import argparse
import copy
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))
from dataloader_cifar import DeviceCIFARLoaders, load_cifar, make_noisy_labels  # noqa: E402
from PreResNet import ResNet18  # noqa: E402
import Train_cifar  # noqa: E402
from utils.checkpoint import seed_everything  # noqa: E402
from utils.distributed import pick_device  # noqa: E402
from utils.speed import prepare  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument('--data_path', default='./cifar-10')
p.add_argument('--num_train', type=int, default=10000)
args = p.parse_args()
device = pick_device(0)
# Train_cifar.py's arguments for this cell (50% sym: lambda_u 25, warm-up 10, T 0.5, alpha 4)
settings = Train_cifar.parse_args(['--num_class', '10', '--warm_up', '10', '--lambda_u', '25'])
images, clean, _, _ = load_cifar(args.data_path, 'cifar10', False)
images, clean = images[:args.num_train], np.asarray(clean[:args.num_train])
noisy = np.asarray(make_noisy_labels(clean, 0.5, 'sym', 10, seed=123))
loaders = DeviceCIFARLoaders('cifar10', images, noisy, images[:10], clean[:10], 64, device)
torch.manual_seed(0)
start = [ResNet18(10).to(device) for _ in range(2)]


def train(graphs):
    seed_everything(1)
    nets = [prepare(copy.deepcopy(net), device) for net in start]
    opt = torch.optim.SGD(nets[0].parameters(), lr=0.02, momentum=0.9, weight_decay=5e-4)
    begin = time.time()
    ce = Train_cifar.warmup_epoch(nets[0], opt, loaders.warmup(), device, False, graphs, '',
                                  args=settings)
    labeled = noisy == clean
    prob = np.where(labeled, 0.9, 0.1)
    lx, lu = Train_cifar.ssl_epoch(nets[0], nets[1], opt, *loaders.train(labeled, prob), 20,
                                   device, settings, graphs, '')
    torch.cuda.synchronize()
    weights = torch.cat([p.detach().flatten() for p in nets[0].parameters()])
    return (ce, lx, lu), weights, time.time() - begin


a, wa, ta = train(False)
b, wb, tb = train(False)
c, wc, tc = train(True)
print('losses (warm-up CE, Lx, Lu)  eager %s  eager again %s  graphed %s'
      % tuple(' '.join('%.5f' % v for v in r) for r in (a, b, c)))
print('relative weight difference  eager vs eager %.2e   eager vs graphed %.2e'
      % ((wa - wb).norm() / wa.norm(), (wa - wc).norm() / wa.norm()))
print('seconds  eager %.1f  eager again %.1f  graphed %.1f' % (ta, tb, tc))
