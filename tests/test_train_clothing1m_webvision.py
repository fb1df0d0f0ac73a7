"""Train_clothing1M.py and Train_webvision.py end to end on tiny synthetic data, on CPU."""
import json
import os

import pytest
import torch

import Train_clothing1M
import Train_webvision
from PreResNet import ResNet18
from utils.cli import run_cli
from test_clothing1M_data import make_clothing1m
from test_webvision_data import make_webvision


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def assert_figure_files(out, prefix, snapshot_epoch, subset=None):
    """The run saved its last division (Fig. 2) and a grid of its unlabeled images with the
    networks' guesses (Fig. 4), and drew them."""
    import numpy as np
    snap = np.load(os.path.join(out, prefix + '_division', 'epoch_%03d.npz' % snapshot_epoch))
    assert 'is_clean' not in snap  # the truth is unknown
    if subset is not None:  # Clothing1M: each GMM divided its own subset, kept by index
        assert len(snap['net1_indices']) == len(snap['net1_loss']) <= subset
    with open(os.path.join(out, prefix + '_unlabeled_examples.json')) as f:
        examples = json.load(f)['examples']
    for e in examples:
        assert os.path.exists(e['path']) and e['clean_prob'] <= 0.5
    figures = os.listdir(os.path.join(out, 'figures'))
    for name in ('accuracy', 'loss_epoch%d' % snapshot_epoch) + (
            ('unlabeled_examples',) if examples else ()):
        assert '%s_%s.png' % (prefix, name) in figures


@pytest.mark.slow
def test_clothing1m_end_to_end(tmp_path):
    root = make_clothing1m(tmp_path / 'clothing1m', size=72)
    out = str(tmp_path / 'ckpt')
    summary = Train_clothing1M.main(
        ['--data_path', root, '--out_dir', out, '--pretrained', 'none', '--resize', '72',
         '--crop', '64', '--num_batches', '2', '--batch_size', '4', '--num_epochs', '2',
         '--num_workers', '0'])
    lines = open(os.path.join(out, 'clothing1m.txt')).read().splitlines()
    assert lines[0].startswith('Validation Epoch:0      Acc1:') and '  Acc2:' in lines[0]
    assert lines[1].startswith('Validation Epoch:1      Acc1:')
    assert lines[2] == 'Test Accuracy:%.2f' % summary['test_acc']
    records = read_jsonl(os.path.join(out, 'clothing1m.jsonl'))
    assert 'warmup_ce' in records[0]['net1']
    assert records[1]['net1']['divided'] <= 8  # a balanced subset of num_batches * B images
    assert records[2]['final'] and records[2]['best_val'] == [
        max(r['net1_val_acc'] for r in records[:2]), max(r['net2_val_acc'] for r in records[:2])]
    for k in (1, 2):
        assert os.path.exists(os.path.join(out, 'clothing1m_net%d_best.pth' % k))
    assert_figure_files(out, 'clothing1m', snapshot_epoch=1, subset=8)


@pytest.mark.slow
def test_clothing1m_resume_keeps_best_weights(tmp_path):
    root = make_clothing1m(tmp_path / 'clothing1m', size=72)
    out = str(tmp_path / 'ckpt')
    argv = ['--data_path', root, '--out_dir', out, '--pretrained', 'none', '--resize', '72',
            '--crop', '64', '--num_batches', '2', '--batch_size', '4', '--num_workers', '0']
    Train_clothing1M.main(argv + ['--num_epochs', '1'])
    best = os.path.join(out, 'clothing1m_net1_best.pth')
    os.remove(best)  # as if killed between the checkpoint and the best-weights file
    Train_clothing1M.main(argv + ['--num_epochs', '1', '--resume'])  # no epoch left to run
    ckpt = torch.load(os.path.join(out, 'clothing1m_last.pth'), weights_only=True)
    restored = torch.load(best, weights_only=True)
    assert ckpt['best_epoch'][0] == 0 and all(torch.equal(restored[k], ckpt['net1'][k])
                                              for k in restored)
    records = read_jsonl(os.path.join(out, 'clothing1m.jsonl'))
    assert [r.get('epoch') for r in records] == [0, None] and 'test_acc' in records[-1]


def test_clothing1m_missing_data_is_one_line(tmp_path, capsys):
    code = run_cli(Train_clothing1M.main, ['--data_path', str(tmp_path / 'none'),
                                           '--out_dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and 'none' in err


@pytest.mark.slow
def test_webvision_end_to_end(tmp_path, monkeypatch):
    root = str(tmp_path / 'webvision')
    make_webvision(root, per_class=4)
    # Inception-ResNet-v2 needs 299-px images (its shapes are tested on their own); the loop
    # is tested with a small network on 32-px crops.
    monkeypatch.setattr(Train_webvision, 'create_model',
                        lambda args: ResNet18(args.num_class, width=8))
    monkeypatch.setattr(Train_webvision, 'INPUT_SIZE', 32)  # what --crop must be
    out = str(tmp_path / 'ckpt')
    summary = Train_webvision.main(
        ['--data_path', root, '--out_dir', out, '--num_class', '3', '--resize', '36',
         '--crop', '32', '--batch_size', '4', '--num_epochs', '3', '--num_workers', '0'])
    acc = open(os.path.join(out, 'webvision_acc.txt')).read().splitlines()
    assert len(acc) == 3 and acc[0].startswith('Epoch:0 \t WebVision Acc: ')
    assert '%) \t ImageNet Acc: ' in acc[0]
    stats = open(os.path.join(out, 'webvision_stats.txt')).read().splitlines()
    assert len(stats) == 4 and all(s.startswith('Numer of labeled samples:') for s in stats)
    records = read_jsonl(os.path.join(out, 'webvision.jsonl'))
    for r in records[:3]:
        assert 0 <= r['webvision_top1'] <= r['webvision_top5'] <= 100
        assert 0 <= r['imagenet_top1'] <= r['imagenet_top5'] <= 100
    assert records[3]['best'] == max(r['webvision_top1'] for r in records[:3]) == summary['best']
    ckpt = torch.load(os.path.join(out, 'webvision_last.pth'), weights_only=True)
    assert ckpt['epoch'] == 2 and 'net1' in ckpt and 'net2' in ckpt  # both networks saved
    assert_figure_files(out, 'webvision', snapshot_epoch=2)
