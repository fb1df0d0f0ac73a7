"""The command line: one-line errors instead of tracebacks, SIGTERM/SIGINT turned into a clean
stop that says how to resume, and the progress line of an epoch."""
import argparse
import os
import shlex
import signal
import sys

import torch
import torch.distributed as dist

from utils.distributed import is_main


class InputError(ValueError):
    """Bad input (arguments, data, files): the message is one line that says what to fix."""


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what happened."""


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2."""

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; raised in the main process wherever it is."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def stop_on_signals():
    """Turn SIGTERM/SIGINT into Interrupted in this process (not in data-loading workers, which
    the main process shuts down). The epoch in progress is dropped; every finished epoch is
    already in the checkpoint, written atomically, so the run resumes exactly."""
    main_pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() == main_pid:
            raise Interrupted(signum)
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_cli(main, argv=None):
    """Run main(argv) as a command. Bad input and a diverging run become one line on stderr and
    exit code 2 instead of a traceback (--debug shows it); SIGTERM/SIGINT stop the run with a
    line that says how to resume it, and exit code 128 + signal number."""
    argv = sys.argv[1:] if argv is None else list(argv)
    stop_on_signals()
    try:
        main(argv)
    except (InputError, TrainingError) as e:
        if '--debug' in argv:
            raise
        # An error raised in a data-loading worker arrives wrapped in that worker's traceback,
        # whose last line is 'module.ErrorName: message'.
        message = (str(e).strip().splitlines() or [type(e).__name__])[-1]
        wrapped = '%s.%s: ' % (type(e).__module__, type(e).__name__)
        if is_main():  # under torchrun every process meets the same error: one line, not N
            print('error: ' + message.removeprefix(wrapped), file=sys.stderr)
        return 2
    except Interrupted as e:
        command = ' '.join(shlex.quote(a) for a in ['python', sys.argv[0]] + argv
                           + ([] if '--resume' in argv else ['--resume']))
        if is_main():
            print('\nstopped by %s; finished epochs are saved: continue with  %s'
                  % (e, command), file=sys.stderr)
        return 128 + e.signum
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def check_finite(total, what):
    """Stop the run with one line when an epoch's summed loss is NaN or infinite."""
    if not torch.isfinite(total):
        raise TrainingError('non-finite %s loss: lower --lr or check the data' % what)


def show_progress(line, *values):
    """`line % values` rewritten in place on a terminal; nothing when the output is a file, nor
    on the other processes under torch.distributed. Tensors among the values are read only
    then, so a GPU is not made to wait for a line nobody sees."""
    if sys.stdout.isatty() and is_main():
        values = tuple(v.item() if torch.is_tensor(v) else v for v in values)
        sys.stdout.write('\r' + line % values)
        sys.stdout.flush()


def progress_bar(done, total, width=20):
    """'[######--------------]' for `done` of `total` steps."""
    filled = min(width, width * done // max(total, 1))
    return '[' + '#' * filled + '-' * (width - filled) + ']'
