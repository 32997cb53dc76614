"""Semantic segmentation (mmseg): configs, tools end to end, fused segmentors."""
import glob
import json
import os.path as osp
import pickle

import numpy as np
import pytest
import torch
from PIL import Image

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model, read_state_dict
from repmobile_mm.apis.runner import load_config
from repmobile_mm.models import fused_copy
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import (ROOT, assert_close_to_max, assert_families_have_configs_and_twins,
                           assert_indexed_parameters, assert_twin_loads_fused_training_model,
                           check_picture, check_tool, paired, sweep, trained_and_fused)

# the tests that share this module's trained checkpoints run in one pytest-xdist worker
# (make test: --dist loadgroup), so that each checkpoint is trained once
ONE_WORKER = pytest.mark.xdist_group('test_segmentation')

CONFIG_DIR = osp.join(ROOT, 'segmentation/configs')
SCENES = osp.join(CONFIG_DIR, 'repmobile/fpn_repmobile-s_1xb8-1000i_scenes-128x128.py')
SCENES_DEPLOY = osp.join(
    CONFIG_DIR, 'repmobile/deploy/fpn_repmobile-s-deploy_1xb8-1000i_scenes-128x128.py')
REPVIT_SCENES = osp.join(CONFIG_DIR, 'repvit/fpn_repvit-m0.9_1xb8-1000i_scenes-128x128.py')
REPNEXT_SCENES = osp.join(CONFIG_DIR, 'repnext/fpn_repnext-m1_1xb8-1000i_scenes-128x128.py')
FAMILY_CONFIGS = sorted(p for family in ('repmobile', 'repvit', 'repnext')
                        for p in glob.glob(osp.join(CONFIG_DIR, family, '**/*.py'),
                                           recursive=True))


# the deploy twins (each built with its fused training twin) in make test
@pytest.mark.parametrize('path', sweep(FAMILY_CONFIGS, fast=lambda p: '/deploy/' not in p),
                         ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_loads_and_builds(path):
    cfg = load_config(path)
    assert cfg.default_scope == 'mmseg'
    model = build_model(cfg)
    assert_indexed_parameters(model, path)
    assert model.backbone.deploy == ('/deploy/' in path)
    assert model.neck.in_channels == model.backbone.out_channels
    if '/deploy/' in path:  # the fuse tool's output loads strictly into the deploy twin
        assert_twin_loads_fused_training_model(model, path)
    if '/repvit/' in path and 'ade20k' in path:  # shared/specs/repvit.md
        assert model.backbone.out_feature_indices == tuple(model.backbone.stage_ends)
        assert cfg.optim_wrapper.get('clip_grad') is None
        assert cfg.param_scheduler[0].begin == 0 and len(cfg.param_scheduler) == 1
        assert cfg.train_dataloader.batch_size == 4 and cfg.train_cfg.val_interval == 4000
    if '/repnext/' in path and 'ade20k' in path:  # shared/specs/repnext.md
        assert model.backbone.out_indices == (0, 1, 2, 3) and not model.backbone.norm_eval
        optim = cfg.optim_wrapper
        assert (optim.optimizer.lr, optim.optimizer.weight_decay) == (1e-4, 0.05)
        assert optim.get('clip_grad') is None
        poly, = cfg.param_scheduler
        assert (poly.type, poly.power, poly.eta_min, poly.begin, poly.end) == \
            ('PolyLR', 0.9, 1e-6, 0, 80000)
        assert cfg.train_cfg.max_iters == 80000 and cfg.train_cfg.val_interval == 8000
        assert cfg.train_dataloader.batch_size == 4
    # test images resized so that both sides are multiples of 32 (every family's spec)
    resize, = [t for t in cfg.test_dataloader.dataset.pipeline if t.type == 'ResizeToMultiple']
    assert resize.size_divisor == 32
    if 'ade20k' in path:
        assert model.decode_head.num_classes == 150
    if 'ade20k' in path and '/repnext/' not in path:  # RepMobile's and RepViT's recipe
        assert cfg.optim_wrapper.optimizer.lr == 2e-4
        assert cfg.optim_wrapper.optimizer.weight_decay == 1e-4
        poly, = cfg.param_scheduler
        assert (poly.type, poly.power, poly.eta_min) == ('PolyLR', 0.9, 1e-6)
        assert cfg.train_cfg.max_iters == 40000
    if 'ade20k' in path and '/repmobile/' in path:  # shared/specs/repmobile.md
        assert cfg.optim_wrapper.clip_grad.max_norm == 0.01
        assert model.backbone.out_indices == (0, 1, 2, 3)


def test_each_family_has_ade20k_configs_each_with_its_deploy_twin():
    assert_families_have_configs_and_twins(FAMILY_CONFIGS, 'ade20k')


def train_scenes(tmp_path_factory, config, data):
    """Two training iterations of ``config`` on the tiny scenes set ``data``."""
    tmp = tmp_path_factory.mktemp('seg')
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}',
               f'test_dataloader.dataset.data_root={data}',
               'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    work_dir = str(tmp / 'work')
    check_tool('tools/train.py', config, '--work-dir', work_dir, *options)
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth')), 'training did not reach iteration 2'
    return dict(tmp=tmp, data=data, options=options,
                checkpoint=osp.join(work_dir, 'iter_2.pth'))


@pytest.fixture(scope='session')
def scenes(tmp_path_factory, scenes_data):
    return train_scenes(tmp_path_factory, SCENES, scenes_data)


@pytest.fixture(scope='session')
def scenes_repvit(tmp_path_factory, scenes_data):
    return train_scenes(tmp_path_factory, REPVIT_SCENES, scenes_data)


