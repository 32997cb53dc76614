"""Detection and instance segmentation (mmdet): configs, tools end to end, fused detectors."""
import copy
import glob
import json
import os.path as osp
import pickle

import pytest
import torch
from PIL import Image
from torch.nn.modules.batchnorm import _BatchNorm

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model, read_state_dict
from repmobile_mm.apis.runner import load_config
from repmobile_mm.models import RepNeXt, fused_copy
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import (ROOT, assert_families_have_configs_and_twins, assert_indexed_parameters,
                           assert_twin_loads_fused_training_model, check_picture, check_tool,
                           paired, sweep, trained_and_fused)

# the tests that share this module's trained checkpoints run in one pytest-xdist worker
# (make test: --dist loadgroup), so that each checkpoint is trained once
ONE_WORKER = pytest.mark.xdist_group('test_detection')

CONFIG_DIR = osp.join(ROOT, 'detection/configs')
SHAPES = osp.join(CONFIG_DIR, 'repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py')
SHAPES_DEPLOY = osp.join(CONFIG_DIR,
                         'repmobile/deploy/mask-rcnn_repmobile-s-deploy_fpn_1xb8-900i_shapes.py')
REPVIT_SHAPES = osp.join(CONFIG_DIR, 'repvit/mask-rcnn_repvit-m0.9_fpn_1xb8-900i_shapes.py')
REPNEXT_SHAPES = osp.join(CONFIG_DIR, 'repnext/mask-rcnn_repnext-m1_fpn_1xb8-900i_shapes.py')
FAMILY_CONFIGS = sorted(p for family in ('repmobile', 'repvit', 'repnext')
                        for p in glob.glob(osp.join(CONFIG_DIR, family, '**/*.py'),
                                           recursive=True))
# shared/specs/repvit.md: the published Mask R-CNN taps, indices into `features`
REPVIT_TAPS = {'m1.1': (2, 6, 20, 24), 'm1.5': (4, 10, 36, 42), 'm2.3': (6, 14, 50, 54)}


# the deploy twins (each built with its fused training twin) in make test
@pytest.mark.parametrize('path', sweep(FAMILY_CONFIGS, fast=lambda p: '/deploy/' not in p),
                         ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_loads_and_builds(path):
    cfg = load_config(path)
    assert cfg.default_scope == 'mmdet'
    model = build_model(cfg)
    assert_indexed_parameters(model, path)
    assert model.backbone.deploy == ('/deploy/' in path)
    assert model.neck.in_channels == model.backbone.out_channels
    if 'coco.py' in path:
        assert cfg.optim_wrapper.optimizer.type == 'AdamW'
        assert cfg.optim_wrapper.optimizer.lr == 2e-4
        assert cfg.optim_wrapper.get('clip_grad') is None
        if '/repmobile/' in path:
            assert cfg.model.neck.norm_cfg.type == 'SyncBN'
        init = cfg.model.backbone.init_cfg
        if '/deploy/' in path:
            assert init is None
        else:
            assert init.type == 'Pretrained' and init.prefix == 'backbone.'
    if '/deploy/' in path:  # the fuse tool's output loads strictly into the deploy twin
        assert_twin_loads_fused_training_model(model, path)


def test_each_family_has_coco_configs_each_with_its_deploy_twin():
    assert_families_have_configs_and_twins(FAMILY_CONFIGS, 'coco')


@pytest.mark.parametrize('variant', ['s', 'm', 'l'])
def test_repmobile_coco_configs_follow_the_published_recipe(variant):
    """shared/specs/repmobile.md, Downstream: Mask R-CNN + FPN 1x, AdamW lr 2e-4 weight
    decay 0.05, SyncBN in FPN and RoI heads, backbone from the ImageNet checkpoint."""
    cfg = load_config(
        osp.join(CONFIG_DIR, f'repmobile/mask-rcnn_repmobile-{variant}_fpn_1x_coco.py'))
    model = cfg.model
    assert model.backbone.out_indices == (0, 1, 2, 3)
    assert model.backbone.init_cfg.checkpoint == f'checkpoints/repmobile-{variant}_in1k.pth'
    optim = cfg.optim_wrapper.optimizer
    assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 2e-4, 0.05)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.end, warmup.by_epoch) == ('LinearLR', 500, False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert cfg.train_cfg.max_epochs == 12
    # SyncBN wherever the FPN and the RoI heads have convolutions
    assert model.neck.norm_cfg.type == 'SyncBN'
    assert model.roi_head.mask_head.norm_cfg.type == 'SyncBN'
    built = build_model(cfg)
    convs_with_norm = [name for name, m in built.named_modules()
                       if name.startswith(('neck.', 'roi_head.')) and hasattr(m, 'norm')
                       and m.norm is not None]
    assert any(n.startswith('neck.') for n in convs_with_norm)
    assert any(n.startswith('roi_head.mask_head.') for n in convs_with_norm)
    assert {type(built.get_submodule(name).norm).__name__ for name in convs_with_norm} == \
        {'SyncBatchNorm'}


@pytest.mark.parametrize('variant', sorted(REPVIT_TAPS))
def test_repvit_coco_configs_follow_the_published_recipe(variant):
    """Taps, BatchNorm behaviour, optimizer and schedule of shared/specs/repvit.md."""
    cfg = load_config(osp.join(CONFIG_DIR, f'repvit/mask-rcnn_repvit-{variant}_fpn_1x_coco.py'))
    backbone = build_model(cfg).backbone
    assert backbone.out_feature_indices == REPVIT_TAPS[variant]
    # the taps lie in stages 0-3: strides 4 to 32, the second-to-last block of stages 0-2
    assert [backbone.stage_of(i) for i in REPVIT_TAPS[variant]] == [0, 1, 2, 3]
    assert list(REPVIT_TAPS[variant]) == [e - 1 for e in backbone.stage_ends[:3]] + \
        [backbone.stage_ends[3]]
    outs = backbone.eval()(torch.randn(1, 3, 64, 96))
    assert [o.shape[-2:] for o in outs] == [(16, 24), (8, 12), (4, 6), (2, 3)]
    assert backbone.norm_eval and backbone.frozen_stages == -1
    assert backbone.norm_cfg['type'] == 'SyncBN'
    optim = cfg.optim_wrapper.optimizer
    assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 2e-4, 0.05)
    warmup, steps = cfg.param_scheduler
    assert (warmup.type, warmup.start_factor, warmup.end, warmup.by_epoch) == \
        ('LinearLR', 1e-6, 500, False)
    assert (steps.type, steps.milestones) == ('MultiStepLR', [8, 11])
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_dataloader.batch_size == 2
    assert ('450e' in backbone.init_cfg['checkpoint']) == (variant == 'm2.3')


