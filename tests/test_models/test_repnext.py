import copy
import json
import os.path as osp

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from repmobile_mm.models import MetaNeXtBlock, RepNeXt, RepNeXtNet, fused_copy
from repmobile_mm.models.backbones.repnext import Downsample, RepDWConvM, RepDWConvS
from repmobile_mm.utils import count_params, randomize_batchnorm
from tests.conftest import REFERENCE_DIR
from tests.helpers import FOLD_SIZES, assert_close_to_max, sweep

# the fixture's table (tests/data/README.md; its source, shared/reference/README.md)
TINY = dict(dims=(16, 32, 64, 128), depths=(1, 1, 2, 1))
ARCHS = sorted(RepNeXt.arch_settings)


def test_reproduces_published_outputs_and_every_stage(reference):
    state_dict, arrays = reference('repnext_tiny_distill')
    model = RepNeXtNet(TINY, num_classes=10).eval()
    model.load_state_dict(state_dict, strict=True)
    backbone = RepNeXt(TINY).eval()
    backbone.load_state_dict({k: v for k, v in state_dict.items()
                              if k.startswith(('stem.', 'stages.'))}, strict=True)
    num_features = len([k for k in arrays if k.startswith('input0/feature')])
    assert num_features == 4
    for form, net, feats in [('training', model, backbone),
                             ('deploy', fused_copy(model), fused_copy(backbone))]:
        for i in range(2):
            x = arrays[f'input{i}']
            with torch.no_grad():
                assert_close_to_max(net(x), arrays[f'output{i}'], 1e-4, f'{form} logits {i}')
                outs = feats(x)
            assert len(outs) == num_features
            for j, feat in enumerate(outs):
                assert_close_to_max(feat, arrays[f'input{i}/feature{j}'], 1e-4,
                                    f'{form} input{i}/feature{j}')


@pytest.mark.parametrize('arch', ARCHS)
def test_published_keys_and_parameter_counts(reference_keys, arch):
    expected = reference_keys(f'repnext_{arch}')
    model = RepNeXtNet(arch)  # the published model always has the distillation head
    assert {k: tuple(v.shape) for k, v in model.state_dict().items()} == expected
    with open(osp.join(REFERENCE_DIR, 'published_params.json')) as f:
        published = json.load(f)[f'repnext_{arch}']
    assert count_params(model) == published['train']
    # fewer than the published fuse leaves: its BatchNorm after every token mixer
    # (2 parameters per channel, in every block and downsample) is folded here
    dims, depths = model.dims, model.depths
    folded = sum(2 * d * n for d, n in zip(dims, depths)) + sum(2 * 2 * d for d in dims[:3])
    assert count_params(fused_copy(model)) == published['fused'] - folded


@pytest.mark.parametrize('arch', sweep(ARCHS, fast=lambda arch: arch == 'm0'))
def test_deploy_form_is_exact_in_float64(arch):
    """Eval mode, randomized BN statistics and gains, odd sizes, batch 1 and 3: relative 1e-8."""
    model = randomize_batchnorm(RepNeXt(arch), seed=1).double().eval()
    fused = fused_copy(model)
    assert not any(isinstance(m, (_BatchNorm, RepDWConvS, RepDWConvM)) for m in fused.modules())
    for unit in [u for stage in fused.stages for u in stage.units()]:
        assert isinstance(unit.norm, nn.Identity)
    for batch in (1, 3):
        for height, width in FOLD_SIZES:
            x = torch.randn(batch, 3, height, width, dtype=torch.float64)
            with torch.no_grad():
                outs, fused_outs = model(x), fused(x)
            assert len(outs) == len(fused_outs) == 4
            for i, (a, b) in enumerate(zip(outs, fused_outs)):
                assert a.shape == b.shape
                assert_close_to_max(b, a, 1e-8, f'{arch} {batch}x{height}x{width} stage {i}')


@pytest.mark.parametrize('stride', [1, 2])
@pytest.mark.parametrize('module', [RepDWConvS, RepDWConvM])
@pytest.mark.parametrize('size', [(1, 1), (2, 3), (5, 4), (9, 7), (16, 16)])
def test_each_depthwise_fold_is_exact_on_every_border(module, stride, size):
    """Every map pixel on a border, odd and even sizes, both strides."""
    torch.manual_seed(0)
    conv = module(4, stride).double().eval()
    for param in conv.parameters():
        torch.nn.init.normal_(param)
    x = torch.randn(2, 4, *size, dtype=torch.float64)
    with torch.no_grad():
        expected, fused = conv(x), conv.fuse()(x)
    assert expected.shape == fused.shape
    assert_close_to_max(fused, expected, 1e-12, f'{module.__name__} stride {stride} {size}')


