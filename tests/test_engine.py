"""Our hooks: ChannelsLastHook (the small configs' CPU speed-up must not change what
is computed) and FiniteLossHook."""
import copy
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_index import DEMO_CONFIG
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.engine import ChannelsLastHook
from repmobile_mm.errors import ConfigError, NonFiniteLossError
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import ROOT, assert_close_to_max

DIGITS = ['classification/configs/repmobile/repmobile-s_1xb64_digits.py',
          'classification/configs/repvit/repvit-m0.9_1xb64_digits.py',
          'classification/configs/repnext/repnext-m1_1xb64_digits.py']
# every config that trains on the demo's data (the model index's demo configs), deploy
# twins aside: digits, shapes and scenes of each family, and the demo's chained runs
SMALL_RUNS = sorted(
    osp.relpath(path, ROOT) for path in glob.glob(osp.join(ROOT, '*', 'configs', '*', '*.py'))
    if DEMO_CONFIG.search(path))


def test_the_small_runs_are_found():
    assert set(DIGITS) < set(SMALL_RUNS) and len(SMALL_RUNS) == 11


@pytest.mark.parametrize('config', SMALL_RUNS, ids=lambda c: osp.basename(c)[:-3])
def test_small_runs_store_weights_channels_last_safely(config):
    cfg = load_config(osp.join(ROOT, config))
    assert [h['type'] for h in cfg.custom_hooks] == ['ChannelsLastHook']
    model = build_model(cfg)
    ChannelsLastHook().before_run(SimpleNamespace(model=model))  # refuses mmcv's RoIAlign
    weights = [p for p in model.parameters() if p.dim() == 4]
    assert weights and all(
        w.is_contiguous(memory_format=torch.channels_last) for w in weights)


@pytest.mark.parametrize('config', DIGITS, ids=['repmobile', 'repvit', 'repnext'])
def test_channels_last_training_step_computes_what_nchw_does(config):
    model = build_model(load_config(osp.join(ROOT, config)))
    nchw = randomize_batchnorm(model, seed=1).double()
    channels_last = copy.deepcopy(nchw)
    ChannelsLastHook().before_run(SimpleNamespace(model=channels_last))
    x = torch.randn(8, 3, 32, 32, dtype=torch.float64)
    outputs = []
    for model in (nchw, channels_last):
        model.train()
        features = model.backbone(x)[-1]
        features.square().mean().backward()
        outputs.append((features, {n: p.grad for n, p in model.backbone.named_parameters()}))
    (expected, expected_grads), (actual, grads) = outputs
    assert actual.is_contiguous(memory_format=torch.channels_last)
    assert_close_to_max(actual, expected, 1e-8, 'features')
    assert list(grads) == list(expected_grads) and len(grads) > 0
    # all gradients as one vector: those of biases before a BatchNorm are zero but for
    # rounding (1e-16), so each is compared at the scale of the largest
    assert_close_to_max(torch.cat([g.flatten() for g in grads.values()]),
                        torch.cat([g.flatten() for g in expected_grads.values()]), 1e-8,
                        'gradients')


def test_channels_last_hook_refuses_mmcv_roi_align_for_what_it_misreads():
    """The reason for the refusal (mmcv 2.1.0): if mmcv's forward ever reads channels-last
    features right, this test says the refusal can go."""
    from mmcv.ops import RoIAlign
    x = torch.randn(2, 16, 20, 24)
    rois = torch.tensor([[0, 1., 2., 15., 12.], [1, 3., 0., 20., 18.]])
    mmcv_align = RoIAlign((7, 7), 0.5, sampling_ratio=0, aligned=True)
    torchvision_align = RoIAlign((7, 7), 0.5, sampling_ratio=0, aligned=True,
                                 use_torchvision=True)
    x_last = x.contiguous(memory_format=torch.channels_last)
    assert not torch.allclose(mmcv_align(x_last, rois), mmcv_align(x, rois))
    torch.testing.assert_close(torchvision_align(x_last, rois), mmcv_align(x, rois))

    detector = torch.nn.ModuleDict(dict(roi=torch.nn.ModuleList([mmcv_align])))
    with pytest.raises(ConfigError, match=r'roi\.0 is mmcv\'s RoIAlign.*'
                       r'SeparableRoIExtractor.*use_torchvision=True'):
        ChannelsLastHook().before_run(SimpleNamespace(model=detector))
    ChannelsLastHook().before_run(SimpleNamespace(model=torch.nn.ModuleList([torchvision_align])))


