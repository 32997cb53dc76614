"""Core ML export and int8 quantization (tools/deployment), run in this process.

Core ML runs predictions only on macOS: these tests check what Linux can (the saved
program loads; its inputs, outputs and shapes; no op the fusion removes is left).
"""
import json
import os.path as osp
import sys

import numpy as np
import pytest
import torch
from torch import nn

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.models import fused_copy
from repmobile_mm.utils import randomize_batchnorm
from tests.helpers import (ROOT, assert_close_to_max, check_tool, make_folder_dataset, paired,
                           refusal)

DIGITS = {family: osp.join(ROOT, f'classification/configs/{family}/{name}_1xb64_digits.py')
          for family, name in (('repmobile', 'repmobile-s'), ('repvit', 'repvit-m0.9'),
                               ('repnext', 'repnext-m1'))}
DIGITS_DEPLOY = osp.join(
    ROOT, 'classification/configs/repmobile/deploy/repmobile-s-deploy_1xb64_digits.py')
# int8 against fp32 on the calibration images: the largest logit difference, relative
# to the largest fp32 logit (8-bit steps through some 25 layers)
INT8_RTOL = 0.1


@pytest.fixture(scope='session', params=list(DIGITS))
def checkpoint(request, tmp_path_factory):
    """``(config, training-form checkpoint, model)`` with trained-like BatchNorms."""
    config = DIGITS[request.param]
    model = randomize_batchnorm(build_model(load_config(config)), seed=3).eval()
    path = str(tmp_path_factory.mktemp('deploy') / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    return config, path, model


def run_main(module, *args):
    """``python tools/deployment/<module>.py ARGS`` (in this process), which must succeed."""
    return check_tool(f'tools/deployment/{module}.py', *args)


@pytest.fixture(scope='session')
def ct():
    from repmobile_mm.apis.coreml_export import import_coremltools
    return import_coremltools()


def saved_spec(ct, path):
    return ct.models.MLModel(path, skip_model_load=True).get_spec()


@pytest.mark.slow
def test_coreml_converts_every_family_fused(checkpoint, ct, tmp_path):
    from repmobile_mm.apis.coreml_export import feature_shapes, op_types
    config, path, model = checkpoint
    out = str(tmp_path / 'new' / 'model.mlpackage')  # the folder is created
    run_main('pytorch2coreml', config, path, out, '--shape', '33', '31')
    spec = saved_spec(ct, out)
    assert feature_shapes(spec.description.input) == {'input': (1, 3, 33, 31)}
    with torch.no_grad():
        logits = model(torch.randn(1, 3, 33, 31), mode='tensor')
    assert feature_shapes(spec.description.output) == {'output0': tuple(logits.shape)}
    ops = set(op_types(spec))
    assert 'conv' in ops and 'batch_norm' not in ops, sorted(ops)
    assert 'cast' not in ops  # fp32 compute: coremltools' default would cast to fp16


@pytest.mark.slow
@pytest.mark.parametrize('options,suffix', [
    (['--backbone-only'], '.mlpackage'),
    (['--convert-to', 'neuralnetwork', '--image-input', '--fp16'], '.mlmodel'),
], ids=['backbone', 'neuralnetwork-image-fp16'])
def test_coreml_backbone_and_image_input(ct, tmp_path, options, suffix):
    from repmobile_mm.apis.coreml_export import feature_shapes, op_types
    model = randomize_batchnorm(build_model(load_config(DIGITS['repmobile'])), seed=3).eval()
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    out = str(tmp_path / f'model{suffix}')
    run_main('pytorch2coreml', DIGITS['repmobile'], path, out,
             '--shape', '64', '64', *options)
    spec = saved_spec(ct, out)
    if '--image-input' in options:
        image = spec.description.input[0].type.imageType
        assert spec.description.input[0].name == 'image'
        assert (image.height, image.width) == (64, 64)
        assert image.colorSpace == image.RGB  # the digits config converts to RGB
        layers = op_types(spec)
        assert 'batchnorm' not in layers and 'convolution' in layers, sorted(set(layers))
        # the config's mean and std, before the first convolution
        before_conv = layers[:layers.index('convolution')]
        assert 'add' in before_conv and 'multiply' in before_conv, before_conv
        # fp16 weights: the first convolution's weights are stored as half floats
        first = next(layer for layer in spec.neuralNetwork.layers
                     if layer.WhichOneof('layer') == 'convolution')
        assert len(first.convolution.weights.float16Value) > 0
        assert len(first.convolution.weights.floatValue) == 0
    else:
        with torch.no_grad():
            features = model.backbone(torch.randn(1, 3, 64, 64))
        assert feature_shapes(spec.description.output) == {
            f'output{i}': tuple(f.shape) for i, f in enumerate(features)}


def test_coreml_check_finds_what_the_fusion_should_have_removed(ct):
    """The tool's own check, on a converted pre-norm block (BatchNorm before a padded
    conv: what a training-form RepMobile block has, and coremltools cannot fold)."""
    from repmobile_mm.apis.coreml_export import check_converted
    net = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(4), nn.Conv2d(4, 4, 3, padding=1,
                                                                         groups=4))).eval()
    x = torch.randn(1, 4, 8, 8)
    mlmodel = ct.convert(torch.jit.trace(net, x),
                         inputs=[ct.TensorType(name='input', shape=x.shape)],
                         outputs=[ct.TensorType(name='output0')], convert_to='mlprogram',
                         compute_precision=ct.precision.FLOAT32)
    problems = check_converted(mlmodel.get_spec(), {'output0': (1, 4, 8, 8)}, (1, 4, 8, 8))
    assert problems == ["ops the fusion should have removed: ['batch_norm']"]
    wrong = check_converted(mlmodel.get_spec(), {'output0': (1, 4, 4, 4)}, (1, 4, 8, 8))
    assert any('outputs' in p for p in wrong)


