"""The command line: the arguments' rules and their one checker, one-line errors instead of
tracebacks, and SIGTERM/SIGINT turned into a clean stop that says how to resume."""
import argparse
import contextlib
import importlib
import math
import os
import signal
import sys
import threading

import torch
import torch.distributed as dist

from utils.distributed import (distributed, hold_output, is_main, launch_command, print0,
                               release_output, speaks_for_the_run)
from utils.errors import InputError, TrainingError, WriteError, one_line  # noqa: F401 (theirs)


_DEFAULT = object()  # `before` not given: runs saved before an argument existed had its default


class Declared:
    """What an argument's declaration says besides argparse's part (ArgumentParser)."""

    def __init__(self, action, check, rule, names_run, resumable, before, implies):
        self.check, self.names_run, self.resumable = check, names_run, resumable
        self.rules = tuple(rule) if isinstance(rule, (list, tuple)) else (
            (rule,) if rule is not None else ())
        self.default, self.choices = action.default, action.choices
        self.before = action.default if before is _DEFAULT else before
        self.implies = dict(implies or {})


class _Declares:
    """add_argument with the keywords of ArgumentParser's docstring, for a parser and its
    argument groups; each group keeps the destinations declared in it (dests)."""

    def add_argument(self, *names, check=None, rule=None, names_run=False, resumable=False,
                     before=_DEFAULT, implies=None, **kwargs):
        action = super().add_argument(*names, **kwargs)
        if action.default is not argparse.SUPPRESS:  # (--help holds no value)
            self.declared[action.dest] = Declared(action, check, rule, names_run, resumable,
                                                  before, implies)
            self.dests.append(action.dest)
        return action


class _Group(_Declares, argparse._ArgumentGroup):
    def __init__(self, parser, *args, **kwargs):
        super().__init__(parser, *args, **kwargs)
        self.declared, self.dests = parser.declared, []


class ArgumentParser(_Declares, argparse.ArgumentParser):
    """argparse that reports a bad argument in one line (no usage dump) and exits with 2, and
    where each argument is declared once, with whatever else must know of it said beside it
    as keywords of add_argument:

      check=Range(...)     the values it may take (check_args; None, a per-cell default that
                           the script fills in, is not checked)
      rule=Relation(...)   what it cannot be combined with (a list for several)
      names_run=True       it changes the method: a run where it is not at its default says so
                           in its file names (run_name_parts), and is never a paper's cell
      resumable=True       it may change when a run is resumed (where things are, how fast
                           they run, what else is written)
      before=VALUE         what runs saved before the argument existed had, where that is not
                           its default (a saved run that lacks it reads as having had this)
      implies={...}        the values it sets in other arguments (a switch that stands for
                           several); the run's name shows it alone

    Nothing else lists arguments: the rules, run names, resume and the tools read these."""

    def __init__(self, *args, **kwargs):
        self.declared, self.dests = {}, []  # (argparse's own __init__ declares --help)
        super().__init__(*args, **kwargs)

    def add_argument_group(self, *args, **kwargs):
        group = _Group(self, *args, **kwargs)
        self._action_groups.append(group)
        return group

    def error(self, message):
        self.exit(2, '%s: error: %s (see --help)\n' % (self.prog, message))

    def parse_args(self, args=None, namespace=None):
        parsed = super().parse_args(args, namespace)
        for dest, declared in self.declared.items():
            if declared.implies and getattr(parsed, dest):
                for other, value in declared.implies.items():
                    setattr(parsed, other, value)
        return parsed

    @property
    def rules(self):
        """What check_args applies: every check= in the order declared, then every rule=."""
        rules = {dest: d.check for dest, d in self.declared.items() if d.check is not None}
        for dest, declared in self.declared.items():
            rules.update(('%s, rule %d' % (dest, k), rule)
                         for k, rule in enumerate(declared.rules))
        return rules

    @property
    def resumable(self):
        """The arguments that may change when a run is resumed."""
        return {dest for dest, d in self.declared.items() if d.resumable}

    def completed(self, saved):
        """A run's saved arguments (a dict) with each argument it predates read as its
        `before` value."""
        return dict({dest: d.before for dest, d in self.declared.items()}, **saved)

    def run_name_parts(self, args):
        """What a run's name adds for the arguments declared names_run=True whose value is not
        their default, in the order declared: '_<name>' for a switch turned on ('_no_<name>'
        off), '_<value>' for a choice, '_<name>' for a file, '_<name><value>' for a number.
        A switch that another one implies is left to that one's part. `args` is a Namespace
        or a run's saved arguments (a dict; what a run predates reads as before)."""
        values = self.completed(args if isinstance(args, dict) else vars(args))
        implied = {other for dest, d in self.declared.items() if d.implies and values[dest]
                   for other in d.implies}
        parts = []
        for dest, d in self.declared.items():
            value = values[dest]
            if not d.names_run or dest in implied or value == d.default:
                continue
            if isinstance(value, bool):
                parts.append(dest if value else 'no_' + dest)
            elif d.choices is not None:
                parts.append(str(value))
            elif isinstance(value, str):
                parts.append(dest)
            else:
                parts.append('%s%g' % (dest, value))
        return ''.join('_' + part for part in parts)


