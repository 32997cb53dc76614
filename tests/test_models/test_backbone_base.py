"""What every family gets from the shared backbone base, checked on each family."""
import copy

import pytest
import torch
from mmengine.model.utils import revert_sync_batchnorm
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from repmobile_mm.models import (RepMobile, RepMobileNet, RepNeXt, RepNeXtNet, RepViT, RepViTNet,
                                 fused_copy, reparameterize_model)
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import assert_close_to_max

TINY = {
    'RepMobile': (RepMobile, dict(dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))),
    'RepViT': (RepViT, dict(dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))),
    'RepNeXt': (RepNeXt, dict(dims=(16, 32, 64, 128), depths=(1, 1, 2, 1))),
}
NETS = {'RepMobile': RepMobileNet, 'RepViT': RepViTNet, 'RepNeXt': RepNeXtNet}
# a BatchNorm of each training form (relative to the backbone), for the form guard
TRAINED_KEY = {'RepMobile': 'stem.1.running_mean', 'RepViT': 'features.0.0.bn.running_mean',
               'RepNeXt': 'stem.stem.0.norm.running_mean'}


def blocks_of(model):
    """The checkpointed units: RepMobile's blocks, RepViT's features after the stem,
    RepNeXt's downsamples and blocks."""
    if isinstance(model, RepViT):
        return list(model.features[1:])
    if isinstance(model, RepNeXt):
        return [unit for stage in model.stages for unit in stage.units()]
    return [block for i in range(4) for block in getattr(model, f'layer{i}')]


@pytest.mark.parametrize('family', sorted(TINY))
def test_deploy_flag_builds_the_fused_structure_and_loads_fused_weights(family):
    _, arch = TINY[family]
    net = NETS[family]
    model = randomize_batchnorm(net(arch, num_classes=5, distillation=True)).eval()
    fused = fused_copy(model)
    assert not any(isinstance(m, _BatchNorm) for m in fused.modules())
    direct = net(arch, num_classes=5, distillation=True, deploy=True).eval()
    assert {k: v.shape for k, v in direct.state_dict().items()} == \
        {k: v.shape for k, v in fused.state_dict().items()}
    direct.load_state_dict(fused.state_dict(), strict=True)
    x = torch.randn(2, 3, 45, 51)
    with torch.no_grad():
        assert torch.equal(direct(x), fused(x))
        assert_close_to_max(fused(x), model(x), 1e-4)


@pytest.mark.parametrize('family', sorted(TINY))
def test_switch_to_deploy_is_idempotent(family):
    _, arch = TINY[family]
    model = randomize_batchnorm(NETS[family](arch, num_classes=5, distillation=True)).eval()
    fused = fused_copy(model)
    state = copy.deepcopy(fused.state_dict())
    fused.switch_to_deploy()
    reparameterize_model(fused)
    assert state.keys() == fused.state_dict().keys()
    assert all(torch.equal(v, fused.state_dict()[k]) for k, v in state.items())


@pytest.mark.parametrize('family', sorted(TINY))
@pytest.mark.parametrize('norm', ['SyncBN', 'BNXd'])
def test_switch_to_deploy_accepts_any_batchnorm_class(family, norm):
    cls, arch = TINY[family]
    model = cls(arch, norm_cfg=dict(type='SyncBN'))
    if norm == 'BNXd':  # what mmengine's runner turns SyncBN into when not distributed
        model = revert_sync_batchnorm(model)
        assert any(type(m).__name__ == '_BatchNormXd' for m in model.modules())
    model = randomize_batchnorm(model).double().eval()
    reference = revert_sync_batchnorm(copy.deepcopy(model))
    fused = fused_copy(model)
    x = torch.randn(2, 3, 37, 41, dtype=torch.float64)
    with torch.no_grad():
        outs, fused_outs = reference(x), fused(x)
    assert len(outs) == len(fused_outs) == 4
    for a, b in zip(outs, fused_outs):
        assert_close_to_max(b, a, 1e-8)


@pytest.mark.parametrize('family', sorted(TINY))
def test_checkpoint_of_the_other_form_gets_a_clear_message(family):
    cls, arch = TINY[family]
    net = NETS[family]
    model = net(arch, num_classes=3).eval()
    fused = fused_copy(model)
    with pytest.raises(RuntimeError, match='fused deploy form .* deploy config'):
        net(arch, num_classes=3).load_state_dict(fused.state_dict())
    with pytest.raises(RuntimeError, match='training form .* tools/reparameterize_model.py'):
        net(arch, num_classes=3, deploy=True).load_state_dict(model.state_dict())
    # also through mmengine's loader (non-strict, prefixed, as in init_cfg Pretrained)
    from mmengine.runner.checkpoint import load_state_dict
    wrapper = nn.Module()
    wrapper.backbone = cls(arch, deploy=True)
    prefixed = {f'backbone.{k}': v for k, v in cls(arch).state_dict().items()}
    with pytest.raises(RuntimeError, match=f"'backbone.{TRAINED_KEY[family]}'"):
        load_state_dict(wrapper, prefixed, strict=False)


@pytest.mark.parametrize('family', sorted(TINY))
def test_with_cp_recomputes_blocks_with_the_same_gradients_and_statistics(family):
    cls, arch = TINY[family]
    torch.manual_seed(0)
    plain = randomize_batchnorm(cls(arch)).train()
    checkpointed = copy.deepcopy(plain)
    checkpointed.with_cp = True
    x = torch.randn(2, 3, 40, 40)
    calls = {}
    for name, model in (('plain', plain), ('checkpointed', checkpointed)):
        counts = [0] * len(blocks_of(model))
        for i, block in enumerate(blocks_of(model)):
            block.register_forward_pre_hook(
                lambda module, args, i=i, counts=counts: counts.__setitem__(i, counts[i] + 1))
        sum(o.square().sum() for o in model(x.clone().requires_grad_())).backward()
        calls[name] = counts
    # checkpointing ran: each block's forward ran again in the backward pass
    assert calls['plain'] == [1] * len(calls['plain']) and len(calls['plain']) > 0
    assert calls['checkpointed'] == [2] * len(calls['plain'])
    params = list(zip(plain.named_parameters(), checkpointed.parameters()))
    assert len(params) == len(list(plain.parameters())) > 0
    for (name, a), b in params:
        torch.testing.assert_close(a.grad, b.grad, msg=name)
    # the recomputation does not count the batch twice in the running statistics
    stats = {k: v for k, v in plain.state_dict().items() if 'running' in k or 'num_batches' in k}
    assert stats and all(torch.equal(v, checkpointed.state_dict()[k]) for k, v in stats.items())


@pytest.mark.parametrize('cls', [RepMobile, RepViT, RepNeXt])
def test_docstring_examples_run(cls):
    """Each backbone's ``Example:`` runs and prints what its docstring says
    (mmpretrain's backbone docstrings: defaults stated, an example that runs)."""
    import doctest
    tests = doctest.DocTestFinder().find(cls, cls.__name__, globs={})
    examples = [test for test in tests if test.examples]
    assert len(examples) == 1 and len(examples[0].examples) >= 3
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    for test in examples:
        runner.run(test)
    assert runner.summarize(verbose=False).failed == 0
    module = __import__(cls.__module__, fromlist=['_'])
    assert 'Defaults to' in cls.__doc__
    assert 'arXiv' in module.__doc__ or 'no paper identifier' in module.__doc__
