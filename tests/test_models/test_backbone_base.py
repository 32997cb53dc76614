"""What every family gets from the shared backbone base, checked on each family."""
import copy

import pytest
import torch

from repmobile_mm.models import RepMobile, RepViT
from repmobile_mm.utils import randomize_batchnorm

TINY = {
    'RepMobile': (RepMobile, dict(dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))),
    'RepViT': (RepViT, dict(dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))),
}


def blocks_of(model):
    """The checkpointed units: RepMobile's blocks, RepViT's features after the stem."""
    if isinstance(model, RepViT):
        return list(model.features[1:])
    return [block for i in range(4) for block in getattr(model, f'layer{i}')]


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
