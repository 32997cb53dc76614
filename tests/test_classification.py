"""Classification: configs, the shared tools end to end, distillation, AGC."""
import copy
import glob
import json
import os.path as osp
import pickle
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model, read_state_dict
from repmobile_mm.apis.runner import load_config
from tests.helpers import (ROOT, assert_close_to_max, assert_families_have_configs_and_twins,
                           assert_indexed_parameters, assert_twin_loads_fused_training_model,
                           check_tool, make_folder_dataset, paired, run_tool, sweep,
                           trained_and_fused, training_twin)

# the tests that share this module's trained checkpoints run in one pytest-xdist worker
# (make test: --dist loadgroup), so that each checkpoint is trained once
ONE_WORKER = pytest.mark.xdist_group('test_classification')

CONFIG_DIR = osp.join(ROOT, 'classification/configs')
DIGITS = osp.join(CONFIG_DIR, 'repmobile/repmobile-s_1xb64_digits.py')
DIGITS_DEPLOY = osp.join(CONFIG_DIR, 'repmobile/deploy/repmobile-s-deploy_1xb64_digits.py')
DISTILL_S = osp.join(CONFIG_DIR, 'repmobile/repmobile-s_4xb256-300e-distill_in1k.py')
REPVIT_DIGITS = osp.join(CONFIG_DIR, 'repvit/repvit-m0.9_1xb64_digits.py')
REPVIT_DIGITS_DEPLOY = osp.join(CONFIG_DIR, 'repvit/deploy/repvit-m0.9-deploy_1xb64_digits.py')
REPVIT_DISTILL = osp.join(CONFIG_DIR, 'repvit/repvit-m0.9_8xb256-300e-distill_in1k.py')
# replaces the configs' arch='S' (a string, hence _delete_)
TINY_ARCH = dict(_delete_=True, dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))
# the block table of the RepViT reference fixtures
TINY_REPVIT = dict(_delete_=True, dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))
REPNEXT_DIGITS = osp.join(CONFIG_DIR, 'repnext/repnext-m1_1xb64_digits.py')
REPNEXT_DIGITS_DEPLOY = osp.join(CONFIG_DIR, 'repnext/deploy/repnext-m1-deploy_1xb64_digits.py')
REPNEXT_DISTILL = osp.join(CONFIG_DIR, 'repnext/repnext-m1_8xb256-300e-distill_in1k.py')
FAMILY_CONFIGS = sorted(p for family in ('repmobile', 'repvit', 'repnext')
                        for p in glob.glob(osp.join(CONFIG_DIR, family, '**/*.py'),
                                           recursive=True))
REPVIT_VARIANTS = ('m0.6', 'm0.9', 'm1.0', 'm1.1', 'm1.5', 'm2.3', 'm1', 'm2', 'm3')
REPNEXT_VARIANTS = ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')
# (family, variant) of every published classification config
PUBLISHED_VARIANTS = [('repvit', v) for v in REPVIT_VARIANTS] + \
    [('repnext', v) for v in REPNEXT_VARIANTS]


@pytest.mark.parametrize('family,variant', PUBLISHED_VARIANTS)
def test_every_variant_has_its_configs(family, variant):
    for suffix in ('', '-distill'):
        names = (f'{family}/{family}-{variant}_8xb256-300e{suffix}_in1k.py',
                 f'{family}/deploy/{family}-{variant}-deploy_8xb256-300e{suffix}_in1k.py')
        for name in names:
            assert osp.join(CONFIG_DIR, name) in FAMILY_CONFIGS, name


