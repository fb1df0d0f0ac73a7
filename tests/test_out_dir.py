"""A run's outputs are never its inputs, and an --out_dir that cannot be a folder is named for
what it is: a folder inside the images an image-folder run reads (directly or through a link)
is refused before anything is written, as are a file, a path under a file and a link to
nothing."""
import os

import pytest

import Train_imagefolder
from dataloader_imagefolder import ImageFolderData
from test_imagefolder_data import make_image_folder, write_list
from utils.cli import InputError, run_cli
from utils.runlog import out_dir_problem


@pytest.fixture
def data(tmp_path):
    for split in ('train', 'test'):
        make_image_folder(tmp_path / 'data' / split, per_class=2)
    return tmp_path / 'data'


def refused(argv, capsys):
    code = run_cli(Train_imagefolder.main, argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count('\n') == 1, err
    return err


@pytest.mark.parametrize('inside', ['train/cat/run1', 'train', 'test/runs/a'])
def test_an_out_dir_inside_the_folders_read_is_refused(data, inside, capsys):
    out = data / inside
    existed = out.exists()
    err = refused(['--data_path', str(data), '--out_dir', str(out)], capsys)
    assert "where the images of this data set are read from: the run's outputs" in err
    assert '--out_dir %s is inside %s' % (out, data / inside.split('/')[0]) in err
    assert out.exists() == existed and sorted(os.listdir(data / 'train')) == ['cat', 'dog', 'fox']


def test_beside_the_folders_read_is_fine(data):
    images = ImageFolderData(str(data))
    images.refuse_output_inside(str(data / 'runs'))  # DATA/runs: no image is read there
    images.refuse_output_inside(str(data.parent / 'train_runs'))  # a name that only begins so


def test_a_link_into_the_training_images_is_refused(data, tmp_path, capsys):
    os.symlink(data / 'train' / 'dog', tmp_path / 'runs')
    err = refused(['--data_path', str(data), '--out_dir', str(tmp_path / 'runs' / 'run1')],
                  capsys)
    assert 'is inside %s' % (data / 'train') in err


def test_lists_refuse_the_folder_of_their_images(tmp_path):
    made = make_image_folder(tmp_path / 'images', per_class=2)
    listed = write_list(tmp_path / 'train.csv', made)
    images = ImageFolderData(str(tmp_path / 'images'), train_list=listed)
    with pytest.raises(InputError, match='is inside %s' % (tmp_path / 'images')):
        images.refuse_output_inside(str(tmp_path / 'images' / 'out'))
    images.refuse_output_inside(str(tmp_path / 'out'))  # beside the images: fine


def test_an_out_dir_that_cannot_be_a_folder_is_named_for_what_it_is(tmp_path):
    (tmp_path / 'file').write_text('x')
    os.symlink(tmp_path / 'gone', tmp_path / 'dangling')
    assert out_dir_problem(str(tmp_path / 'file')) == (
        '--out_dir %s is a file: pass a folder' % (tmp_path / 'file'))
    assert out_dir_problem(str(tmp_path / 'file' / 'run')) == (
        '--out_dir %s lies under %s, which is a file: pass a folder'
        % (tmp_path / 'file' / 'run', tmp_path / 'file'))
    for out in (tmp_path / 'dangling', tmp_path / 'dangling' / 'run'):
        assert out_dir_problem(str(out)) == (
            '%s is a symbolic link to %s, which does not exist: create that folder, or pass '
            'another --out_dir' % (tmp_path / 'dangling', tmp_path / 'gone'))
    assert out_dir_problem(str(tmp_path / 'new' / 'run')) is None


def test_a_run_told_a_link_to_nothing_says_so_and_writes_nothing(data, tmp_path, capsys):
    os.symlink(tmp_path / 'gone', tmp_path / 'runs')
    err = refused(['--data_path', str(data), '--out_dir', str(tmp_path / 'runs')], capsys)
    assert 'is a symbolic link to %s, which does not exist' % (tmp_path / 'gone') in err
    assert not (tmp_path / 'gone').exists() and os.path.islink(tmp_path / 'runs')
