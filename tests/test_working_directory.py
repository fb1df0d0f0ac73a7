"""The suite does not depend on the folder it is started from: run from a folder holding a user's
run (checkpoint/ with the default run name, cifar-10/ with data), tests pass and leave it as it
was. tests/conftest.py runs every test in its own tmp_path."""
import os
import subprocess
import sys

import pytest

import Train_cifar
from conftest import ROOT, files_under, write_fake_cifar

# quick tests that start runs with the default --out_dir (checkpoint/) or --data_path
# (./cifar-10), and ones that refuse a folder holding a run
SUBSET = ['test_train_cifar.py', 'test_cifar_data.py', 'test_run_folder.py']


def test_every_test_starts_in_an_empty_folder_of_its_own(tmp_path):
    assert os.getcwd() == str(tmp_path) and os.listdir('.') == []


@pytest.mark.slow
def test_suite_passes_from_a_folder_holding_a_run_and_leaves_it_unchanged(tmp_path,
                                                                          monkeypatch):
    user = tmp_path / 'user'
    user.mkdir()
    monkeypatch.chdir(user)  # what a user does: train in the folder, with the defaults
    write_fake_cifar('cifar-10', 'cifar10')
    Train_cifar.main(['--width', '8', '--num_epochs', '1', '--warm_up', '1', '--batch_size',
                      '16', '--num_workers', '0', '--no-download', '--no-figures'])
    assert os.path.exists(os.path.join('checkpoint', 'cifar10_0.5_sym_last.pth'))
    before = files_under(str(user))

    proc = subprocess.run(
        [sys.executable, '-m', 'pytest', '-q', '-x', '-m', 'not slow', '-p', 'no:cacheprovider',
         '--basetemp', str(tmp_path / 'basetemp')]
        + [os.path.join(ROOT, 'tests', name) for name in SUBSET],
        cwd=str(user), env=dict(os.environ, OMP_NUM_THREADS='1'), capture_output=True,
        text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert ' passed' in proc.stdout and 'failed' not in proc.stdout
    assert files_under(str(user)) == before