# the deploy twins (each built with its fused training twin) in make test
@pytest.mark.parametrize('path', sweep(FAMILY_CONFIGS, fast=lambda p: '/deploy/' not in p),
                         ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_loads_and_builds(path):
    cfg = load_config(path)
    assert cfg.default_scope == 'mmpretrain'
    assert cfg.custom_imports.imports == ['repmobile_mm.integrations.mmpretrain']
    model = build_model(cfg)
    assert_indexed_parameters(model, path)
    assert model.backbone.deploy == ('/deploy/' in path)
    assert model.head.deploy == ('/deploy/' in path)
    # the width the backbone hands on: RepMobile's neck convolves it, RepViT pools it
    pooled = getattr(model.neck, 'in_channels', model.head.in_channels)
    assert pooled == model.backbone.dims[-1]
    if '-distill' in path and '/deploy/' not in path:
        # the teacher is built for training only (init_weights), not to test or fuse
        assert model.teacher_cfg is not None and model.teacher is None
        assert model.head.distillation
    if '/deploy/' in path:  # the fuse tool's output loads strictly into the deploy twin
        assert training_twin(path) in FAMILY_CONFIGS  # every deploy config twins a training one
        assert_twin_loads_fused_training_model(model, path)


def test_each_family_has_in1k_configs_each_with_its_deploy_twin():
    assert_families_have_configs_and_twins(FAMILY_CONFIGS, 'in1k')


@pytest.mark.parametrize('family', ['repvit', 'repnext'])
def test_repvit_and_repnext_recipes_match_the_published_one(family):
    """shared/specs/repvit.md: Published training recipes, classification (RepNeXt's is
    the same, shared/specs/repnext.md)."""
    variants = REPVIT_VARIANTS if family == 'repvit' else REPNEXT_VARIANTS
    for variant in variants:
        cfg = load_config(osp.join(CONFIG_DIR,
                                   f'{family}/{family}-{variant}_8xb256-300e_in1k.py'))
        assert cfg.model.backbone.arch.replace('_', '.') == variant
        # AdamW, 1e-3 per 512 images at 8 x 256, weight decay 0.025, AGC 0.02
        optim = cfg.optim_wrapper
        assert optim.type == 'AGCOptimWrapper' and optim.agc.clip_factor == 0.02
        assert optim.optimizer.type == 'AdamW' and optim.optimizer.weight_decay == 0.025
        assert cfg.train_dataloader.batch_size == 256
        assert optim.optimizer.lr == 1e-3 * 8 * 256 / 512
        assert cfg.auto_scale_lr.base_batch_size == 8 * 256
        # 5 warm-up epochs from 1e-6, cosine to 1e-5, 300 epochs
        warmup, cosine = cfg.param_scheduler
        assert warmup.type == 'LinearLR' and warmup.end == 5
        assert warmup.start_factor * optim.optimizer.lr == pytest.approx(1e-6)
        assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 1e-5
        assert cosine.end == cfg.train_cfg.max_epochs == 300
        # model EMA 0.99996, evaluated on the raw model as published
        assert [(h.type, h.momentum) for h in cfg.custom_hooks] == [('RawEvalEMAHook', 4e-5)]
        # RandAugment rand-m9-mstd0.5-inc1, bicubic, random erasing 0.25, Mixup 0.8,
        # CutMix 1.0, label smoothing 0.1, repeated augmentation
        steps = {t.type: t for t in cfg.train_pipeline}
        randaug = steps['RandAugment']
        assert (randaug.policies, randaug.magnitude_level, randaug.magnitude_std) == \
            ('timm_increasing', 9, 0.5)
        assert steps['RandomResizedCrop'].interpolation == 'bicubic'
        assert steps['RandomErasing'].erase_prob == 0.25
        assert [(a.type, a.alpha) for a in cfg.model.train_cfg.augments] == \
            [('Mixup', 0.8), ('CutMix', 1.0)]
        assert cfg.model.head.loss.label_smooth_val == 0.1
        assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
        # evaluation: resize 256 bicubic, centre crop 224
        test_steps = {t.type: t for t in cfg.test_dataloader.dataset.pipeline}
        assert test_steps['ResizeEdge'].scale == 256
        assert test_steps['ResizeEdge'].interpolation == 'bicubic'
        assert test_steps['CenterCrop'].crop_size == 224
    distill = load_config(REPVIT_DISTILL if family == 'repvit' else REPNEXT_DISTILL)
    assert distill.model.teacher.model_name == 'regnety_160'
    assert distill.model.head.distill_alpha == 0.5


@pytest.mark.parametrize('variant', ['s', 'm', 'l'])
def test_repmobile_recipe_matches_the_published_one(variant):
    """shared/specs/repmobile.md: Training recipe of the published ImageNet models."""
    cfg = load_config(osp.join(CONFIG_DIR, f'repmobile/repmobile-{variant}_4xb256-300e_in1k.py'))
    assert cfg.model.backbone.arch == variant.upper()
    # AdamW 1e-3 per 1024 images (4 x 256), weight decay 0.05, AGC 5.0
    optim = cfg.optim_wrapper
    assert optim.type == 'AGCOptimWrapper' and optim.agc.clip_factor == 5.0
    assert optim.optimizer.type == 'AdamW' and optim.optimizer.weight_decay == 0.05
    assert optim.optimizer.lr == 1e-3 and cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.train_dataloader.batch_size == 256 and cfg.val_dataloader.batch_size == 384
    # 5 warm-up epochs from 1e-6, cosine to 1e-5, 300 epochs, no EMA
    warmup, cosine = cfg.param_scheduler
    assert warmup.type == 'LinearLR' and warmup.end == 5
    assert warmup.start_factor * optim.optimizer.lr == pytest.approx(1e-6)
    assert cosine.type == 'CosineAnnealingLR' and cosine.eta_min == 1e-5
    assert cosine.end == cfg.train_cfg.max_epochs == 300
    assert not any('EMA' in h.type for h in cfg.get('custom_hooks', []))
    # RandAugment rand-m9-mstd0.5-inc1, bicubic, random erasing 0.25, label smoothing
    # 0.1, repeated augmentation; Mixup 0.8 / CutMix 1.0 for L only
    steps = {t.type: t for t in cfg.train_pipeline}
    randaug = steps['RandAugment']
    assert (randaug.policies, randaug.magnitude_level, randaug.magnitude_std) == \
        ('timm_increasing', 9, 0.5)
    assert steps['RandomResizedCrop'].interpolation == 'bicubic'
    assert steps['RandomErasing'].erase_prob == 0.25
    assert 'ColorJitter' not in steps  # timm turns it off under RandAugment
    assert cfg.model.head.loss.label_smooth_val == 0.1
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    augments = cfg.model.get('train_cfg', {}).get('augments', [])
    assert [(a.type, a.alpha) for a in augments] == \
        ([('Mixup', 0.8), ('CutMix', 1.0)] if variant == 'l' else [])
    distill = load_config(osp.join(
        CONFIG_DIR, f'repmobile/repmobile-{variant}_4xb256-300e-distill_in1k.py'))
    assert distill.model.teacher.model_name == 'regnety_160'
    assert distill.model.head.distill_alpha == 0.5


def option_dict(options):
    """``--cfg-options`` words (after the flag) as a dict for ``Config.merge_from_dict``."""
    pairs = (word.split('=', 1) for word in options[1:])
    return {key: int(value) if value.isdigit() else value for key, value in pairs}


def train_digits(tmp_path_factory, config):
    """Two training iterations of a digits config on a tiny generated dataset."""
    tmp = tmp_path_factory.mktemp('cls')
    data = str(tmp / 'data')
    make_folder_dataset(data)
    options = ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}',
               f'test_dataloader.dataset.data_root={data}',
               'train_dataloader.batch_size=6', 'train_cfg.max_epochs=1',
               'model.head.num_classes=3', 'data_preprocessor.num_classes=3',
               'default_hooks.checkpoint.interval=1']
    work_dir = str(tmp / 'work')
    result = check_tool('tools/train.py', config, '--work-dir', work_dir, *options)
    assert 'Epoch(train) [1][2/2]' in result.stdout + result.stderr
    return dict(tmp=tmp, data=data, work_dir=work_dir, options=options,
                checkpoint=osp.join(work_dir, 'epoch_1.pth'))


