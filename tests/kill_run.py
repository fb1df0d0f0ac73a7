"""Run Train_cifar.py in this process and stop it at a chosen point, for the resume tests.

    python tests/kill_run.py POINT N [train arguments...]

POINT (the N-th time the point is reached):
  ssl_step          SIGKILL in the middle of an SSL epoch
  log_written       SIGKILL after an epoch's logs are written, before its checkpoint
  checkpoint_write  SIGKILL halfway through writing a checkpoint file
  before_best       SIGKILL after a checkpoint is saved (between epochs), before its copy to
                    the best one
  sigterm           SIGTERM to itself in the middle of an SSL epoch
"""
import os
import signal
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


if point == 'ssl_step':
    patch(dividemix, 'dividemix_loss', before=lambda *a: kill())
elif point == 'sigterm':
    patch(dividemix, 'dividemix_loss', before=lambda *a: kill(signal.SIGTERM))
elif point == 'log_written':
    patch(RunLog, 'epoch', after=kill)
elif point == 'checkpoint_write':
    patch(utils.checkpoint, 'atomic_write', before=half_write_then_kill)
elif point == 'before_best':
    patch(RunLog, '_copy_last_to_best', before=lambda *a: kill())
else:
    sys.exit('unknown point %s' % point)
sys.exit(run_cli(Train_cifar.main, argv))
