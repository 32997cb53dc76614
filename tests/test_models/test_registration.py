import pytest
import torch

import repmobile_mm.integrations.mmpretrain  # noqa: F401  (the heads; the rest at import)
from repmobile_mm.models import RepMobile, RepViT, fused_copy
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import assert_close_to_max, python_output

TINY = dict(dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))
TINY_REPVIT = dict(dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))


def test_models_import_needs_no_mm_task_library():
    """`import repmobile_mm.models` works with mmcv, mmdet, mmseg and mmpretrain unavailable
    (torch, mmengine and timm, whose SqueezeExcite RepViT uses, are requirements)."""
    code = (
        'import sys\n'
        "for name in ('mmcv', 'mmdet', 'mmseg', 'mmpretrain'):\n"
        '    sys.modules[name] = None  # as if not installed\n'
        'import torch\n'
        'from repmobile_mm.models import RepMobile, RepViT\n'
        "print(len(RepMobile('S', deploy=True)(torch.zeros(1, 3, 64, 64))),\n"
        "      len(RepViT('m0_9', deploy=True)(torch.zeros(1, 3, 64, 64))))\n")
    assert python_output(code).strip() == '4 4'


def test_import_is_quiet():
    """`import repmobile_mm` registers into timm and mmengine (where mmpretrain's, mmdet's
    and mmseg's registries find the backbones) without importing those libraries or
    changing the process: warnings filters and torch's safe globals stay as they were."""
    code = (
        'import sys, warnings\n'
        'import mmengine.registry, timm, torch\n'
        'filters = list(warnings.filters)\n'
        'safe = list(torch.serialization.get_safe_globals())\n'
        'import repmobile_mm\n'
        "print(sorted(m for m in ('mmcv', 'mmdet', 'mmseg', 'mmpretrain') if m in sys.modules))\n"
        'print(warnings.filters == filters, torch.serialization.get_safe_globals() == safe)\n'
        "print(mmengine.registry.MODELS.get('RepNeXt') is repmobile_mm.RepNeXt,\n"
        "      'repnext_m3' in timm.list_models('repnext*'))\n")
    assert python_output(code).split('\n')[:3] == ['[]', 'True True', 'True True']


@pytest.mark.parametrize('scope', ['mmpretrain', 'mmdet', 'mmseg'])
@pytest.mark.parametrize('family,cls', [('RepMobile', RepMobile), ('RepViT', RepViT)])
def test_backbones_are_registered_in_each_library(scope, family, cls):
    registry = __import__(f'{scope}.registry', fromlist=['MODELS']).MODELS
    backbone = registry.build(dict(type=family, out_indices=(2, 3)))
    assert isinstance(backbone, cls) and backbone.out_indices == (2, 3)


def test_timm_models_and_features_only():
    import timm
    model = timm.create_model('repmobile_s', num_classes=10).eval()
    assert model(torch.randn(2, 3, 64, 64)).shape == (2, 10)
    features = timm.create_model('repmobile_m', features_only=True, out_indices=(1, 3)).eval()
    assert features.feature_info.channels() == [160, 640]
    assert features.feature_info.reduction() == [8, 32]
    outs = features(torch.randn(1, 3, 96, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 160, 12, 12), (1, 640, 3, 3)]
    assert {'repmobile_s', 'repmobile_m', 'repmobile_l'} <= set(timm.list_models('repmobile*'))


def build_classifier(family, distillation=False, deploy=False):
    from mmengine.registry import init_default_scope
    from mmpretrain.registry import MODELS
    init_default_scope('mmpretrain')  # other tests may have left mmdet's or mmseg's
    if family == 'RepMobile':
        parts = dict(
            backbone=dict(type='RepMobile', arch=TINY, out_indices=(3, ), deploy=deploy),
            neck=dict(type='RepMobileNeck', in_channels=128, deploy=deploy),
            head=dict(type='RepMobileClsHead', in_channels=1024))
    else:
        parts = dict(
            backbone=dict(type='RepViT', arch=TINY_REPVIT, out_indices=(3, ), deploy=deploy),
            neck=dict(type='GlobalAveragePooling'),
            head=dict(type='BNLinearClsHead', in_channels=128))
    parts['head'].update(num_classes=5, distillation=distillation, deploy=deploy,
                         loss=dict(type='LabelSmoothLoss', label_smooth_val=0.1))
    return MODELS.build(dict(type='ImageClassifier', **parts))


FAMILIES = ['RepMobile', 'RepViT']


@pytest.mark.parametrize('family', FAMILIES)
@pytest.mark.parametrize('distillation', [False, True])
def test_mmpretrain_classifier_trains_and_fuses_exactly(family, distillation):
    from mmpretrain.structures import DataSample
    model = build_classifier(family, distillation)
    model.init_weights()
    samples = [DataSample().set_gt_label(i) for i in (0, 3)]
    losses = model(torch.randn(2, 3, 64, 64), samples, mode='loss')
    losses['loss'].backward()
    assert torch.isfinite(losses['loss'])

    model = randomize_batchnorm(model, seed=5).double().eval()
    fused = fused_copy(model)
    x = torch.randn(3, 3, 57, 43, dtype=torch.float64)
    with torch.no_grad():
        assert_close_to_max(fused(x, mode='tensor'), model(x, mode='tensor'), 1e-8)
    deployed = build_classifier(family, distillation, deploy=True).double().eval()
    deployed.load_state_dict(fused.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.equal(deployed(x, mode='tensor'), fused(x, mode='tensor'))
        preds = deployed(x, mode='predict')
    assert len(preds) == 3 and preds[0].pred_score.shape == (5, )


@pytest.mark.parametrize('family', FAMILIES)
def test_distillation_loss_uses_teacher_labels(family):
    """One distillation loss for every family's head."""
    from mmpretrain.structures import DataSample
    model = build_classifier(family, distillation=True).train()
    head = model.head
    feats = (torch.randn(2, head.in_channels), )
    with_teacher = [DataSample().set_gt_label(i) for i in (0, 1)]
    for sample, teacher in zip(with_teacher, (4, 2)):
        sample.set_field(torch.tensor([teacher]), 'teacher_label')
    torch.manual_seed(0)
    loss = head.loss(feats, with_teacher)['loss']
    torch.manual_seed(0)  # same dropout masks
    cls, dist = head(feats)
    ce = head.loss_module
    expected = 0.5 * ce(cls, torch.tensor([0, 1]), avg_factor=2) + \
        0.5 * torch.nn.functional.cross_entropy(dist, torch.tensor([4, 2]))
    torch.testing.assert_close(loss, expected)
