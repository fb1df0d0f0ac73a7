"""The label errors of a saved run, as a file:

    python tools/export_labels.py CHECKPOINT [--out FILE] [--data_path FOLDER]

For a checkpoint that Train_cifar.py, Train_clothing1M.py, Train_webvision.py or
Train_imagefolder.py saved
(<run>_last.pth, or <run>_best.pth), rebuilds that run's training data and networks from the
arguments the checkpoint holds, on the GPU when there is one (else the CPU), and writes
<run>_labels_epoch<E>.csv beside it (E: the checkpoint's epoch): the file every run writes at
its end, for these weights (the columns: utils/label_export.py). Each network's co-divide uses
the checkpoint's loss history and its random state, so on the last checkpoint of a CPU run it
is the file the run wrote. Clothing1M: the whole noisy pool, in one pass per network.
A file is never overwritten: when the name exists, pass --out.
"""
import argparse
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo root
import Train_cifar  # noqa: E402 (after the path line above)
import Train_clothing1M  # noqa: E402
import Train_imagefolder  # noqa: E402
import Train_webvision  # noqa: E402
from dataloader_cifar import (CIFAR_N_FILES, CIFARLoaders, DeviceCIFARLoaders,  # noqa: E402
                              class_names, default_noise_file, find_cifar_folder, load_cifar,
                              read_cifar_n, read_noise_file, training_subset)
from dataloader_clothing1M import Clothing1M, Clothing1MLoaders  # noqa: E402
from dataloader_imagefolder import (ImageFolderData, ImageFolderLoaders,  # noqa: E402
                                    transforms_for)
from dataloader_webvision import WebVision, WebVisionLoaders  # noqa: E402
from utils.checkpoint import labels_digest, load_checkpoint, set_rng_state  # noqa: E402
from utils.cli import (ArgumentParser, InputError, at_least, check_args, one_line,  # noqa: E402
                       run_cli)
from utils.data import inside  # noqa: E402
from utils.distributed import pick_device, release_output  # noqa: E402
from utils.label_export import export_labels, relative_to  # noqa: E402
from utils.models import cifar_net, resnet50  # noqa: E402
from utils.runlog import hold_run  # noqa: E402
from utils.training_set import training_set, training_set_changes  # noqa: E402
from utils.runs import script_of  # noqa: E402
from utils.speed import prepare  # noqa: E402

SCRIPTS = {'Train_cifar.py': Train_cifar, 'Train_clothing1M.py': Train_clothing1M,
           'Train_webvision.py': Train_webvision, 'Train_imagefolder.py': Train_imagefolder}
GIVE = 'give the <run>_last.pth or <run>_best.pth that a Train_*.py run saved'


# ---------------------------------------------------------------- each script's run ----------
# What a run's end passes to export_labels, rebuilt from its saved arguments: the networks
# (bare, loaded by the caller), the eval loader over all training images, and the truth,
# paths and class names where the dataset has them.

def cifar_run(args, checkpoint, device):
    train_images, clean_labels, test_images, test_labels = load_cifar(args.data_path,
                                                                      args.dataset)
    chosen = training_subset(len(clean_labels), args.num_train, args.subset_seed)
    positions = np.arange(len(clean_labels))[chosen]  # in the data set, for messages
    train_images, clean_labels = train_images[chosen], clean_labels[chosen]
    if args.noise_mode == 'cifar-n':
        noisy_labels = read_cifar_n(args.cifar_n_file, args.cifar_n_label, clean_labels,
                                    args.num_class, chosen)
    else:  # where the run read its noise file (never generated here)
        path = args.noise_file or default_noise_file(
            find_cifar_folder(args.data_path, args.dataset) or args.data_path, args.r,
            args.noise_mode, args.seed, args.num_train, args.subset_seed)
        if not os.path.isfile(path):
            raise InputError('the noise file %s of the run is missing: restore it, or pass '
                             '--data_path where the data and its noise file lie now' % path)
        noisy_labels = read_noise_file(path, len(clean_labels), args.num_class)
    if 'training_set' not in checkpoint and checkpoint.get(  # (saved before the record)
            'noisy_labels', labels_digest(noisy_labels)) != labels_digest(noisy_labels):
        raise InputError('the noisy labels found now differ from those the run trained on: '
                         'restore its noise file')
    if args.plain:
        loaders = CIFARLoaders(args.dataset, train_images, noisy_labels, test_images,
                               test_labels, args.batch_size, args.num_workers)
    else:
        loaders = DeviceCIFARLoaders(args.dataset, train_images, noisy_labels, test_images,
                                     test_labels, args.batch_size, device)
    single = args.method == 'ce' or args.no_cotraining
    # the weights are loaded from the checkpoint (a self-supervised start is not needed)
    return dict(nets=[cifar_net(args.arch, args.num_class, args.width)
                      for _ in range(1 if single else 2)],
                eval_loader=loaders.eval_train(), true=clean_labels,
                training_set=((image.tobytes() for image in train_images), noisy_labels,
                              ['training image %d' % i for i in positions]),
                predict_with=1 if args.test_net1_only else None,
                class_names=class_names(args.data_path, args.dataset))


