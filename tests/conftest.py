"""Shared fixtures: tiny CIFAR folders in the official python-pickle layout, made on the fly."""
import os
import pickle
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(ROOT, '..', 'shared')

# The paper's Table 7 (Appendix B), typed from the paper: (dataset, noise, r) -> (lambda_u, tau).
# The one place the tests hold it.
TABLE7 = {
    ('cifar10', 'sym', 0.2): (0, 0.5), ('cifar10', 'sym', 0.5): (25, 0.5),
    ('cifar10', 'sym', 0.8): (25, 0.5), ('cifar10', 'sym', 0.9): (50, 0.6),
    ('cifar10', 'asym', 0.4): (0, 0.5),
    ('cifar100', 'sym', 0.2): (25, 0.5), ('cifar100', 'sym', 0.5): (150, 0.5),
    ('cifar100', 'sym', 0.8): (150, 0.5), ('cifar100', 'sym', 0.9): (150, 0.6),
}


def write_fake_cifar(root, dataset='cifar10', num_train=200, num_test=50, seed=0):
    """Random images whose class is readable from the mean colour, so a net can learn a bit.
    Returns the folder holding the pickles (torchvision's layout under `root`)."""
    rng = np.random.RandomState(seed)
    num_class = 10 if dataset == 'cifar10' else 100

    def batch(n):
        labels = rng.randint(0, num_class, n)
        data = rng.randint(0, 256, (n, 3072)).astype(np.uint8)
        data[:, :1024] = (labels[:, None] * 255 // num_class).astype(np.uint8)  # red plane
        return data, labels

    if dataset == 'cifar10':
        folder = os.path.join(root, 'cifar-10-batches-py')
        os.makedirs(folder, exist_ok=True)
        data, labels = batch(num_train)
        for k, part in enumerate(np.array_split(np.arange(num_train), 5)):
            with open(os.path.join(folder, 'data_batch_%d' % (k + 1)), 'wb') as f:
                pickle.dump({'data': data[part], 'labels': labels[part].tolist()}, f)
        data, labels = batch(num_test)
        with open(os.path.join(folder, 'test_batch'), 'wb') as f:
            pickle.dump({'data': data, 'labels': labels.tolist()}, f)
    else:
        folder = os.path.join(root, 'cifar-100-python')
        os.makedirs(folder, exist_ok=True)
        for name, n in (('train', num_train), ('test', num_test)):
            data, labels = batch(n)
            with open(os.path.join(folder, name), 'wb') as f:
                pickle.dump({'data': data, 'fine_labels': labels.tolist(),
                             'coarse_labels': (labels // 5).tolist()}, f)
    return folder


def files_under(root):
    """{relative path: bytes} of every file under root, and every folder (as None): what a
    refusal must leave unchanged."""
    tree = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            tree[os.path.relpath(os.path.join(folder, name), root)] = None
        for name in files:
            path = os.path.join(folder, name)
            with open(path, 'rb') as f:
                tree[os.path.relpath(path, root)] = f.read()
    return tree


@pytest.fixture
def cifar10_dir(tmp_path):
    write_fake_cifar(str(tmp_path / 'data'), 'cifar10')
    return str(tmp_path / 'data')


@pytest.fixture
def cifar100_dir(tmp_path):
    write_fake_cifar(str(tmp_path / 'data'), 'cifar100', num_train=300)
    return str(tmp_path / 'data')


@pytest.fixture(scope='session')
def real_cifar10(tmp_path_factory):
    """Real CIFAR-10 built from ../shared (JPEG q75); the test skips where ../shared is absent."""
    tool = os.path.join(SHARED, 'tools', 'make_cifar10.py')
    if not os.path.exists(tool):
        pytest.skip('../shared is not here (real-data tests run only beside it)')
    out = str(tmp_path_factory.mktemp('real'))
    import subprocess
    subprocess.run([sys.executable, tool, out], check=True, capture_output=True)
    return os.path.join(out, 'cifar-10-batches-py')