@pytest.mark.parametrize('variant', ['m3', 'm4', 'm5'])
def test_repnext_coco_configs_follow_the_published_recipe(variant):
    """shared/specs/repnext.md: stage outputs, BatchNorms training (SyncBN), RepViT's optimizer."""
    cfg = load_config(osp.join(CONFIG_DIR, f'repnext/mask-rcnn_repnext-{variant}_fpn_1x_coco.py'))
    backbone = build_model(cfg).backbone
    assert backbone.arch == RepNeXt.arch_settings[variant] and backbone.out_indices == (0, 1, 2, 3)
    assert not backbone.norm_eval and backbone.norm_cfg['type'] == 'SyncBN'
    optim = cfg.optim_wrapper.optimizer
    assert (optim.type, optim.lr, optim.weight_decay) == ('AdamW', 2e-4, 0.05)
    assert cfg.optim_wrapper.get('clip_grad') is None
    warmup, steps = cfg.param_scheduler
    assert (warmup.start_factor, warmup.end, steps.milestones) == (1e-6, 500, [8, 11])
    assert cfg.train_cfg.max_epochs == 12 and cfg.train_dataloader.batch_size == 2


def train_shapes(tmp_path_factory, config, data):
    """Two training iterations of ``config`` on the tiny shapes set ``data``."""
    tmp = tmp_path_factory.mktemp('det')
    ann = data + 'annotations/instances_val2017.json'
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}',
               f'test_dataloader.dataset.data_root={data}',
               f'val_evaluator.ann_file={ann}', f'test_evaluator.ann_file={ann}',
               'train_cfg.max_iters=2', 'default_hooks.checkpoint.interval=2']
    work_dir = str(tmp / 'work')
    check_tool('tools/train.py', config, '--work-dir', work_dir, *options)
    assert osp.isfile(osp.join(work_dir, 'iter_2.pth')), 'training did not reach iteration 2'
    return dict(tmp=tmp, data=data, options=options,
                checkpoint=osp.join(work_dir, 'iter_2.pth'))


