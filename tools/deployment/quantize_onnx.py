"""int8 post-training static quantization of a config's fused model with onnxruntime.

    python tools/deployment/quantize_onnx.py CONFIG CHECKPOINT OUT.onnx [--calib 256]
        [--calib-split train|val] [--method minmax|entropy|percentile] [--per-tensor]
        [--quantize-ends] [--eval] [--out RESULTS.json] [--force]

CONFIG and CHECKPOINT are a training config with its checkpoint (fused here) or a
deploy config with a fused checkpoint; classifiers (logits) and segmentors (logits
at the input size; detectors are refused). The fused model is exported to ONNX
(opset 20, checked against PyTorch) and quantized in QDQ format (int8 weights, per
output channel unless --per-tensor; uint8 activations), calibrated on --calib images
drawn (seeded) from the config's own training data, or validation data with
--calib-split val, through its test pipeline and data preprocessor.

The defaults are the choices measured best on the digits classifiers of the three
families and the scenes segmentor (README, "Deployment"): the deploy form as fused
(pad shift), MinMax calibration, per-channel weights, and the first and last layer
(the stem conv; the classifier or segmentation conv) left in float.

It prints, and writes to --out as JSON (``{"fp32": {metric: value, ...,
"latency_ms": ...}, "int8": {...}}``): how far int8 outputs are from fp32 on the
calibration images, CPU latency at batch 1 of both in onnxruntime (one intra-op
thread, at the data's image size, interleaved), and with --eval the config's metric on its
validation set for both, with the drop.
"""
import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import torch

from repmobile_mm.apis.calibration import evaluate, preprocessed, split_loader
from repmobile_mm.apis.cli import run
from repmobile_mm.apis.export import (check_with_onnxruntime, fused_model, onnx_export,
                                      onnxruntime_session)
from repmobile_mm.apis.runner import add_cfg_options
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import check_output_path, write_atomically

METHODS = ('minmax', 'entropy', 'percentile')


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('onnx', metavar='OUT.onnx', help='the int8 model to write')
    parser.add_argument('--calib', type=int, default=256, help='calibration images')
    parser.add_argument('--calib-split', choices=['train', 'val'], default='train')
    parser.add_argument('--method', choices=METHODS, default='minmax',
                        help='how activation ranges are calibrated')
    parser.add_argument('--per-tensor', action='store_true',
                        help='one weight scale per tensor, not per output channel')
    parser.add_argument('--quantize-ends', action='store_true',
                        help='quantize the first and the last layer (stem conv, classifier '
                        'or segmentation conv) too')
    parser.add_argument('--eval', action='store_true',
                        help="the config's metric on its validation set, fp32 and int8")
    parser.add_argument('--latency-rounds', type=int, default=50,
                        help='timed rounds of 10 batch-1 calls each (0: no latency)')
    parser.add_argument('--out', help='write the measurements to this JSON file')
    parser.add_argument('--force', action='store_true', help='replace existing outputs')
    add_cfg_options(parser)
    return parser.parse_args()


