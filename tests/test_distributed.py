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


def torchrun_until_saved(tmp_path, num_epochs=4):
    """A 2-process torchrun of Train_cifar.py in a session of its own, returned once its first
    checkpoint is on disk: (process, its arguments, the checkpoint's path)."""
    import time
    write_fake_cifar(str(tmp_path / 'data'), 'cifar10')
    argv = ['--data_path', str(tmp_path / 'data'), '--out_dir', str(tmp_path / 'out'),
            '--width', '8', '--num_epochs', str(num_epochs), '--warm_up', '1',
            '--batch_size', '16', '--num_workers', '0', '--no-figures']
    process = subprocess.Popen(
        [sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2',
         '--master_port', str(free_port()), os.path.join(ROOT, 'Train_cifar.py')] + argv,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env=dict(os.environ, OMP_NUM_THREADS='1'))
    last = tmp_path / 'out' / 'cifar10_0.5_sym_last.pth'
    deadline = time.time() + 240
    while not last.exists() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert last.exists() and process.poll() is None
    return process, argv, last


def the_advised_command_resumes(err, argv, tmp_path):
    """The stop line's command, run as it says (torchrun on a free port): the run ends."""
    line, = [line for line in err.splitlines()
             if line.startswith(('stopped by SIGTERM', 'error: another process'))]
    command = line.split('continue with  ', 1)[1]
    assert command == 'torchrun --nproc_per_node=2 %s %s --resume' % (
        os.path.join(ROOT, 'Train_cifar.py'), ' '.join(argv))
    words = command.split()
    done = subprocess.run([sys.executable, '-m', 'torch.distributed.run', words[1],
                           '--master_port', str(free_port())] + words[2:], capture_output=True,
                          text=True, env=dict(os.environ, OMP_NUM_THREADS='1'), timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    with open(tmp_path / 'out' / 'cifar10_0.5_sym.jsonl') as f:
        epochs = [json.loads(line).get('epoch') for line in f]
    assert epochs == [0, 1, 2, 3, None]  # each epoch once


def test_a_stopped_torchrun_advises_the_torchrun_that_resumes_it(tmp_path):
    import signal
    process, argv, _ = torchrun_until_saved(tmp_path)
    process.send_signal(signal.SIGTERM)  # to the launcher, as a scheduler or Ctrl-C would
    _, err = process.communicate(timeout=120)
    assert err.count('stopped by SIGTERM from torchrun') == 1, err[-3000:]
    the_advised_command_resumes(err, argv, tmp_path)


def test_a_killed_process_is_one_line_from_the_run_and_resumes(tmp_path):
    # torchrun sees a process die and stops the others: one of them (the lowest rank still
    # running; rank 0, the one that speaks for the run, is the one killed) says so in one
    # line, with the command that continues the run
    killed = 0
    import signal
    process, argv, _ = torchrun_until_saved(tmp_path)
    ranks = subprocess.run(['pgrep', '-P', str(process.pid)], capture_output=True, text=True)
    pids = sorted(int(pid) for pid in ranks.stdout.split())
    assert len(pids) == 2  # the agent's two workers, rank 0 started first
    os.kill(pids[killed], signal.SIGKILL)
    _, err = process.communicate(timeout=120)
    assert process.returncode != 0
    # gloo's collectives fail at once ('another process of this run ended'); a process still
    # computing gets torchrun's SIGTERM first
    said = [line for line in err.splitlines()
            if line.startswith(('stopped by SIGTERM from torchrun', 'error: another process '
                                                                  'of this run ended'))]
    # (torchrun's own report follows: a traceback of its ChildFailedError and the failures)
    assert len(said) == 1 and '[rank' not in err, err[-3000:]
    the_advised_command_resumes(err, argv, tmp_path)
