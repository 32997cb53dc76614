"""Side-by-side speed benchmark of our models (both forms) and timm peers, in one process.

    python tools/analysis_tools/benchmark.py [--models repmobile_s mm_repvit_m0_9 repvit_m0_9 ...]
        [--device cpu|cuda] [--dtype fp32|fp16|bf16] [--channels-last]
        [--modes eager compile cudagraphs] [--batch-size 256] [--json out.json]
        [--plot top1_vs_latency.png]

Models: ``repmobile_s|m|l``, ``mm_repvit_*`` and ``repnext_m0..m5`` (ours, by their timm
names, measured in training and fused form; RepNeXt also as ``(published fuse)``, the
published fuse rebuilt from the spec, which keeps the BatchNorm after every token
mixer), a config
path (ours by config: classifier, or the backbone of a detector/segmentor), an
``.onnx`` file (run by onnxruntime on CPU with ``--ort-threads``, default one; fp32
from tools/deployment/pytorch2onnx.py or int8 from quantize_onnx.py), a ``.pte``
ExecuTorch program (tools/deployment/pytorch2executorch.py, XNNPACK on CPU with
``--et-threads``, default one; static shape: time it with ``--batch-size 0 --size S``,
S its export size), or any
timm model name; timm models that can be re-parameterized (timm's own ``repvit_*``,
``mobileone_*``, ``fastvit_*``) are measured fused. All models take turns within
each round (interleaved), after warm-up; the median over rounds is reported.
Throughput at ``--batch-size`` (images/s) and latency at batch 1 (ms). On GPU,
latency is timed with CUDA events; under ``cudagraphs`` over at least 200 replays.

``--train-step`` times a training step instead (forward, a loss, backward; autocast
to ``--dtype`` with fp32 weights) of the training forms, ours beside
``repmobile_x (published)``: the published block structure rebuilt from the spec
(stride-2 identity by split, add and concatenate), to show what our training form
saves.
"""
import argparse
import json
import platform
import statistics
import sys
import time

import torch

from repmobile_mm.apis.benchmark import DTYPES, build_models, measure
from repmobile_mm.apis.benchmark_plot import plot
from repmobile_mm.apis.cli import run
from repmobile_mm.utils import count_params

DEFAULT_MODELS = ['repmobile_s', 'repmobile_m', 'repmobile_l', 'repvit_m0_9', 'mobileone_s1',
                  'efficientformerv2_s0', 'mobilenetv3_large_100', 'fastvit_t8']


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--models', nargs='+', default=DEFAULT_MODELS)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--dtype', choices=list(DTYPES), default='fp32')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--modes', nargs='+', default=['eager'],
                        choices=['eager', 'compile', 'cudagraphs'])
    parser.add_argument('--batch-size', type=int, default=None,
                        help='throughput batch (default 256 on GPU, 16 on CPU; with '
                        '--train-step 128 and 8); 0 skips it')
    parser.add_argument('--train-step', action='store_true',
                        help='time training steps (forward + backward) of the training forms')
    parser.add_argument('--size', type=int, default=224)
    parser.add_argument('--warmup', type=int, default=10)
    parser.add_argument('--rounds', type=int, default=10)
    parser.add_argument('--latency-calls', type=int, default=None,
                        help='timed batch-1 calls per round (default 20; 200 under cudagraphs)')
    parser.add_argument('--threads', type=int, default=None, help='CPU threads')
    parser.add_argument('--ort-threads', type=int, default=1,
                        help='intra-op threads of onnxruntime sessions (on 2 cores one is '
                        'the fastest and steadiest)')
    parser.add_argument('--et-threads', type=int, default=1,
                        help="threads of ExecuTorch's pool for .pte programs (process-wide)")
    parser.add_argument('--json', help='write all results to this file')
    parser.add_argument('--plot', help='write a figure of published top-1 against batch-1 '
                        'latency of the fused models, one line per family (PNG)')
    parser.add_argument('--from-json', metavar='JSON',
                        help='measure nothing: draw --plot from a JSON file written earlier')
    args = parser.parse_args()
    if args.from_json:
        if not args.plot:
            raise SystemExit('--from-json only draws a figure: give --plot too')
        with open(args.from_json) as f:
            plot(json.load(f), args.plot)
        return
    if args.train_step and args.plot:
        raise SystemExit('--plot draws batch-1 latency, which --train-step does not measure')
    if args.threads:
        torch.set_num_threads(args.threads)
    if 'cudagraphs' in args.modes and (args.device != 'cuda' or args.train_step):
        raise SystemExit('--modes cudagraphs needs --device cuda and inference')
    if args.device == 'cuda':
        torch.backends.cudnn.benchmark = True
    default_batch = (128, 8) if args.train_step else (256, 16)
    batch = args.batch_size if args.batch_size is not None else (
        default_batch[0] if args.device == 'cuda' else default_batch[1])

    if any(name.endswith('.pte') for name in args.models):  # before any program loads
        from repmobile_mm.apis.executorch_export import set_threads
        set_threads(args.et_threads)
    models = build_models(args.models, args.train_step, args.ort_threads)
    params = {name: count_params(model) for name, model in models.items()}
    machine = (torch.cuda.get_device_name() if args.device == 'cuda' else
               f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads')
    report = dict(machine=machine, torch=torch.__version__, dtype=args.dtype,
                  task='train step' if args.train_step else 'inference',
                  channels_last=args.channels_last, batch_size=batch, size=args.size,
                  date=time.strftime('%Y-%m-%d'), results=[])
    print(f'{report["task"]}: {machine}, torch {torch.__version__}, {args.dtype}, '
          f"{'channels-last' if args.channels_last else 'NCHW'}, {args.size}x{args.size}")
    print(f"{'model':<32} {'mode':<10} {'params':>8} {'img/s @' + str(batch):>12} "
          f"{'latency b1 ms':>14}")
    for mode in args.modes:
        timing = dict(size=args.size, device=args.device, dtype=args.dtype,
                      channels_last=args.channels_last, mode=mode,
                      train_step=args.train_step, rounds=args.rounds, warmup=args.warmup)
        throughput = measure(models, batch, 5, **timing) if batch else {}
        calls = args.latency_calls or (200 if mode == 'cudagraphs' else 20)
        # no batch-1 training step: BatchNorm on the gate's pooled map needs two samples
        latency = {} if args.train_step else measure(models, 1, calls, **timing)
        for name in models:
            row = dict(model=name, mode=mode, params=params[name])
            if latency:
                row.update(latency_ms=1000 * statistics.median(latency[name]),
                           latency_ms_spread=[1000 * min(latency[name]),
                                              1000 * max(latency[name])])
            if batch:
                row['images_per_s'] = batch / statistics.median(throughput[name])
            report['results'].append(row)
            print(f"{name:<32} {mode:<10} {params[name] / 1e6:>7.2f}M "
                  f"{row.get('images_per_s', float('nan')):>12.0f} "
                  f"{row.get('latency_ms', float('nan')):>14.3f}", flush=True)
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=2)
    if args.plot:
        plot(report, args.plot)


if __name__ == '__main__':
    sys.exit(run(main))
