"""ONNX export and the benchmark tool (which is a tool: no timing is asserted)."""
import json
import os.path as osp

import numpy as np
import pytest
import torch

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import ROOT, assert_close_to_max, check_tool, run_tool

DIGITS = osp.join(ROOT, 'classification/configs/repmobile/repmobile-s_1xb64_digits.py')
REPVIT_DIGITS = osp.join(ROOT, 'classification/configs/repvit/repvit-m0.9_1xb64_digits.py')
REPNEXT_DIGITS = osp.join(ROOT, 'classification/configs/repnext/repnext-m1_1xb64_digits.py')


@pytest.fixture(scope='session', params=[DIGITS, REPVIT_DIGITS, REPNEXT_DIGITS],
                ids=['repmobile', 'repvit', 'repnext'])
def trained_like_checkpoint(request, tmp_path_factory):
    """A training-form classifier checkpoint with trained-like BatchNorm statistics."""
    config = request.param
    model = randomize_batchnorm(build_model(load_config(config)), seed=3).eval()
    path = str(tmp_path_factory.mktemp('onnx') / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return model, path, config


@pytest.mark.slow
@pytest.mark.parametrize('backbone_only', [False, True])
def test_onnx_export_has_dynamic_batch_and_size(trained_like_checkpoint, tmp_path,
                                                backbone_only):
    import onnxruntime
    model, checkpoint, config = trained_like_checkpoint
    out = str(tmp_path / 'model.onnx')
    args = [config, checkpoint, out]
    result = check_tool('tools/deployment/pytorch2onnx.py',
                        *(args + ['--backbone-only'] if backbone_only else args))
    assert 'largest relative difference' in result.stdout
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    for shape in [(3, 3, 32, 32), (1, 3, 45, 37)]:  # sizes other than the export's
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = model.backbone(x) if backbone_only else (model(x, mode='tensor'), )
        got = session.run(None, {'input': x.numpy()})
        assert len(got) == len(expected)
        for e, g in zip(expected, got):
            assert_close_to_max(torch.from_numpy(np.asarray(g)), e, 1e-4, f'{shape}')
    if not backbone_only:  # the benchmark times onnxruntime beside PyTorch
        bench = str(tmp_path / 'bench.json')
        check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models', out,
                   '--batch-size', '2', '--size', '32', '--warmup', '1', '--rounds', '1',
                   '--latency-calls', '1', '--json', bench)
        with open(bench) as f:
            assert json.load(f)['results'][0]['model'] == f'{out} (onnxruntime fp32)'


@pytest.mark.slow
def test_benchmark_writes_interleaved_results(tmp_path):
    out = str(tmp_path / 'bench.json')
    plot = str(tmp_path / 'bench.png')
    check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models',
               'repmobile_s', 'mobilenetv3_small_050', '--batch-size', '2', '--size', '64',
               '--warmup', '1', '--rounds', '2', '--latency-calls', '2', '--json', out,
               '--plot', plot)
    with open(out) as f:
        report = json.load(f)
    names = [row['model'] for row in report['results']]
    assert names == ['repmobile_s (train)', 'repmobile_s (fused)', 'mobilenetv3_small_050']
    assert all(row['images_per_s'] > 0 and row['latency_ms'] > 0 for row in report['results'])
    assert osp.getsize(plot) > 0


@pytest.mark.slow
def test_benchmark_train_step_times_ours_beside_the_published_structure(
        tmp_path):
    out = str(tmp_path / 'train.json')
    check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--train-step',
               '--models', 'repmobile_s', '--batch-size', '2', '--size', '64', '--warmup', '1',
               '--rounds', '1', '--json', out)
    with open(out) as f:
        report = json.load(f)
    assert report['task'] == 'train step'
    assert [row['model'] for row in report['results']] == \
        ['repmobile_s (train)', 'repmobile_s (published)']
    assert all(row['images_per_s'] > 0 for row in report['results'])


def test_top1_latency_figure_has_a_line_per_family_and_no_overlapping_labels(tmp_path):
    from repmobile_mm.apis import benchmark_plot as benchmark

    # latencies crowded on purpose: every variant of a family within 3 ms of another
    # family's, so labels placed at one fixed offset would collide
    rows = []
    for i, (family, top1) in enumerate(benchmark.PUBLISHED_TOP1.items()):
        for j, name in enumerate(top1):
            for form, latency in (('train', 90.0), ('fused', 20.0 + 8 * j + i)):
                rows.append(dict(model=f'{name} ({form})', mode='eager', latency_ms=latency))
    rows.append(dict(model='mobileone_s1 (fused)', mode='eager', latency_ms=21.0))
    report = dict(machine='test', torch='x', dtype='fp32', size=224, date='today',
                  results=rows)
    path = str(tmp_path / 'top1.png')
    figure = benchmark.plot(report, path)
    ax = figure.axes[0]
    assert osp.getsize(path) > 0
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert sorted(lines) == sorted(benchmark.PUBLISHED_TOP1)
    for family, top1 in benchmark.PUBLISHED_TOP1.items():  # each line: its family's
        assert sorted(lines[family].get_ydata()) == sorted(top1.values())  # fused models
    labels = ax.texts
    assert len(labels) == sum(len(t) for t in benchmark.PUBLISHED_TOP1.values())
    renderer = figure.canvas.get_renderer()
    boxes = [label.get_window_extent(renderer) for label in labels]
    overlapping = [(a.get_text(), b.get_text()) for i, (a, box_a) in enumerate(zip(labels, boxes))
                   for b, box_b in zip(labels[i + 1:], boxes[i + 1:]) if box_a.overlaps(box_b)]
    assert not overlapping
    frame = ax.get_window_extent(renderer)
    outside = [label.get_text() for label, box in zip(labels, boxes)
               if not (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                       and box.y1 <= frame.y1)]
    assert not outside


def test_published_structure_computes_what_our_training_form_does():
    """The benchmark's baseline differs in how it computes, not in what."""
    from repmobile_mm.models import RepMobileNet
    from repmobile_mm.models.published import published_structure
    ours = randomize_batchnorm(RepMobileNet(dict(dims=(16, 32, 64, 128), blocks=(1, 2, 1, 1)),
                                            num_classes=10, drop_rate=0.0)).double()
    published = published_structure(ours)
    x = torch.randn(3, 3, 45, 37, dtype=torch.float64)
    for mode in (True, False):  # batch statistics, then running statistics
        ours.train(mode)
        published.train(mode)
        with torch.no_grad():
            assert_close_to_max(published(x), ours(x), 1e-12, f'train={mode}')


@pytest.mark.parametrize('args,message', [
    (('--train-step', '--plot', 'x.png'), 'does not measure'),
    (('--from-json', 'x.json'), 'give --plot too'),
    (('--train-step', '--modes', 'cudagraphs'), 'needs --device cuda and inference'),
    (('--train-step', '--models', 'model.onnx'), 'cannot train an ONNX file'),
])
def test_benchmark_refuses_what_it_cannot_do(args, message):
    result = run_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', *args)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