def clothing1m_run(args, checkpoint, device):
    data = Clothing1M(args.data_path, args.num_class)
    loaders = Clothing1MLoaders(data, args.batch_size, args.num_workers, args.resize, args.crop)
    # the weights are loaded from the checkpoint
    return dict(nets=[resnet50(args.num_class, 'none') for _ in range(2)],
                training_set=(relative_to(data.root, data.train_paths), data.train_labels, None),
                eval_loader=loaders.eval_train(), true=data.train_clean_labels,
                paths=relative_to(data.root, data.train_paths), class_names=data.class_names)


def webvision_run(args, checkpoint, device):
    data = WebVision(args.data_path, args.num_class)
    loaders = WebVisionLoaders(data, args.batch_size, args.num_workers, args.resize, args.crop)
    return dict(nets=[Train_webvision.create_model(args) for _ in range(2)],
                training_set=(relative_to(data.root, data.train_paths), data.train_labels, None),
                eval_loader=loaders.eval_train(),
                paths=relative_to(data.root, data.train_paths), class_names=data.class_names)


def imagefolder_run(args, checkpoint, device):
    data = ImageFolderData(args.data_path, args.train_list, args.test_list, args.val_list,
                           args.classes_file, args.clean_list)
    training_set = (data.train_keys, data.train_labels, data.train_relpaths)  # all, as the run
    if args.num_train is not None:  # the run's own images, drawn as it drew them
        data.keep_train(args.num_train, args.seed)
    train_transform, test_transform = transforms_for(args.arch, args.image_size, args.resize,
                                                     args.mean, args.std)
    loaders = ImageFolderLoaders(data, args.batch_size, args.num_workers, train_transform,
                                 test_transform)
    bare = argparse.Namespace(**dict(vars(args), pretrained='none'))  # the weights are loaded
    return dict(nets=[Train_imagefolder.create_model(bare, data.num_class) for _ in range(2)],
                training_set=training_set, eval_loader=loaders.eval_train(), true=data.clean_labels,
                paths=data.train_relpaths, class_names=data.classes)


RUNS = {'Train_cifar.py': cifar_run, 'Train_clothing1M.py': clothing1m_run,
        'Train_webvision.py': webvision_run, 'Train_imagefolder.py': imagefolder_run}


# ---------------------------------------------------------------- the command ----------------

def read_checkpoint(path):
    """The checkpoint at `path`, its script and its arguments (for any argument added since
    the run was saved, what its declaration says such runs had)."""
    checkpoint = load_checkpoint(path, GIVE)
    if not isinstance(checkpoint, dict) or not {'net1', 'args', 'epoch'} <= set(checkpoint):
        raise InputError('%s is not the checkpoint of a run (a network\'s weights alone hold '
                         'no arguments): %s' % (path, GIVE))
    script = script_of(checkpoint['args'])
    if script not in RUNS:
        raise InputError('%s was saved by %s, whose labels this command does not export: %s'
                         % (path, script or 'an unknown script', GIVE))
    arguments = SCRIPTS[script].argument_parser()
    return checkpoint, script, argparse.Namespace(**arguments.completed(checkpoint['args']))


