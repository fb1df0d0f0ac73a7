"""Plumbing shared by the training scripts: command-line errors, seeding, devices, datasets,
logs and checkpoints (a run survives a kill at any moment and resumes exactly)."""
import argparse
import hashlib
import json
import math
import os
import random
import shlex
import shutil
import signal
import sys

import numpy as np
import torch
import torch.distributed as dist
from PIL import Image
from torch.utils.data import DataLoader, Dataset, Sampler


class InputError(ValueError):
    """Bad input (arguments, data, files): the message is one line that says what to fix."""


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
    from dividemix import TrainingError
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
        print('error: ' + message.removeprefix(wrapped), file=sys.stderr)
        return 2
    except Interrupted as e:
        command = ' '.join(shlex.quote(a) for a in ['python', sys.argv[0]] + argv
                           + ([] if '--resume' in argv else ['--resume']))
        print('\nstopped by %s; finished epochs are saved: continue with  %s' % (e, command),
              file=sys.stderr)
        return 128 + e.signum
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
    return 0


def seed_everything(seed):
    """Seed Python, numpy (mixup lambda, GMM init, sampling) and torch (CPU and all GPUs).
    Under torch.distributed, Python and numpy get the same seed on every rank (so all ranks
    draw the same GMM seeds and shard permutations) and torch gets seed + rank (so the ranks'
    augmentations differ)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed + distributed()[0])


def init_distributed():
    """Join the process group when started by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on
    the CPU. A plain `python Train_*.py` stays a single process."""
    if int(os.environ.get('WORLD_SIZE', '1')) > 1 and not dist.is_initialized():
        dist.init_process_group('nccl' if torch.cuda.is_available() else 'gloo')
        if dist.get_rank() != 0:  # one console: the other ranks print nothing
            import builtins
            builtins.print = lambda *args, **kwargs: None


def pick_device(gpuid):
    """The GPU `gpuid` (under torchrun: this process's LOCAL_RANK) when there is one."""
    if torch.cuda.is_available():
        gpuid = int(os.environ.get('LOCAL_RANK', gpuid))
        torch.cuda.set_device(gpuid)
        torch.backends.cudnn.benchmark = True  # as the authors; GPU runs are not bit-exact anyway
        return torch.device('cuda', gpuid)
    return torch.device('cpu')


def barrier():
    """Wait for all processes under torch.distributed (no-op otherwise)."""
    if distributed()[1] > 1:
        dist.barrier()


def wrap_ddp(net, device):
    """DistributedDataParallel under torch.distributed (the module itself otherwise). BatchNorm
    buffers are broadcast from rank 0 at every forward, so all ranks evaluate one model."""
    if distributed()[1] == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel
    return DistributedDataParallel(net, device_ids=[device.index] if device.type == 'cuda'
                                   else None)


def unwrap(net):
    """The network itself, under any DistributedDataParallel or FastForward wrappers."""
    while hasattr(net, 'module'):
        net = net.module
    return net


# ---------------------------------------------------------------- speed ----------------------

def has_bf16(device):
    """Whether `device` does bf16 arithmetic in hardware: a GPU that supports it, or a CPU
    with AVX512-BF16 or AMX (elsewhere bf16 autocast on the CPU is slower than fp32)."""
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported()
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split() for line in f if line.startswith('flags')), [])
    except OSError:
        return False
    return 'avx512_bf16' in flags or 'amx_bf16' in flags


class FastForward(torch.nn.Module):
    """A network's forward with the speed-ups that leave the method unchanged: inputs in
    channels_last memory format, bf16 autocast where the device has bf16 units, logits
    returned in float32 so every loss, softmax target and the GMM's input stay fp32.
    The wrapped network's state_dict is unchanged (checkpoints hold `unwrap(net)`)."""

    def __init__(self, net, device, bf16):
        super().__init__()
        self.module, self.device_type, self.bf16 = net, device.type, bf16

    def forward(self, x):
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        # no weight-cast cache: a forward uses each weight once, and a cache breaks graph capture
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16,
                            cache_enabled=False):
            return self.module(x).float()


def speed_up(net, device, fast=True, compile_net=False):
    """The training scripts' network, ready to train: with fast, channels_last weights, bf16
    autocast where the device has it (has_bf16) and, with compile_net, torch.compile; without
    fast, fp32 as it is (the plain path, to check any doubt against). Under torch.distributed
    it is wrapped in DistributedDataParallel after the memory format is set, so DDP's gradient
    buckets match the gradients' strides."""
    if fast:
        net.to(memory_format=torch.channels_last)
        if compile_net:
            if not hasattr(net, 'compile'):
                raise InputError('--compile needs torch 2.2 or newer (this is %s)'
                                 % torch.__version__)
            net.compile()  # in place: parameter names and checkpoints stay the same
    net = wrap_ddp(net, device)
    return FastForward(net, device, has_bf16(device)) if fast else net