def test_token_mixer_norms_fold_exactly():
    """Block: the BatchNorm into the next 1x1 conv; downsample: into its depthwise convs."""
    for unit in (MetaNeXtBlock(16), Downsample(16)):
        unit = randomize_batchnorm(unit, seed=3).double().eval()
        fused = copy.deepcopy(unit)
        fused.switch_to_deploy()
        assert isinstance(fused.norm, nn.Identity)
        x = torch.randn(2, 16, 13, 11, dtype=torch.float64)
        with torch.no_grad():
            assert_close_to_max(fused(x), unit(x), 1e-12, type(unit).__name__)


def test_classifier_deploy_form_is_one_linear_giving_the_mean():
    model = randomize_batchnorm(RepNeXtNet(TINY, num_classes=7), seed=4).double().eval()
    fused = fused_copy(model)
    assert isinstance(fused.head.head, nn.Linear) and not hasattr(fused.head, 'head_dist')
    x = torch.randn(3, 3, 71, 53, dtype=torch.float64)
    with torch.no_grad():
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        mean = (model.head.head(pooled) + model.head.head_dist(pooled)) / 2
        assert_close_to_max(fused(x), mean, 1e-8)
    model.train()
    assert model(torch.randn(2, 3, 64, 64, dtype=torch.float64)).shape == (2, 7)  # the mean
    model.set_distilled_training()
    cls, dist = model(torch.randn(2, 3, 64, 64, dtype=torch.float64))
    assert cls.shape == dist.shape == (2, 7)


def test_strides_channels_frozen_stages_and_norm_eval():
    model = RepNeXt('m1', out_indices=(1, -1)).eval()
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 96, 28, 28), (1, 384, 7, 7)]
    assert model.out_channels == [96, 384] and RepNeXt('M1').dims == model.dims
    model = RepNeXt(TINY, frozen_stages=2, norm_eval=True).train()
    frozen = [model.stem, model.stages[0], model.stages[1]]
    assert all(not p.requires_grad for m in frozen for p in m.parameters())
    assert all(p.requires_grad for p in model.stages[2].parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    fused = fused_copy(model)
    assert all(not p.requires_grad for m in (fused.stem, fused.stages[1]) for p in m.parameters())
    assert all(p.requires_grad for p in fused.stages[2].parameters())


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='m6'), r"unknown RepNeXt arch 'm6'; choose one of \['m0', 'm1'"),
    (dict(arch=dict(dims=(16, 32, 64, 128))), "keys 'dims' and 'depths'"),
    (dict(arch=dict(dims=(12, 24, 48, 96), depths=(1, 1, 1, 1))), 'multiple of 8'),
    (dict(out_indices=(4, )), r'out_indices must be stage indices in 0..3'),
    (dict(frozen_stages=5), 'frozen_stages must be an int from -1'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RepNeXt(**kwargs)


def test_timm_models_and_features_only():
    import timm

    import repmobile_mm.integrations.timm  # noqa: F401
    assert set(timm.list_models('repnext_*')) == {f'repnext_{a}' for a in ARCHS}
    model = timm.create_model('repnext_m0', num_classes=10).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    features = timm.create_model('repnext_m3', features_only=True, out_indices=(1, 3)).eval()
    assert features.feature_info.channels() == [128, 512]
    assert features.feature_info.reduction() == [8, 32]
    outs = features(torch.randn(1, 3, 96, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 12, 12), (1, 512, 3, 3)]


def test_benchmark_baseline_is_the_published_fuse(reference):
    """The benchmark's published-fuse baseline has the published fused parameter count
    and computes what the training form does (it is what our fuse goes beyond)."""
    from repmobile_mm.models.published import published_repnext_fuse
    with open(osp.join(REFERENCE_DIR, 'published_params.json')) as f:
        published = json.load(f)['repnext_m1']['fused']
    model = randomize_batchnorm(RepNeXtNet('m1'), seed=5).eval()
    baseline = published_repnext_fuse(model)
    assert count_params(baseline) == published
    state_dict, arrays = reference('repnext_tiny_distill')
    tiny = RepNeXtNet(TINY, num_classes=10).eval()
    tiny.load_state_dict(state_dict, strict=True)
    with torch.no_grad():
        assert_close_to_max(published_repnext_fuse(tiny)(arrays['input1']), arrays['output1'],
                            1e-4)
