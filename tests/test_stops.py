"""A stop (SIGTERM, Ctrl-C) is the run's one line wherever it lands. Arriving while a run writes
a file, it is held until the file is whole: raised inside torch.save's C++ writer, it came out
as torch's RuntimeError and a traceback (utils.cli.stops_held around every atomic write).
Dropped by Python where it was raised (a __del__, a fork hook), it is raised again at the next
training step, and an error that follows a stop is reported as the stop. The end-to-end cases
(a stop inside a checkpoint write, in a fork hook, sent to the process group with loader
workers) are in test_resume.py."""
import os
import signal

import pytest
import torch

from utils.checkpoint import atomic_save, atomic_write
from utils.cli import run_cli, stops_held
from utils.progress import Progress


@pytest.fixture(autouse=True)
def own_signal_handlers():
    """run_cli installs the run's handlers in this process: put pytest's back after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT,
                                                    signal.SIGCHLD)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


class StopOnWrite:
    """A binary file that sends `sig` to this process as its `nth` write begins."""

    def __init__(self, file, sig, nth=2):
        self.file, self.sig, self.nth, self.writes = file, sig, nth, 0

    def write(self, data):
        self.writes += 1
        if self.writes == self.nth:
            os.kill(os.getpid(), self.sig)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


STATE = {'w': torch.arange(20000.).reshape(200, 100), 'epoch': 3}


@pytest.mark.parametrize('sig', [signal.SIGTERM, signal.SIGINT], ids=['SIGTERM', 'SIGINT'])
def test_a_stop_inside_torch_save_comes_once_the_file_is_whole(sig, tmp_path, capsys):
    path = str(tmp_path / 'run_last.pth')
    after = []

    def main(argv):
        atomic_write(lambda f: torch.save(STATE, StopOnWrite(f, sig)), path)
        after.append('went on')  # the stop is raised as the write ends: nothing after it runs
    assert run_cli(main, []) == 128 + sig
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('stopped by %s' % signal.Signals(sig).name)
    assert after == []
    saved = torch.load(path, weights_only=True)
    assert torch.equal(saved['w'], STATE['w']) and saved['epoch'] == 3
    assert os.listdir(tmp_path) == ['run_last.pth']  # no temporary file left


def test_stops_held_in_nested_writes_come_at_the_outermost_end(tmp_path, capsys):
    inner, outer = str(tmp_path / 'inner.bin'), str(tmp_path / 'outer.bin')
    order = []

    def write_outer(f):
        atomic_write(lambda g: StopOnWrite(g, signal.SIGTERM, nth=1).write(b'inner'), inner)
        order.append('inner written')  # still held: the outer write goes on
        f.write(b'outer')

    def main(argv):
        atomic_write(write_outer, outer)
        order.append('went on')
    assert run_cli(main, []) == 128 + signal.SIGTERM
    assert order == ['inner written']
    assert open(inner, 'rb').read() == b'inner' and open(outer, 'rb').read() == b'outer'
    assert 'stopped by SIGTERM' in capsys.readouterr().err


def test_a_write_that_fails_while_a_stop_is_held_says_its_own_line(tmp_path, capsys):
    # The stop came, then the write failed: the failure is what the user must fix.
    path = str(tmp_path / 'run_last.pth')

    def fail_after_a_stop(f):
        StopOnWrite(f, signal.SIGTERM, nth=1).write(b'part')
        raise OSError(28, 'No space left on device')

    def main(argv):
        atomic_write(fail_after_a_stop, path)
    assert run_cli(main, []) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and 'No space left on device' in err[0] and path in err[0]
    assert os.listdir(tmp_path) == []


def test_without_a_stop_held_nothing_is_raised_and_a_stop_outside_is_not_held(tmp_path,
                                                                               capsys):
    path = str(tmp_path / 'a.pth')

    def main(argv):
        atomic_save(STATE, path)
        with stops_held():
            pass  # no stop came: the block ends quietly
        os.kill(os.getpid(), signal.SIGTERM)  # outside a write: raised at once
        raise AssertionError('not reached')
    assert run_cli(main, []) == 128 + signal.SIGTERM
    assert torch.load(path, weights_only=True)['epoch'] == 3


class StopOnDelete:
    """An object whose __del__ sends SIGTERM to this process: the stop is raised inside it,
    where Python drops exceptions."""

    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)


def test_a_stop_dropped_in_a_del_is_raised_at_the_next_training_step(capsys):
    steps = []

    def main(argv):
        StopOnDelete()  # deleted at once: the stop is dropped there
        steps.append('after the drop')
        progress = Progress('net1', 10)
        for step in range(10):
            progress.update(64)
            steps.append(step)
    assert run_cli(main, []) == 128 + signal.SIGTERM
    assert steps == ['after the drop']  # stopped at the first step
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('stopped by SIGTERM'), err  # no "ignored"


def test_an_error_after_a_dropped_stop_is_said_as_the_stop(capsys):
    # e.g. the loader workers the stop ended: "DataLoader worker ... exited unexpectedly"
    def main(argv):
        StopOnDelete()
        raise RuntimeError('DataLoader worker (pid(s) 123) exited unexpectedly')
    assert run_cli(main, []) == 128 + signal.SIGTERM
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('stopped by SIGTERM'), err


def test_a_stop_is_taken_once_the_next_run_in_the_process_starts_afresh(capsys):
    def stopped(argv):
        StopOnDelete()
        Progress('net1', 1).update(64)

    def finishes(argv):
        Progress('net1', 1).update(64)
    assert run_cli(finishes, []) == 0  # puts back what a run stopped before replaced
    sigchld = signal.getsignal(signal.SIGCHLD)
    assert run_cli(stopped, []) == 128 + signal.SIGTERM
    assert signal.getsignal(signal.SIGCHLD) is not sigchld  # the workers' end is the stop's
    assert run_cli(finishes, []) == 0
    assert signal.getsignal(signal.SIGCHLD) is sigchld  # the loaders' own handler is back