def cuda_graphs_apply(wanted, device, fast, compile_net):
    """Whether the epoch loops replay their steps as CUDA graphs: asked for, on the fast path,
    on one GPU (not under torch.distributed), and not with torch.compile."""
    return (wanted and fast and not compile_net and device.type == 'cuda'
            and distributed()[1] == 1)


class CUDAGraphStep:
    """Runs `step(*inputs)`, a whole training step (forward, backward, optimizer step; returns
    tensors), as a replayed CUDA graph: a step of PreAct-ResNet18 on 64 images is hundreds of
    small kernels whose launches cost more than their arithmetic. The step's operations are
    the same; only their launching changes (the libraries may pick other kernels under
    capture, so not bit-exact). The first `warmup` calls run eagerly on a side
    stream (cuDNN autotuning, optimizer state), the next one is captured and replayed; later
    calls copy their inputs into the captured ones and replay. Inputs must be CUDA tensors;
    calls of other shapes (the last, partial batch) run eagerly. Scalars that change from step
    to step must be 0-dim tensors, or the graph keeps the captured value."""

    def __init__(self, step, warmup=3):
        self.step, self.warmup, self.calls = step, warmup, 0
        self.graph = self.shapes = self.inputs = self.outputs = None

    def __call__(self, *inputs):
        shapes = [tuple(t.shape) for t in inputs]
        if self.graph is None:
            self.calls += 1
            if self.calls <= self.warmup:
                side = torch.cuda.Stream()
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    outputs = self.step(*inputs)
                torch.cuda.current_stream().wait_stream(side)
                return outputs
            self.shapes, self.inputs = shapes, [t.clone() for t in inputs]
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):  # records this step; replay() below runs it
                self.outputs = self.step(*self.inputs)
        elif shapes != self.shapes:
            return self.step(*inputs)
        else:
            for captured, t in zip(self.inputs, inputs):
                captured.copy_(t)
        self.graph.replay()
        # copies: the next replay overwrites the captured outputs
        if isinstance(self.outputs, tuple):
            return tuple(t.clone() for t in self.outputs)
        return self.outputs.clone()


# ---------------------------------------------------------------- data loading ---------------

