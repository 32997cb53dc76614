"""Export a config's fused model to an ExecuTorch program (.pte) lowered to XNNPACK.

    python tools/deployment/pytorch2executorch.py CONFIG CHECKPOINT OUT.pte [--shape H W]
        [--backbone-only] [--int8 [--calib 256] [--calib-split train|val]] [--eval]
        [--force] [--cfg-options ...]

CONFIG and CHECKPOINT are a training config with its checkpoint (fused here) or a
deploy config with a fused checkpoint. Classifiers are exported whole (logits);
detectors and segmentors, or any model with --backbone-only, as the backbone's stage
outputs. The program takes one image of --shape (default: the config's test size, or
where its test pipeline keeps the images' size, its first validation image's).

It lowers with the XNNPACK partitioner (the kernels ExecuTorch runs on phone CPUs)
and prints the delegated operators and any left outside XNNPACK, which run on slow
portable kernels. With --int8 the model is quantized first (PT2E, XNNPACK's
quantizer: int8 weights per output channel, int8 activations), calibrated on --calib
images drawn (seeded) from the config's own data through its test pipeline.

Before the program is renamed into place it runs in ExecuTorch's runtime: fp32 must
match PyTorch within FP32_RTOL (relative to the largest output); int8 is compared
with the fp32 program on the calibration images (a classifier keeps the arg-max of
INT8_MIN_AGREEMENT of them, a backbone's outputs stay within INT8_RTOL on average:
repmobile_mm/apis/executorch_export.py). --eval runs the fp32 and (with --int8) the
int8 program over the config's validation split and prints its metric for each.
"""
import argparse
import os
import sys
import tempfile

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.executorch_export import (ExecuTorchError, ProgramRunner, calibration_images,
                                                 check_fp32_program, check_int8, evaluate_program,
                                                 exported, import_executorch, lowered,
                                                 program_shape, quantized, write_checked)
from repmobile_mm.apis.export import fused_model
from repmobile_mm.apis.model_io import flatten_outputs
from repmobile_mm.apis.runner import add_cfg_options
from repmobile_mm.apis.tasks import Logits, task_of
from repmobile_mm.engine.checkpoint import check_output_path


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', metavar='OUT.pte', help='the ExecuTorch program to write')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's test size)")
    parser.add_argument('--backbone-only', action='store_true',
                        help="export a classifier's backbone (stage outputs)")
    parser.add_argument('--int8', action='store_true',
                        help='quantize to int8 (PT2E with the XNNPACK quantizer)')
    parser.add_argument('--calib', type=int, default=256, help='calibration images of --int8')
    parser.add_argument('--calib-split', choices=['train', 'val'], default='train')
    parser.add_argument('--eval', action='store_true',
                        help="the config's metric on its validation set, run by ExecuTorch "
                        '(classifiers)')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT.pte')
    add_cfg_options(parser)
    return parser.parse_args()


def report_ops(label: str, delegated: dict, outside: dict) -> None:
    print(f'{label}: {sum(delegated.values())} ops delegated to XNNPACK '
          f'({", ".join(f"{n} x{c}" for n, c in sorted(delegated.items()))})')
    if outside:
        print(f'{label}: {sum(outside.values())} ops left outside XNNPACK, on portable '
              f'kernels: {", ".join(f"{n} x{c}" for n, c in sorted(outside.items()))}')
    else:
        print(f'{label}: no op left outside XNNPACK')


def export(args) -> None:
    if not args.out.endswith('.pte'):
        raise ExecuTorchError(f'an ExecuTorch program is a .pte file: name the output '
                              f'{os.path.splitext(args.out)[0]}.pte')
    check_output_path(args.out, args.force)  # before any work
    import_executorch()
    cfg, model = fused_model(args.config, args.checkpoint, args.cfg_options)
    net, _, _ = task_of(cfg).export_net(model, args.backbone_only)
    whole_classifier = isinstance(net, Logits)
    if args.eval and not whole_classifier:
        raise ExecuTorchError('--eval scores a whole classifier; this program is a backbone')
    shape = tuple(args.shape) if args.shape else program_shape(cfg, model)
    generator = torch.Generator().manual_seed(0)
    examples = [torch.randn(1, 3, *shape, generator=generator) for _ in range(3)]

    fp32_program, delegated, outside = lowered(exported(net, examples[0]))
    report_ops('fp32', delegated, outside)
    with torch.no_grad():
        expected = [list(flatten_outputs(net(x))) for x in examples]

    def check_fp32(path):
        worst = check_fp32_program(ProgramRunner(path), examples, expected)
        print(f'fp32 program checked in ExecuTorch: {worst:.1e} from PyTorch (relative)')

    with tempfile.TemporaryDirectory() as work:
        fp32_path = args.out if not args.int8 else os.path.join(work, 'fp32.pte')
        write_checked(fp32_path, fp32_program, check_fp32, args.force)
        programs = {'fp32': fp32_path}
        if args.int8:
            images = calibration_images(cfg, model, args.calib_split, args.calib, shape)
            print(f'calibrating int8 on {len(images)} {args.calib_split} images', flush=True)
            int8_program, delegated, outside = lowered(quantized(net, examples[0], images))
            report_ops('int8', delegated, outside)
            fp32 = ProgramRunner(fp32_path)
            reference = [fp32(image) for image in images]

            def check_int8_program(path):
                runner = ProgramRunner(path)
                verdict = check_int8(reference, [runner(image) for image in images],
                                     classifier=whole_classifier)
                print(f'int8 program checked in ExecuTorch: {verdict}')

            write_checked(args.out, int8_program, check_int8_program, args.force)
            programs['int8'] = args.out
        print(f'wrote {args.out}: {os.path.getsize(args.out) / 2**20:.2f} MB, input '
              f'(1, 3, {shape[0]}, {shape[1]})')
        if args.eval:
            print("evaluating on the config's validation set in ExecuTorch", flush=True)
            results = {form: evaluate_program(cfg, model, ProgramRunner(path), shape)
                       for form, path in programs.items()}
            for metric in results['fp32']:
                line = f"{metric}: fp32 {results['fp32'][metric]:.2f}"
                if 'int8' in results:
                    line += (f", int8 {results['int8'][metric]:.2f}, drop "
                             f"{results['fp32'][metric] - results['int8'][metric]:.2f}")
                print(line)


def main():
    args = parse_args()
    try:
        export(args)
    except ExecuTorchError as err:
        raise SystemExit(f'not writing {args.out}: {err}') from None


if __name__ == '__main__':
    sys.exit(run(main))
