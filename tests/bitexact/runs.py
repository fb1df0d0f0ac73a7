"""Seeded tiny CPU runs of every training script, reduced to what must never change under a
refactoring: the JSONL records (minus wall-clock seconds and the labels file's keys), the
authors' text logs, the weights and optimizer states of the last checkpoint, and the division
snapshots, as SHA-256 digests.

    git worktree add /tmp/before COMMIT && cp tests/bitexact/runs.py /tmp/before/tests/bitexact/
    (cd /tmp/before && OMP_NUM_THREADS=1 python tests/bitexact/runs.py OUT.json)

records them from the code of COMMIT (recorded.json: cd8cf48, the code before the training
scripts took their own steps); tests/test_bitexact.py runs the same scenarios on the current
code and compares. Re-record only for a deliberate change of numbers, and say why in the commit.
"""
import contextlib
import glob
import hashlib
import json
import os
import sys
import tempfile

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path[:0] = [ROOT, os.path.dirname(HERE)]

CIFAR = ['--width', '8', '--num_epochs', '3', '--warm_up', '1', '--batch_size', '16',
         '--num_workers', '0', '--no-figures']
SCENARIOS = {
    # name: (script, extra arguments)
    'cifar10_sym50': ('cifar', ['--figures']),
    'cifar10_sym50_plain': ('cifar', ['--plain']),
    'cifar10_asym40_penalty': ('cifar', ['--r', '0.4', '--noise_mode', 'asym']),
    'cifar100_sym90_history': ('cifar100', ['--r', '0.9']),
    'cifar10_ce': ('cifar', ['--method', 'ce']),
    'cifar10_no_cotraining': ('cifar', ['--no_cotraining']),
    'cifar10_no_label_refinement': ('cifar', ['--no_label_refinement']),
    'cifar10_no_augmentation': ('cifar', ['--no_augmentation', '--plain']),
    'cifar10_divide_and_mixmatch': ('cifar', ['--divide_and_mixmatch']),
    'clothing1m': ('clothing1m', []),
    'clothing1m_plain_lambda_u': ('clothing1m', ['--plain', '--lambda_u', '5', '--no-figures']),
    'webvision': ('webvision', []),
}


def digest(array):
    array = np.ascontiguousarray(array)
    return hashlib.sha256(str(array.dtype).encode() + str(array.shape).encode()
                          + array.tobytes()).hexdigest()[:16]


def state_digests(value, prefix=''):
    """{'net1.conv1.weight': digest, ...} for every tensor in a (nested) checkpoint entry."""
    if torch.is_tensor(value):
        return {prefix: digest(value.numpy())}
    out = {}
    items = value.items() if isinstance(value, dict) else enumerate(value)
    for key, item in items:
        if torch.is_tensor(item) or isinstance(item, (dict, list, tuple)):
            out.update(state_digests(item, '%s.%s' % (prefix, key) if prefix else str(key)))
        else:
            out['%s.%s' % (prefix, key)] = repr(item)
    return out


def outputs(out_dir):
    """What the run in out_dir wrote, as comparable values."""
    result = {'jsonl': [], 'logs': {}, 'weights': {}, 'snapshots': {}}
    for path in sorted(glob.glob(os.path.join(out_dir, '*.jsonl'))):
        with open(path) as f:
            # minus the wall-clock seconds and the labels file's keys (labels_*): that file is
            # written after the last checkpoint and is newer than the recording, so the
            # records of the training itself are compared
            result['jsonl'] += [{k: v for k, v in json.loads(line).items()
                                 if k != 'seconds' and not k.startswith('labels_')}
                                for line in f]
    for path in sorted(glob.glob(os.path.join(out_dir, '*.txt'))):
        with open(path) as f:
            result['logs'][os.path.basename(path)] = f.read()
    last, = glob.glob(os.path.join(out_dir, '*_last.pth'))
    checkpoint = torch.load(last, map_location='cpu', weights_only=True)
    for key in ('net1', 'net2', 'optimizer1', 'optimizer2', 'loss_history'):
        if key in checkpoint:  # one digest per entry, over its tensors' names and values
            parts = sorted(state_digests(checkpoint[key], key).items())
            result['weights'][key] = hashlib.sha256(repr(parts).encode()).hexdigest()[:16]
    for path in sorted(glob.glob(os.path.join(out_dir, '*_division', '*.npz'))):
        with np.load(path) as snapshot:
            for name in sorted(snapshot.files):
                result['snapshots']['%s:%s' % (os.path.basename(path), name)] = digest(
                    snapshot[name])
    return result