def distributed():
    """(rank, world size); (0, 1) in a plain single-process run."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardSampler(Sampler):
    """This process's share of a dataset under torch.distributed: with shuffling, a fresh
    permutation per pass whose seed comes from numpy's global RNG (kept identical on all ranks),
    padded so every rank runs the same number of steps; without, every world_size-th index."""

    def __init__(self, dataset, shuffle):
        self.size, self.shuffle = len(dataset), shuffle
        self.rank, self.world_size = distributed()
        self.per_rank = -(-self.size // self.world_size) if shuffle else len(
            range(self.rank, self.size, self.world_size))

    def __len__(self):
        return self.per_rank

    def __iter__(self):
        if not self.shuffle:
            return iter(range(self.rank, self.size, self.world_size))
        order = np.random.RandomState(np.random.randint(2 ** 31)).permutation(self.size)
        order = np.resize(order, self.per_rank * self.world_size)  # pad by wrapping around
        return iter(order[self.rank::self.world_size].tolist())


def make_loader(dataset, batch_size, shuffle, num_workers=0):
    """The DataLoader every script uses. Single process: plain shuffling (drop_last off, as the
    authors). Under torch.distributed: each rank reads its own shard (see ShardSampler)."""
    sampler = ShardSampler(dataset, shuffle) if distributed()[1] > 1 else None
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and sampler is None,
                      sampler=sampler, num_workers=num_workers,
                      pin_memory=torch.cuda.is_available())


# ---------------------------------------------------------------- datasets -------------------

def open_rgb(path):
    """The image at `path` as RGB; a file PIL cannot decode is one InputError naming it."""
    try:
        with Image.open(path) as img:
            return img.convert('RGB')
    except Exception as e:  # missing, unidentified, truncated, decompression bomb: all "bad file"
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError('cannot read image %s (%s): replace it with a good copy from the '
                         'dataset archive' % (path, reason[:200])) from None


class ImageFiles:
    """Images on disk (Clothing1M, WebVision), opened when indexed: files[i] = open_rgb(paths[i]).
    Holds only the paths, so it is cheap to pickle into DataLoader workers."""

    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return open_rgb(self.paths[i])


class ImageArray:
    """Images in memory (CIFAR), an N x H x W x 3 uint8 array: arr[i] is a PIL image."""

    def __init__(self, array):
        self.array = array

    def __len__(self):
        return len(self.array)

    def __getitem__(self, i):
        return Image.fromarray(self.array[i])


class NoisyLabelDataset(Dataset):
    """Every loader's dataset: `images` (ImageFiles or ImageArray) with `labels` aligned to them
    (noisy for training, clean for testing). `indices` selects the subset (image indices, default
    all); `prob[k]` is item k's clean probability. What item k is depends on `mode`:
      'all':       (img, label, k)          warm-up and co-divide; k is the position in this
                                            dataset, not the image index (that is indices[k];
                                            the two agree when indices is None), so the
                                            per-sample losses fill exactly len(dataset) slots
                                            and no zeros reach the GMM (authors' Clothing1M
                                            bug, behavior.md §8.21)
      'labeled':   (img_view1, img_view2, label, clean_prob)
      'unlabeled': (img_view1, img_view2)
      'test':      (img, label)
    Every view is a fresh call of `transform` (so two augmentations per labeled/unlabeled item).
    """
    MODES = ('all', 'labeled', 'unlabeled', 'test')

    def __init__(self, images, labels, transform, mode, indices=None, prob=None):
        if mode not in self.MODES:
            raise ValueError('mode %r is not one of %s' % (mode, ', '.join(self.MODES)))
        self.images, self.labels, self.transform, self.mode = images, labels, transform, mode
        self.indices = np.arange(len(images)) if indices is None else np.asarray(indices)
        if mode == 'labeled' and (prob is None or len(prob) != len(self.indices)):
            raise ValueError("'labeled' needs one clean prob per item (prob is aligned with "
                             "indices): got %s for %d items"
                             % ('none' if prob is None else len(prob), len(self.indices)))
        self.prob = prob

    def __len__(self):
        return len(self.indices)

    def __getitem__(self, k):
        i = int(self.indices[k])
        img = self.images[i]
        if self.mode == 'all':
            return self.transform(img), int(self.labels[i]), k
        if self.mode == 'labeled':
            return (self.transform(img), self.transform(img), int(self.labels[i]),
                    float(self.prob[k]))
        if self.mode == 'unlabeled':
            return self.transform(img), self.transform(img)
        return self.transform(img), int(self.labels[i])


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
                         'with the same number of processes' % (len(states), world_size))
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
    print('resuming after epoch %d from %s' % (checkpoint['epoch'], log_path))
    return checkpoint['epoch'] + 1


def state_of(parts):
    """The state_dicts of `parts` ({key: module}) for a checkpoint, without DDP's wrapper."""
    return {key: unwrap(module).state_dict() for key, module in parts.items()}


def labels_digest(labels):
    """A short fingerprint of the noisy labels, so a resumed run cannot train on other ones."""
    return hashlib.sha256(json.dumps([int(v) for v in labels]).encode()).hexdigest()[:16]


def atomic_write(write, path):
    """write(binary file) into a temporary file beside `path`, then rename it to `path`: a kill
    at any moment leaves either the old file or the new one, never half of one, and a reader
    never sees half a file."""
    tmp = path + '.tmp'
    with open(tmp, 'wb') as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_save(obj, path):
    atomic_write(lambda f: torch.save(obj, f), path)


def load_checkpoint(path):
    """Load with weights_only=True: tensors and plain containers only, nothing executes."""
    try:
        return torch.load(path, map_location='cpu', weights_only=True)
    except Exception as e:
        first_line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise InputError('checkpoint %s cannot be loaded safely (%s): delete it or pass another '
                         '--out_dir' % (path, first_line[:200])) from None


# Arguments that may change when a run is resumed: where things are, how fast they run and
# what else is written. Raising --num_epochs extends a finished run. The speed switches
# (plain, compile, cuda_graphs) keep the method but not the arithmetic: the continuation is
# then not bit-exact.
RESUMABLE_CHANGES = {'num_epochs', 'num_workers', 'gpuid', 'out_dir', 'resume', 'debug',
                     'download', 'data_path', 'noise_file', 'plain', 'compile', 'figures',
                     'tensorboard', 'cuda_graphs'}


def _writable_or_creatable(folder):
    folder = os.path.abspath(folder)
    while not os.path.exists(folder):
        folder = os.path.dirname(folder)
    return os.path.isdir(folder) and os.access(folder, os.W_OK)