# ---------------------------------------------------------------- the arguments' rules -------
# Each argument's declaration says what it may be (check=Range(...)) and what it cannot be
# combined with (rule=Relation(...)); check_args applies them all (the parser's `rules`) before
# anything is read or written. A value of None means "the script's default" and is not checked.

class Range:
    """A number in [low, high] (open at an end with low_open / high_open; None: no bound), with
    an optional hint for the error message."""

    def __init__(self, low=None, high=None, low_open=False, high_open=False, hint=None):
        self.low, self.high, self.low_open, self.high_open = low, high, low_open, high_open
        self.hint = hint

    def allows(self, value):
        if isinstance(value, float) and not math.isfinite(value):
            return False
        return ((self.low is None or value > self.low or (value == self.low and not self.low_open))
                and (self.high is None or value < self.high
                     or (value == self.high and not self.high_open)))

    def __str__(self):
        low, high = ('%g' % v if isinstance(v, float) else str(v) for v in (self.low, self.high))
        if self.low is not None and self.low == self.high and not (self.low_open
                                                                   or self.high_open):
            return low  # one value only
        if self.high is None:
            return '%s %s' % ('>' if self.low_open else '>=', low)
        if self.low is None:
            return '%s %s' % ('<' if self.high_open else '<=', high)
        return 'in %s%s, %s%s' % ('(' if self.low_open else '[', low, high,
                                  ')' if self.high_open else ']')


def at_least(low):
    return Range(low)


def above(low):
    return Range(low, low_open=True)


class Relation:
    """A rule between arguments: holds(args) must be true, else `message % vars(args)` (or
    message(args), where it is a function) is an error (or, with warn=True, a warning line and
    the run goes on)."""

    def __init__(self, holds, message, warn=False):
        self.holds, self.message, self.warn = holds, message, warn

    def said(self, args):
        return self.message(args) if callable(self.message) else self.message % vars(args)


# Relations that several scripts' tables hold
COMPILE_NEEDS_SPEED_UPS = Relation(lambda a: not (a.compile and a.plain),
                                   '--compile is a speed-up and --plain turns them off: drop one')
WARM_UP_BEFORE_END = Relation(lambda a: a.warm_up < a.num_epochs,
                              '--warm_up %(warm_up)d is not below --num_epochs %(num_epochs)d: '
                              'the run is warm-up only and DivideMix never starts', warn=True)
STRONG_WARMUP_NEEDS_WARM_UP = Relation(
    lambda a: not a.strong_warmup or a.warm_up > 0,
    '--strong_warmup warms up on strongly augmented images, and --warm_up 0 has no warm-up: '
    'drop --strong_warmup or pass --warm_up 1 or more')