def run(name, workdir):
    """Run one scenario in workdir; returns outputs()."""
    import Train_cifar
    import Train_clothing1M
    import Train_webvision
    from PreResNet import ResNet18
    from conftest import write_fake_cifar
    from test_clothing1M_data import make_clothing1m
    from test_webvision_data import make_webvision
    import pathlib

    script, extra = SCENARIOS[name]
    out = os.path.join(workdir, 'out')
    if script in ('cifar', 'cifar100'):
        dataset = 'cifar10' if script == 'cifar' else 'cifar100'
        write_fake_cifar(os.path.join(workdir, 'data'), dataset,
                         num_train=200 if script == 'cifar' else 300)
        Train_cifar.main(['--dataset', dataset, '--data_path', os.path.join(workdir, 'data'),
                          '--out_dir', out] + CIFAR + extra)
    elif script == 'clothing1m':
        root = make_clothing1m(pathlib.Path(workdir) / 'clothing1m', size=72)
        Train_clothing1M.main(['--data_path', root, '--out_dir', out, '--pretrained', 'none',
                               '--resize', '72', '--crop', '64', '--num_batches', '2',
                               '--batch_size', '4', '--num_epochs', '2', '--num_workers', '0']
                              + extra)
    else:
        root = os.path.join(workdir, 'webvision')
        make_webvision(root, per_class=4)
        create_model, input_size = Train_webvision.create_model, Train_webvision.INPUT_SIZE
        rules = dict(getattr(Train_webvision, 'ARG_RULES', {}))
        Train_webvision.create_model = lambda args: ResNet18(args.num_class, width=8)
        # a 32-px crop fits this small network, not Inception-ResNet-v2: the code before
        # --crop's range was declared with it kept it in ARG_RULES
        if 'crop' in rules:
            Train_webvision.ARG_RULES['crop'] = Train_webvision.at_least(1)
        Train_webvision.INPUT_SIZE = 32
        try:
            Train_webvision.main(['--data_path', root, '--out_dir', out, '--num_class', '3',
                                  '--resize', '36', '--crop', '32', '--batch_size', '4',
                                  '--num_epochs', '3', '--num_workers', '0'] + extra)
        finally:
            Train_webvision.create_model, Train_webvision.INPUT_SIZE = create_model, input_size
            if rules:
                Train_webvision.ARG_RULES.update(rules)
    return outputs(out)


def machine():
    """What the recorded digests depend on besides the code."""
    try:
        from utils.speed import has_bf16
    except ImportError:  # the code before the package existed
        from run_utils import has_bf16
    return {'torch': torch.__version__, 'cpu_bf16': has_bf16(torch.device('cpu'))}


def record_all():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = {}
        for name in SCENARIOS:
            with tempfile.TemporaryDirectory() as workdir, open(os.devnull, 'w') as quiet, \
                    contextlib.redirect_stdout(quiet):
                result[name] = run(name, workdir)
        return result
    finally:
        torch.set_num_threads(threads)


if __name__ == '__main__':
    recorded = {'machine': machine(), 'runs': record_all()}
    with open(sys.argv[1], 'w') as f:
        json.dump(recorded, f, indent=1, sort_keys=True)