def _clean(value):
    """JSON has no NaN: write null for undefined numbers (e.g. AUC when no label is noisy)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    return value


class RunLog:
    """One run's files in `out_dir`, all named <prefix><suffix>:
      text logs   the authors' formats, given as {name: suffix}, e.g. CIFAR's
                  {'acc': '_acc.txt', 'stats': '_stats.txt'}; written with write(name, line)
      .jsonl      one JSON object per epoch, then {"final": true, "best", "last10", ...}
      _args.json  the run's arguments
      _last.pth   checkpoint after the latest finished epoch;  _best.pth  at the best score
    Use: check() before touching anything, begin() once the inputs are known to be good, then
    epoch() and save() every epoch. A checkpoint records the log files' sizes, so resuming
    cuts them back to that point and the logs of a resumed run equal an uninterrupted one's.
    Under torch.distributed only rank 0 writes; every rank reads the checkpoint.
    """

    def __init__(self, out_dir, prefix, text_logs):
        base = os.path.join(out_dir, prefix)
        self.out_dir = out_dir
        self.text = {name: base + suffix for name, suffix in text_logs.items()}
        self.jsonl_path, self.args_path = base + '.jsonl', base + '_args.json'
        self.last_path, self.best_path = base + '_last.pth', base + '_best.pth'
        self.logs = tuple(self.text.values()) + (self.jsonl_path,)
        self.scores = []
        self.writer = distributed()[0] == 0

    def check(self, args):
        """Refuse what would fail or destroy an earlier run; with --resume, load and check the
        latest checkpoint. Writes nothing. Returns the checkpoint or None."""
        if not _writable_or_creatable(self.out_dir):
            raise InputError('cannot write to --out_dir %s: choose a writable folder'
                             % self.out_dir)
        existing = [p for p in self.logs + (self.last_path,) if os.path.exists(p)]
        if not args.resume:
            if existing:
                raise InputError('%s already holds a run with these settings: add --resume to '
                                 'continue it, or pass another --out_dir' % existing[0])
            return None
        if not os.path.exists(self.last_path):
            print('nothing to resume in %s: starting a new run' % self.out_dir)
            return None
        checkpoint = load_checkpoint(self.last_path)
        saved, current = checkpoint['args'], vars(args)
        changed = ['--%s %s (was %s)' % (k, current.get(k), saved.get(k))
                   for k in sorted(set(saved) | set(current))
                   if k not in RESUMABLE_CHANGES and saved.get(k) != current.get(k)]
        if changed:
            raise InputError('cannot resume %s with other settings: %s; run it with the '
                             'original ones, or pass another --out_dir'
                             % (self.last_path, ', '.join(changed)))
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            if not os.path.exists(path) or os.path.getsize(path) < size:
                raise InputError('log %s is shorter than its checkpoint says: it was changed '
                                 'by hand; restore it or pass another --out_dir' % path)
        return checkpoint

    def begin(self, args, checkpoint=None):
        """Create the files of a new run, or cut a resumed run's logs back to its checkpoint."""
        if checkpoint is not None:
            self.scores = list(checkpoint['scores'])
        if not self.writer:
            return
        os.makedirs(self.out_dir, exist_ok=True)
        if checkpoint is None:
            for path in self.logs:
                open(path, 'w').close()
            with open(self.args_path, 'w') as f:
                json.dump(vars(args), f, indent=1)
            return
        for path, size in zip(self.logs, checkpoint['log_sizes']):
            with open(path, 'r+') as f:
                f.truncate(size)

    def _append(self, path, text):
        if self.writer:
            with open(path, 'a') as f:
                f.write(text)

    def write(self, name, line):
        """Append a line to one of the authors' text logs."""
        self._append(self.text[name], line)

    def epoch(self, record, score):
        """Append the epoch's JSON record; `score` (test accuracy, or validation accuracy
        where the test set is only used at the end) picks the best checkpoint."""
        self.scores.append(score)
        self._append(self.jsonl_path, json.dumps(_clean(record)) + '\n')

    def save(self, state):
        """Write the latest checkpoint atomically (plus the logs' sizes and the scores so far);
        copy it to the best one when this epoch has the best score."""
        if not self.writer:
            return
        state = dict(state, log_sizes=[os.path.getsize(p) for p in self.logs],
                     scores=list(self.scores))
        atomic_save(state, self.last_path)
        if self.scores[-1] >= max(self.scores):
            with open(self.last_path, 'rb') as src:
                atomic_write(lambda f: shutil.copyfileobj(src, f), self.best_path)

    def summary(self, **extra):
        """Best score over all epochs and the mean of the last 10, as the paper reports them,
        plus whatever else the script adds; appended to the JSONL and returned."""
        result = dict({'final': True, 'best': max(self.scores),
                       'last10': float(np.mean(self.scores[-10:])),
                       'epochs': len(self.scores)}, **extra)
        self._append(self.jsonl_path, json.dumps(_clean(result)) + '\n')
        return result