@pytest.mark.parametrize('case,message', [
    ('no-coremltools', 'coremltools is not installed: pip install -r requirements/deploy.txt'),
    ('training-into-deploy', 'holds the training form'),
    ('exists', 'exists: choose another output path, or pass --force'),
    ('extension', 'writes a .mlpackage: name the output'),
])
def test_coreml_tool_says_what_is_wrong(tmp_path, monkeypatch, case, message):
    model = build_model(load_config(DIGITS['repmobile'])).eval()
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    out = tmp_path / 'model.mlpackage'
    config = DIGITS['repmobile']
    if case == 'no-coremltools':
        monkeypatch.setitem(sys.modules, 'coremltools', None)  # import fails
    elif case == 'training-into-deploy':
        config = DIGITS_DEPLOY
    elif case == 'exists':
        out.mkdir()
        (out / 'keep').write_text('kept')
    else:
        out = tmp_path / 'model.onnx'
    assert message in refusal('tools/deployment/pytorch2coreml.py', config, path, str(out),
                              '--shape', '32', '32')
    if case == 'exists':
        assert (out / 'keep').read_text() == 'kept'


@pytest.fixture(scope='session')
def digits_data(tmp_path_factory):
    data = str(tmp_path_factory.mktemp('digits'))
    make_folder_dataset(data, per_class=4, classes=3)
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}', 'model.head.num_classes=3',
            'data_preprocessor.num_classes=3']


