"""Is the first look a slow CPU run advises as quick as it says? Starts a full-scale run on real
data, reads the warning (or note) it prints after its first timed steps (the advised command
and its time), stops it, runs the advised command to its end and compares the time it took with
the time promised, and the first look's own estimate after its epoch 0 with what its epochs
took. Also measures the training rates of PreAct-ResNet18 at widths 16, 32 and 64
(utils.progress.width_cost).

    python results/quick_look/measure.py --data_path DIR [--args '--r 0.5 --noise_mode sym']
    python results/quick_look/measure.py --script imagefolder --data_path DIR \
        --args '--train_list train.csv --test_list test.csv'

DIR is the script's --data_path (for CIFAR the folder holding cifar-10-batches-py/); --args are
the full-scale run's other arguments. --out FOLDER (default ./quick_look_measure) must not
exist: the runs write there. Prints a JSON record; takes about as long as the first look.
"""
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from PreResNet import ResNet18  # noqa: E402
from utils.cli import ArgumentParser, InputError, TrainingError, run_cli  # noqa: E402
from utils.speed import prepare  # noqa: E402

UNITS = {'s': 1, 'min': 60, 'h': 3600, 'days': 86400}


def seconds_of(text):
    """format_duration's text back to seconds: '13 min', '1 h 5 min', '45 s', '2.5 days'."""
    return sum(float(n) * UNITS[unit] for n, unit in re.findall(r'([\d.]+) (s|min|h|days)', text))


def training_rate(width, seconds=5.0, batch=128):
    """Training images/s of PreAct-ResNet18 at `width` on this CPU, as the runs train it: the
    best of the steps taken in `seconds` after the first (set-up), so a moment of other load
    does not count."""
    torch.manual_seed(0)
    net = prepare(ResNet18(10, width), torch.device('cpu'))
    optimizer = torch.optim.SGD(net.parameters(), lr=0.02, momentum=0.9)
    images, labels = torch.randn(batch, 3, 32, 32), torch.randint(0, 10, (batch,))

    def step():
        loss = F.cross_entropy(net(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    step()  # set-up
    times, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return batch / min(times)


def main(argv=None):
    p = ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--data_path', required=True)
    p.add_argument('--out', default='quick_look_measure')
    p.add_argument('--script', default='cifar', choices=('cifar', 'imagefolder'))
    p.add_argument('--args', default='--r 0.5 --noise_mode sym')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    args = p.parse_args(argv)
    if os.path.lexists(args.out):
        raise InputError('%s exists and is never overwritten: name a new folder with --out'
                         % args.out)
    if not os.path.isdir(args.data_path):
        raise InputError('--data_path %s is not a folder' % args.data_path)
    try:
        run_args = shlex.split(args.args)
    except ValueError as e:
        raise InputError('--args %r cannot be split into arguments (%s)' % (args.args, e)) from None
    if {'--data_path', '--out_dir'} & set(run_args):
        raise InputError('--args names --data_path or --out_dir: give them to this command '
                         '(--data_path, --out), not to the run')
    os.makedirs(args.out)
    rates = {w: training_rate(w) for w in (16, 32, 64)}
    # time per image = a + b * width^2 through widths 16 and 64; WIDTH_FIXED_COST is a / b
    b = (1 / rates[64] - 1 / rates[16]) / (64 ** 2 - 16 ** 2)
    a = 1 / rates[16] - b * 16 ** 2
    record = {'threads': torch.get_num_threads(),
              'train_images_per_s': {w: round(r, 1) for w, r in rates.items()},
              'width_fixed_cost': round(a / b), 'width_32_fitted': round(1 / (a + b * 32 ** 2), 1)}
    print(json.dumps(record), flush=True)

    # The full-scale run, until its warning.
    script = os.path.join(ROOT, 'Train_%s.py' % args.script)
    full = ([sys.executable, script] + run_args
            + ['--data_path', args.data_path, '--out_dir', os.path.join(args.out, 'full')])
    run = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    warning = None
    for line in run.stdout:  # 'warning:' for slow epochs, 'note:' for a long run of short ones
        if line.startswith(('warning: on the CPU', 'note: on the CPU')):
            warning = line.strip()
            break
    run.send_signal(signal.SIGINT)
    run.communicate()
    if warning is None:
        raise TrainingError('the full-scale run printed no warning (its epochs are fast here)')
    advice = re.search(r'a first look takes (~[^:]+) here: (python .*)$', warning)
    if advice is None:
        raise TrainingError('the full-scale run advised no first look: ' + warning)
    promised, command = advice.groups()
    record.update(warning=warning, promised_s=seconds_of(promised), command=command)
    print(json.dumps(record), flush=True)

    # The advised command, as printed, from the same folder.
    start = time.time()
    words = shlex.split(command)
    quick = subprocess.run([sys.executable] + words[1:], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT)
    output = quick.stdout.decode(errors='replace')  # as printed, carriage returns kept
    record['actual_s'] = round(time.time() - start, 1)
    record['actual_over_promised'] = round(record['actual_s'] / record['promised_s'], 3)
    # the first look's own estimate after its epoch 0, against what its epochs took
    lines = output.replace('\r', '\n').splitlines()
    expected = next((line for line in lines if line.startswith('expected: epochs 0-')), None)
    epochs = [float(m.group(1)) for m in (re.search(r'\| Epoch \[.*  ([\d.]+) s  run ', line)
                                          for line in lines) if m]
    if expected is not None and epochs:
        record.update(estimate_after_epoch0=expected, estimate_after_epoch0_s=seconds_of(
            expected.split(' take ', 1)[1].split(' in all')[0]), epochs_s=round(sum(epochs), 1))
        record['estimate_over_epochs'] = round(record['estimate_after_epoch0_s']
                                               / record['epochs_s'], 3)
    with open(os.path.join(args.out, 'quick_look.log'), 'w', newline='') as f:
        f.write(output)
    if quick.returncode != 0:
        raise TrainingError('the advised command failed (%s)'
                            % os.path.join(args.out, 'quick_look.log'))
    with open(os.path.join(args.out, 'measure.json'), 'w') as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record), flush=True)


if __name__ == '__main__':
    sys.exit(run_cli(main))
