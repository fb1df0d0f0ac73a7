"""tools/benchmark_speed.py on a tiny fake CIFAR-10: it runs Train_cifar.py's own epochs and
leaves Train_cifar.ssl_step as it found it."""
import pytest
import torch

import Train_cifar
from tools import benchmark_speed


@pytest.mark.slow
def test_benchmark_prints_every_stage(cifar10_dir, capsys):
    ssl_step = Train_cifar.ssl_step
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: more threads only wait for each other
    try:
        benchmark_speed.main(['--data_path', cifar10_dir, '--num_train', '64', '--num_test', '50',
                              '--batch_size', '32', '--width', '8', '--paths', 'plain', 'fast',
                              '--num_workers', '0'])
    finally:
        torch.set_num_threads(threads)
    rows = capsys.readouterr().out.split('\nstage')[1].splitlines()[1:]
    assert [row[:20].strip() for row in rows] == [
        'warm-up epoch', 'co-divide', 'SSL training', 'SSL step', 'rest', 'test', 'SSL epoch']
    assert all(row.endswith('x') for row in rows)  # both paths timed: fast/plain on every row
    assert Train_cifar.ssl_step is ssl_step  # the timing wrapper is gone


def test_timed_step_is_removed_after_an_error():
    ssl_step = Train_cifar.ssl_step
    timer = benchmark_speed.StageTimer(torch.device('cpu'))
    with pytest.raises(RuntimeError):
        with benchmark_speed.timed_ssl_step(timer):
            assert Train_cifar.ssl_step is not ssl_step
            raise RuntimeError('an epoch that fails')
    assert Train_cifar.ssl_step is ssl_step
