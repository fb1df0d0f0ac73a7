"""A message built from a file's content or an exception's text is one printable line that
names the file, whatever bytes the file holds (utils.cli.one_line): CIFAR pickles, noise and
CIFAR-N files, CSV lists, annotation lists and checkpoints of random bytes, of newlines,
carriage returns and quotes, of invalid UTF-8."""
import os
import random
import zipfile

import numpy as np
import pytest

import Train_cifar
from conftest import write_fake_cifar
from dataloader_cifar import load_cifar, read_cifar_n, read_noise_file
from dataloader_clothing1M import Clothing1M
from dataloader_imagefolder import ImageFolderData
from dataloader_webvision import read_list
from test_clothing1M_data import make_clothing1m
from utils.checkpoint import load_checkpoint
from utils.cli import InputError, one_line, run_cli


def short_unicode(text):
    """pickle's SHORT_BINUNICODE opcode pushing `text`."""
    data = text.encode()
    return b'\x8c' + bytes([len(data)]) + data


# A pickle that names the global "a\nb.c'):\r x" (STACK_GLOBAL takes any strings): unpickling
# refuses it with a message that holds the newline and the carriage return.
GLOBAL_WITH_NEWLINE = (b'\x80\x04' + short_unicode('a\nb') + short_unicode("c'):\r x")
                       + b'\x93.')
CONTENTS = {
    'random bytes': random.Random(0).randbytes(300),
    'newlines and quotes': b'\n\r"\'x\ny\r\n\'"\n',
    'invalid UTF-8': b'\xff\xfe\xc3\x28\x80 0\n\xed\xa0\x80,1\n',
    'a global named with a newline': GLOBAL_WITH_NEWLINE,
}
any_bytes = pytest.mark.parametrize('content', list(CONTENTS.values()), ids=list(CONTENTS))


def assert_one_line(message, path):
    assert str(path) in message
    assert message.isprintable(), message  # no newline, carriage return or other control


def refusal(call, path):
    with pytest.raises(InputError) as e:
        call()
    assert_one_line(str(e.value), path)
    return str(e.value)


def test_one_line_escapes_what_is_not_printable_and_clips():
    assert one_line('a\nb\r"c\'\x00é\udcff') == 'a\\nb\\r"c\'\\x00é\\udcff'
    assert one_line(ValueError('first\nsecond')) == 'first\\nsecond'
    assert one_line(KeyError()) == 'KeyError'  # no text: its type
    assert one_line(FileNotFoundError(2, 'No such file or directory', 'x')) == (
        'No such file or directory')  # the file is named by the message itself
    assert one_line('x' * 200) == 'x' * 117 + '...' and len(one_line('y' * 50, 20)) == 20


@any_bytes
def test_cifar_batch_of_any_bytes(tmp_path, content):
    folder = write_fake_cifar(str(tmp_path), 'cifar10', num_train=10, num_test=5)
    path = os.path.join(folder, 'data_batch_2')
    with open(path, 'wb') as f:
        f.write(content)
    message = refusal(lambda: load_cifar(str(tmp_path), 'cifar10'), path)
    assert message.startswith('%s is not a readable CIFAR batch (' % path)
    assert message.endswith('): re-extract the official archive')


def test_cifar_run_on_a_batch_naming_a_global_with_a_newline_says_one_line(tmp_path, capsys):
    folder = write_fake_cifar(str(tmp_path / 'data'), 'cifar10', num_train=10, num_test=5)
    path = os.path.join(folder, 'data_batch_1')
    with open(path, 'wb') as f:
        f.write(GLOBAL_WITH_NEWLINE)
    code = run_cli(Train_cifar.main, ['--data_path', str(tmp_path / 'data'),
                                      '--out_dir', str(tmp_path / 'out')])
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1
    assert err == ("error: %s is not a readable CIFAR batch (UnpicklingError: forbidden global "
                   "a\\nb.c'):\\r x): re-extract the official archive\n" % path)


@any_bytes
def test_noise_file_of_any_bytes(tmp_path, content):
    path = tmp_path / 'noise.json'
    path.write_bytes(content)
    assert refusal(lambda: read_noise_file(str(path), 3, 10), path).startswith(
        'noise file %s ' % path)


@any_bytes
def test_cifar_n_file_of_any_bytes(tmp_path, content):
    path = tmp_path / 'CIFAR-10_human.pt'
    path.write_bytes(content)
    clean = np.arange(10) % 10
    refusal(lambda: read_cifar_n(str(path), 'worse_label', clean), path)
    with zipfile.ZipFile(path, 'w') as z:  # a torch zip whose pickle holds these bytes
        z.writestr('CIFAR-10_human/data.pkl', content)
    refusal(lambda: read_cifar_n(str(path), 'worse_label', clean), path)


@any_bytes
def test_csv_list_of_any_bytes(tmp_path, content):
    path = tmp_path / 'train.csv'
    path.write_bytes(content)
    refusal(lambda: ImageFolderData(str(tmp_path), train_list=str(path)), path)


def test_csv_list_paths_with_newlines_stay_on_one_line(tmp_path):
    """A quoted CSV field may hold a newline: a path listed twice, or missing, is escaped."""
    path = tmp_path / 'train.csv'
    path.write_text('"a\nb.jpg",cat\n"c\r.jpg",dog\n"a\nb.jpg",cat\n')
    assert "a\\nb.jpg is listed twice" in refusal(
        lambda: ImageFolderData(str(tmp_path), train_list=str(path)), path)
    path.write_text('"a\nb.jpg",cat\n"c\r.jpg",dog\n')
    message = refusal(lambda: ImageFolderData(str(tmp_path), train_list=str(path)), path)
    assert message.startswith('2 of the 2 images listed in %s are missing, e.g. %s: '
                              % (path, tmp_path / 'a\\nb.jpg'))


@any_bytes
def test_webvision_list_of_any_bytes(tmp_path, content):
    path = tmp_path / 'train_filelist_google.txt'
    path.write_bytes(content)
    refusal(lambda: read_list(str(path), 50), path)


@any_bytes
def test_clothing1m_annotation_file_of_any_bytes(tmp_path, content):
    root = make_clothing1m(tmp_path / 'clothing1m')
    path = os.path.join(root, 'clean_val_key_list.txt')
    with open(path, 'wb') as f:
        f.write(content)
    refusal(lambda: Clothing1M(root), path)


@pytest.mark.filterwarnings('ignore:Detected pickle protocol')
@any_bytes
def test_checkpoint_of_any_bytes(tmp_path, content):
    path = tmp_path / 'run_last.pth'
    path.write_bytes(content)
    message = refusal(lambda: load_checkpoint(str(path), 'restore it'), path)
    assert message.endswith('; restore it')
