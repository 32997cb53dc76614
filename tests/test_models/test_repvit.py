import copy
import json
import os.path as osp

import pytest
import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from repmobile_mm.models import RepVGGDW, RepViT, RepViTNet, fused_copy
from repmobile_mm.models.backbones.repvit import FIRST_RELEASE_ARCHS, LATER_RELEASE_ARCHS
from repmobile_mm.utils import count_params, randomize_batchnorm
from tests.conftest import REFERENCE_DIR
from tests.helpers import FOLD_SIZES, assert_close_to_max, sweep

# The fixtures' block table (tests/data/README.md; its source, shared/reference/README.md):
# channels/SE/stride per block
# 16/1/1, 16/0/1 | 32/0/2, 32/1/1 | 64/0/2, 64/1/1, 64/0/1 | 128/0/2, 128/1/1.
TINY = dict(dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))
TINY_V1 = dict(TINY, first_release=True)
ALL_ARCHS = LATER_RELEASE_ARCHS + FIRST_RELEASE_ARCHS


def published_name(arch):
    return f'repvit_v1_{arch}' if arch in FIRST_RELEASE_ARCHS else f'repvit_{arch}'


@pytest.mark.parametrize('name,arch', [('repvit_tiny_distill', TINY),
                                       ('repvit_v1_tiny_distill', TINY_V1)])
def test_reproduces_published_outputs_and_every_feature(reference, name, arch):
    state_dict, arrays = reference(name)
    model = RepViTNet(arch, num_classes=10, distillation=True).eval()
    model.load_state_dict(state_dict, strict=True)
    num_features = len([k for k in arrays if k.startswith('input0/feature')])
    assert num_features == len(model.features) == 10
    backbone = RepViT(arch, out_feature_indices=range(num_features)).eval()
    backbone.load_state_dict({k: v for k, v in state_dict.items() if k.startswith('features.')},
                             strict=True)
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


@pytest.mark.parametrize('arch', ALL_ARCHS)
def test_published_keys_and_parameter_counts(reference_keys, arch):
    expected = reference_keys(published_name(arch))
    ours = {k: tuple(v.shape) for k, v in RepViTNet(arch, distillation=True).state_dict().items()}
    assert ours == expected
    with open(osp.join(REFERENCE_DIR, 'published_params.json')) as f:
        published = json.load(f)[published_name(arch)]
    model = RepViTNet(arch)  # 1000 classes, no distillation head, as counted there
    assert count_params(model) == published['train']
    assert count_params(fused_copy(model)) <= published['fused']


# one variant of each release in every tier
@pytest.mark.parametrize('arch', sweep(ALL_ARCHS, fast=lambda arch: arch in ('m0_9', 'm1')))
def test_deploy_form_is_exact_in_float64(arch):
    """Eval mode, randomized BN statistics and gains, odd sizes, batch 1 and 3: relative 1e-8."""
    model = randomize_batchnorm(RepViT(arch), seed=1).double().eval()
    fused = fused_copy(model)
    # at least as fused as the published replace_batchnorm: no BatchNorm, every
    # RepVGGDW one depthwise conv, every Conv2d_BN one conv
    assert not any(isinstance(m, (_BatchNorm, RepVGGDW)) for m in fused.modules())
    for block in fused.features[1:]:
        if len(block.token_mixer) == 2:
            assert isinstance(block.token_mixer[0], nn.Conv2d)
    for batch in (1, 3):
        for height, width in FOLD_SIZES:
            x = torch.randn(batch, 3, height, width, dtype=torch.float64)
            with torch.no_grad():
                outs, fused_outs = model(x), fused(x)
            assert len(outs) == len(fused_outs) == 4
            for i, (a, b) in enumerate(zip(outs, fused_outs)):
                assert a.shape == b.shape
                assert_close_to_max(b, a, 1e-8, f'{arch} {batch}x{height}x{width} stage {i}')


def test_classifier_deploy_form_is_one_linear_giving_the_mean():
    model = randomize_batchnorm(RepViTNet(TINY, num_classes=7, distillation=True),
                                seed=4).double().eval()
    fused = fused_copy(model)
    assert isinstance(fused.classifier.classifier, nn.Linear)
    assert not hasattr(fused.classifier, 'classifier_dist')
    x = torch.randn(3, 3, 71, 53, dtype=torch.float64)
    with torch.no_grad():
        assert_close_to_max(fused(x), model(x), 1e-8)
        pooled = model.forward_head(model.forward_features(x), pre_logits=True)
        branches = model.classifier.classifier(pooled), model.classifier.classifier_dist(pooled)
    assert_close_to_max(fused(x), (branches[0] + branches[1]) / 2, 1e-8)
    model.train()
    assert model(torch.randn(2, 3, 64, 64, dtype=torch.float64)).shape == (2, 7)  # the mean
    model.set_distilled_training()
    cls, dist = model(torch.randn(2, 3, 64, 64, dtype=torch.float64))
    assert cls.shape == dist.shape == (2, 7)


