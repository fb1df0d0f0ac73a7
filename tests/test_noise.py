"""Noise injection matches the authors' code; noise files round-trip and bad ones are refused."""
import json
import random
import time

import numpy as np
import pytest

from dataloader_cifar import (CIFAR100_SUPERCLASSES, asym_transition, default_noise_file,
                              make_noisy_labels, read_noise_file)
from utils.cli import InputError

N = 50000
CLEAN10 = np.arange(N) % 10  # any clean labels; the fingerprints below do not depend on them


def test_shuffle_fingerprint_seed_123():
    order = list(range(N))
    random.Random(123).shuffle(order)
    assert order[:5] == [38712, 34233, 25555, 46929, 30485]


@pytest.mark.parametrize('r, expected', [
    (0.5, [(0, 8), (1, 5), (5, 8), (6, 3), (8, 6)]),
    (0.2, [(6, 8), (9, 5), (16, 8), (24, 3), (39, 6)]),
])
def test_sym_fingerprint_cifar10(r, expected):
    noisy = make_noisy_labels(CLEAN10, r, 'sym', 10, 123)
    order = list(range(N))
    random.Random(123).shuffle(order)
    noise_idx = sorted(order[:int(r * N)])
    assert [(i, noisy[i]) for i in noise_idx[:5]] == expected


def test_sym_fingerprint_cifar100_90():
    noisy = make_noisy_labels(np.arange(N) % 100, 0.9, 'sym', 100, 123)
    assert [(i, noisy[i]) for i in range(5)] == [(0, 66), (1, 46), (2, 71), (3, 25), (4, 50)]


@pytest.mark.parametrize('r', [0.0, 0.2, 0.5, 0.8, 0.9, 1.0])
def test_sym_rate_and_exact_count(r):
    noisy = np.array(make_noisy_labels(CLEAN10, r, 'sym', 10, 123))
    order = list(range(N))
    random.Random(123).shuffle(order)
    untouched = np.ones(N, bool)
    untouched[order[:int(r * N)]] = False
    assert (noisy[untouched] == CLEAN10[untouched]).all()  # exactly floor(rN) are re-drawn
    flipped = (noisy != CLEAN10).mean()
    assert abs(flipped - r * 0.9) < 0.01  # the true class can be drawn: r (1 - 1/C)


def test_sym_draws_cover_all_classes_uniformly():
    noisy = np.array(make_noisy_labels(CLEAN10, 1.0, 'sym', 10, 7))
    counts = np.bincount(noisy, minlength=10)
    assert counts.min() > 4700 and counts.max() < 5300


def test_asym_cifar10_map_and_rate():
    assert asym_transition('cifar10') == [0, 1, 0, 5, 7, 3, 6, 7, 8, 1]
    noisy = np.array(make_noisy_labels(CLEAN10, 0.4, 'asym', 10, 123, asym_transition('cifar10')))
    changed = noisy != CLEAN10
    assert set(zip(CLEAN10[changed], noisy[changed])) == {(9, 1), (2, 0), (4, 7), (3, 5), (5, 3)}
    for c in (2, 3, 4, 5, 9):  # each source class flips about r of its images
        assert abs(changed[CLEAN10 == c].mean() - 0.4) < 0.02
    assert abs(changed.mean() - 0.2) < 0.01  # half the classes map to themselves


def test_cifar100_superclasses_partition_and_asym_map():
    flat = sorted(c for group in CIFAR100_SUPERCLASSES for c in group)
    assert flat == list(range(100)) and len(CIFAR100_SUPERCLASSES) == 20
    t = asym_transition('cifar100')
    assert t[4] == 30 and t[95] == 4  # beaver -> dolphin, whale -> beaver (cyclic)
    assert t[47] == 52 and t[96] == 47  # maple -> oak, willow -> maple
    group_of = {c: g for g, group in enumerate(CIFAR100_SUPERCLASSES) for c in group}
    assert all(t[c] != c and group_of[t[c]] == group_of[c] for c in range(100))
    clean = np.arange(N) % 100
    noisy = np.array(make_noisy_labels(clean, 0.4, 'asym', 100, 123, t))
    assert (noisy != clean).sum() == int(0.4 * N)  # no class maps to itself


def test_generation_is_fast():
    start = time.time()
    make_noisy_labels(CLEAN10, 0.5, 'sym', 10, 123)
    assert time.time() - start < 1.0


def test_unknown_noise_mode_refused():
    with pytest.raises(InputError, match='unknown noise mode'):
        make_noisy_labels(CLEAN10[:10], 0.5, 'pairflip', 10, 123)


def test_default_noise_file_path():
    assert default_noise_file('./cifar-10', 0.5, 'sym') == './cifar-10/0.5_sym.json'
    assert default_noise_file('d', 0.4, 'asym', 1) == 'd/0.4_asym_seed1.json'
    assert default_noise_file('d', 0.5, 'sym', 123, 500) == 'd/0.5_sym_first500.json'
    assert default_noise_file('d', 0.45, 'sym') == 'd/0.45_sym.json'  # not 0.5's file


def test_noise_file_round_trip_and_refusals(tmp_path):
    path = tmp_path / 'n.json'
    labels = make_noisy_labels(CLEAN10[:100], 0.5, 'sym', 10, 123)
    path.write_text(json.dumps(labels))  # the authors' format: a plain JSON list
    assert read_noise_file(str(path), 100, 10) == labels
    with pytest.raises(InputError, match='has 100 labels but the training set has 50'):
        read_noise_file(str(path), 50, 10)
    path.write_text(json.dumps([0, 1, 10]))
    with pytest.raises(InputError, match='label 10 outside'):
        read_noise_file(str(path), 3, 10)
    path.write_text('[0, 1,')
    with pytest.raises(InputError, match='not readable JSON'):
        read_noise_file(str(path), 3, 10)
    path.write_text('{"a": 1}')
    with pytest.raises(InputError, match='JSON list of integer'):
        read_noise_file(str(path), 1, 10)
