"""What writing a full-width CIFAR checkpoint costs: Train_cifar.py's state (two PreAct-ResNet18s,
their SGD momentum buffers) written as RunLog.save writes it (utils.checkpoint.atomic_save: a
temporary file, fsync, rename) and copied to _best.pth; and the part the training waits for
with background saves (the copy to CPU memory, utils.runlog.cpu_copy). On the GPU when there is
one; the folder defaults to a temporary one (pass the run's --out_dir's disk to be exact).

    python results/speed/checkpoint_cost.py [--dir FOLDER] [--repeat 3]
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
from PreResNet import ResNet18  # noqa: E402
from utils.checkpoint import atomic_save, state_of  # noqa: E402
from utils.distributed import pick_device  # noqa: E402
from utils.runlog import cpu_copy  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dir', default=None)
    p.add_argument('--repeat', type=int, default=3)
    args = p.parse_args()
    device = pick_device(0)
    nets = [ResNet18(10, 64).to(device) for _ in range(2)]
    optimizers = [torch.optim.SGD(n.parameters(), lr=0.02, momentum=0.9) for n in nets]
    for net, optimizer in zip(nets, optimizers):  # momentum buffers, as after a step
        net(torch.randn(2, 3, 32, 32, device=device)).sum().backward()
        optimizer.step()
    parts = {'net1': nets[0], 'net2': nets[1], 'optimizer1': optimizers[0],
             'optimizer2': optimizers[1]}
    folder = args.dir or tempfile.mkdtemp()
    last, best = os.path.join(folder, 'ckpt_last.pth'), os.path.join(folder, 'ckpt_best.pth')
    try:
        for _ in range(args.repeat):
            start = time.time()
            state = cpu_copy(state_of(parts))
            copied = time.time()
            atomic_save(state, last)
            saved = time.time()
            shutil.copyfile(last, best)
            done = time.time()
            print('%s: %.0f MB; copy to CPU memory %.3f s, write %.2f s, copy to best %.2f s'
                  % (torch.cuda.get_device_name(device) if device.type == 'cuda' else 'CPU',
                     os.path.getsize(last) / 1e6, copied - start, saved - copied,
                     done - saved))
    finally:
        for path in (last, best):
            if os.path.exists(path):
                os.remove(path)
        if args.dir is None:
            os.rmdir(folder)


if __name__ == '__main__':
    main()