def test_stage_ends_taps_and_out_channels():
    model = RepViT('m1_1').eval()
    assert model.stage_ends == [3, 7, 21, 24]
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 64, 56, 56), (1, 128, 28, 28),
                                              (1, 256, 14, 14), (1, 512, 7, 7)]
    taps = RepViT('m1_1', out_feature_indices=(2, 6, 20, 24)).eval()
    taps.load_state_dict(model.state_dict(), strict=True)
    with torch.no_grad():
        tapped = taps(torch.ones(1, 3, 64, 64))
        x = torch.ones(1, 3, 64, 64)
        expected = []
        for index, layer in enumerate(model.features):
            x = layer(x)
            if index in (2, 6, 20, 24):
                expected.append(x)
    assert len(tapped) == 4 and all(torch.equal(a, b) for a, b in zip(tapped, expected))
    assert taps.out_channels == [64, 128, 256, 512]
    assert RepViT('m0_9', out_indices=(1, -1)).out_channels == [96, 384]
    assert RepViT('M0.9').dims == RepViT('m0_9').dims


def test_frozen_stages_and_norm_eval():
    model = RepViT(TINY, frozen_stages=2, norm_eval=True)
    model.train()
    frozen = model.features[:1 + 2 + 2]  # patch embedding, stages 0 and 1
    assert all(not p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in model.features[5:].parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    stats = copy.deepcopy(model.state_dict())
    model(torch.randn(2, 3, 32, 32))[-1].sum().backward()
    for key, value in model.state_dict().items():
        if 'running' in key:
            assert torch.equal(value, stats[key]), key
    fused = fused_copy(model)  # fused layers are new parameters: frozen again
    assert all(not p.requires_grad for p in fused.features[:5].parameters())
    assert all(p.requires_grad for p in fused.features[5:].parameters())


def test_drop_path_is_random_in_training_only():
    # randomized BN: the published zero gain of each channel mixer's last BN would
    # leave nothing to drop
    model = randomize_batchnorm(RepViT(TINY, drop_path_rate=0.5))
    x = torch.randn(4, 3, 32, 32)
    model.train()
    torch.manual_seed(0)
    a = model(x)[-1]
    torch.manual_seed(1)
    b = model(x)[-1]
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(model(x)[-1], model(x)[-1])


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='m4'), r"unknown RepViT arch 'm4'; choose one of \['m0_6'"),
    (dict(arch=dict(dims=(16, 32, 64, 128))), "keys 'dims' and 'se'"),
    (dict(arch=dict(dims=(16, 32, 64, 128), se=('1', '01', '2', '0'))), "string of '0'/'1'"),
    (dict(out_indices=(0, 4)), r'out_indices must be stage indices in 0..3'),
    (dict(arch='m1_1', out_feature_indices=(6, 2)), r'increasing indices into features, 0..24'),
    (dict(arch='m1_1', out_feature_indices=(2, 25)), r'stage ends: \[3, 7, 21, 24\]'),
    (dict(frozen_stages=5), 'frozen_stages must be an int from -1'),
    (dict(norm_cfg=dict(type='GN')), 'norm_cfg type must be one of'),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RepViT(**kwargs)


def test_wrong_input_channels_are_named():
    with pytest.raises(ValueError, match=r'RepViT expects images of shape \(N, 3, H, W\)'):
        RepViT(TINY)(torch.randn(1, 1, 32, 32))


def test_checkpoint_of_the_other_release_names_the_release_to_use():
    with pytest.raises(RuntimeError, match=r"first release .* use arch \['m1', 'm2', 'm3'\]"):
        RepViT('m0_9').load_state_dict(RepViT('m1').state_dict())
    with pytest.raises(RuntimeError, match=r"later release .* use arch \['m0_6', 'm0_9'"):
        RepViT('m2').load_state_dict(RepViT('m1_1').state_dict())
    # both releases fuse into the same structure
    RepViT('m1', deploy=True).load_state_dict(fused_copy(RepViT('m0_9').eval()).state_dict())


def test_timm_models_and_features_only():
    import timm

    import repmobile_mm.integrations.timm  # noqa: F401
    names = set(timm.list_models('mm_repvit_*'))
    assert names == {f'mm_repvit_{a}' for a in ALL_ARCHS}
    assert 'repvit_m0_9' in timm.list_models('repvit_*')  # timm's own, untouched
    model = timm.create_model('mm_repvit_m1', num_classes=10).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    features = timm.create_model('mm_repvit_m1_1', features_only=True, out_indices=(1, 3)).eval()
    assert features.feature_info.channels() == [128, 512]
    assert features.feature_info.reduction() == [8, 32]
    outs = features(torch.randn(1, 3, 96, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 12, 12), (1, 512, 3, 3)]