@pytest.fixture(scope='session')
def scenes_repnext(tmp_path_factory, scenes_data):
    return train_scenes(tmp_path_factory, REPNEXT_SCENES, scenes_data)


SCENES_RUNS = [('scenes', SCENES), ('scenes_repvit', REPVIT_SCENES),
               ('scenes_repnext', REPNEXT_SCENES)]


@ONE_WORKER
@pytest.mark.slow
@pytest.mark.parametrize('run,config', SCENES_RUNS, ids=['repmobile', 'repvit', 'repnext'])
def test_train_then_test(request, run, config):
    scenes = request.getfixturevalue(run)
    """tools/test.py's written mIoU is the one of its dumped predictions against the
    label maps on disk, recomputed here with mmseg's IoUMetric arithmetic."""
    from mmseg.evaluation import IoUMetric
    out, dump = str(scenes['tmp'] / 'metrics.json'), str(scenes['tmp'] / 'predictions.pkl')
    check_tool('tools/test.py', config, scenes['checkpoint'], '--work-dir',
               str(scenes['tmp'] / 'test'), '--out', out, '--dump', dump, *scenes['options'])
    with open(out) as f:
        written = json.load(f)['mIoU']
    with open(dump, 'rb') as f:
        predictions = pickle.load(f)
    num_classes = load_config(config).model.decode_head.num_classes
    areas = []
    for prediction in predictions:
        label = np.array(Image.open(prediction['seg_map_path'])).astype(np.int64)
        label = torch.from_numpy(np.where(label == 0, 255, label - 1))  # reduce_zero_label
        predicted = prediction['pred_sem_seg']['data'].squeeze(0)
        assert predicted.shape == label.shape
        areas.append(IoUMetric.intersect_and_union(predicted, label, num_classes, 255))
    assert len(areas) == 2  # make_scenes(num_val=2)
    totals = [sum(area[i] for area in areas) for i in range(4)]
    iou = (totals[0] / totals[1]).numpy()
    assert written == pytest.approx(100 * np.nanmean(iou), abs=0.01)
    # and the dumped predictions are the checkpoint's: mmseg's inference_model on the
    # same images gives the same logits (two iterations: label maps alone tell little)
    from mmseg.apis import inference_model, init_model
    model = init_model(load_config(config), None, device='cpu')
    model.load_state_dict(read_state_dict(scenes['checkpoint']), strict=True)
    for prediction in predictions:
        expected = inference_model(model, prediction['img_path'])
        assert_close_to_max(prediction['seg_logits']['data'], expected.seg_logits.data, 1e-4,
                            prediction['img_path'])


@pytest.mark.parametrize('config', [SCENES, REPVIT_SCENES, REPNEXT_SCENES],
                         ids=['repmobile', 'repvit', 'repnext'])
@pytest.mark.parametrize('size', [(64, 64), (45, 37)])
def test_fused_segmentor_logits_are_exact(size, config):
    """float64, randomized BN, an input whose sides are not multiples of 32 as well."""
    model = build_model(load_config(config))
    randomize_batchnorm(model, seed=11)
    model = model.double().eval()
    fused = fused_copy(model).eval()
    assert fused.backbone.deploy
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        assert_close_to_max(fused(x, mode='tensor'), model(x, mode='tensor'), 1e-8)


@ONE_WORKER
@pytest.mark.slow
def test_fuse_tool_round_trip_for_segmentors(scenes):
    fused_path = str(scenes['tmp'] / 'fused.pth')
    result = check_tool('tools/reparameterize_model.py', SCENES, scenes['checkpoint'],
                        fused_path, '--shape', '97', '75', *scenes['options'])
    assert 'outputs differ by at most' in result.stdout
    model = build_model(load_config(SCENES)).eval()
    model.load_state_dict(read_state_dict(scenes['checkpoint']), strict=True)
    deployed = build_model(load_config(SCENES, {'model.backbone.deploy': True})).eval()
    deployed.load_state_dict(read_state_dict(fused_path), strict=True)
    x = torch.randn(1, 3, 97, 75)
    with torch.no_grad():
        assert_close_to_max(deployed(x, mode='tensor'), model(x, mode='tensor'), 1e-4)


@ONE_WORKER
@pytest.mark.slow
def test_seg_inferencer_runs_trained_and_fused_checkpoints(scenes):
    """mmseg's MMSegInferencer on the training config with the trained checkpoint and on
    the deploy twin with what tools/reparameterize_model.py writes: the same label
    maps, the scenes' class names, and overlays drawn."""
    from mmseg.apis import MMSegInferencer
    images = sorted(glob.glob(osp.join(scenes['data'], 'images', 'validation', '*.jpg')))
    outputs = {}
    forms = trained_and_fused(SCENES, SCENES_DEPLOY, scenes)
    for form, config, checkpoint in forms:
        inferencer = MMSegInferencer(load_config(config), weights=checkpoint, device='cpu')
        assert tuple(inferencer.model.dataset_meta['classes']) == \
            ('background', 'disc', 'square', 'triangle')
        outputs[form] = inferencer(images, return_vis=True)
        sizes = [Image.open(image).size for image in images]
        assert [v.shape for v in outputs[form]['visualization']] == [(h, w, 3) for w, h in sizes]
    for (a, b), (w, h) in paired(zip(outputs['training']['predictions'],
                                     outputs['fused']['predictions']), sizes):
        assert a.shape == (h, w)
        assert (a != b).mean() < 1e-3  # label maps: a float32 tie may flip a pixel
    # and the tool draws the fused segmentor's overlays into one picture
    _, deploy_config, fused = forms[1]
    check_picture(deploy_config, fused, osp.join(scenes['data'], 'images', 'validation', '*.jpg'),
                  str(scenes['tmp'] / 'segmentation.png'), scenes['options'])
