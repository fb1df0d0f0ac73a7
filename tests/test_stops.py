"""A stop (SIGTERM, Ctrl-C) that arrives while a run writes a file is held until the file is
whole, then stops the run with its one line: raised inside torch.save's C++ writer, it came out
as torch's RuntimeError and a traceback (utils.cli.stops_held around every atomic write). The
end-to-end case, a stop inside a run's checkpoint write then --resume, is in test_resume.py."""
import os
import signal

import pytest
import torch

from utils.checkpoint import atomic_save, atomic_write
from utils.cli import run_cli, stops_held


@pytest.fixture(autouse=True)
def own_signal_handlers():
    """run_cli installs the run's handlers in this process: put pytest's back after."""
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
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
