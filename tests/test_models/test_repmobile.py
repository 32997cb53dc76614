import copy

import pytest
import torch
from torch.nn.modules.batchnorm import _BatchNorm

from repmobile_mm.models import RepMobile, RepMobileBlock, RepMobileNet, fused_copy
from repmobile_mm.utils import count_macs, count_params, randomize_batchnorm
from tests.helpers import FOLD_SIZES, assert_close_to_max, paired, sweep

TINY = dict(dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))
# Published table (shared/specs/repmobile.md): params with the 1000-class
# classifier and no distillation head, MACs at 224x224, backbone-only params.
SPEC = {
    'S': dict(params=5.72e6, macs=0.43e9, backbone=3.12e6),
    'M': dict(params=8.21e6, macs=0.71e9, backbone=5.47e6),
    'L': dict(params=18.36e6, macs=1.40e9, backbone=15.50e6),
}


@pytest.mark.parametrize('name,distillation', [('repmobile_tiny', False),
                                               ('repmobile_tiny_distill', True)])
def test_reproduces_published_outputs(reference, name, distillation):
    state_dict, arrays = reference(name)
    model = RepMobileNet(TINY, num_classes=10, distillation=distillation).eval()
    model.load_state_dict(state_dict, strict=True)
    backbone = RepMobile(TINY).eval()
    backbone.load_state_dict({k: v for k, v in state_dict.items()
                              if k.startswith(('stem.', 'layer'))}, strict=True)
    for form, net, feats in [('training', model, backbone),
                             ('deploy', fused_copy(model), fused_copy(backbone))]:
        for i in range(2):
            x = arrays[f'input{i}']
            with torch.no_grad():
                assert_close_to_max(net(x), arrays[f'output{i}'], 1e-4, f'{form} logits {i}')
                for j, feat in enumerate(feats(x)):
                    assert_close_to_max(feat, arrays[f'input{i}/feature{j}'], 1e-4,
                                        f'{form} input{i}/feature{j}')


def test_benchmark_baseline_reproduces_the_published_outputs(reference):
    """The benchmark's published block structure shares our block's convolutions and
    gate: the published implementation's outputs check those shared parts too (in
    training mode the structure is compared with ours in test_deployment.py)."""
    from repmobile_mm.models.published import PublishedBlock, published_structure
    state_dict, arrays = reference('repmobile_tiny')
    model = RepMobileNet(TINY, num_classes=10).eval()
    model.load_state_dict(state_dict, strict=True)
    published = published_structure(model).eval()
    assert sum(isinstance(m, PublishedBlock) for m in published.modules()) == sum(TINY['blocks'])
    for i in range(2):
        with torch.no_grad():
            assert_close_to_max(published(arrays[f'input{i}']), arrays[f'output{i}'], 1e-4,
                                f'logits {i}')


@pytest.mark.parametrize('arch', ['S', 'M', 'L'])
def test_published_key_lists_are_covered(reference_keys, arch):
    expected = reference_keys(f'repmobile_{arch.lower()}')
    model = RepMobileNet(arch, distillation=True)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert ours == expected


def macs_by_operator(model):
    from mmengine.analysis import FlopAnalyzer
    analyzer = FlopAnalyzer(model.eval(), torch.zeros(1, 3, 224, 224))
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    return dict(analyzer.by_operator())


@pytest.mark.parametrize('arch', sweep(['S', 'M', 'L'], fast=lambda arch: arch == 'S'))
def test_params_and_macs_match_published_table(arch):
    spec = SPEC[arch]
    model = RepMobileNet(arch)
    assert abs(count_params(model) - spec['params']) <= 0.01e6
    assert abs(count_params(RepMobile(arch)) - spec['backbone']) <= 0.01e6
    # the published figure has two decimals: within its rounding (the fused form's
    # 0.013-0.027G fewer would not be)
    assert abs(count_macs(model) - spec['macs']) <= 0.005e9
    fused = fused_copy(model)
    assert count_params(fused) < count_params(model)
    # the fused form, by operator: no BatchNorm left; convolutions and linear layers
    # together exactly the training form's (a gate's 1x1 conv on a pooled map becomes a
    # linear layer); pooling only the classifier's (the gates take channel means with
    # `mean`, which FlopAnalyzer does not count)
    trained, deployed = macs_by_operator(model), macs_by_operator(fused)
    assert trained['batch_norm'] > 0 and 'batch_norm' not in deployed
    assert deployed['conv'] + deployed['linear'] == trained['conv'] + trained['linear']
    pooled = model.classifier.classifier[0].in_features  # the head's conv width
    assert deployed['adaptive_avg_pool2d'] == pooled * 7 * 7
    assert count_macs(fused) == sum(deployed.values())