CROP_WITHIN_RESIZE = Relation(lambda a: a.crop <= a.resize,
                              '--crop %(crop)d is larger than --resize %(resize)d: the crop is '
                              'taken from the resized image')
PLAIN_ID = Relation(lambda a: a.id not in ('', '.', '..') and os.sep not in a.id,
                    '--id %(id)r must be a plain file name prefix (no folders: use --out_dir)')


def import_problem(module, package=None):
    """Why `module` of an optional dependency, `package` (default: the module's own), does not
    import here: 'not installed', or how an installed one fails (any exception: a broken
    install, a bad MPLBACKEND); None when it imports."""
    try:
        for name in (module.split('.')[0], module):  # the package, then the module used
            importlib.import_module(name)
    except Exception as e:  # any failure at import is the package's, whatever its type
        missing = getattr(e, 'name', None) if isinstance(e, ModuleNotFoundError) else None
        if missing is not None and missing.split('.')[0] in (package, module.split('.')[0]):
            return 'not installed'
        return 'installed but fails to import here (%s: %s)' % (type(e).__name__, one_line(e))
    return None


def importable(module):
    """Whether `module` imports here (an optional dependency: installed and not broken)."""
    return import_problem(module) is None


def optional_package_said(package, module, use, off=None, problem=None):
    """The line that refuses what needs `package` (imported as `module`), said as `use` +
    package: how to install or repair it, or to do without (`off`, where there is a way).
    `problem`: import_problem's, where it was found before (default: found now)."""
    problem = problem or import_problem(module, package)
    if problem == 'not installed':
        fix = 'pip install %s' % package
    elif 'MPLBACKEND' in os.environ and 'backend' in problem:
        fix = 'unset MPLBACKEND or set it to agg'
    else:
        fix = 'repair it (pip install --force-reinstall %s)' % package
    return '%s %s, which is %s: %s%s' % (use, package, problem, fix, ', or ' + off if off else '')


# The optional dependencies a run needs, checked with the arguments: a run that would train for
# hours and then fail at its figures or its TensorBoard log is refused at the start instead.
FIGURES_NEED_MATPLOTLIB = Relation(
    lambda a: not a.figures or import_problem('matplotlib.figure') is None,
    lambda a: optional_package_said('matplotlib', 'matplotlib.figure',
                                    '--figures (the default) draws the figures with',
                                    'pass --no-figures'))
TENSORBOARD_NEEDS_IT = Relation(
    lambda a: not a.tensorboard or import_problem('torch.utils.tensorboard') is None,
    lambda a: optional_package_said('tensorboard', 'torch.utils.tensorboard',
                                    '--tensorboard logs with', 'drop --tensorboard'))


def check_args(args, rules):
    """Refuse the first argument that breaks its rule, in one line that says what to fix;
    print a warning for each relation marked warn that does not hold. Writes nothing."""
    warnings = []
    for name, rule in rules.items():
        if isinstance(rule, Relation):
            if not rule.holds(args):
                if not rule.warn:
                    raise InputError(rule.said(args))
                warnings.append('warning: ' + rule.said(args))
            continue
        value = getattr(args, name)
        if value is not None and not rule.allows(value):
            raise InputError('--%s %s: it must be %s%s' % (
                name, value, rule, ' (%s)' % rule.hint if rule.hint else ''))
    for line in warnings:
        print0(line, file=sys.stderr)
    return args


class Interrupted(BaseException):
    """SIGTERM or SIGINT arrived; raised in the main process wherever it is."""

    def __init__(self, signum):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


_stop = [None]  # the signal of a stop that arrived (SIGTERM, SIGINT) while main runs
_holding = [0]  # how many stops_held blocks the main thread is in
_replaced_sigchld = []  # the SIGCHLD handler a stop replaced (None: one not set from Python)


