"""The speed layer: what a training script applies, in one line each, to run the same method
faster. Nothing here changes the method; `--plain` turns all of it off.

  net = prepare(net, device, fast, compile_net)   channels_last, bf16 autocast, DDP
  step = graphed(step)                            replay a whole training step as a CUDA graph
"""
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
    return FastForward(net, device, has_bf16(device)) if fast else net


def speed_ups(net):
    """(bf16 autocast, channels_last) as prepare() set them for `net`: what the run says at
    start (utils.progress.describe_device)."""
    return (net.bf16, True) if isinstance(net, FastForward) else (False, False)


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
