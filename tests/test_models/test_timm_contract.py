"""timm's model contract, for every model this suite registers in timm.

What timm's own model tests expect of its models (pretrained cfg, widths, classifier
reset, pooling, features, intermediates, pruning, gradient checkpointing,
TorchScript, torch.fx, re-parameterization, creation on a device), checked here on
small inputs; TorchScript, torch.fx and timm's ``reparameterize_model`` on one model
of each code path, in the training form and in the fused form.
"""
import copy

import pytest
import timm
import torch
from timm.utils.model import reparameterize_model
from torch.nn.modules.batchnorm import _BatchNorm

import repmobile_mm  # noqa: F401  (registers the models)
from repmobile_mm.integrations import timm as registrations
from repmobile_mm.integrations.timm import default_cfgs
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import paired, sweep

MODELS = sorted(default_cfgs)
# one model of each code path (RepViT's releases differ in RepVGGDW); the other variants
# differ from these in widths, depths and SE placement only, and compiling each costs
# seconds
CODE_PATHS = ['repmobile_s', 'mm_repvit_m0_9', 'mm_repvit_m1', 'repnext_m0']
# every model; the code paths' in every tier, the others' in make test
EVERY_MODEL = sweep(MODELS, fast=lambda name: name in CODE_PATHS)
CFG_KEYS = ('url', 'num_classes', 'input_size', 'pool_size', 'crop_pct', 'interpolation',
            'mean', 'std', 'first_conv', 'classifier')


def create(name, **kwargs):
    torch.manual_seed(0)
    return randomize_batchnorm(timm.create_model(name, **kwargs)).eval()


def test_every_family_is_registered():
    assert len(MODELS) == 18
    assert set(timm.list_models('repmobile_*')) == {'repmobile_s', 'repmobile_m', 'repmobile_l'}
    assert set(timm.list_models('mm_repvit_*')) | set(timm.list_models('repnext_*')) \
        == set(MODELS) - {'repmobile_s', 'repmobile_m', 'repmobile_l'}


@pytest.mark.parametrize('name', EVERY_MODEL)
def test_cfg_widths_head_and_pooling(name):
    model = create(name)
    cfg = model.pretrained_cfg
    assert all(key in cfg for key in CFG_KEYS), set(CFG_KEYS) - set(cfg)
    state = model.state_dict()
    classifiers = cfg['classifier'] if isinstance(cfg['classifier'], tuple) else (
        cfg['classifier'], )
    assert f"{cfg['first_conv']}.weight" in state
    # the output layers of both branches, which timm drops for another num_classes
    distilled = timm.create_model(name, distillation=True).state_dict()
    assert len(classifiers) == 2 and all(f'{c}.weight' in distilled for c in classifiers)
    assert f'{classifiers[0]}.weight' in state
    assert model.in_chans == cfg['input_size'][0] == 3
    x = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        features = model.forward_features(x)
        pooled = model.forward_head(features, pre_logits=True)
        logits = model(x)
        assert features.shape == (2, model.num_features, 2, 3)
        assert pooled.shape == (2, model.head_hidden_size)
        assert logits.shape == (2, 1000)
        torch.testing.assert_close(model.forward_head(features), logits, rtol=0, atol=0)

        model.reset_classifier(0)
        assert model.num_classes == 0
        torch.testing.assert_close(model(x), pooled, rtol=0, atol=0)
        model.reset_classifier(0, '')
        assert model(x).shape[:2] == (2, model.head_hidden_size) and model(x).dim() == 4
        model.reset_classifier(7, 'avg')
        assert model(x).shape == (2, 7)
        with pytest.raises(AssertionError, match="global_pool must be 'avg' or ''"):
            model.reset_classifier(7, 'max')
        headless = create(name, num_classes=0, global_pool='')
        assert headless(x).shape == (2, headless.head_hidden_size, 2, 3)


