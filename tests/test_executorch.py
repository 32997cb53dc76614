"""ExecuTorch: every family's deploy form as torch.export sees it (exact in float64),
lowered whole to XNNPACK, run in ExecuTorch's runtime, fp32 and int8; the tool."""
import json
import os
import sys

import pytest
import torch

from repmobile_mm.apis import executorch_export as et
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.models import (RepMobile, RepMobileBlock, RepMobileNet, RepNeXt, RepNeXtNet,
                                 RepViT, RepViTNet, fused_copy)
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import assert_close_to_max, check_tool, make_folder_dataset, paired, refusal
from tests.test_deployment_past_onnx import DIGITS, DIGITS_DEPLOY

TINY = {
    'repmobile': (RepMobile, RepMobileNet, dict(dims=(16, 32, 64, 128), blocks=(1, 2, 2, 1))),
    'repvit': (RepViT, RepViTNet, dict(dims=(16, 32, 64, 128), se=('10', '01', '010', '01'))),
    'repnext': (RepNeXt, RepNeXtNet, dict(dims=(16, 32, 64, 128), depths=(1, 1, 2, 1))),
}
# ops the eager stride-2 pad shift uses and a static graph must not (a map of the
# input's size, an average pool that XNNPACK does not take with count_include_pad)
SIZE_DEPENDENT = ('full', 'ones', 'avg_pool2d')


def explicit_norm_blocks(model):
    """Zero BN gains in a stride-2 and a stride-1 RepMobile block: those blocks fuse
    to the explicit-norm form, the others keep the pad shift."""
    with torch.no_grad():
        model.layer1[0].conv_dw[0].weight[3] = 0
        model.layer2[1].conv_dw[0].weight[5] = 0
    return model


@pytest.mark.parametrize('family', list(TINY))
def test_exported_deploy_form_is_exact_in_float64(family):
    """What torch.export captures (the graph ExecuTorch lowers) against the training
    form: randomized BatchNorms, odd sizes, relative 1e-8."""
    backbone_cls, _, arch = TINY[family]
    model = randomize_batchnorm(backbone_cls(arch), seed=4).double().eval()
    if family == 'repmobile':
        model = explicit_norm_blocks(model)
    deploy = fused_copy(model)
    if family == 'repmobile':
        forms = [b.use_pad_shift for b in deploy.modules() if isinstance(b, RepMobileBlock)]
        assert forms.count(False) == 2 and forms.count(True) == 4, forms
    for size in [(33, 31), (16, 16), (7, 5)]:
        x = torch.randn(2, 3, *size, dtype=torch.float64)
        program = torch.export.export(deploy, (x, ))
        ops = [str(n.target) for n in program.graph.nodes if n.op == 'call_function']
        assert not [op for op in ops if any(s in op for s in SIZE_DEPENDENT)], ops
        # constant weights: every convolution's weight is a parameter or buffer of the
        # program, none computed in the forward (XNNPACK delegates only those)
        convs = [n for n in program.graph.nodes if 'convolution' in str(n.target)
                 or 'conv2d' in str(n.target)]
        assert convs and all(n.args[1].op == 'placeholder' for n in convs), \
            [n.args[1].name for n in convs if n.args[1].op != 'placeholder']
        with torch.no_grad():
            for i, (a, b) in enumerate(paired(model(x), program.module()(x))):
                assert_close_to_max(b, a, 1e-8, f'{family} {size} stage {i}')


# One block a stage (RepViT: with and without SE): ExecuTorch's lowering passes cost
# seconds per block, and a stage's first block already has every op its others have.
# RepMobile's fp32 and int8 programs are lowered whole and checked by the tool's test below.
LOWERED = {
    'repvit': dict(dims=(16, 32, 64, 128), se=('1', '0', '1', '0')),
    'repnext': dict(dims=(16, 32, 64, 128), depths=(1, 1, 1, 1)),
}


@pytest.fixture(scope='session', params=list(LOWERED))
def tiny_classifier(request):
    """``(family, fused tiny classifier, example input)``, BatchNorms randomized."""
    net_cls, arch = TINY[request.param][1], LOWERED[request.param]
    torch.manual_seed(0)
    model = randomize_batchnorm(net_cls(arch, num_classes=10), seed=5).eval()
    return request.param, fused_copy(model), torch.randn(1, 3, 48, 40)