@pytest.fixture(scope='session')
def trained(tmp_path_factory):
    return train_digits(tmp_path_factory, DIGITS)


@pytest.fixture(scope='session')
def trained_repvit(tmp_path_factory):
    return train_digits(tmp_path_factory, REPVIT_DIGITS)


@pytest.fixture(scope='session')
def trained_repnext(tmp_path_factory):
    return train_digits(tmp_path_factory, REPNEXT_DIGITS)


# (fixture of the training run, training config, deploy twin) per family
DIGITS_RUNS = [('trained', DIGITS, DIGITS_DEPLOY),
               ('trained_repvit', REPVIT_DIGITS, REPVIT_DIGITS_DEPLOY),
               ('trained_repnext', REPNEXT_DIGITS, REPNEXT_DIGITS_DEPLOY)]
FAMILIES = ['repmobile', 'repvit', 'repnext']


@ONE_WORKER
@pytest.mark.slow
@pytest.mark.parametrize('run,config,deploy_config', DIGITS_RUNS, ids=FAMILIES)
def test_train_then_test(request, run, config, deploy_config):
    """tools/test.py scores the checkpoint it is given: its written accuracy is that of
    its dumped predictions, which are mmpretrain's inferencer's on the same images."""
    trained = request.getfixturevalue(run)
    out, dump = str(trained['tmp'] / 'metrics.json'), str(trained['tmp'] / 'predictions.pkl')
    check_tool('tools/test.py', config, trained['checkpoint'], '--work-dir',
               str(trained['tmp'] / 'test'), '--out', out, '--dump', dump, *trained['options'])
    with open(out) as f:
        written = json.load(f)['accuracy/top1']
    with open(dump, 'rb') as f:
        dumped = {osp.relpath(p['img_path'], trained['data']): p for p in pickle.load(f)}
    images = sorted(glob.glob(osp.join(trained['data'], 'val', '*', '*.png')))
    assert sorted(dumped) == [osp.relpath(path, trained['data']) for path in images]
    from mmpretrain.apis import ImageClassificationInferencer
    cfg = load_config(config)
    cfg.merge_from_dict(option_dict(trained['options']))
    inferencer = ImageClassificationInferencer(cfg, pretrained=trained['checkpoint'],
                                               device='cpu')
    for path, result in paired(images, inferencer(images, batch_size=4)):
        prediction = dumped[osp.relpath(path, trained['data'])]
        assert_close_to_max(torch.as_tensor(result['pred_scores']),
                            prediction['pred_score'], 1e-5, path)
        assert prediction['gt_label'].item() == int(osp.basename(osp.dirname(path)))
    correct = [p['pred_label'].item() == p['gt_label'].item() for p in dumped.values()]
    assert written == pytest.approx(100 * np.mean(correct), abs=1e-4)


