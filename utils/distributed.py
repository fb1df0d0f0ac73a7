"""Processes and devices: a plain `python Train_*.py` is one process on one device; under
torchrun each process drives one GPU and holds both networks."""
import contextlib
import os
import shlex

import torch
import torch.distributed as dist

from utils.errors import InputError


def distributed():
    """(rank, world size); (0, 1) in a plain single-process run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def is_main():
    """Whether this process writes files and prints (rank 0, or the only process)."""
    return distributed()[0] == 0


_held = None  # while a command checks its inputs: the lines it has said (utils.cli.run_cli)
_quiet = False  # inside quiet(): print0 says nothing


def print0(*args, now=False, **kwargs):
    """print() on the main process only, so a torchrun job has one console; flushed, so a
    log file shows each line when it happens. While output is held (hold_output), the line
    waits for release_output, or is dropped with the rest when the inputs are refused;
    now=True prints it at once all the same (what a long wait is for, such as a download)."""
    if not is_main() or _quiet:
        return
    if _held is not None and not now:
        _held.append((args, kwargs))
        return
    print(*args, **dict({'flush': True}, **kwargs))


@contextlib.contextmanager
def quiet():
    """print0 drops its lines inside: a tool calling a script's helpers only for their result."""
    global _quiet
    _quiet = True
    try:
        yield
    finally:
        _quiet = False


def hold_output():
    """From now on print0's lines wait: a command that refuses its input prints one line."""
    global _held
    _held = []


def release_output(keep=True):
    """Print the lines held (or, with keep=False, drop them) and stop holding."""
    global _held
    held, _held = _held or [], None
    for args, kwargs in held if keep else []:
        print0(*args, **kwargs)


_pids = []  # under torchrun on one machine: each rank's process id, by rank


def init_distributed():
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on
    the CPU. A plain `python Train_*.py` stays a single process."""
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        pids = [None] * dist.get_world_size()
        dist.all_gather_object(pids, os.getpid())
        if os.environ.get('LOCAL_WORLD_SIZE') == os.environ.get('WORLD_SIZE'):  # one machine
            _pids[:] = pids


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists, another user's
        return True
    with contextlib.suppress(OSError):
        with open('/proc/%d/stat' % pid) as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'  # ended, not yet reaped
    return True


def speaks_for_the_run():
    """Whether this process says what stopped the run: rank 0, or, where rank 0 is gone (a
    process killed under torchrun on one machine), the lowest rank still running."""
    rank = distributed()[0]
    if rank == 0 or not _pids:
        return rank == 0
    return not any(_alive(pid) for pid in _pids[:rank])


def launch_command(script, argv):
    """The whole command that starts `script` with `argv` as this process was started: python,
    or torchrun with as many processes (a checkpoint of N processes resumes with N)."""
    words = [script] + list(argv)
    world = int(os.environ.get('WORLD_SIZE', '1'))
    if world == 1:
        return ' '.join(shlex.quote(w) for w in ['python'] + words)
    local = int(os.environ.get('LOCAL_WORLD_SIZE', world))
    nodes = ['--nnodes=%d' % (world // local)] if local != world else []
    return ' '.join(['torchrun', '--nproc_per_node=%d' % local] + nodes
                    + [shlex.quote(w) for w in words]) + (
        ' (on each machine, with the rendezvous options it was started with)' if nodes else '')


def pick_device(gpuid):
    """The GPU `gpuid` (under torchrun: this process's LOCAL_RANK) when there is one."""
    if torch.cuda.is_available():
        gpuid = int(os.environ.get('LOCAL_RANK', gpuid))
        if gpuid >= torch.cuda.device_count():
            raise InputError('--gpuid %d: this machine has %d GPU(s), numbered from 0'
                             % (gpuid, torch.cuda.device_count()))
        torch.cuda.set_device(gpuid)
        torch.backends.cudnn.benchmark = True  # as the authors; GPU runs are not bit-exact anyway
        return torch.device('cuda', gpuid)
    return torch.device('cpu')


def barrier():
    """Wait for all processes under torch.distributed (no-op otherwise)."""
    if distributed()[1] > 1:
        dist.barrier()


def all_reduce(tensor, op):
    """Combine a tensor over all processes under torch.distributed (no-op otherwise)."""
    if distributed()[1] > 1:
        dist.all_reduce(tensor, op=op)
    return tensor


def wrap_ddp(net, device):
    """DistributedDataParallel under torch.distributed (the module itself otherwise). BatchNorm
    buffers are broadcast from rank 0 at every forward, so all ranks evaluate one model."""
    if distributed()[1] == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == 'cuda'
                                   else None)


def unwrap(net):
    """The network itself, under any DistributedDataParallel or speed-layer wrappers."""
    while hasattr(net, 'module'):
        net = net.module
    return net