@pytest.mark.parametrize('arch', sweep(['S', 'M', 'L'], fast=lambda arch: arch == 'S'))
def test_deploy_form_is_exact_in_float64(arch):
    """Eval mode, randomized BN statistics, odd sizes, batch 1 and 3: relative 1e-8."""
    model = randomize_batchnorm(RepMobile(arch), seed=1).double().eval()
    fused = fused_copy(model)
    blocks = [b for b in fused.modules() if isinstance(b, RepMobileBlock)]
    assert all(b.use_pad_shift for b in blocks)
    for batch in (1, 3):
        for height, width in FOLD_SIZES:
            x = torch.randn(batch, 3, height, width, dtype=torch.float64)
            with torch.no_grad():
                for i, (a, b) in enumerate(paired(model(x), fused(x))):
                    assert a.shape == b.shape
                    assert_close_to_max(b, a, 1e-8, f'{arch} {batch}x{height}x{width} stage {i}')


@pytest.mark.parametrize('size', [(1, 1), (2, 3), (5, 4), (9, 7)])
def test_deploy_form_exact_on_tiny_maps(size):
    """Maps so small that every pixel is on a border, including single pixels."""
    model = randomize_batchnorm(RepMobile(TINY), seed=2).double().eval()
    x = torch.randn(2, 3, *size, dtype=torch.float64)
    with torch.no_grad():
        for a, b in paired(model(x), fused_copy(model)(x)):
            assert_close_to_max(b, a, 1e-8, f'size {size}')


@pytest.mark.parametrize('gain', [0.0, 1e-7])
@pytest.mark.parametrize('stride', [1, 2])
def test_zero_or_tiny_bn_scale_falls_back_to_explicit_norm(stride, gain):
    """A block whose BN gain is 0, or so small that the shift t/s would exceed
    MAX_PAD_SHIFT, cannot shift its padding: explicit BN instead."""
    from repmobile_mm.models.backbones.repmobile import MAX_PAD_SHIFT
    model = randomize_batchnorm(RepMobile(TINY), seed=3).double().eval()
    block = model.layer1[2 - stride]
    assert block.stride == stride
    with torch.no_grad():
        block.conv_dw[0].weight[:3] = gain
    if gain:
        from repmobile_mm.models.utils.fuse import bn_scale_shift
        scale, shift = bn_scale_shift(block.conv_dw[0])
        assert (scale != 0).all() and (shift / scale).abs().max() > MAX_PAD_SHIFT
    fused = fused_copy(model)
    explicit = [name for name, b in fused.named_modules()
                if isinstance(b, RepMobileBlock) and not b.use_pad_shift]
    assert explicit == [f'layer1.{2 - stride}']
    x = torch.randn(2, 3, 45, 37, dtype=torch.float64)
    with torch.no_grad():
        for a, b in paired(model(x), fused(x)):
            assert_close_to_max(b, a, 1e-8)
    # the strategy survives a save/load of the fused weights
    rebuilt = RepMobile(TINY, deploy=True).double().eval()
    rebuilt.load_state_dict(fused.state_dict(), strict=True)
    assert [b.use_pad_shift for b in rebuilt.modules() if isinstance(b, RepMobileBlock)] == \
        [b.use_pad_shift for b in fused.modules() if isinstance(b, RepMobileBlock)]
    with torch.no_grad():
        for a, b in paired(fused(x), rebuilt(x)):
            assert torch.equal(a, b)


@pytest.mark.parametrize('arch', ['S', 'M', 'L'])
def test_deploy_form_in_float32_at_full_size(arch):
    """What users run: float32, 224x224, randomized BatchNorm; the stated tolerance is
    relative 1e-5 of the largest output (measured: about 2e-7)."""
    model = randomize_batchnorm(RepMobileNet(arch), seed=4).eval()
    fused = fused_copy(model)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        assert_close_to_max(fused(x), model(x), 1e-5, arch)


def test_deploy_form_traces_as_one_graph():
    """No graph breaks under torch.compile (a break would split every block into its
    own compiled frame and hit dynamo's recompile limit)."""
    fused = fused_copy(RepMobileNet(TINY, num_classes=10).eval())
    compiled = torch.compile(fused, backend='eager', fullgraph=True)
    x = torch.randn(2, 3, 45, 37)
    with torch.no_grad():
        assert torch.equal(compiled(x), fused(x))