@ONE_WORKER
@pytest.mark.slow
def test_inferencer_runs_the_fused_checkpoint_with_its_classes(trained):
    """mmpretrain's ImageClassificationInferencer on the deploy twin and the checkpoint
    tools/reparameterize_model.py writes: the trained model's scores, and the class
    names the training run stored (carried over by the fuse tool)."""
    from mmpretrain.apis import ImageClassificationInferencer
    forms = trained_and_fused(DIGITS, DIGITS_DEPLOY, trained)
    images = sorted(glob.glob(osp.join(trained['data'], 'val', '*', '*.png')))
    results = {}
    for form, config, checkpoint in forms:
        cfg = load_config(config)
        cfg.merge_from_dict(option_dict(trained['options']))
        inferencer = ImageClassificationInferencer(cfg, pretrained=checkpoint, device='cpu')
        assert inferencer.classes == ('0', '1', '2')  # the folder names, from the checkpoint
        results[form] = inferencer(images, batch_size=4)
    for a, b in paired(results['training'], results['fused']):
        assert a['pred_label'] == b['pred_label'] and a['pred_class'] == b['pred_class']
        assert_close_to_max(torch.as_tensor(b['pred_scores']),
                            torch.as_tensor(a['pred_scores']), 1e-5)
    # the demo's picture of them: one PNG, never written over without --force
    picture = str(trained['tmp'] / 'predictions.png')
    _, deploy_config, fused = forms[1]
    draw = ('tools/analysis_tools/draw_predictions.py', deploy_config, fused, picture,
            '--images', osp.join(trained['data'], 'val', '*', '*.png'), '--count', '4',
            *trained['options'])
    assert 'wrote' in check_tool(*draw).stdout
    with Image.open(picture) as png:
        assert png.format == 'PNG' and png.width > 4 * 100
    again = run_tool(*draw)
    assert again.returncode != 0 and 'pass --force' in again.stderr


