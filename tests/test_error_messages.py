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


# ---------------------------------------------------------------- names that hold a newline ----
# Whatever raised it, a script's error line escapes what is not printable in the whole message
# (run_cli): a forged name cannot push the start of the message off the line, nor add a line.

FORGED = 'cat\nINJECTED: all is fine'


def error_line(capsys):
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and err.startswith('error: '), err
    return err


def test_a_class_folder_named_with_a_newline_is_escaped(tmp_path, capsys):
    import Train_imagefolder
    from test_imagefolder_data import make_image_folder
    make_image_folder(tmp_path / 'data' / 'train', classes=(FORGED, 'dog'), per_class=2)
    os.makedirs(tmp_path / 'data' / 'test' / 'fox')  # a class the training set lacks
    code = run_cli(Train_imagefolder.main, ['--data_path', str(tmp_path / 'data'),
                                            '--out_dir', str(tmp_path / 'out')])
    err = error_line(capsys)
    assert code == 2 and "class folder 'fox'" in err
    assert not (tmp_path / 'out').exists()
    # an empty class folder whose name holds the newline: named in full, escaped
    os.rmdir(tmp_path / 'data' / 'test' / 'fox')
    os.makedirs(tmp_path / 'data' / 'train' / ('bird\nINJECTED: all is fine'))
    code = run_cli(Train_imagefolder.main, ['--data_path', str(tmp_path / 'data'),
                                            '--out_dir', str(tmp_path / 'out')])
    err = error_line(capsys)
    assert code == 2 and 'class folder ' in err and 'bird\\nINJECTED: all is fine' in err


def test_a_list_label_with_a_newline_is_escaped(tmp_path, capsys):
    import Train_imagefolder
    from test_imagefolder_data import make_image_folder, write_list
    made = make_image_folder(tmp_path / 'images', per_class=3)
    train = write_list(tmp_path / 'train.csv', made)
    test = write_list(tmp_path / 'test.csv', [(made[0][0], 'owl\nINJECTED: all is fine')])
    code = run_cli(Train_imagefolder.main, ['--data_path', str(tmp_path / 'images'),
                                            '--train_list', train, '--test_list', test,
                                            '--out_dir', str(tmp_path / 'out')])
    err = error_line(capsys)
    assert code == 2 and 'owl\\nINJECTED: all is fine' in err


def test_a_forged_args_json_value_is_escaped(tmp_path, capsys):
    import json
    data = str(tmp_path / 'data')
    write_fake_cifar(data, 'cifar10')
    out = tmp_path / 'out'
    argv = ['--data_path', data, '--out_dir', str(out), '--width', '8', '--num_epochs', '1',
            '--warm_up', '1', '--batch_size', '16', '--num_workers', '0', '--no-figures']
    assert run_cli(Train_cifar.main, argv) == 0
    for name in os.listdir(out):  # only the arguments file holds the run's settings now
        if name.endswith('.pth'):
            os.remove(out / name)
    args_path = out / 'cifar10_0.5_sym_args.json'
    saved = json.loads(args_path.read_text())
    saved['lambda_u'] = '25\nINJECTED: all is fine'
    args_path.write_text(json.dumps(saved))
    capsys.readouterr()
    code = run_cli(Train_cifar.main, argv)
    err = error_line(capsys)
    assert code == 2 and 'already holds the run' in err
    assert '--lambda_u 25\\nINJECTED: all is fine (there)' in err


def test_an_image_file_named_with_a_newline_is_escaped(tmp_path, capsys):
    import Train_imagefolder
    from test_imagefolder_data import make_image_folder
    make_image_folder(tmp_path / 'data' / 'train', per_class=2)
    (tmp_path / 'data' / 'train' / 'cat' / 'x\nINJECTED: all is fine.png').write_bytes(b'no png')
    code = run_cli(Train_imagefolder.main, ['--data_path', str(tmp_path / 'data'),
                                            '--out_dir', str(tmp_path / 'out')])
    err = error_line(capsys)
    assert code == 2 and 'x\\nINJECTED: all is fine.png' in err
    assert not (tmp_path / 'out').exists()


def test_an_error_from_a_loader_worker_is_its_message_escaped_whole(capsys):
    # raised in a worker, it arrives wrapped in the worker's traceback: the message alone shows
    from utils.cli import TrainingError

    def fails(argv):
        try:
            raise TrainingError('cannot read image cat/a\nINJECTED: all is fine.png')
        except TrainingError as e:  # as torch's ExceptionWrapper re-raises it
            raise TrainingError('Caught TrainingError in DataLoader worker process 0.\n'
                                'Original Traceback (most recent call last):\n  File "x"\n'
                                '%s.TrainingError: %s' % (TrainingError.__module__, e)) from None
    assert run_cli(fails, []) == 2
    assert error_line(capsys) == ('error: cannot read image cat/a\\nINJECTED: all is fine.png\n')