def import_quantization():
    try:
        from onnxruntime import quantization
    except ImportError:
        raise SystemExit('onnxruntime is not installed: pip install -r '
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


def quantize(fp32_path: str, int8_path: str, images, args) -> None:
    """QDQ int8: uint8 activations (asymmetric), int8 weights (symmetric), the layout
    onnxruntime runs as int8 kernels on x86 (int8 activations stay float there)."""
    q = import_quantization()
    from onnxruntime.quantization.shape_inference import quant_pre_process
    prepared = fp32_path.replace('.onnx', '_prepared.onnx')
    # shapes inferred (ONNX's inference: the symbolic one gives up on dynamic resizes),
    # constants folded; from the work folder, where it leaves its temporary files
    with contextlib.chdir(os.path.dirname(fp32_path)):
        quant_pre_process(fp32_path, prepared, skip_symbolic_shape=True)
    method = {'minmax': q.CalibrationMethod.MinMax, 'entropy': q.CalibrationMethod.Entropy,
              'percentile': q.CalibrationMethod.Percentile}[args.method]
    if args.method != 'minmax':
        images = one_size(images)
    q.quantize_static(
        prepared, int8_path, Calibration(images), quant_format=q.QuantFormat.QDQ,
        per_channel=not args.per_tensor, activation_type=q.QuantType.QUInt8,
        weight_type=q.QuantType.QInt8, calibrate_method=method,
        nodes_to_exclude=None if args.quantize_ends else float_ends(prepared),
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
        worst = max(worst, float(np.abs(a - b).max() / np.abs(a).max()))
        same += int((a.argmax(1) == b.argmax(1)).sum())
        total += a.argmax(1).size
    return dict(max_rel_diff=worst, argmax_agreement=same / total)


def latency_ms(sessions: dict, shape, rounds: int, calls: int = 10) -> dict:
    """Median batch-1 latency of each session, the sessions taking turns each round of
    ``calls`` calls (not call by call, as ``repmobile_mm.utils.interleaved_latency``
    does: switching sessions every call read int8 at 0.75-0.81x fp32 where rounds of
    calls read 0.55-0.71x, for RepMobile-S digits)."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    times = {name: [] for name in sessions}
    for session in sessions.values():  # warm-up
        for _ in range(3):
            session.run(None, {'input': x})
    for _ in range(rounds):
        for name, session in sessions.items():
            start = time.perf_counter()
            for _ in range(calls):
                session.run(None, {'input': x})
            times[name].append((time.perf_counter() - start) / calls * 1000)
    return {name: statistics.median(t) for name, t in times.items()}


def main():
    args = parse_args()
    check_output_path(args.onnx, args.force)  # before any work
    if args.out:
        check_output_path(args.out, args.force)
    import_quantization()
    cfg, model = fused_model(args.config, args.checkpoint, args.cfg_options)
    task = task_of(cfg)
    if not task.whole_export:
        raise SystemExit(f'{args.config} builds a {task.name} model: int8 '
                         'quantization here covers classifiers and segmentors')
    net, num_outputs, spatial = task.export_net(model, segmentor_logits=True)
    loader = split_loader(cfg, args.calib_split, args.calib)
    images = [inputs for _, inputs, _ in preprocessed(model, loader, args.calib)]
    if not images:
        raise SystemExit(f'no calibration images: the {args.calib_split} split is empty')
    print(f'calibrating on {len(images)} {args.calib_split} images ({args.method}, '
          f"{'per-tensor' if args.per_tensor else 'per-channel'} weights, first and last "
          f"layer {'int8' if args.quantize_ends else 'float'})", flush=True)

    with tempfile.TemporaryDirectory() as work:
        fp32_path = os.path.join(work, 'fp32.onnx')
        # opset 20: GELU (RepViT, RepNeXt) is one op, which stays a float kernel between
        # int8 convolutions; at 17 it is five, each quantized, and int8 is slower
        onnx_export(net, fp32_path, num_outputs, spatial,
                    example=torch.from_numpy(images[0]), opset=20)
        sizes = {image.shape: image for image in images}  # one image of each size
        diff = check_with_onnxruntime(net, fp32_path, [torch.from_numpy(image) for image in
                                                       list(sizes.values())[:3]])
        if not diff <= 1e-4:
            raise SystemExit(f'the fp32 ONNX export differs from PyTorch by {diff:.2e} '
                             '(relative): not quantizing it')
        write_atomically(args.onnx, lambda partial: quantize(fp32_path, partial, images, args),
                         args.force)
        fp32, int8 = onnxruntime_session(fp32_path), onnxruntime_session(args.onnx)
        results = dict(fp32={}, int8={})
        agreement = output_agreement(fp32, int8, images)
        results['int8'].update({f'calib_{k}': v for k, v in agreement.items()})
        results['int8']['size_mb'] = os.path.getsize(args.onnx) / 2**20
        results['fp32']['size_mb'] = os.path.getsize(fp32_path) / 2**20
        print(f"wrote {args.onnx}: {results['int8']['size_mb']:.2f} MB (fp32 "
              f"{results['fp32']['size_mb']:.2f} MB); on the calibration images int8 differs "
              f"from fp32 by at most {agreement['max_rel_diff']:.3f} of the largest output, "
              f"arg-max agreement {100 * agreement['argmax_agreement']:.2f}%", flush=True)
        if args.latency_rounds:  # before the evaluation's data loading and PyTorch work,
            # whose thread pools slow onnxruntime's thread down on 2 cores
            times = latency_ms(dict(fp32=fp32, int8=int8), images[0].shape,
                               args.latency_rounds)
            for form, ms in times.items():
                results[form]['latency_ms'] = ms
        if args.eval:
            print("evaluating fp32 and int8 on the config's validation set", flush=True)
            for form, session in (('fp32', fp32), ('int8', int8)):
                metrics = evaluate(cfg, model, lambda inputs, session=session: torch.from_numpy(
                    session.run(None, {'input': inputs})[0]))
                results[form].update({k: float(v) for k, v in metrics.items()})
    report(results, *images[0].shape[2:])
    if args.out:
        def write(partial):
            with open(partial, 'w') as f:
                json.dump(results, f, indent=2)
        write_atomically(args.out, write, args.force)
        print(f'wrote {args.out}')


def report(results: dict, height: int, width: int) -> None:
    fp32, int8 = results['fp32'], results['int8']
    metrics = [k for k in fp32 if k not in ('size_mb', 'latency_ms')]
    for metric in metrics:
        print(f'{metric}: fp32 {fp32[metric]:.2f}, int8 {int8[metric]:.2f}, drop '
              f'{fp32[metric] - int8[metric]:.2f}')
    if 'latency_ms' in fp32:
        print(f'onnxruntime CPU latency at 1x3x{height}x{width}, one thread: fp32 '
              f"{fp32['latency_ms']:.3f} ms, int8 {int8['latency_ms']:.3f} ms "
              f"({int8['latency_ms'] / fp32['latency_ms']:.2f}x)")


if __name__ == '__main__':
    sys.exit(run(main))
