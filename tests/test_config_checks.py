"""Configs that cannot work get one line naming the config key and the fix."""
import os.path as osp

import pytest

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.config_checks import check_data_roots
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.errors import ConfigError
from tests.helpers import ROOT, run_tool

DIGITS = {family: osp.join(ROOT, f'classification/configs/{family}/{name}_1xb64_digits.py')
          for family, name in (('repmobile', 'repmobile-s'), ('repvit', 'repvit-m0.9'),
                               ('repnext', 'repnext-m1'))}
SHAPES = osp.join(ROOT, 'detection/configs/repvit/mask-rcnn_repvit-m0.9_fpn_1xb8-900i_shapes.py')


@pytest.mark.parametrize('family,key,expected,given', [
    ('repmobile', 'model.neck.in_channels', 512, 128),
    ('repvit', 'model.head.in_channels', 384, 96),
    ('repnext', 'model.head.in_channels', 384, 96),
])
def test_a_classifier_neck_that_does_not_fit_the_backbone_outputs(family, key, expected, given):
    cfg = load_config(DIGITS[family], {'model.backbone.out_indices': [1]})
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert str(err.value) == (
        f'{key}={expected} but the last output of model.backbone (out_indices=(1,)) has '
        f'{given} channels: set {key}={given}, or end out_indices at the last stage')


def test_an_fpn_that_does_not_fit_the_backbone_outputs():
    cfg = load_config(SHAPES, {'model.backbone.out_indices': [1, 2, 3]})
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert str(err.value) == (
        'model.neck.in_channels=[48, 96, 192, 384] but model.backbone (out_indices=(1, 2, 3)) '
        'gives [96, 192, 384] channels: set model.neck.in_channels=[96, 192, 384], or '
        'out_indices to the stages it expects')


@pytest.mark.parametrize('key,value,message', [
    ('model.backbone.type', 'RepVit', "model.backbone.type='RepVit': no model of that name "
     "is registered in mmpretrain; did you mean 'RepViT'?"),
    ('model.head.type', 'BNLinearClsHed', "model.head.type='BNLinearClsHed': no model of "
     "that name is registered in mmpretrain; did you mean 'BNLinearClsHead'"),
])
def test_an_unknown_type_names_its_key_and_the_closest_names(key, value, message):
    cfg = load_config(DIGITS['repvit'], {key: value})
    with pytest.raises(ConfigError) as err:
        build_model(cfg)
    assert str(err.value).startswith(message)


def test_a_missing_data_root_names_its_key_and_how_to_get_it(tmp_path):
    cfg = load_config(DIGITS['repmobile'], {
        'train_dataloader.dataset.data_root': str(tmp_path),
        'val_dataloader.dataset.data_root': 'data/coco/'})
    check_data_roots(cfg, ['train_dataloader'])
    with pytest.raises(ConfigError) as err:
        check_data_roots(cfg, ['train_dataloader', 'val_dataloader'])
    assert str(err.value) == (
        'val_dataloader.dataset.data_root: data/coco/ does not exist (put COCO 2017 there '
        '(annotations/, train2017/, val2017/)); or point it elsewhere with '
        '--cfg-options val_dataloader.dataset.data_root=PATH')
    # a root merely starting like a known one gets no hint that would not fit it
    cfg.val_dataloader.dataset.data_root = 'data/digits-typo'
    with pytest.raises(ConfigError) as err:
        check_data_roots(cfg, ['val_dataloader'])
    assert str(err.value).startswith(
        'val_dataloader.dataset.data_root: data/digits-typo does not exist; or point')


@pytest.mark.slow
def test_train_tool_says_it_in_one_line(tmp_path):
    """Through the tool: a dataset type is built only once training starts."""
    result = run_tool('tools/train.py', DIGITS['repmobile'], '--work-dir', str(tmp_path),
                      '--cfg-options', 'train_dataloader.dataset.type=CustomDatset',
                      f'train_dataloader.dataset.data_root={tmp_path}',
                      f'val_dataloader.dataset.data_root={tmp_path}')
    assert result.returncode != 0 and 'Traceback' not in result.stderr, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1].startswith(
        "train_dataloader.dataset.type='CustomDatset': no dataset of that name is "
        "registered in mmpretrain; did you mean 'CustomDataset'")