def stop_on_signals():
    """Turn SIGTERM/SIGINT into Interrupted in this process (not in data-loading workers, which
    the main process shuts down). The epoch in progress is dropped; every finished epoch is
    already in the checkpoint, written atomically, so the run resumes exactly. A stop that
    Python drops where it arrives is raised again (stop_if_asked), not reported as ignored."""
    main_pid = os.getpid()
    _stop[0] = None

    def handler(signum, frame):
        if os.getpid() != main_pid:
            return
        # A stop sent to the process group (a scheduler, `timeout`) ends the loader workers
        # too: torch's SIGCHLD handler would raise that a worker died, over the stop.
        if hasattr(signal, 'SIGCHLD') and not _replaced_sigchld:
            _replaced_sigchld.append(signal.signal(signal.SIGCHLD, lambda *_: stop_if_asked()))
        _stop[0] = _stop[0] or signum
        stop_if_asked()
    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    if _replaced_sigchld:  # a run before this one in the process was stopped
        signal.signal(signal.SIGCHLD, _replaced_sigchld.pop() or signal.SIG_DFL)
    if sys.unraisablehook is not _unraisable:
        _unraisable.default = sys.unraisablehook
        sys.unraisablehook = _unraisable


def stop_if_asked():
    """Raise the stop that arrived, unless a write holds it (stops_held). The signal handler
    raises it at once; Python drops an error raised where it cannot propagate (a fork hook as
    the loader starts its workers, a __del__), so every training step asks again."""
    if _stop[0] is not None and not _holding[0]:
        raise Interrupted(_stop[0])


def _unraisable(report):
    """A stop dropped where Python cannot raise it is raised again later: not reported."""
    if not issubclass(report.exc_type, Interrupted):
        _unraisable.default(report)


@contextlib.contextmanager
def stops_held():
    """Hold a stop that arrives while the main thread writes a file until the block ends,
    then raise it. torch.save writes through Python calls made from its C++ writer: a stop
    raised inside one of them would come out as torch's own error with a traceback, not as the
    stop. A block that fails raises its own error instead (a write's one line)."""
    if threading.current_thread() is not threading.main_thread():
        yield  # signals reach the main thread only
        return
    _holding[0] += 1
    try:
        yield
    finally:
        _holding[0] -= 1
    stop_if_asked()


_on_failure = []


def on_failure(callback):
    """Have run_cli call callback() when main ends by an error or a signal, before it says so.
    The callback returns True when it removed a new run that had finished no epoch."""
    _on_failure.append(callback)


def _fail():
    """Call the failure callbacks: None when there were none (no run had begun), else whether
    a new run removed its files."""
    removed = [callback() for callback in _on_failure]
    _on_failure.clear()
    return any(removed) if removed else None


def ignore_file_size_signal():
    """A write past the user's file size limit (ulimit -f) then fails with an error that is
    reported in one line, instead of SIGXFSZ killing the process with a core dump."""
    if hasattr(signal, 'SIGXFSZ'):
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)


def out_of_memory(error):
    """Whether `error` says that memory ran out: MemoryError (Python, a loader's worker),
    torch's OutOfMemoryError (a GPU), or the CPU allocator's RuntimeError."""
    return (isinstance(error, (MemoryError, torch.OutOfMemoryError))
            or "can't allocate memory" in str(error))


def peer_lost(error):
    """Whether `error`, under torchrun, is a collective that failed because another process of
    the run is gone (gloo: the connection closed; NCCL: the communicator aborted)."""
    text = str(error)
    return distributed()[1] > 1 and isinstance(error, RuntimeError) and any(
        words in text for words in ('Connection closed by peer', 'Connection reset by peer',
                                    'remote worker crashing', 'communicator was aborted'))


def _resume_command(argv):
    """The command that continues this run: as it was started, with --resume."""
    return launch_command(sys.argv[0], argv + ([] if '--resume' in argv else ['--resume']))