@ONE_WORKER
@pytest.mark.slow
def test_resume_loads_mmengine_checkpoints_safely(trained):
    """--resume works with torch's weights_only loading (mmengine's HistoryBuffer allowed)."""
    options = [o.replace('train_cfg.max_epochs=1', 'train_cfg.max_epochs=2')
               for o in trained['options']]
    work_dir = str(trained['tmp'] / 'resumed')  # keeps the shared run's checkpoint
    shutil.copytree(trained['work_dir'], work_dir)
    result = check_tool('tools/train.py', DIGITS, '--work-dir', work_dir, '--resume',
                        osp.join(work_dir, 'epoch_1.pth'), *options)
    log = result.stdout + result.stderr
    assert 'resumed epoch: 1' in log and 'Epoch(train) [2][2/2]' in log


@ONE_WORKER
@pytest.mark.slow
@pytest.mark.parametrize('run,config,deploy_config', DIGITS_RUNS, ids=FAMILIES)
def test_fuse_round_trip(request, run, config, deploy_config):
    trained = request.getfixturevalue(run)
    fused_path = str(trained['tmp'] / 'fused.pth')
    result = check_tool('tools/reparameterize_model.py', config, trained['checkpoint'],
                        fused_path, *trained['options'])
    assert 'outputs differ by at most' in result.stdout
    state = torch.load(fused_path, weights_only=True)
    assert set(state) == {'state_dict', 'meta'}  # model only, no optimizer

    overrides = {'model.head.num_classes': 3}
    trained_model = build_model(load_config(config, overrides)).eval()
    trained_model.load_state_dict(read_state_dict(trained['checkpoint']), strict=True)
    deployed = build_model(load_config(deploy_config, overrides)).eval()
    deployed.load_state_dict(state['state_dict'], strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert_close_to_max(deployed(x, mode='tensor'), trained_model(x, mode='tensor'), 1e-4)
    test = check_tool('tools/test.py', deploy_config, fused_path, '--work-dir',
                      str(trained['tmp'] / 'test_fused'), *trained['options'])
    assert 'accuracy/top1' in test.stdout + test.stderr

    again = run_tool('tools/reparameterize_model.py', config, fused_path,
                     str(trained['tmp'] / 'twice.pth'), *trained['options'])
    assert again.returncode != 0 and 'is already fused' in again.stderr
    assert 'Traceback' not in again.stderr


@pytest.mark.parametrize('name', ['repmobile_tiny', 'repmobile_tiny_distill'])
def test_converter_reproduces_published_logits(reference, tmp_path, name):
    """With and without the distillation head (detected from the keys)."""
    state_dict, arrays = reference(name)
    distillation = name.endswith('_distill')
    published = str(tmp_path / 'published.pth')
    torch.save({'model': state_dict}, published)
    converted = str(tmp_path / 'converted.pth')
    result = check_tool('tools/model_converters/convert_official.py', published, converted)
    config = DISTILL_S if distillation else DISTILL_S.replace('-distill', '')
    assert result.stdout.strip().endswith(
        f"a repmobile-*{config.rsplit('repmobile-s', 1)[1]} config with a custom arch "
        '(last stage width 128)'), result.stdout
    cfg = load_config(config, {'model.backbone.arch': TINY_ARCH,
                               'model.neck.in_channels': 128,
                               'model.head.num_classes': 10})
    model = build_model(cfg).eval()
    model.load_state_dict(read_state_dict(converted), strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')


@pytest.mark.parametrize('name', ['repvit_tiny_distill', 'repvit_v1_tiny_distill'])
@pytest.mark.parametrize('distillation', [True, False])
def test_converter_reproduces_published_repvit_logits(reference, tmp_path, name, distillation):
    """Either release, with or without the distillation head (detected from the keys)."""
    state_dict, arrays = reference(name)
    if not distillation:  # the same model without its distillation branch
        state_dict = {k: v for k, v in state_dict.items()
                      if not k.startswith('classifier.classifier_dist.')}
    published = str(tmp_path / 'published.pth')
    torch.save({'model': state_dict}, published)
    converted = str(tmp_path / 'converted.pth')
    result = check_tool('tools/model_converters/convert_official.py', published, converted)
    arch = dict(TINY_REPVIT, first_release='_v1_' in name)
    assert f"arch={({k: v for k, v in arch.items() if k != '_delete_'})}" in result.stdout
    cfg = load_config(REPVIT_DISTILL if distillation else REPVIT_DISTILL.replace('-distill', ''),
                      {'model.backbone.arch': arch, 'model.head.in_channels': 128,
                       'model.head.num_classes': 10})
    model = build_model(cfg).eval()
    model.load_state_dict(read_state_dict(converted), strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        if distillation:
            assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')
        else:  # the fixture's logits average two heads: check against the remaining one
            with torch.no_grad():
                pooled = model.extract_feat(arrays[f'input{i}'])[-1]
                assert torch.equal(logits, model.head.classifier(pooled))


def test_converter_reproduces_published_repnext_logits(reference, tmp_path):
    state_dict, arrays = reference('repnext_tiny_distill')
    published = str(tmp_path / 'published.pth')
    torch.save({'model': state_dict}, published)
    converted = str(tmp_path / 'converted.pth')
    result = check_tool('tools/model_converters/convert_official.py', published, converted)
    assert "arch={'dims': (16, 32, 64, 128), 'depths': (1, 1, 2, 1)}" in result.stdout
    cfg = load_config(REPNEXT_DISTILL, {
        'model.backbone.arch': dict(_delete_=True, dims=(16, 32, 64, 128), depths=(1, 1, 2, 1)),
        'model.head.in_channels': 128, 'model.head.num_classes': 10})
    model = build_model(cfg).eval()
    model.load_state_dict(read_state_dict(converted), strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')
    again = run_tool('tools/model_converters/convert_official.py', published, converted)
    assert again.returncode != 0 and 'exists' in again.stderr and 'Traceback' not in again.stderr


@pytest.mark.parametrize('timm_name,config', [
    ('repvit_m0_9', 'repvit/repvit-m0.9_8xb256-300e-distill_in1k.py'),  # later release
    ('repvit_m1', 'repvit/repvit-m1_8xb256-300e-distill_in1k.py'),  # first release
])
def test_converter_reproduces_timm_repvit_logits(tmp_path, timm_name, config):
    import timm

    from repmobile_mm.utils import randomize_batchnorm
    source = randomize_batchnorm(timm.create_model(timm_name), seed=3).eval()
    weights = str(tmp_path / 'timm.pth')
    torch.save(source.state_dict(), weights)
    converted = str(tmp_path / 'converted.pth')
    result = check_tool('tools/model_converters/convert_official.py', weights, converted)
    assert f'test it with classification/configs/{config}' in result.stdout
    model = build_model(load_config(osp.join(CONFIG_DIR, config),
                                    {'model.teacher': None})).eval()
    model.load_state_dict(read_state_dict(converted), strict=True)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert_close_to_max(model(x, mode='tensor'), source(x), 1e-6)


def test_ema_hook_evaluates_and_saves_the_raw_model():
    """RawEvalEMAHook keeps the average beside the model, as the published recipe does."""
    from types import SimpleNamespace

    from repmobile_mm.engine import RawEvalEMAHook
    model = torch.nn.Linear(3, 2)
    runner = SimpleNamespace(model=model, iter=0, epoch=0, _resume=True)
    hook = RawEvalEMAHook(momentum=0.5)
    hook.before_run(runner)
    hook.after_train_iter(runner, batch_idx=0)  # mmengine's first update copies the model
    raw = copy.deepcopy(model.state_dict())
    with torch.no_grad():
        model.weight.add_(1.0)
    runner.iter = 1
    hook.after_train_iter(runner, batch_idx=1)
    trained = copy.deepcopy(model.state_dict())
    averaged = hook.ema_model.module.state_dict()
    torch.testing.assert_close(averaged['weight'], raw['weight'] + 0.5)
    hook.before_val_epoch(runner)
    assert torch.equal(model.weight, trained['weight'])  # evaluation sees the raw model
    hook.after_val_epoch(runner)
    checkpoint = {'state_dict': copy.deepcopy(model.state_dict())}
    hook.before_save_checkpoint(runner, checkpoint)
    assert torch.equal(checkpoint['state_dict']['weight'], trained['weight'])
    assert torch.equal(checkpoint['ema_state_dict']['module.weight'], averaged['weight'])
    # resuming restores the average from ema_state_dict
    resumed = RawEvalEMAHook(momentum=0.5)
    resumed.before_run(SimpleNamespace(model=torch.nn.Linear(3, 2)))
    resumed.after_load_checkpoint(runner, checkpoint)
    assert torch.equal(resumed.ema_model.module.weight, averaged['weight'])


def test_hard_distillation_loss_formula(tmp_path):
    import timm
    from mmpretrain.structures import DataSample
    teacher_ckpt = str(tmp_path / 'teacher.pth')
    torch.save(timm.create_model('test_resnet', num_classes=5).state_dict(), teacher_ckpt)
    cfg = load_config(DISTILL_S, {
        'model.backbone.arch': TINY_ARCH, 'model.neck.in_channels': 128,
        'model.head.num_classes': 5, 'model.head.dropout': 0.0,
        'model.teacher': dict(type='TimmClassifier', model_name='test_resnet', num_classes=5),
        'model.teacher_checkpoint': teacher_ckpt})
    model = build_model(cfg)
    model.init_weights()
    model.train()
    assert not model.teacher.training
    x = torch.randn(4, 3, 64, 64)
    labels = [1, 0, 4, 2]
    samples = [DataSample().set_gt_label(i) for i in labels]
    with torch.no_grad():
        teacher_labels = model.teacher(x, mode='tensor').argmax(1)
    loss = model.loss(x, samples)['loss']
    cls, dist = model.head(model.extract_feat(x))
    smooth = model.head.loss_module(cls, torch.tensor(labels), avg_factor=4)
    expected = 0.5 * smooth + 0.5 * torch.nn.functional.cross_entropy(dist, teacher_labels)
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert all(p.grad is None for p in model.teacher.parameters())
    assert not any(k.startswith('teacher.') for k in model.state_dict())


def test_distillation_without_teacher_weights_is_refused():
    model = build_model(load_config(DISTILL_S, {'model.backbone.arch': TINY_ARCH,
                                                'model.neck.in_channels': 128,
                                                'model.teacher_checkpoint': None}))
    with pytest.raises(ValueError, match='model.teacher_checkpoint'):
        model.init_weights()


def test_agc_clips_as_timm_does():
    from mmengine.optim import build_optim_wrapper
    from timm.utils.agc import adaptive_clip_grad
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Linear(16, 4))
    reference = copy.deepcopy(model)
    wrapper = build_optim_wrapper(model, dict(type='AGCOptimWrapper', agc=dict(clip_factor=0.01),
                                              optimizer=dict(type='SGD', lr=1.0)))
    x = torch.randn(32, 8) * 100
    for net in (model, reference):
        net(x).square().sum().backward()
    raw_grads = [p.grad.clone() for p in reference.parameters()]
    adaptive_clip_grad(list(reference.parameters()), clip_factor=0.01)
    expected = [p.detach() - p.grad for p in reference.parameters()]
    wrapper.step()
    for p, e in paired(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), e)
    # the clipping did something: an unclipped step would differ
    assert any(not torch.allclose(p.grad, raw) for p, raw in paired(model.parameters(), raw_grads))


@pytest.mark.parametrize('args,message', [
    (['tools/test.py', DIGITS, 'missing.pth', '--local-rank', '0'],  # torch.distributed.launch
     'checkpoint not found: missing.pth'),
    (['tools/train.py', 'nope.py', '--local_rank', '0'], 'config file not found: nope.py'),
    (['tools/reparameterize_model.py', 'nope.py', 'a.pth', 'b.pth'],
     'config file not found: nope.py'),
])
def test_bad_input_gets_a_clear_message(args, message):
    result = run_tool(*args)
    assert result.returncode != 0
    assert 'Traceback' not in result.stderr
    assert message in result.stderr


def test_unknown_config_key_and_other_architecture(tmp_path):
    checkpoint = str(tmp_path / 'digits.pth')
    torch.save({'state_dict': build_model(load_config(DIGITS)).state_dict()}, checkpoint)
    result = run_tool('tools/test.py', DIGITS, checkpoint, '--cfg-options',
                      'modle.head.num_classes=3')
    assert result.returncode != 0 and "unknown config key(s) ['modle']" in result.stderr
    other = run_tool('tools/test.py',
                     osp.join(CONFIG_DIR, 'repmobile/repmobile-m_4xb256-300e_in1k.py'),
                     checkpoint)
    assert other.returncode != 0 and 'Traceback' not in other.stderr
    assert 'does not fit the model of' in other.stderr and 'shape mismatch' in other.stderr
