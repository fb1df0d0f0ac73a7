"""The speed layer: what a training script applies, in one line each, to run the same method
faster. Nothing here changes the method; `--plain` turns all of it off.

  net = prepare(net, device, fast, compile_net)   channels_last, bf16 autocast, DDP
  step = graphed(step)                            replay a whole training step as a CUDA graph
  outputs = per_view(net, *views)                 net(view) for each view (one call on a GPU)
  log.save_in_background = saves_in_background(device, fast)   checkpoints written by a thread
"""
import functools

import torch

from utils.cli import InputError
from utils.distributed import distributed, wrap_ddp


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

    def __init__(self, net, device, bf16, views_in_one_call=False):
        super().__init__()
        self.module, self.device_type, self.bf16 = net, device.type, bf16
        self.views_in_one_call = views_in_one_call  # per_view: one call with BatchNorm per view

    def forward(self, x):
        if x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        # no weight-cast cache: a forward uses each weight once, and a cache breaks graph capture
        with torch.autocast(self.device_type, dtype=torch.bfloat16, enabled=self.bf16,
                            cache_enabled=False):
            return self.module(x).float()

    def forward_views(self, views):
        """self(v) for each of the equal-sized views, in one call (per_view)."""
        norms = [m for m in self.module.modules()
                 if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
        if any(m.momentum is None for m in norms):  # a cumulative average: one call per view
            return [self(v) for v in views]
        for m in norms:  # an instance attribute, removed below: the class's forward returns
            m.forward = functools.partial(batch_norm_per_view, m, len(views))
        try:
            return self(torch.cat(views)).chunk(len(views))
        finally:
            for m in norms:
                del m.forward


def prepare(net, device, fast=True, compile_net=False):
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
    if not fast:
        return net
    # per_view in one call where the launches cost more than the arithmetic: one GPU, eager
    one_call = device.type == 'cuda' and distributed()[1] == 1 and not compile_net
    return FastForward(net, device, has_bf16(device), one_call)


def speed_ups(net):
    """(bf16 autocast, channels_last) as prepare() set them for `net`: what the run says at
    start (utils.progress.describe_device)."""
    return (net.bf16, True) if isinstance(net, FastForward) else (False, False)


def per_view(net, *views):
    """[net(view) for each view] (None for a None view), exactly as those consecutive calls
    compute it: in train mode each view is normalised by its own BatchNorm statistics and the
    running statistics are updated once per view, in order. A network prepared for one GPU
    (FastForward.views_in_one_call) takes views of one size in a single call, with BatchNorm
    per view (batch_norm_per_view): one launch of each layer instead of one per view."""
    given = [v for v in views if v is not None]
    if (isinstance(net, FastForward) and net.views_in_one_call and len(given) > 1
            and len({tuple(v.shape) for v in given}) == 1):
        outputs = iter(net.forward_views(given))
    else:
        outputs = iter([net(v) for v in given])
    return [None if v is None else next(outputs) for v in views]


def batch_norm_per_view(bn, views, x):
    """bn(x) for x made of `views` equal slices along the batch, as `views` consecutive calls
    of bn on the slices would compute it: in train mode each slice is normalised by its own
    mean and (biased) variance, and the running mean and (unbiased) variance take one
    momentum update per slice, in order; in eval mode rows are independent anyway."""
    if not bn.training:
        return type(bn).forward(bn, x)
    n, channels = x.shape[:2]
    by_view = x.view(views, n // views, channels, -1)  # also a view for channels_last
    var, mean = torch.var_mean(by_view.float(), dim=(1, 3), unbiased=False)  # (views, C)
    scale = torch.rsqrt(var + bn.eps)  # fp32 statistics, as cuDNN keeps them
    if bn.affine:
        scale = scale * bn.weight
    shift = -mean * scale + (bn.bias if bn.affine else 0)
    out = by_view * scale[:, None, :, None] + shift[:, None, :, None]
    if bn.track_running_stats:
        with torch.no_grad():
            count = by_view.shape[1] * by_view.shape[3]
            for view_mean, view_var in zip(mean, var * (count / (count - 1))):
                bn.running_mean.lerp_(view_mean, bn.momentum)  # (1 - m) r + m x
                bn.running_var.lerp_(view_var, bn.momentum)
            bn.num_batches_tracked.add_(views)
    return out.to(x.dtype).reshape(x.shape)


def saves_in_background(device, fast):
    """Whether a run's checkpoints are written by a thread while the next epoch trains
    (utils.runlog.RunLog): on the fast path on a GPU, where writing a full-width CIFAR
    checkpoint (about 180 MB, twice when it is the best) would take a tenth of an epoch."""
    return fast and device.type == 'cuda'


def use_cuda_graphs(wanted, device, fast, compile_net):
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


def graphed(step):
    """`step` replayed as a CUDA graph after a few eager calls (CUDAGraphStep)."""
    return CUDAGraphStep(step)