@pytest.mark.slow
def test_int8_quantization_of_a_fused_classifier(tmp_path, digits_data):
    import onnx
    import onnxruntime

    from repmobile_mm.apis.calibration import preprocessed, split_loader
    config = DIGITS['repmobile']
    cfg = load_config(config)
    cfg.merge_from_dict(dict(pair.split('=', 1) for pair in digits_data[1:]))
    cfg.model.head.num_classes = 3
    model = randomize_batchnorm(build_model(cfg), seed=3).eval()
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    out, results = str(tmp_path / 'int8.onnx'), str(tmp_path / 'int8.json')
    run_main('quantize_onnx', config, path, out, '--calib', '12', '--eval',
             '--latency-rounds', '1', '--out', results, *digits_data)

    images = [x for _, x, _ in preprocessed(model, split_loader(cfg, 'train', 12, seed=0))]
    assert len(images) == 12
    # onnxruntime runs the convolutions as int8 kernels (with int8 activations it would
    # keep them float on x86), all but the stem: the first and last layer stay float
    options = onnxruntime.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / 'optimized.onnx')
    session = onnxruntime.InferenceSession(out, options, providers=['CPUExecutionProvider'])
    kernels = [node.op_type for node in onnx.load(options.optimized_model_filepath).graph.node]
    assert kernels.count('Conv') == 1 and kernels.count('QLinearConv') >= 40, kernels
    assert 'Gemm' in kernels  # the classifier
    # weights quantized per output channel: one scale per channel of each conv
    graph = onnx.load(out).graph
    scales = {init.name: init.dims for init in graph.initializer}
    weight_scales = [scales[node.input[1]] for node in graph.node
                     if node.op_type == 'DequantizeLinear' and node.input[0].endswith(
                         'weight_quantized')]
    assert len(weight_scales) >= 40 and all(len(d) == 1 and d[0] > 1 for d in weight_scales)
    for image in images:  # the calibration images
        int8 = session.run(None, {'input': image})[0]
        with torch.no_grad():
            fp32 = model(torch.from_numpy(image), mode='tensor').numpy()
        assert np.abs(int8 - fp32).max() <= INT8_RTOL * np.abs(fp32).max()
    with open(results) as f:
        report = json.load(f)
    assert set(report) == {'fp32', 'int8'}
    for form in ('fp32', 'int8'):
        assert 0 <= report[form]['accuracy/top1'] <= 100
        assert report[form]['latency_ms'] > 0
    assert report['int8']['size_mb'] < report['fp32']['size_mb'] / 2

    # the benchmark times the int8 file beside PyTorch, labelled by its precision
    bench = str(tmp_path / 'bench.json')
    check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models', out,
               'repmobile_s', '--batch-size', '0', '--size', '32', '--warmup', '1', '--rounds',
               '1', '--latency-calls', '1', '--json', bench)
    with open(bench) as f:
        rows = json.load(f)['results']
    assert [row['model'] for row in rows] == [
        f'{out} (onnxruntime int8)', 'repmobile_s (train)', 'repmobile_s (fused)']
    assert all(row['latency_ms'] > 0 for row in rows)


@pytest.mark.parametrize('case,message', [
    ('exists', 'exists: choose another output path, or pass --force'),
    ('training-into-deploy', 'holds the training form'),
    ('detector', 'covers classifiers and segmentors'),
])
def test_quantize_tool_says_what_is_wrong(tmp_path, case, message):
    config = DIGITS['repmobile']
    model = build_model(load_config(config)).eval()
    path = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, path)
    out = tmp_path / 'int8.onnx'
    if case == 'exists':
        out.write_bytes(b'keep me')
    elif case == 'training-into-deploy':
        config = DIGITS_DEPLOY
    else:
        config = osp.join(ROOT, 'detection/configs/repmobile/'
                          'mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py')
        model = build_model(load_config(config)).eval()
        torch.save({'state_dict': model.state_dict()}, path)
    assert message in refusal('tools/deployment/quantize_onnx.py', config, path, str(out))
    if case == 'exists':
        assert out.read_bytes() == b'keep me'


SCENES = osp.join(ROOT, 'segmentation/configs/repmobile/'
                  'fpn_repmobile-s_1xb8-1000i_scenes-128x128.py')
SHAPES = osp.join(ROOT, 'detection/configs/repmobile/'
                  'mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py')


