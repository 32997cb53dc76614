"""int8 post-training static quantization of ONNX models with onnxruntime (QDQ), and
how far the result is from fp32. Its command line: tools/deployment/quantize_onnx.py.
"""
import contextlib
import os

import numpy as np

from ..errors import ExportError
from ..utils.compare import relative_difference

METHODS = ('minmax', 'entropy', 'percentile')


def import_quantization():
    """``onnxruntime.quantization``, or an :class:`ExportError` naming what to install."""
    try:
        from onnxruntime import quantization
    except ImportError:
        raise ExportError('onnxruntime is not installed: pip install -r '
                          'requirements/tests.txt (onnx, onnxruntime)') from None
    return quantization


class Calibration:
    """onnxruntime's CalibrationDataReader over preprocessed images (kept: they are
    reused to compare fp32 and int8 outputs)."""

    def __init__(self, images):
        self.images = images
        self.rewind()

    def get_next(self):
        return next(self.iterator, None)

    def rewind(self):
        self.iterator = iter([{'input': image} for image in self.images])


def float_ends(path: str) -> list:
    """Names of the first and the last compute node (Conv, Gemm or MatMul) of a graph."""
    import onnx
    nodes = onnx.load(path).graph.node
    compute = [n.name for n in nodes if n.op_type in ('Conv', 'Gemm', 'MatMul')]
    return [compute[0], compute[-1]] if compute else []


def quantize(fp32_path: str, int8_path: str, images, method: str = 'minmax',
             per_tensor: bool = False, quantize_ends: bool = False) -> None:
    """QDQ int8: uint8 activations (asymmetric), int8 weights (symmetric), the layout
    onnxruntime runs as int8 kernels on x86 (int8 activations stay float there).

    ``method``: one of METHODS, how activation ranges are calibrated on ``images``;
    ``per_tensor``: one weight scale per tensor, not per output channel;
    ``quantize_ends``: the first and last layer in int8 too (else float)."""
    q = import_quantization()
    from onnxruntime.quantization.shape_inference import quant_pre_process
    prepared = fp32_path.replace('.onnx', '_prepared.onnx')
    # shapes inferred (ONNX's inference: the symbolic one gives up on dynamic resizes),
    # constants folded; from the work folder, where it leaves its temporary files
    with contextlib.chdir(os.path.dirname(fp32_path)):
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
    calibrate_method = {'minmax': q.CalibrationMethod.MinMax,
                        'entropy': q.CalibrationMethod.Entropy,
                        'percentile': q.CalibrationMethod.Percentile}[method]
    if method != 'minmax':
        images = one_size(images)
    q.quantize_static(
        prepared, int8_path, Calibration(images), quant_format=q.QuantFormat.QDQ,
        per_channel=not per_tensor, activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8, calibrate_method=calibrate_method,
        nodes_to_exclude=None if quantize_ends else float_ends(prepared),
        extra_options=dict(ActivationSymmetric=False, WeightSymmetric=True))


def one_size(images: list) -> list:
    """The images centre-cropped to the smallest height and width among them: the
    histogram calibrators (Entropy, Percentile) stack every image's outputs, which
    needs one size."""
    height = min(image.shape[2] for image in images)
    width = min(image.shape[3] for image in images)
    if all(image.shape[2:] == (height, width) for image in images):
        return images
    print(f'calibration images centre-cropped to {height}x{width} (the smallest): '
          'the histogram calibrators need one size', flush=True)
    cropped = []
    for image in images:
        top, left = (image.shape[2] - height) // 2, (image.shape[3] - width) // 2
        cropped.append(np.ascontiguousarray(image[:, :, top:top + height, left:left + width]))
    return cropped


def output_agreement(fp32, int8, images) -> dict:
    """How far int8 outputs are from fp32 on ``images``: the largest difference
    relative to the largest fp32 output, and the share of equal arg-max predictions
    (per image for classifiers, per pixel for segmentors)."""
    worst, same, total = 0.0, 0, 0
    for image in images:
        a = fp32.run(None, {'input': image})[0]
        b = int8.run(None, {'input': image})[0]
        worst = max(worst, relative_difference(a, b))
        same += int((a.argmax(1) == b.argmax(1)).sum())
        total += a.argmax(1).size
    return dict(max_rel_diff=worst, argmax_agreement=same / total)