def run_name(path):
    name = os.path.basename(path)
    for suffix in ('_last.pth', '_best.pth', '.pth'):
        if name.endswith(suffix):
            return name[:-len(suffix)]
    return name


def main(argv=None):
    p = ArgumentParser(description='Write the labels file of a saved run: every training '
                                   'image\'s given label, clean probabilities, prediction and '
                                   'noise flag.')
    p.add_argument('checkpoint', help='<run>_last.pth or <run>_best.pth of a Train_*.py run')
    p.add_argument('--out', help='the CSV to write (default <run>_labels_epoch<E>.csv beside '
                                 'the checkpoint); never overwritten')
    p.add_argument('--data_path', help='where the run\'s data lies now, if it moved')
    p.add_argument('--num_workers', type=int, check=at_least(0),
                   help='image decoding workers (default: the run\'s)')
    p.add_argument('--gpuid', type=int, default=0, check=at_least(0),
                   help='which GPU to run on (0 is the first); the CPU when there is none')
    p.add_argument('--debug', action='store_true', help='show tracebacks for input errors')
    options = check_args(p.parse_args(argv), p.rules)
    checkpoint, script, args = read_checkpoint(options.checkpoint)
    out = options.out or os.path.join(os.path.dirname(options.checkpoint), '%s_labels_epoch%d.csv'
                                      % (run_name(options.checkpoint), checkpoint['epoch']))
    if os.path.lexists(out):
        raise InputError('%s exists and is never overwritten: pass --out with another file name'
                         % out)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder) or not os.access(folder, os.W_OK):
        raise InputError('cannot write into %s: pass --out in a writable folder' % folder)
    run_dir = os.path.dirname(os.path.abspath(options.checkpoint))
    if inside(folder, run_dir):  # held, as a training run holds it: one writer at a time
        hold_run(os.path.join(run_dir, run_name(options.checkpoint) + '.jsonl'),
                 run_name(options.checkpoint), run_dir, 'or pass --out FILE in another folder')
    if options.data_path:
        if script == 'Train_cifar.py' and args.cifar_n_file == os.path.join(
                args.data_path, CIFAR_N_FILES[args.dataset]):  # the default follows the data
            args.cifar_n_file = os.path.join(options.data_path, CIFAR_N_FILES[args.dataset])
        args.data_path = options.data_path
    if args.data_path is not None and not os.path.isdir(args.data_path):  # (lists: may be None)
        raise InputError('--data_path %s is not a folder' % args.data_path if options.data_path
                         else 'the run\'s data folder %s is not there (moved, or relative to '
                         'another folder): pass --data_path' % args.data_path)
    if options.num_workers is not None:
        args.num_workers = options.num_workers
    device = pick_device(options.gpuid)
    run = RUNS[script](args, checkpoint, device)
    keys, labels, names = run.pop('training_set')
    if names is None:  # the keys name the images (paths)
        keys = names = list(keys)
    changed = training_set_changes(checkpoint.get('training_set'), training_set(keys, labels),
                                   names)
    if changed:  # each image's loss history and clean probability would be another's
        raise InputError('the training set of %s changed since it was saved: %s; put the data '
                         'back as it was' % (options.checkpoint, changed))
    nets = run.pop('nets')
    for key, net in zip(('net1', 'net2'), nets):
        try:
            net.load_state_dict(checkpoint[key])
        except (RuntimeError, KeyError) as e:
            raise InputError('%s: the %s weights do not fit the network its arguments describe'
                             ' (%s): %s' % (options.checkpoint, key, one_line(e),
                                            GIVE)) from None
    nets = [prepare(net.to(device), device, not args.plain) for net in nets]
    if 'rng' in checkpoint:  # the GMM seeds the next epoch would draw
        set_rng_state([dict(checkpoint['rng'][0], cuda=[])])
    release_output()  # every input is checked: what loading the run said comes first
    print('exporting the labels of %s (epoch %d of %s) on %s'
          % (options.checkpoint, checkpoint['epoch'], script, device))
    labels = export_labels(out, nets, run.pop('eval_loader'), device, epoch=checkpoint['epoch'],
                           args=args, loss_histories=checkpoint.get('loss_history'), **run)
    print(labels.line)
    return labels


if __name__ == '__main__':
    sys.exit(run_cli(main))
