"""Seeding, the random states a checkpoint holds, atomic writes and safe checkpoint loading: a
run survives a kill at any moment and resumes exactly."""
import contextlib
import hashlib
import json
import os
import pickle
import random

import numpy as np
import torch
import torch.distributed as dist

from utils.cli import InputError, WriteError, one_line, stops_held
from utils.distributed import distributed, print0, unwrap


def seed_everything(seed):
    """Seed Python, numpy (mixup lambda, GMM init, sampling) and torch (CPU and all GPUs).
    Under torch.distributed, Python and numpy get the same seed on every rank (so all ranks
    draw the same GMM seeds and shard permutations) and torch gets seed + rank (so the ranks'
    augmentations differ)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed + distributed()[0])


def rng_state():
    """Every random stream the run draws from, one entry per rank, in a form that
    torch.load(weights_only=True) reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {'python': random.getstate(),
             'numpy': (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
             'torch': torch.get_rng_state(),
             'cuda': torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    if distributed()[1] == 1:
        return [state]
    states = [None] * distributed()[1]
    dist.all_gather_object(states, state)
    return states


def set_rng_state(states):
    rank, world_size = distributed()
    if len(states) != world_size:
        raise InputError('the checkpoint was written by %d processes, this run has %d: resume '
                         'with as many (%s)' % (len(states), world_size, 'python Train_*.py' if
                                                len(states) == 1 else 'torchrun '
                                                '--nproc_per_node=%d on one machine'
                                                % len(states)))
    state = states[rank]
    random.setstate(state['python'])
    kind, keys, pos, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state['torch'])
    if state['cuda'] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


def restore(checkpoint, parts, log_path):
    """Load the networks and optimizers `parts` ({checkpoint key: module}) and the RNG states
    from a checkpoint; return the first epoch still to run (0 for a new run)."""
    if checkpoint is None:
        return 0
    for key, module in parts.items():
        module.load_state_dict(checkpoint[key])
    set_rng_state(checkpoint['rng'])
    print0('resuming after epoch %d from %s' % (checkpoint['epoch'], log_path))
    return checkpoint['epoch'] + 1


def state_of(parts):
    """The state_dicts of `parts` ({key: module}) for a checkpoint, without DDP's wrapper."""
    return {key: unwrap(module).state_dict() for key, module in parts.items()}


def labels_digest(labels):
    """A short fingerprint of the noisy labels, so a resumed run cannot train on other ones."""
    return hashlib.sha256(json.dumps([int(v) for v in labels]).encode()).hexdigest()[:16]


class _WriteRecorder:
    """A binary file that remembers the OSError its write() raised: libraries that write through
    it report that failure as errors of their own (torch.save's zip writer: a RuntimeError)."""

    def __init__(self, file):
        self.file, self.error = file, None

    def write(self, data):
        try:
            return self.file.write(data)
        except OSError as e:
            self.error = e
            raise

    def __getattr__(self, name):  # everything else is the file's
        return getattr(self.file, name)


def atomic_write(write, path, shared=False):
    """write(binary file) into a temporary file beside `path` (its folder made if needed), then
    rename it to `path`: a kill at any moment leaves either the old file or the new one, never
    half of one, and a reader never sees half a file. A failed write (disk full, file too
    large, no permission) or an exception removes the temporary file and leaves the old one
    as it was; the failure is one line naming `path` (WriteError). A stop (SIGTERM, SIGINT)
    that arrives meanwhile is raised once the new file is in place. Every file a run or a tool
    writes whole is written here. shared: other processes may write the same file at the same
    time (a noise file beside the data), so each writes a temporary file of its own."""
    tmp = '%s.%d.tmp' % (path, os.getpid()) if shared else path + '.tmp'
    recorder = None
    with stops_held():  # a stop that arrives meanwhile is raised once the file is whole
        try:
            os.makedirs(os.path.dirname(path) or '.', exist_ok=True)
            with open(tmp, 'wb') as f:
                recorder = _WriteRecorder(f)
                write(recorder)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException as e:
            with contextlib.suppress(OSError):
                os.remove(tmp)
            failure = e if isinstance(e, OSError) else getattr(recorder, 'error', None)
            if failure is not None and isinstance(e, Exception):
                raise write_error(path, failure) from None
            raise


def append_text(path, text):
    """Append text to a log (created if missing); a failed write is one line naming `path`.
    A log's part written before a failure is cut off on --resume (RunLog)."""
    try:
        with open(path, 'a') as f:
            f.write(text)
    except OSError as e:
        raise write_error(path, e) from None


def write_error(path, error):
    """The one line for a file that could not be written (OSError `error`)."""
    return WriteError(path, one_line(error))


def atomic_save(obj, path):
    atomic_write(lambda f: torch.save(obj, f), path)


def non_finite(state, name=''):
    """The name of the first floating tensor in `state` (nested dicts, lists) with a NaN or an
    infinity, e.g. 'net1.conv1.weight'; None when all are finite."""
    if torch.is_tensor(state):
        finite = not state.is_floating_point() or bool(torch.isfinite(state).all())
        return None if finite else (name or 'a tensor')
    items = (state.items() if isinstance(state, dict) else
             enumerate(state) if isinstance(state, (list, tuple)) else ())
    for key, value in items:
        found = non_finite(value, '%s.%s' % (name, key) if name else str(key))
        if found:
            return found
    return None


def load_checkpoint(path, fix, allowed=()):
    """Load with weights_only=True: tensors and plain containers only, nothing executes.
    `allowed`: classes also accepted where this torch can allow them (torch 2.5 or newer),
    classes whose unpickling only sets attributes (argparse.Namespace). Anything else is
    refused in one line that ends with `fix`, what the user can do."""
    safe_globals = getattr(torch.serialization, 'safe_globals', None)
    try:
        with (safe_globals(list(allowed)) if safe_globals and allowed
              else contextlib.nullcontext()):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as e:
        if 'global' in str(e).lower():  # a class or function to import: the pickle runs code
            reason = ('it holds objects other than tensors and plain containers, which are not '
                      'loaded because loading them could run code')
        else:
            reason = 'it is damaged, truncated or not a PyTorch file'
    except OSError as e:
        reason = e.strerror or type(e).__name__
    except Exception:  # a truncated zip, an empty file, another format
        reason = 'it is damaged, truncated or not a PyTorch file'
    raise InputError('%s cannot be loaded: %s; %s' % (path, reason, fix))