def run_program(tmp_path, name, program, x):
    path = str(tmp_path / name)
    with open(path, 'wb') as f:
        f.write(program)
    return et.ProgramRunner(path)(x)


@pytest.mark.slow
def test_tiny_fused_classifier_is_delegated_whole_fp32_and_int8(tiny_classifier, tmp_path):
    family, model, x = tiny_classifier
    program, delegated, outside = et.lowered(et.exported(model, x))
    assert outside == {}, f'{family}: ops outside XNNPACK {outside}'
    assert delegated.get('aten.convolution.default', 0) > 0, delegated
    with torch.no_grad():
        expected = model(x)
    fp32 = run_program(tmp_path, 'fp32.pte', program, x)
    assert et.max_relative_difference([expected], fp32) <= 1e-5

    generator = torch.Generator().manual_seed(1)
    calibration = [torch.randn(1, 3, 48, 40, generator=generator) for _ in range(8)]
    int8, delegated, outside = et.lowered(et.quantized(model, x, calibration))
    assert outside == {}, f'{family} int8: ops outside XNNPACK {outside}'
    assert any('quantize' in name for name in delegated), delegated
    got = run_program(tmp_path, 'int8.pte', int8, x)
    # 8-bit steps through every layer of a random network: within a quarter of the
    # largest logit (the check's bound for outputs without an arg-max)
    assert et.max_relative_difference(fp32, got) <= et.INT8_RTOL


def test_int8_check_keeps_a_classifiers_predictions_and_a_backbones_outputs():
    """A classifier passes on its arg-max (RepNeXt-M1 digits: logits 0.27 of the largest
    away on average, every prediction kept, top-1 equal), fails when one image in 50
    changes class; a backbone's maps pass within INT8_RTOL of their largest value."""
    generator = torch.Generator().manual_seed(0)
    reference = [[torch.randn(1, 10, generator=generator) + 20 * torch.eye(10)[i % 10]]
                 for i in range(50)]
    # every logit moved by 0.3 of the largest, up or down: no class changes
    shaken = [[r[0] + 0.3 * r[0].abs().max() * torch.randn(1, 10, generator=generator).sign()]
              for r in reference]
    assert 'arg-max agreement 100.00%' in et.check_int8(reference, shaken, classifier=True)
    flipped = [list(s) for s in shaken]
    flipped[7] = [-reference[7][0]]
    with pytest.raises(et.ExecuTorchError, match='changes the prediction of 2.0%') as error:
        et.check_int8(reference, flipped, classifier=True)
    assert '\n' not in str(error.value)
    with pytest.raises(et.ExecuTorchError, match='0.300 of the largest output on average'):
        et.check_int8(reference, shaken, classifier=False)
    close = [[r[0] * 1.2] for r in reference]
    assert 'arg-max' not in et.check_int8(reference, close, classifier=False)
    with pytest.raises(et.ExecuTorchError, match='no calibration images'):
        et.check_int8([], [], classifier=True)


def test_a_batchnorm_left_in_a_program_is_refused_in_one_line():
    model = randomize_batchnorm(RepMobileNet(TINY['repmobile'][2], num_classes=10)).eval()
    with pytest.raises(et.ExecuTorchError, match='still has BatchNorm') as error:
        et.exported(model, torch.randn(1, 3, 32, 32))
    assert '\n' not in str(error.value)


# RepMobile's digits configs with a tiny backbone (one block a stage): the tool's work
# is the same, its two lowerings take seconds instead of half a minute each
TINY_DIGITS = """_base_ = {base!r}
model = dict(backbone=dict(arch=dict(_delete_=True, dims=(16, 32, 64, 128), blocks=(1, 1, 1, 1))),
             neck=dict(in_channels=128))
"""


