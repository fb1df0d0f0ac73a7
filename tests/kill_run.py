"""Run Train_cifar.py in this process and stop it at a chosen point, for the resume tests.

    python tests/kill_run.py POINT N [train arguments...]

POINT (the N-th time the point is reached):
  ssl_step          SIGKILL in the middle of an SSL epoch
  log_written       SIGKILL after an epoch's logs are written, before its checkpoint
  checkpoint_write  SIGKILL halfway through writing a checkpoint file
  before_best       SIGKILL after a checkpoint is saved (between epochs), before its copy to
                    the best one
  sigterm           SIGTERM to itself in the middle of an SSL epoch
  sigterm_in_save   SIGTERM to itself from inside torch.save, while it writes a _last.pth
  sigterm_in_fork   SIGTERM to itself from inside a fork hook, as a loader starts a worker
                    (Python drops an exception raised there)
  group_sigterm     SIGTERM to its whole process group (itself and its loader workers), sent
                    by another process as a scheduler does, in the middle of an SSL epoch.
                    Start it in a process group of its own.
"""
import os
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import dividemix  # noqa: E402
import utils.checkpoint  # noqa: E402
from utils.cli import run_cli  # noqa: E402
from utils.runlog import RunLog  # noqa: E402
import Train_cifar  # noqa: E402

point, target, argv = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
count = [0]


def reached():
    count[0] += 1
    return count[0] == target


def patch(owner, name, before=None, after=None):
    original = getattr(owner, name)

    def wrapped(*args, **kwargs):
        hit = reached()
        if hit and before:
            before(*args)
        out = original(*args, **kwargs)
        if hit and after:
            after()
        return out
    setattr(owner, name, wrapped)


def kill(sig=signal.SIGKILL):
    os.kill(os.getpid(), sig)


def half_write_then_kill(write, path):
    with open(path + '.tmp', 'wb') as f:
        f.write(b'PK\x03\x04 half a checkpoint')
    kill()


class SignalOnSecondWrite:
    """The file torch.save writes into, sending SIGTERM to this process as torch's C++ writer
    calls its write() a second time."""

    def __init__(self, file):
        self.file, self.writes = file, 0

    def write(self, data):
        self.writes += 1
        if self.writes == 2:
            kill(signal.SIGTERM)
        return self.file.write(data)

    def __getattr__(self, name):
        return getattr(self.file, name)


def sigterm_inside_checkpoint_save():
    original = utils.checkpoint.atomic_write

    def atomic_write(write, path, **kwargs):
        if path.endswith('_last.pth') and reached():
            return original(lambda f: write(SignalOnSecondWrite(f)), path, **kwargs)
        return original(write, path, **kwargs)
    utils.checkpoint.atomic_write = atomic_write


if point == 'ssl_step':
    patch(dividemix, 'dividemix_loss', before=lambda *a: kill())
elif point == 'sigterm':
    patch(dividemix, 'dividemix_loss', before=lambda *a: kill(signal.SIGTERM))
elif point == 'group_sigterm':
    # by `kill` in a session of its own: a loader worker that its parent stops ends quietly,
    # one that another process stops dies of it, and the run hears so through SIGCHLD
    patch(dividemix, 'dividemix_loss', before=lambda *a: subprocess.run(
        ['kill', '-s', 'TERM', '--', '-%d' % os.getpgid(0)], start_new_session=True))
elif point == 'sigterm_in_fork':
    os.register_at_fork(after_in_parent=lambda: reached() and kill(signal.SIGTERM))
elif point == 'sigterm_in_save':
    sigterm_inside_checkpoint_save()
elif point == 'log_written':
    patch(RunLog, 'epoch', after=kill)
elif point == 'checkpoint_write':
    patch(utils.checkpoint, 'atomic_write', before=half_write_then_kill)
elif point == 'before_best':
    patch(RunLog, '_copy_last_to_best', before=lambda *a: kill())
else:
    sys.exit('unknown point %s' % point)
sys.exit(run_cli(Train_cifar.main, argv))