@pytest.mark.slow
def test_segmentor_onnx_logits_are_right_at_every_size(tmp_path, scenes_data):
    """The whole segmentor (what quantize_onnx.py quantizes) at sizes other than the
    export's: mmseg's Upsample would freeze the export size into the graph; then
    quantize_onnx.py on it, evaluated on generated scenes in both precisions."""
    import onnxruntime

    from repmobile_mm.apis.tasks import SegLogits
    model = randomize_batchnorm(build_model(load_config(SCENES)), seed=3).eval()
    path, out = str(tmp_path / 'model.pth'), str(tmp_path / 'seg.onnx')
    torch.save({'state_dict': model.state_dict()}, path)
    run_main('pytorch2onnx', SCENES, path, out)  # checks 224x224 and 67x45
    fused = SegLogits(fused_copy(model)).eval()
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    for shape in [(1, 3, 96, 160), (1, 3, 128, 128)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = fused(x)
        got = torch.from_numpy(session.run(None, {'input': x.numpy()})[0])
        assert got.shape == expected.shape == (1, 4) + shape[2:]
        assert_close_to_max(got, expected, 1e-4, f'{shape}')

    int8, results = str(tmp_path / 'seg-int8.onnx'), str(tmp_path / 'seg-int8.json')
    data = [f'{split}_dataloader.dataset.data_root={scenes_data}' for split in ('train', 'val')]
    run_main('quantize_onnx', SCENES, path, int8, '--calib', '4', '--eval',
             '--latency-rounds', '1', '--out', results, '--cfg-options', *data)
    with open(results) as f:
        report = json.load(f)
    assert set(report) == {'fp32', 'int8'}
    for form in ('fp32', 'int8'):
        assert 0 <= report[form]['mIoU'] <= 100 and report[form]['latency_ms'] > 0
    assert report['int8']['size_mb'] < report['fp32']['size_mb'] / 2
    x = torch.randn(1, 3, 96, 128)
    got = onnxruntime.InferenceSession(int8, providers=['CPUExecutionProvider']).run(
        None, {'input': x.numpy()})[0]
    assert got.shape == (1, 4, 96, 128)


@pytest.mark.slow
def test_detector_exports_its_backbone_and_the_benchmark_times_it(tmp_path):
    """pytorch2onnx.py on a Mask R-CNN: the fused backbone's four maps, right at sizes
    other than the export's; benchmark.py on the config: the backbone in both forms."""
    import onnxruntime
    model = randomize_batchnorm(build_model(load_config(SHAPES)), seed=3).eval()
    path, out = str(tmp_path / 'model.pth'), str(tmp_path / 'backbone.onnx')
    torch.save({'state_dict': model.state_dict()}, path)
    run_main('pytorch2onnx', SHAPES, path, out)
    backbone = fused_copy(model).backbone.eval()
    session = onnxruntime.InferenceSession(out, providers=['CPUExecutionProvider'])
    for shape in [(1, 3, 64, 96), (2, 3, 45, 37)]:
        x = torch.randn(*shape)
        with torch.no_grad():
            expected = backbone(x)
        for e, g in paired(expected, session.run(None, {'input': x.numpy()})):
            assert_close_to_max(torch.from_numpy(g), e, 1e-4, f'{shape}')
    bench = str(tmp_path / 'bench.json')
    check_tool('tools/analysis_tools/benchmark.py', '--device', 'cpu', '--models', SHAPES,
               '--batch-size', '0', '--size', '64', '--warmup', '1', '--rounds', '1',
               '--latency-calls', '1', '--json', bench)
    with open(bench) as f:
        rows = json.load(f)['results']
    assert [row['model'] for row in rows] == [f'{SHAPES} (train)', f'{SHAPES} (fused)']
    assert all(row['latency_ms'] > 0 for row in rows)


def test_histogram_calibration_images_share_one_size():
    from repmobile_mm.apis.onnx_quantization import one_size
    rng = np.random.default_rng(0)
    images = [rng.standard_normal((1, 3, h, w)).astype(np.float32)
              for h, w in ((128, 96), (96, 160), (100, 101))]
    cropped = one_size(images)
    assert [image.shape for image in cropped] == [(1, 3, 96, 96)] * 3
    assert np.array_equal(cropped[0], images[0][:, :, 16:112, :])  # centred
    assert np.array_equal(cropped[1], images[1][:, :, :, 32:128])
    same = [images[0], images[0].copy()]
    assert one_size(same) is same