def run_cli(main, argv=None):
    """Run main(argv) as a command. Bad input, a diverging run, a failed write, memory running
    out and (under torchrun) another process gone become one line on stderr and exit code 2
    instead of a traceback (--debug shows it); SIGTERM/SIGINT stop the run with a line that
    says how to resume it, and exit code 128 + signal number.
    Either way a new run that finished no epoch leaves no file behind (on_failure). A failed
    write's line ends with what to do: continue a run that kept a checkpoint with --resume,
    or run the command again."""
    argv = sys.argv[1:] if argv is None else list(argv)
    stop_on_signals()
    ignore_file_size_signal()
    _on_failure.clear()
    hold_output()  # until the run starts (RunLog.begin) or its first progress line
    try:
        try:
            main(argv)
        except Exception as e:
            # What fails after a stop is the stop's doing (the loader workers it ended), also
            # where the stop itself was dropped: the stop is what the user is told.
            if _stop[0] is not None and not isinstance(e, (InputError, TrainingError)):
                raise Interrupted(_stop[0]) from None
            raise
        finally:
            _stop[0] = None  # taken: writes made while the run's end is said do not raise it
    except (InputError, TrainingError) as e:
        release_output(keep=isinstance(e, TrainingError))  # a refused input: its line alone
        kept = _fail() is False  # a run that began and keeps its checkpoint (or resumed)
        if '--debug' in argv:
            raise
        # An error raised in a data-loading worker arrives wrapped in that worker's traceback,
        # whose last entry is 'module.ErrorName: message'. A name read from a file may hold a
        # newline or a control character: escaped, the message stays one line, all of it.
        message = str(e).strip()
        wrapped = '\n%s.%s: ' % (type(e).__module__, type(e).__name__)
        if wrapped in message:
            message = message[message.rindex(wrapped) + len(wrapped):]
        message = one_line(message, limit=None) or type(e).__name__
        if isinstance(e, WriteError):
            message += ', then continue with --resume' if kept else ', then run it again'
        if is_main():  # under torchrun every process meets the same error: one line, not N
            print('error: ' + message, file=sys.stderr)
        return 2
    except Interrupted as e:
        if _fail():
            advice = 'before the first epoch finished, so nothing was kept: run it again'
        else:
            advice = 'finished epochs are saved: continue with  ' + _resume_command(argv)
        stop = str(e)
        if distributed()[1] > 1:  # torchrun stops all when one fails, or when it is stopped
            stop += (' from torchrun (sent to every process of the run when it is stopped or '
                     'when one of them fails: its report names which)')
        if speaks_for_the_run():  # one line for the run, even when rank 0 is the one killed
            print('\nstopped by %s; %s' % (stop, advice), file=sys.stderr)
        return 128 + e.signum
    except (MemoryError, RuntimeError) as e:  # torch.OutOfMemoryError is a RuntimeError
        if not out_of_memory(e) and not peer_lost(e):
            _fail()
            raise
        kept = _fail() is False
        if '--debug' in argv:
            raise
        if peer_lost(e):
            if speaks_for_the_run():  # the lowest rank left: one line for the run
                print('error: another process of this run ended (killed, or failed: '
                      "torchrun's report names which); %s" % (
                          'finished epochs are saved: continue with  ' + _resume_command(argv)
                          if kept else 'nothing was kept: run it again'), file=sys.stderr)
            return 2
        if is_main():
            print('error: out of memory %s: lower --batch_size (or the size of the network or '
                  'of the images); %s' % (
                      'on the GPU' if isinstance(e, torch.OutOfMemoryError) else 'here',
                      'finished epochs are saved: continue with --resume' if kept else
                      'nothing was kept: run it again'), file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output left (`... | head -1`): end quietly,
        _fail()              # as Unix tools do; a run keeps its checkpoint
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing more
        return 128 + signal.SIGPIPE                                         # to flush there
    except BaseException:
        _fail()
        raise
    finally:
        release_output()
        _on_failure.clear()
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def check_finite(total, what):
    """Stop the run with one line when an epoch's summed loss is NaN or infinite."""
    if not torch.isfinite(total):
        raise TrainingError('non-finite %s loss: lower --lr or check the data' % what)
