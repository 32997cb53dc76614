"""Data that fails to load (repmobile_mm/engine/bad_samples.py,
tools/analysis_tools/check_dataset.py): one line naming the sample and its file, or,
with ``skip_bad_samples`` in the config, a skip that is logged and bounded."""
import glob
import os.path as osp

import pytest

from tests.helpers import (BAD_FILES, SMALL_RUNS, check_tool, corrupt, corrupt_copy,
                           make_folder_dataset, refusal, run_tool)
from tests.test_runs import write_config

WORKER = ['train_dataloader.num_workers=1']  # the image fails in a DataLoader worker


def logs(work_dir):
    text = ''
    for path in glob.glob(osp.join(work_dir, '*', '*.log')):
        with open(path) as f:
            text += f.read()
    assert text, f'no log in {work_dir}'
    return text


@pytest.fixture
def digits(tmp_path):
    """``(config, data)``: the tiny digits config (12 training images in 3 folders, in
    that order the dataset's samples 0-11) with training sample 1 corrupt."""
    data = str(tmp_path / 'data')
    make_folder_dataset(data)
    corrupt(osp.join(data, 'train', '0', '1.png'))
    return write_config(tmp_path / 'config.py', data, 6), data


def test_a_corrupt_training_image_stops_the_run_in_one_line(digits, tmp_path):
    config, data = digits
    bad = osp.join(data, 'train', '0', '1.png')
    message = refusal('tools/train.py', config, '--work-dir', str(tmp_path / 'work'),
                      '--cfg-options', *WORKER)
    assert message.startswith(f'sample 1 ({bad}) cannot be loaded: AssertionError: '), message
    assert 'DataLoader worker' not in message


def test_skipping_is_logged_and_bounded_and_evaluation_names_its_file(digits, tmp_path):
    """skip_bad_samples.max_fraction=0.1 of 12 samples: 1 skip allowed, the run
    finishes and its log names the file; a second corrupt image stops it in one line.
    Evaluation never skips: a corrupt validation image is named in one line."""
    config, data = digits
    bad = osp.join(data, 'train', '0', '1.png')
    skip = ['--cfg-options', *WORKER, 'skip_bad_samples.max_fraction=0.1']
    work = str(tmp_path / 'work')
    check_tool('tools/train.py', config, '--work-dir', work, *skip)
    assert f'skipped sample 1 ({bad}): AssertionError' in logs(work)
    assert '(1 of at most 1 skipped)' in logs(work)

    val_bad = corrupt(osp.join(data, 'val', '2', '3.png'))
    message = refusal('tools/test.py', config, osp.join(work, 'epoch_1.pth'),
                      '--work-dir', str(tmp_path / 'test'))
    assert message.startswith(f'sample 11 ({val_bad}) cannot be loaded: '), message

    second = corrupt(osp.join(data, 'train', '2', '0.png'))
    message = refusal('tools/train.py', config, '--work-dir', str(tmp_path / 'work2'), *skip)
    assert message.endswith('more than 1 bad samples skipped '
                            '(skip_bad_samples.max_fraction): stopped'), message
    assert f'({bad})' in message or f'({second})' in message


def test_check_dataset_lists_what_cannot_be_loaded(digits):
    config, data = digits
    second = corrupt(osp.join(data, 'train', '2', '0.png'))
    result = run_tool('tools/analysis_tools/check_dataset.py', config, '--workers', '2')
    assert result.returncode == 1, result.stderr[-2000:]
    listed = [line for line in result.stdout.splitlines() if line.startswith('sample ')]
    assert [line.split(':')[0] for line in listed] == [
        f'sample 1 ({osp.join(data, "train", "0", "1.png")})', f'sample 8 ({second})']
    assert result.stderr.strip().splitlines()[-1] == (
        "2 of the train split's 12 samples cannot be loaded (listed above)")
    result = check_tool('tools/analysis_tools/check_dataset.py', config, '--split', 'val')
    assert "all 12 samples of the val split load" in result.stdout
    result = run_tool('tools/analysis_tools/check_dataset.py', config, '--workers', '-1')
    assert result.returncode == 2 and 'Traceback' not in result.stderr
    assert result.stderr.strip().splitlines()[-1].endswith(
        "argument --workers: a number of processes (0 or more), not '-1'")


@pytest.mark.parametrize('task', sorted(SMALL_RUNS))
def test_detection_and_segmentation_name_their_bad_samples(task, request, tmp_path):
    """check_dataset.py lists the corrupt training image (detection) or label map
    (segmentation, naming the sample's image and label map), and training stops at it
    in one line."""
    config, (relative, index) = SMALL_RUNS[task], BAD_FILES[task]
    fixture = 'shapes_data' if task == 'detection' else 'scenes_data'
    data, bad = corrupt_copy(request.getfixturevalue(fixture), relative, tmp_path / 'data')
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data}']
    result = run_tool('tools/analysis_tools/check_dataset.py', config, *options)
    assert result.returncode == 1, result.stderr[-2000:]
    listed = [line for line in result.stdout.splitlines() if line.startswith('sample ')]
    assert len(listed) == 1 and listed[0].startswith(f'sample {index} (') and bad in listed[0]
    assert result.stderr.strip().splitlines()[-1] == (
        "1 of the train split's 4 samples cannot be loaded (listed above)")
    message = refusal('tools/train.py', config, '--work-dir', str(tmp_path / 'work'), *options,
                      'train_cfg.max_iters=1', 'val_cfg=None', 'val_dataloader=None',
                      'val_evaluator=None')
    assert message.startswith(f'sample {index} (') and bad in message.split(' cannot be ')[0]