@pytest.fixture(scope='session')
def digits(tmp_path_factory):
    """``(config, training checkpoint, --cfg-options, deploy twin)``: the RepMobile digits
    config with a tiny backbone on a tiny 3-class folder, BatchNorms randomized."""
    tmp = tmp_path_factory.mktemp('digits')
    data = str(tmp / 'data')
    make_folder_dataset(data, per_class=4, classes=3)
    options = [f'train_dataloader.dataset.data_root={data}',
               f'val_dataloader.dataset.data_root={data}', 'model.head.num_classes=3',
               'data_preprocessor.num_classes=3']
    configs = []
    for name, base in (('tiny.py', DIGITS['repmobile']), ('tiny-deploy.py', DIGITS_DEPLOY)):
        (tmp / name).write_text(TINY_DIGITS.format(base=base))
        configs.append(str(tmp / name))
    cfg = load_config(configs[0])
    cfg.model.head.num_classes = 3
    model = randomize_batchnorm(build_model(cfg), seed=3).eval()
    path = str(tmp / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return configs[0], path, ['--cfg-options', *options], configs[1]


TOOL = 'tools/deployment/pytorch2executorch.py'


@pytest.mark.slow
def test_tool_writes_checked_int8_programs_and_evaluates(digits, tmp_path):
    """One --int8 run checks both programs: the fp32 one against PyTorch, the int8 one
    against it."""
    config, checkpoint, options, deploy_config = digits
    out = str(tmp_path / 'new' / 'int8.pte')  # the folder is created
    printed = check_tool(TOOL, config, checkpoint, out, '--int8', '--calib', '6', '--eval',
                         *options).stdout
    for line in ('fp32: no op left outside XNNPACK', 'fp32 program checked in ExecuTorch',
                 'calibrating int8 on 6 train images', 'int8: no op left outside XNNPACK',
                 'int8 program checked in ExecuTorch', 'accuracy/top1: fp32'):
        assert line in printed, printed
    assert ', int8 ' in printed.split('accuracy/top1: fp32')[1], printed
    # nothing but the program is left beside it (no staging folder)
    assert os.listdir(tmp_path / 'new') == ['int8.pte']
    program = et.ProgramRunner(out)
    assert program.input_shape == (1, 3, 32, 32)  # the config's test size
    assert program(torch.randn(1, 3, 32, 32))[0].shape == (1, 3)
    with pytest.raises(et.ExecuTorchError, match='takes inputs of shape'):
        program(torch.randn(1, 3, 16, 16))

    # the benchmark times the program (batch 1 at its size), and says so at another size
    bench = str(tmp_path / 'bench.json')
    check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models', out,
               '--batch-size', '0', '--size', '32', '--warmup', '1', '--rounds', '1',
               '--latency-calls', '1', '--json', bench)
    with open(bench) as f:
        row = json.load(f)['results'][0]
    assert row['model'] == f'{out} (ExecuTorch)' and row['latency_ms'] > 0
    assert 'at the size it was exported at' in refusal(
        'tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models', out,
        '--batch-size', '0', '--size', '24', '--warmup', '1', '--rounds', '1',
        '--latency-calls', '1')


def test_tool_refusals_are_one_line(digits, tmp_path):
    config, checkpoint, options, deploy_config = digits
    existing = tmp_path / 'model.pte'
    existing.write_bytes(b'old')
    cases = [
        ((config, checkpoint, str(existing)), 'exists: choose another output path'),
        ((deploy_config, checkpoint, str(tmp_path / 'a.pte'), *options),
         'training form'),
        ((config, checkpoint, str(tmp_path / 'a.onnx')), 'is a .pte file'),
    ]
    for args, message in cases:
        text = refusal(TOOL, *args)
        assert message in text, text
    assert existing.read_bytes() == b'old'
    assert not (tmp_path / 'a.pte').exists()


def test_tool_without_executorch_says_how_to_install(digits, tmp_path, monkeypatch):
    config, checkpoint, options, deploy_config = digits
    monkeypatch.setitem(sys.modules, 'executorch', None)  # `import executorch` fails
    text = refusal(TOOL, config, checkpoint, str(tmp_path / 'a.pte'), *options)
    assert 'ExecuTorch is not installed' in text and 'requirements/deploy.txt' in text, text
