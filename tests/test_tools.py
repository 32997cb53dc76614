"""The small tools (data generators, get_flops, --amp) and the fuse tool's promises."""
import hashlib
import os
import os.path as osp

import pytest
import torch
from PIL import Image

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model, read_state_dict
from repmobile_mm.apis.runner import enable_amp, load_config
from repmobile_mm.errors import ConfigError
from repmobile_mm.models import fused_copy
from repmobile_mm.utils import count_macs, count_params, randomize_batchnorm
from tests.helpers import ROOT, assert_close_to_max, check_tool, run_tool

DIGITS = {family: osp.join(ROOT, f'classification/configs/{family}/{name}_1xb64_digits.py')
          for family, name in (('repmobile', 'repmobile-s'), ('repvit', 'repvit-m0.9'),
                               ('repnext', 'repnext-m1'))}


def tree_digest(root):
    """Relative path -> SHA-256 of every file under ``root``."""
    digests = {}
    for folder, _, files in os.walk(root):
        for name in files:
            path = osp.join(folder, name)
            with open(path, 'rb') as f:
                digests[osp.relpath(path, root)] = hashlib.sha256(f.read()).hexdigest()
    return digests


@pytest.mark.parametrize('generator', ['make_shapes', 'make_scenes'])
def test_generated_data_is_reproducible_by_seed(tmp_path, generator):
    from repmobile_mm.apis import data
    make = getattr(data, generator)
    for folder, seed in (('a', 5), ('b', 5), ('c', 6)):
        make(str(tmp_path / folder), num_train=3, num_val=2, seed=seed)
    first, again, other = (tree_digest(tmp_path / f) for f in 'abc')
    assert len(first) >= 5 and first == again  # images (and labels) of both splits
    assert sorted(other) == sorted(first) and other != first


def test_export_digits_writes_the_stratified_split(tmp_path):
    out = str(tmp_path / 'digits')
    result = check_tool('tools/dataset_converters/export_digits.py', '--out', out, '--size', '16')
    assert 'wrote 1437 training and 360 validation images' in result.stdout
    for split, total in (('train', 1437), ('val', 360)):
        counts = {c: len(os.listdir(osp.join(out, split, str(c)))) for c in range(10)}
        assert sum(counts.values()) == total
        # stratified: every class holds its share of the split, give or take one image
        shares = [n / total for n in counts.values()]
        assert max(shares) - min(shares) < 0.02
    image = Image.open(osp.join(out, 'val', '3', sorted(os.listdir(osp.join(out, 'val', '3')))[0]))
    assert image.size == (16, 16) and image.mode == 'RGB'


@pytest.mark.parametrize('config', [
    DIGITS['repmobile'],
    osp.join(ROOT, 'detection/configs/repvit/mask-rcnn_repvit-m1.1_fpn_1x_coco.py')],
    ids=['classifier', 'detector'])
@pytest.mark.slow
def test_get_flops_prints_both_forms_counts(config):
    from repmobile_mm.apis.tasks import DetectorFeatures
    result = check_tool('tools/analysis_tools/get_flops.py', config, '--shape', '64', '48')
    model = build_model(load_config(config)).eval()
    for form, net in (('training', model), ('deploy', fused_copy(model))):
        counted = DetectorFeatures(net) if 'detection' in config else net
        expected = (f'{form:<8} form: {count_params(net) / 1e6:.2f}M parameters, '
                    f'{count_macs(counted, (1, 3, 64, 48)) / 1e9:.3f}G MACs')
        assert expected in result.stdout, result.stdout