@pytest.fixture(scope='session')
def shapes(tmp_path_factory, shapes_data):
    return train_shapes(tmp_path_factory, SHAPES, shapes_data)


@pytest.fixture(scope='session')
def shapes_repvit(tmp_path_factory, shapes_data):
    return train_shapes(tmp_path_factory, REPVIT_SHAPES, shapes_data)


@pytest.fixture(scope='session')
def shapes_repnext(tmp_path_factory, shapes_data):
    return train_shapes(tmp_path_factory, REPNEXT_SHAPES, shapes_data)


SHAPES_RUNS = [('shapes', SHAPES), ('shapes_repvit', REPVIT_SHAPES),
               ('shapes_repnext', REPNEXT_SHAPES)]


@ONE_WORKER
@pytest.mark.slow
@pytest.mark.parametrize('run,config', SHAPES_RUNS, ids=['repmobile', 'repvit', 'repnext'])
def test_train_then_test(request, run, config):
    shapes = request.getfixturevalue(run)
    """tools/test.py's written box and mask AP are those of its dumped predictions,
    re-scored here with mmdet's CocoMetric against the annotation file."""
    from mmdet.evaluation import CocoMetric
    out, dump = str(shapes['tmp'] / 'metrics.json'), str(shapes['tmp'] / 'predictions.pkl')
    check_tool('tools/test.py', config, shapes['checkpoint'], '--work-dir',
               str(shapes['tmp'] / 'test'), '--out', out, '--dump', dump, *shapes['options'])
    with open(out) as f:
        written = json.load(f)
    with open(dump, 'rb') as f:
        predictions = pickle.load(f)
    assert len(predictions) == 2  # make_shapes(num_val=2)
    metric = CocoMetric(ann_file=shapes['data'] + 'annotations/instances_val2017.json',
                        metric=['bbox', 'segm'])
    metric.dataset_meta = dict(classes=load_config(config).metainfo['classes'])
    metric.process({}, predictions)
    rescored = metric.evaluate(len(predictions))
    for key in ('coco/bbox_mAP', 'coco/segm_mAP'):
        assert written[key] == pytest.approx(rescored[key], abs=1e-6), key
    # and the dumped predictions are the checkpoint's (two iterations score near 0 AP)
    from mmdet.apis import init_detector
    model = init_detector(load_config(config), None, device='cpu')
    model.load_state_dict(read_state_dict(shapes['checkpoint']), strict=True)
    dumped = {p['img_path']: p['pred_instances'] for p in predictions}
    images = sorted(dumped)
    for image, expected in paired(images, predict(model, images)):
        assert len(expected) > 0 and len(dumped[image]['scores']) == len(expected)
        torch.testing.assert_close(dumped[image]['scores'], expected.scores,
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(dumped[image]['bboxes'], expected.bboxes,
                                   atol=1e-2, rtol=1e-4)


def predict(model, images):
    from mmdet.apis import inference_detector
    return [r.pred_instances for r in inference_detector(model, images)]


@ONE_WORKER
@pytest.mark.slow
def test_fused_detector_predicts_the_same(shapes):
    from mmdet.apis import init_detector
    cfg = load_config(SHAPES)
    model = init_detector(cfg, None, device='cpu')
    model.load_state_dict(read_state_dict(shapes['checkpoint']), strict=True)
    randomize_batchnorm(model.backbone, seed=7)
    fused = fused_copy(model).eval()
    assert fused.backbone.deploy and not any(
        isinstance(m, _BatchNorm) for m in fused.backbone.modules())
    images = sorted(glob.glob(shapes['data'] + 'val2017/*.jpg'))
    for a, b in paired(predict(model, images), predict(fused, images)):
        assert len(a) > 0 and len(a) == len(b)
        assert_same_detections(a, b)


def assert_same_detections(a, b, top=10, share=0.95):
    """Two forms' detections match one to one (label, score within 1e-4, box within 0.01
    px, mask pixels), not position by position: after two training iterations ~100 boxes
    score 0.25 +- 0.005, so float32 rounding near an NMS threshold or the top-100 cut
    swaps a few of the weakest. The ``top`` strongest must all match, and ``share`` of
    each side."""
    box_diff = (a.bboxes[:, None] - b.bboxes[None]).abs().amax(-1)
    same = ((box_diff < 1e-2) & (a.labels[:, None] == b.labels[None])
            & ((a.scores[:, None] - b.scores[None]).abs() < 1e-4))
    strongest = a.scores.argsort(descending=True)[:top]
    assert same[strongest].any(1).all(), 'a strongest detection has no match'
    for side in (same.any(1), same.any(0)):
        assert side.float().mean() >= share, f'{side.float().mean():.0%} of detections match'
    for i, j in same.nonzero().tolist():
        mismatch = (a.masks[i] != b.masks[j]).float().mean().item()
        assert mismatch < 1e-3, f'{mismatch:.2%} of mask pixels differ'


@ONE_WORKER
@pytest.mark.slow
@pytest.mark.parametrize('run,config', [('shapes', SHAPES), ('shapes_repvit', REPVIT_SHAPES)],
                         ids=['repmobile', 'repvit'])
def test_fuse_tool_round_trip_for_detectors(request, run, config):
    shapes = request.getfixturevalue(run)
    fused_path = str(shapes['tmp'] / 'fused.pth')
    result = check_tool('tools/reparameterize_model.py', config, shapes['checkpoint'],
                        fused_path, *shapes['options'])
    assert 'outputs differ by at most' in result.stdout
    folder = osp.dirname(config)
    deploy_config = osp.join(folder, 'deploy',
                             osp.basename(config).replace('_fpn_', '-deploy_fpn_'))
    build_model(load_config(deploy_config)).load_state_dict(read_state_dict(fused_path),
                                                            strict=True)


@ONE_WORKER
@pytest.mark.slow
def test_det_inferencer_runs_trained_and_fused_checkpoints(shapes):
    """mmdet's DetInferencer on the training config with the trained checkpoint and on
    the deploy twin with what tools/reparameterize_model.py writes: the same
    detections, the shapes' class names, and pictures drawn."""
    from mmdet.apis import DetInferencer
    images = sorted(glob.glob(shapes['data'] + 'val2017/*.jpg'))
    outputs = {}
    forms = trained_and_fused(SHAPES, SHAPES_DEPLOY, shapes)
    for form, config, checkpoint in forms:
        inferencer = DetInferencer(load_config(config), weights=checkpoint, device='cpu',
                                   show_progress=False)
        assert inferencer.model.dataset_meta['classes'] == ('rectangle', 'ellipse', 'triangle')
        outputs[form] = inferencer(images, return_vis=True, no_save_vis=True)
        sizes = [Image.open(image).size for image in images]  # the shapes vary in size
        assert [v.shape for v in outputs[form]['visualization']] == [(h, w, 3) for w, h in sizes]
    for a, b in paired(outputs['training']['predictions'], outputs['fused']['predictions']):
        assert len(a['scores']) > 0 and a['labels'] == b['labels']
        torch.testing.assert_close(torch.tensor(b['scores']), torch.tensor(a['scores']),
                                   atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(torch.tensor(b['bboxes']), torch.tensor(a['bboxes']),
                                   atol=1e-2, rtol=1e-4)
    # and the tool draws the fused detector's boxes and masks into one picture
    _, deploy_config, fused = forms[1]
    check_picture(deploy_config, fused, shapes['data'] + 'val2017/*.jpg',
                  str(shapes['tmp'] / 'detections.png'), shapes['options'])


def test_frozen_stages_and_norm_eval_through_a_training_step(shapes_data):
    from mmdet.registry import DATASETS
    from mmengine.dataset import pseudo_collate
    from mmengine.optim import build_optim_wrapper
    cfg = load_config(SHAPES, {'model.backbone.frozen_stages': 2,
                               'model.backbone.norm_eval': True,
                               'train_dataloader.dataset.data_root': shapes_data})
    model = build_model(cfg)
    model.init_weights()
    model.train()
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    batch = pseudo_collate([dataset[0], dataset[1]])
    before = copy.deepcopy(model.backbone.state_dict())
    optim = build_optim_wrapper(model, cfg.optim_wrapper)
    model.train_step(batch, optim)
    after = model.backbone.state_dict()
    frozen = ('stem.', 'layer0.', 'layer1.')
    for key, value in before.items():
        if key.startswith(frozen) or 'running_' in key or 'num_batches' in key:
            assert torch.equal(value, after[key]), f'{key} changed'
    assert any(not torch.equal(v, after[k]) for k, v in before.items()
               if k.startswith('layer3.') and 'running' not in k), 'layer3 did not learn'
    frozen_parameters = [p for n, p in model.backbone.named_parameters()
                         if n.startswith(frozen)]
    assert frozen_parameters and not any(p.requires_grad for p in frozen_parameters)