def test_a_non_finite_loss_stops_training_before_the_checkpoint_hook():
    from mmengine.hooks import CheckpointHook
    from mmengine.runner.priority import get_priority

    from repmobile_mm.engine import FiniteLossHook
    hook = FiniteLossHook()
    assert get_priority(hook.priority) < get_priority(CheckpointHook.priority)  # runs first
    runner = SimpleNamespace(iter=41)
    hook.after_train_iter(runner, 0, outputs=dict(loss=torch.tensor(1.5), acc=torch.tensor(50.)))
    outputs = dict(loss=torch.tensor(float('nan')), loss_cls=torch.tensor(float('nan')),
                   loss_bbox=torch.tensor(0.25), acc=torch.tensor(float('nan')))
    with pytest.raises(NonFiniteLossError, match=r'^iteration 42: the loss is not finite '
                       r'\(loss=nan, loss_cls=nan, loss_bbox=0\.25\); stopped before saving'):
        hook.after_train_iter(runner, 0, outputs=outputs)


def test_every_run_of_the_tools_gets_the_finite_loss_hook(tmp_path):
    from repmobile_mm.apis.runner import build_runner
    cfg = load_config(osp.join(ROOT, DIGITS[0]))
    cfg.work_dir = str(tmp_path)
    runner = build_runner(cfg)
    assert [type(h).__name__ for h in runner.hooks].count('FiniteLossHook') == 1


def test_merged_groups_give_each_parameter_the_default_constructors_update():
    """The digits configs' optimizer: a few parameter groups where mmengine makes one a
    parameter, the same options for every parameter, the same weights after two steps."""
    from mmengine.optim import build_optim_wrapper
    cfg = load_config(osp.join(ROOT, DIGITS[2]))  # RepNeXt-M1: norms, biases, the rest
    assert cfg.optim_wrapper.constructor == 'MergedGroupsOptimWrapperConstructor'
    assert cfg.optim_wrapper.optimizer.fused
    models, wrappers = [], []
    for constructor in ('DefaultOptimWrapperConstructor', 'MergedGroupsOptimWrapperConstructor'):
        models.append(build_model(cfg))
        options = copy.deepcopy(cfg.optim_wrapper)
        options.update(constructor=constructor)
        options.optimizer.fused = False  # the same kernel on both sides: equal to the bit
        wrappers.append(build_optim_wrapper(models[-1], options))
    models[1].load_state_dict(models[0].state_dict())
    default, merged = (w.optimizer.param_groups for w in wrappers)
    assert len(default) == sum(1 for _ in models[0].parameters()) > 700
    assert 2 <= len(merged) <= 3
    names = {id(p): n for n, p in models[1].named_parameters()}
    options_of = {names[id(p)]: {k: v for k, v in g.items() if k != 'params'}
                  for g in merged for p in g['params']}
    assert len(options_of) == len(default)  # each parameter once
    for name, group in zip((n for n, _ in models[0].named_parameters()), default):
        assert options_of[name] == {k: v for k, v in group.items() if k != 'params'}, name
    generator = torch.Generator().manual_seed(0)
    for _ in range(2):
        grads = [torch.randn(p.shape, generator=generator) for p in models[0].parameters()]
        for model, wrapper in zip(models, wrappers):
            for p, g in zip(model.parameters(), grads):
                p.grad = g.clone()
            wrapper.step()
    for (name, expected), actual in zip(models[0].named_parameters(), models[1].parameters()):
        assert torch.equal(actual, expected), name
