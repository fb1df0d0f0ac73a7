"""Shared fixtures: tiny CIFAR folders in the official python-pickle layout, made on the fly;
every test runs in its own empty working directory; the real CIFAR-10 where one is at hand."""
import os
import pickle
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
SHARED = os.path.join(ROOT, '..', 'shared')
# The real-data tests read the CIFAR-10 python pickles from this variable's folder (the folder
# holding cifar-10-batches-py/, or that folder itself: what --data_path takes) and the CIFAR-N
# labels from CIFAR-10_human.pt in it; without it, from ../shared beside the checkout, or skip.
REAL_CIFAR10_VAR = 'DIVIDEMIX_CIFAR10'
# a relative path is taken from the folder pytest starts in, before the tests leave it (below)
REAL_CIFAR10 = os.environ.get(REAL_CIFAR10_VAR) and os.path.abspath(os.environ[REAL_CIFAR10_VAR])

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


def script_args(script, **values):
    """A training script's arguments as its own parser makes them (script.parse_args), from
    these values written as on its command line: --name value, True as the switch alone, False
    and None as the argument left out. An argument the script does not declare is refused
    there, as on the command line."""
    argv = []
    for name, value in values.items():
        if value is not False and value is not None:
            argv += ['--' + name] if value is True else ['--' + name, str(value)]
    return script.parse_args(argv)


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


@pytest.fixture(scope='session', autouse=True)
def session_workdir(tmp_path_factory):
    """Module and session fixtures run in an empty folder of their own, not the caller's."""
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(tmp_path_factory.mktemp('cwd'))
        yield


@pytest.fixture(autouse=True)
def workdir(tmp_path, monkeypatch):
    """Each test runs in its own tmp_path: a default --out_dir (checkpoint/), --data_path
    (./cifar-10) or any other relative path lands there, never in the folder pytest was started
    from, whatever that folder holds (a user's checkpoint/, cifar-10/)."""
    monkeypatch.chdir(tmp_path)


def stat_under(root):
    """{relative path: (size, mtime)} of every file under root: a cheap check that a folder of
    real data was left as it was."""
    return {os.path.relpath(os.path.join(folder, name), root):
            (os.stat(os.path.join(folder, name)).st_size,
             os.stat(os.path.join(folder, name)).st_mtime_ns)
            for folder, _, files in os.walk(root) for name in files}


def _real_cifar_home():
    """(the real-data folder, the CIFAR-N file or None) from $DIVIDEMIX_CIFAR10 or ../shared;
    None where neither is at hand."""
    from dataloader_cifar import find_cifar_folder
    given = REAL_CIFAR10
    if given:
        folder = find_cifar_folder(given, 'cifar10')
        if folder is None:
            pytest.fail('%s=%s holds no CIFAR-10 python pickles: point it at the folder holding '
                        'cifar-10-batches-py/ (data_batch_1..5, test_batch) or at that folder '
                        'itself' % (REAL_CIFAR10_VAR, given))
        cifar_n = os.path.join(given, 'CIFAR-10_human.pt')
        return folder, cifar_n if os.path.isfile(cifar_n) else None
    return None


SKIP_REAL = ('no real CIFAR-10: set %s to the folder holding cifar-10-batches-py/ (the python '
             'version from https://www.cs.toronto.edu/~kriz/cifar.html)' % REAL_CIFAR10_VAR)


@pytest.fixture(scope='session')
def real_cifar10(tmp_path_factory):
    """The real CIFAR-10 pickles: the user's own copy from $DIVIDEMIX_CIFAR10 (read, never
    written: checked at the end of the session), else built from ../shared (JPEG q75) into a
    temporary folder; the test skips where neither is at hand."""
    home = _real_cifar_home()
    if home:
        folder = home[0]
        before = stat_under(folder)
        yield folder
        assert stat_under(folder) == before, 'the tests changed %s' % folder
        return
    tool = os.path.join(SHARED, 'tools', 'make_cifar10.py')
    if not os.path.exists(tool):
        pytest.skip(SKIP_REAL)
    out = str(tmp_path_factory.mktemp('real'))
    subprocess.run([sys.executable, tool, out], check=True, capture_output=True)
    yield os.path.join(out, 'cifar-10-batches-py')


@pytest.fixture(scope='session')
def real_cifar10_n(real_cifar10):
    """CIFAR-N's CIFAR-10_human.pt, aligned with real_cifar10's training order: beside the
    pickles in $DIVIDEMIX_CIFAR10 (where Train_cifar.py's --noise_mode cifar-n looks for it),
    else ../shared's; the test skips where it is absent."""
    home = _real_cifar_home()
    path = home[1] if home else os.path.join(SHARED, 'data', 'cifar-n', 'CIFAR-10_human.pt')
    if not path or not os.path.isfile(path):
        pytest.skip('no CIFAR-N labels: put the official CIFAR-10_human.pt in the folder %s '
                    'points at' % REAL_CIFAR10_VAR)
    return path
