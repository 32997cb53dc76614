"""Classification: configs, the shared tools end to end, distillation, AGC."""
import copy
import glob
import json
import os
import os.path as osp
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

import repmobile_mm  # noqa: F401
from repmobile_mm.engine.model_io import build_model, read_state_dict
from repmobile_mm.engine.runner import load_config
from tests.helpers import ROOT, assert_close_to_max, check_tool, run_tool

CONFIG_DIR = osp.join(ROOT, 'classification/configs')
DIGITS = osp.join(CONFIG_DIR, 'repmobile/repmobile-s_1xb64_digits.py')
DIGITS_DEPLOY = osp.join(CONFIG_DIR, 'repmobile/deploy/repmobile-s-deploy_1xb64_digits.py')
DISTILL_S = osp.join(CONFIG_DIR, 'repmobile/repmobile-s_4xb256-300e-distill_in1k.py')
# replaces the configs' arch='S' (a string, hence _delete_)
TINY_ARCH = dict(_delete_=True, dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))


@pytest.mark.parametrize('path', sorted(glob.glob(osp.join(CONFIG_DIR, 'repmobile/**/*.py'),
                                                  recursive=True)),
                         ids=lambda p: osp.relpath(p, CONFIG_DIR))
def test_every_config_loads_and_builds(path):
    cfg = load_config(path)
    assert cfg.default_scope == 'mmpretrain'
    assert 'repmobile_mm' in cfg.custom_imports.imports
    model = build_model(cfg)
    assert model.backbone.deploy == ('/deploy/' in path)
    assert model.neck.in_channels == model.backbone.dims[-1]
    if '-distill' in path and '/deploy/' not in path:
        assert model.teacher is not None and model.head.distillation


def test_recipe_matches_the_published_one():
    cfg = load_config(osp.join(CONFIG_DIR, 'repmobile/repmobile-l_4xb256-300e_in1k.py'))
    assert cfg.optim_wrapper.type == 'AGCOptimWrapper'
    assert cfg.optim_wrapper.agc.clip_factor == 5.0
    assert cfg.optim_wrapper.optimizer.lr == 1e-3 and cfg.auto_scale_lr.base_batch_size == 1024
    assert cfg.train_dataloader.batch_size == 256 and cfg.val_dataloader.batch_size == 384
    assert cfg.train_dataloader.sampler.type == 'RepeatAugSampler'
    randaug = [t for t in cfg.train_pipeline if t.type == 'RandAugment'][0]
    assert (randaug.policies, randaug.magnitude_level, randaug.magnitude_std) == \
        ('timm_increasing', 9, 0.5)
    assert [a.type for a in cfg.model.train_cfg.augments] == ['Mixup', 'CutMix']
    s_cfg = load_config(osp.join(CONFIG_DIR, 'repmobile/repmobile-s_4xb256-300e_in1k.py'))
    assert 'train_cfg' not in s_cfg.model  # no Mixup/CutMix below L


def make_folder_dataset(root, per_class=4, classes=3, size=32):
    """A tiny CustomDataset folder of random images."""
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for c in range(classes):
            folder = osp.join(root, split, str(c))
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(osp.join(folder, f'{i}.png'))


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two training iterations of the digits config on a tiny generated dataset."""
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
    result = check_tool('tools/train.py', DIGITS, '--work-dir', work_dir, *options)
    assert 'Epoch(train) [1][2/2]' in result.stdout + result.stderr
    return dict(tmp=tmp, data=data, work_dir=work_dir, options=options,
                checkpoint=osp.join(work_dir, 'epoch_1.pth'))


@pytest.mark.slow
def test_train_then_test(trained):
    out = str(trained['tmp'] / 'metrics.json')
    check_tool('tools/test.py', DIGITS, trained['checkpoint'], '--work-dir',
               str(trained['tmp'] / 'test'), '--out', out, *trained['options'])
    with open(out) as f:
        metrics = json.load(f)
    assert 0 <= metrics['accuracy/top1'] <= 100


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


@pytest.mark.slow
def test_fuse_round_trip(trained):
    fused_path = str(trained['tmp'] / 'fused.pth')
    result = check_tool('tools/reparameterize_model.py', DIGITS, trained['checkpoint'],
                        fused_path, *trained['options'])
    assert 'outputs differ by at most' in result.stdout
    state = torch.load(fused_path, weights_only=True)
    assert set(state) == {'state_dict', 'meta'}  # model only, no optimizer

    overrides = {'model.head.num_classes': 3}
    trained_model = build_model(load_config(DIGITS, overrides)).eval()
    trained_model.load_state_dict(read_state_dict(trained['checkpoint']), strict=True)
    deployed = build_model(load_config(DIGITS_DEPLOY, overrides)).eval()
    deployed.load_state_dict(state['state_dict'], strict=True)
    x = torch.randn(4, 3, 32, 32)
    with torch.no_grad():
        assert_close_to_max(deployed(x, mode='tensor'), trained_model(x, mode='tensor'), 1e-4)

    again = run_tool('tools/reparameterize_model.py', DIGITS, fused_path,
                     str(trained['tmp'] / 'twice.pth'), *trained['options'])
    assert again.returncode != 0 and 'is already fused' in again.stderr
    assert 'Traceback' not in again.stderr


def test_converter_reproduces_published_logits(reference, tmp_path):
    state_dict, arrays = reference('repmobile_tiny_distill')
    published = str(tmp_path / 'published.pth')
    torch.save({'model': state_dict}, published)
    converted = str(tmp_path / 'converted.pth')
    result = check_tool('tools/model_converters/convert_official.py', published, converted)
    assert '-distill_in1k.py' in result.stdout
    cfg = load_config(DISTILL_S, {'model.backbone.arch': TINY_ARCH,
                                  'model.neck.in_channels': 128,
                                  'model.head.num_classes': 10})
    model = build_model(cfg).eval()
    model.load_state_dict(read_state_dict(converted), strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')


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
    for p, e in zip(model.parameters(), expected):
        torch.testing.assert_close(p.detach(), e)
    # the clipping did something: an unclipped step would differ
    assert any(not torch.allclose(p.grad, raw) for p, raw in zip(model.parameters(), raw_grads))


def test_amp_switches_to_the_agc_amp_wrapper():
    from repmobile_mm.engine.runner import enable_amp
    cfg = load_config(osp.join(CONFIG_DIR, 'repmobile/repmobile-s_4xb256-300e_in1k.py'))
    enable_amp(cfg)
    assert cfg.optim_wrapper.type == 'AGCAmpOptimWrapper'


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


def test_unknown_config_key_and_other_architecture(trained):
    result = run_tool('tools/test.py', DIGITS, trained['checkpoint'], '--cfg-options',
                      'modle.head.num_classes=3')
    assert result.returncode != 0 and "unknown config key(s) ['modle']" in result.stderr
    other = run_tool('tools/test.py', osp.join(CONFIG_DIR, 'repmobile/repmobile-m_4xb256-300e_in1k.py'),
                     trained['checkpoint'])
    assert other.returncode != 0 and 'Traceback' not in other.stderr
    assert 'does not fit the model of' in other.stderr and 'shape mismatch' in other.stderr