def test_amp_switches_each_optimizer_wrapper_to_its_amp_twin(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    for config, expected in ((DIGITS['repmobile'], 'AmpOptimWrapper'), (osp.join(
            ROOT, 'classification/configs/repvit/repvit-m0.9_8xb256-300e_in1k.py'),
            'AGCAmpOptimWrapper')):
        cfg = load_config(config)
        enable_amp(cfg)
        assert cfg.optim_wrapper.type == expected
        assert cfg.optim_wrapper.loss_scale == 'dynamic'
    cfg = load_config(DIGITS['repmobile'])
    cfg.optim_wrapper.type = 'SomethingElse'
    with pytest.raises(ConfigError, match="no AMP version of optim_wrapper type 'SomethingElse'"):
        enable_amp(cfg)


def test_amp_without_a_gpu_says_so():
    if torch.cuda.is_available():
        pytest.skip('this machine has a CUDA device')
    result = run_tool('tools/train.py', DIGITS['repmobile'], '--amp', '--work-dir', '/tmp/x')
    assert result.returncode != 0
    assert result.stderr.strip().splitlines()[-1] == (
        "--amp needs a CUDA device (mmengine's AmpOptimWrapper scales losses with "
        'torch.cuda.amp); on CPU, train without --amp')


@pytest.mark.parametrize('family', sorted(DIGITS))
def test_a_cpu_autocast_training_step(family):
    """bfloat16 autocast on CPU (what AMP does on GPU in float16): finite gradients
    and the loss of the float32 step within the bfloat16 rounding."""
    from mmpretrain.structures import DataSample
    torch.manual_seed(0)  # the weights too: the bound is for this model's rounding
    model = build_model(load_config(DIGITS[family])).train()
    x = torch.randn(8, 3, 32, 32)
    samples = [DataSample().set_gt_label(i % 10) for i in range(8)]
    losses = []
    for autocast in (False, True):
        model.zero_grad()
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=autocast):
            loss = sum(model(x, samples, mode='loss').values())
        loss.backward()
        losses.append(loss.item())
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
    assert losses[1] == pytest.approx(losses[0], rel=0.05)


def saved_checkpoint(model, path):
    """``model`` with trained-like BatchNorm statistics, saved as tools write it."""
    randomize_batchnorm(model, seed=2)
    torch.save({'state_dict': model.state_dict()}, path)
    return str(path)


def test_fuse_tool_refuses_to_write_what_does_not_reproduce(tmp_path):
    """float32 fusing differs by about 1e-7: a tolerance of 0 must refuse it."""
    src = saved_checkpoint(build_model(load_config(DIGITS['repmobile'])), tmp_path / 'src.pth')
    dst = tmp_path / 'fused.pth'
    result = run_tool('tools/reparameterize_model.py', DIGITS['repmobile'], src, str(dst),
                      '--rtol', '0')
    assert result.returncode != 0 and not dst.exists()
    assert f'refusing to write {dst}: the fused model does not reproduce' in result.stderr


def test_fusing_puts_in_the_module_that_fuse_returns():
    """timm's ConvNorm.fuse() returns a new Conv2d instead of changing itself."""
    from timm.models.repvit import ConvNorm

    from repmobile_mm.models import reparameterize_model
    model = randomize_batchnorm(torch.nn.Sequential(ConvNorm(3, 8, 3, 1, 1), torch.nn.GELU(),
                                                    ConvNorm(8, 4, 1)), seed=1).eval()
    x = torch.randn(2, 3, 9, 7)
    with torch.no_grad():
        expected = model(x)
        fused = reparameterize_model(model)
        assert [type(m).__name__ for m in fused] == ['Conv2d', 'GELU', 'Conv2d']
        torch.testing.assert_close(fused(x), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize('training,deploy', [
    ('repvgg/repvgg-A0_8xb32_in1k.py', 'repvgg/repvgg-A0_deploy_in1k.py'),
    ('mobileone/mobileone-s0_8xb32_in1k.py', 'mobileone/deploy/mobileone-s0_deploy_8xb32_in1k.py'),
], ids=['repvgg-a0', 'mobileone-s0'])
def test_fuse_tool_serves_mmpretrains_own_reparameterizable_models(tmp_path, training, deploy):
    """A checkpoint fused by our tool loads strictly into mmpretrain's own deploy config
    and gives the trained model's logits."""
    import mmpretrain
    configs = osp.join(osp.dirname(mmpretrain.__file__), '.mim', 'configs')
    model = build_model(load_config(osp.join(configs, training))).eval()
    src = saved_checkpoint(model, tmp_path / 'src.pth')
    dst = str(tmp_path / 'fused.pth')
    check_tool('tools/reparameterize_model.py', osp.join(configs, training), src, dst)
    fused = build_model(load_config(osp.join(configs, deploy))).eval()
    fused.load_state_dict(read_state_dict(dst), strict=True)
    x = torch.randn(2, 3, 96, 80)
    with torch.no_grad():
        assert_close_to_max(fused(x, mode='tensor'), model(x, mode='tensor'), 1e-4)