def test_deploy_flag_builds_the_fused_structure():
    model = randomize_batchnorm(RepMobile('S')).eval()
    fused = fused_copy(model)
    direct = RepMobile('S', deploy=True)
    assert {k: v.shape for k, v in direct.state_dict().items()} == \
        {k: v.shape for k, v in fused.state_dict().items()}
    direct.load_state_dict(fused.state_dict(), strict=True)
    direct.eval()
    x = torch.randn(1, 3, 65, 63)
    with torch.no_grad():
        for a, b in paired(fused(x), direct(x)):
            assert torch.equal(a, b)
    assert not any(isinstance(m, _BatchNorm) for m in direct.modules())
    # constants follow a dtype change exactly (1/9 in float64, not float32's 1/9 cast up)
    pool = direct.double().layer0[0].avg_kernel
    assert pool.dtype == torch.float64 and torch.all(pool == 1 / 9)


def test_head_deploy_form_merges_both_mlps_exactly():
    model = randomize_batchnorm(RepMobileNet(TINY, num_classes=7, distillation=True),
                                seed=4).double().eval()
    fused = fused_copy(model)
    assert not hasattr(fused.classifier, 'classifier_dist')
    assert fused.classifier.classifier[0].out_features == 2 * model.head_hidden_size
    x = torch.randn(3, 3, 71, 53, dtype=torch.float64)
    with torch.no_grad():
        assert_close_to_max(fused(x), model(x), 1e-8)
    model.train()
    assert model(torch.randn(2, 3, 64, 64, dtype=torch.float64)).shape == (2, 7)  # the mean
    model.set_distilled_training()
    cls, dist = model(torch.randn(2, 3, 64, 64, dtype=torch.float64))
    assert cls.shape == dist.shape == (2, 7)


def test_output_strides_channels_and_out_indices():
    model = RepMobile('S', out_indices=(1, -1)).eval()
    outs = model(torch.randn(1, 3, 224, 224))
    assert [tuple(o.shape) for o in outs] == [(1, 128, 28, 28), (1, 512, 7, 7)]
    assert RepMobile('m').dims == RepMobile('M').dims == (80, 160, 320, 640)
    assert len(RepMobile('S', out_indices=2)(torch.randn(2, 3, 32, 32))) == 1


def test_frozen_stages_and_norm_eval():
    model = RepMobile(TINY, frozen_stages=2, norm_eval=True)
    model.train()
    frozen = [model.stem, model.layer0, model.layer1]
    for module in frozen:
        assert all(not p.requires_grad for p in module.parameters())
    assert all(p.requires_grad for p in model.layer2.parameters())
    assert all(not m.training for m in model.modules() if isinstance(m, _BatchNorm))
    stats = copy.deepcopy(model.state_dict())
    model(torch.randn(2, 3, 32, 32)).__getitem__(-1).sum().backward()
    for key, value in model.state_dict().items():
        if 'running' in key:
            assert torch.equal(value, stats[key]), key
    # frozen stages stay frozen after fusing too
    fused = fused_copy(model)
    assert all(not p.requires_grad for p in fused.layer1.parameters())
    assert all(p.requires_grad for p in fused.layer2.parameters())


def test_frozen_stages_without_norm_eval_keeps_later_bn_training():
    model = RepMobile(TINY, frozen_stages=0).train()
    assert not model.stem[1].training and model.layer0[0].conv_pw[0].training


@pytest.mark.parametrize('kwargs,match', [
    (dict(arch='XL'), r"unknown RepMobile arch 'XL'; choose one of \['L', 'M', 'S'\]"),
    (dict(arch=dict(dims=(16, 32, 64, 128))), "exactly the keys 'dims' and 'blocks'"),
    (dict(arch=dict(dims=(16, 30, 64, 128), blocks=(1, 1, 1, 1))), r'dims\[i\] == 2 \* dims'),
    (dict(out_indices=(0, 4)), r'out_indices must be stage indices in 0..3'),
    (dict(frozen_stages=5), 'frozen_stages must be an int from -1'),
    (dict(frozen_stages=-2), 'frozen_stages must be an int from -1'),
    (dict(norm_cfg=dict(type='GN')), "norm_cfg type must be one of"),
])
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        RepMobile(**kwargs)


def test_wrong_input_channels_are_named():
    with pytest.raises(ValueError,
                       match=r'expects images of shape \(N, 3, H, W\); got .*\(1, 1, 32, 32\)'):
        RepMobile(TINY)(torch.randn(1, 1, 32, 32))
