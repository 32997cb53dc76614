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
import json
import os
import sys
import tempfile

import numpy as np
import torch

from repmobile_mm.apis.calibration import evaluate, preprocessed, split_loader
from repmobile_mm.apis.cli import run
from repmobile_mm.apis.export import (check_with_onnxruntime, fused_model, onnx_export,
                                      onnxruntime_session)
from repmobile_mm.apis.onnx_quantization import (METHODS, import_quantization, output_agreement,
                                                 quantize)
from repmobile_mm.apis.runner import add_cfg_options
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import check_output_path, write_atomically
from repmobile_mm.utils import interleaved_latency


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
        write_atomically(args.onnx, lambda partial: quantize(
            fp32_path, partial, images, args.method, args.per_tensor, args.quantize_ends),
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
            x = np.random.default_rng(0).standard_normal(images[0].shape).astype(np.float32)
            times = interleaved_latency(
                {form: (lambda inputs, session=session: session.run(None, {'input': inputs}))
                 for form, session in (('fp32', fp32), ('int8', int8))},
                x, rounds=args.latency_rounds)
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
