"""torch.distributed on the CPU (gloo): every rank divides like one process would, and
2-process torchrun runs of Train_cifar.py and Train_imagefolder.py train and write their logs and
labels file once."""
import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import Train_cifar
import dividemix as dm
from conftest import ROOT, write_fake_cifar
from dataloader_cifar import CIFARLoaders, load_cifar
from PreResNet import ResNet18

pytestmark = pytest.mark.slow  # every test here starts processes and trains or divides


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def divide(data_dir):
    """Co-divide with a fixed network on the tiny data set; returns the clean probabilities."""
    torch.manual_seed(0)
    net = ResNet18(10, width=4)
    train_images, clean, test_images, test_labels = load_cifar(data_dir, 'cifar10')
    noisy = (clean + (np.arange(len(clean)) % 3 == 0)) % 10  # a third of the labels wrong
    loaders = CIFARLoaders('cifar10', train_images, noisy, test_images, test_labels, 16)
    np.random.seed(0)
    args = Train_cifar.parse_args(['--p_threshold', '0.5', '--loss_history', '1'])
    return dm.co_divide(net, loaders.eval_train(), [], torch.device('cpu'), args).clean_prob


def divide_worker(rank, world_size, port, data_dir, out):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    torch.set_num_threads(1)
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        np.save(out % rank, divide(data_dir))
    finally:
        dist.destroy_process_group()


def test_two_process_division_matches_one_process(tmp_path):
    write_fake_cifar(str(tmp_path), 'cifar10', num_train=90, num_test=10)
    single = divide(str(tmp_path))
    out = str(tmp_path / 'prob%d.npy')
    mp.spawn(divide_worker, args=(2, free_port(), str(tmp_path), out), nprocs=2)
    for rank in (0, 1):
        prob = np.load(out % rank)
        assert np.allclose(prob, single, atol=1e-4)
        assert ((prob > 0.5) == (single > 0.5)).all()


def torchrun(script, data, out, batch_size):
    """`script` under a 2-process torchrun on the CPU for 2 epochs (1 warm-up); returns its
    stdout and the records of its JSONL log (`out`/<name>.jsonl, the one log file there)."""
    cmd = [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
           '--master_port', str(free_port()), os.path.join(ROOT, script), '--data_path',
           str(data), '--out_dir', str(out), '--width', '8', '--num_epochs', '2', '--warm_up',
           '1', '--batch_size', str(batch_size), '--num_workers', '0', '--no-figures']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    # in the test's own working directory (tmp_path: tests/conftest.py), not the checkout
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count('best ') == proc.stdout.count('flagged as noisy') == 1  # rank 0
    (log,) = out.glob('*.jsonl')
    with open(log) as f:
        records = [json.loads(line) for line in f]
    assert [r.get('epoch') for r in records] == [0, 1, None]  # written once, not per rank
    return records


def test_torchrun_two_processes_end_to_end(tmp_path):
    write_fake_cifar(str(tmp_path / 'data'), 'cifar10')
    out = tmp_path / 'ckpt'
    records = torchrun('Train_cifar.py', tmp_path / 'data', out, batch_size=16)
    assert 0 < records[1]['net1']['labeled'] <= 200  # the division covers the whole data set
    ckpt = torch.load(out / 'cifar10_0.5_sym_last.pth', weights_only=True)
    assert len(ckpt['rng']) == 2 and not any(k.startswith('module.') for k in ckpt['net1'])


def test_torchrun_image_folder_end_to_end(tmp_path):
    from test_imagefolder_data import make_image_folder
    for split, count in (('train', 12), ('test', 4)):
        make_image_folder(tmp_path / 'data' / split, per_class=count, size=16)
    out = tmp_path / 'ckpt'
    records = torchrun('Train_imagefolder.py', tmp_path / 'data', out, batch_size=8)
    assert 0 < records[1]['net1']['labeled'] <= 36  # the division covers the whole folder
    with open(out / 'imagefolder_labels.csv') as f:
        rows = f.read().splitlines()[1:]
    # one row per training image, each once, in index order (rank 0 writes the whole pool)
    assert [int(r.split(',')[0]) for r in rows] == list(range(36))