@pytest.mark.parametrize('name', EVERY_MODEL)
def test_creation_on_a_device_and_classifier_reset_keep_placement(name):
    model = timm.create_model(name, device='meta', dtype=torch.float64)
    tensors = list(model.parameters()) + list(model.buffers())
    assert tensors and all(t.device.type == 'meta' for t in tensors)
    assert all(p.dtype == torch.float64 for p in model.parameters())
    model.requires_grad_(False)
    model.reset_classifier(3)
    head = list(model.get_classifier().parameters())
    assert head and all(p.device.type == 'meta' and p.dtype == torch.float64 for p in head)
    with pytest.raises(TypeError):
        timm.create_model(name, not_a_model_arg=1)


@pytest.mark.parametrize('name', EVERY_MODEL)
def test_intermediates_features_and_pruning(name):
    model = create(name)
    x = torch.randn(2, 3, 64, 96)
    info = model.feature_info
    assert [i['reduction'] for i in info] == [4, 8, 16, 32]
    with torch.no_grad():
        final, taps = model.forward_intermediates(x)
        torch.testing.assert_close(final, model.forward_features(x), rtol=0, atol=0)
        for tap, stage in paired(taps, info):
            assert tap.shape == (2, stage['num_chs'], 64 // stage['reduction'],
                                 96 // stage['reduction'])
        early = model.forward_intermediates(x, indices=[1], stop_early=True,
                                            intermediates_only=True)
        torch.testing.assert_close(early[0], taps[1], rtol=0, atol=0)

        features = create(name, features_only=True)  # the same weights: the same seeds
        for got, tap in paired(features(x), taps):
            torch.testing.assert_close(got, tap, rtol=0, atol=0)

    pruned = copy.deepcopy(model)
    assert pruned.prune_intermediate_layers([1]) == [1]
    assert pruned.num_features == pruned.head_hidden_size == info[1]['num_chs']
    with torch.no_grad():
        torch.testing.assert_close(pruned.forward_features(x), taps[1], rtol=0, atol=0)
        assert pruned(x).shape == (2, info[1]['num_chs'], 8, 12)
    pruned.train()
    sum(t.sum() for t in pruned.forward_intermediates(x, indices=[1], intermediates_only=True)
        ).backward()
    unused = [n for n, p in pruned.named_parameters() if p.grad is None]
    assert not unused, unused


@pytest.mark.slow
@pytest.mark.parametrize('name', CODE_PATHS)
def test_scripting_and_tracing_in_both_forms(name):
    model = create(name)
    fused = reparameterize_model(model)
    ours = copy.deepcopy(model)
    ours.switch_to_deploy()
    # timm's walk over the children gives our fused model
    assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
    assert fused.state_dict().keys() == ours.state_dict().keys()
    assert all(torch.equal(v, ours.state_dict()[k]) for k, v in fused.state_dict().items())
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        reference = model(x)
        for form in (model, fused):
            expected = form(x)
            torch.testing.assert_close(expected, reference, rtol=1e-4, atol=1e-4)
            torch.testing.assert_close(torch.jit.script(form)(x), expected, rtol=0, atol=0)
            traced = torch.fx.symbolic_trace(form)
            torch.testing.assert_close(traced(x), expected, rtol=0, atol=0)
            # the input check survives both
            with pytest.raises(Exception, match=r'expects images of shape \(N, 3, H, W\)'):
                traced(torch.randn(1, 1, 64, 96))


@pytest.mark.parametrize('name,block', [('repmobile_s', 'layer1.0'),
                                        ('mm_repvit_m0_9', 'features.5'),
                                        ('repnext_m0', 'stages.1.blocks.0')])
def test_grad_checkpointing_and_distilled_training(name, block):
    model = create(name, distillation=True).train()
    model.set_grad_checkpointing()
    assert model.with_cp
    x = torch.randn(2, 3, 64, 64)
    calls = []
    model.get_submodule(block).register_forward_pre_hook(lambda *args: calls.append(1))
    out = model(x.requires_grad_())
    assert out.shape == (2, 1000)  # training returns the mean logits, as timm's models do
    out.sum().backward()
    assert len(calls) == 2  # the backward pass ran the stage again
    model.set_distilled_training()
    cls, dist = model(x)
    assert cls.shape == dist.shape == (2, 1000)


def test_one_greppable_function_per_variant():
    """timm's convention: ``def repnext_m3(pretrained=False, **kwargs)``, registered with
    ``@register_model``, for every name (not a loop over generated functions)."""
    source = open(registrations.__file__).read()
    for name in MODELS:
        assert f'@register_model\ndef {name}(pretrained: bool = False, **kwargs)' in source, name
        assert getattr(registrations, name).__doc__


@pytest.mark.parametrize('family,license_,paper', [
    ('mm_repvit_', 'apache-2.0', 'arXiv:2307.09283'),
    ('repnext_', 'apache-2.0', 'arXiv:2406.16004')])
def test_pretrained_cfgs_cite_license_and_paper(family, license_, paper):
    names = [name for name in MODELS if name.startswith(family)]
    assert names
    for name in names:
        cfg = timm.models.get_pretrained_cfg(name)
        assert (cfg.license, cfg.paper_ids) == (license_, paper), name


@pytest.mark.parametrize('name', CODE_PATHS)
def test_group_matcher_groups_every_parameter_stem_first(name):
    from timm.models import group_parameters
    model = create(name)
    names = [n for n, _ in model.named_parameters()]
    for coarse in (False, True):
        groups = group_parameters(model, model.group_matcher(coarse))
        assert sorted(n for group in groups.values() for n in group) == sorted(names)
        ordered = [groups[k] for k in sorted(groups)]
        stem = model.pretrained_cfg['first_conv']
        assert f'{stem}.weight' in ordered[0] and len(ordered) > 5
        assert any(n.startswith(model.pretrained_cfg['classifier'][0]) for n in ordered[-1])


def test_pretrained_loads_a_published_release_file_or_timms_repvit_weights(tmp_path):
    x = torch.randn(2, 3, 64, 64)
    published = create('repnext_m1')
    torch.save({'model': published.state_dict(), 'epoch': 300}, tmp_path / 'release.pth')
    model = timm.create_model('repnext_m1', pretrained=True, pretrained_cfg_overlay=dict(
        file=str(tmp_path / 'release.pth'))).eval()
    with torch.no_grad():
        assert torch.equal(model(x), published(x))

    theirs = randomize_batchnorm(timm.create_model('repvit_m0_9')).eval()  # timm's keys
    torch.save(theirs.state_dict(), tmp_path / 'timm.pth')
    overlay = dict(file=str(tmp_path / 'timm.pth'))
    ours = timm.create_model('mm_repvit_m0_9', distillation=True, pretrained=True,
                             pretrained_cfg_overlay=overlay).eval()
    features = timm.create_model('mm_repvit_m0_9', num_classes=0, pretrained=True,
                                 pretrained_cfg_overlay=overlay).eval()
    with torch.no_grad():
        torch.testing.assert_close(ours(x), theirs(x), rtol=0, atol=0)
        torch.testing.assert_close(features(x), theirs.forward_head(
            theirs.forward_features(x), pre_logits=True), rtol=0, atol=0)

    torch.save({'model': create('repmobile_s').state_dict()}, tmp_path / 'plain.pth')
    with pytest.raises(ValueError, match='has no distillation branch: create the model with '
                       'distillation=False'):
        timm.create_model('repmobile_s', distillation=True, pretrained=True,
                          pretrained_cfg_overlay=dict(file=str(tmp_path / 'plain.pth')))
    # RepMobile's release files have no direct URL (tests/test_published_checkpoints.py
    # downloads RepViT's and RepNeXt's)
    with pytest.raises(ValueError, match="repmobile_s has no published weights to download "
                       r"\(RepMobile's are Google Drive share links\)"):
        timm.create_model('repmobile_s', pretrained=True)
