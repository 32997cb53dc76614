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
from typing import Callable, Dict, List

import numpy as np
import torch
from torch import nn

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.export import onnx_precision, onnxruntime_session
from repmobile_mm.models import fused_copy
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.models.published import published_repnext_fuse, published_structure
from repmobile_mm.utils import count_params, randomize_batchnorm
from repmobile_mm.utils.timing import interleaved_times

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
OURS = ('repmobile_', 'mm_repvit_', 'repnext_')  # prefixes of our timm registrations
DEFAULT_MODELS = ['repmobile_s', 'repmobile_m', 'repmobile_l', 'repvit_m0_9', 'mobileone_s1',
                  'efficientformerv2_s0', 'mobilenetv3_large_100', 'fastvit_t8']


def build_models(names: List[str], train_step: bool = False,
                 ort_threads: int = 1) -> Dict[str, nn.Module]:
    """Name -> eval-mode model; ours in both forms (for ``train_step``: ours and the
    published structure), re-parameterizable peers fused (for ``train_step``: as built)."""
    models = {}
    for name in names:
        if name.startswith(OURS):
            import timm
            torch.manual_seed(0)
            model = randomize_batchnorm(timm.create_model(name)).eval()
            models[f'{name} (train)'] = model
            if not train_step:
                models[f'{name} (fused)'] = fused_copy(model)
                if name.startswith('repnext_'):
                    models[f'{name} (published fuse)'] = published_repnext_fuse(model)
            elif name.startswith('repmobile_'):  # RepViT's training form is the published one
                models[f'{name} (published)'] = published_structure(model)
        elif name.endswith('.onnx'):
            if train_step:
                raise SystemExit(f'--train-step cannot train an ONNX file: {name}')
            models[f'{name} (onnxruntime {onnx_precision(name)})'] = OnnxRuntimeModel(
                name, ort_threads)
        elif name.endswith('.pte'):
            if train_step:
                raise SystemExit(f'--train-step cannot train an ExecuTorch program: {name}')
            models[f'{name} (ExecuTorch)'] = ExecuTorchModel(name)
        elif name.endswith('.py'):
            from repmobile_mm.apis.model_io import build_model
            from repmobile_mm.apis.runner import load_config
            cfg = load_config(name)
            model = build_model(cfg).eval()
            # a whole classifier; only the backbone of a detector or segmentor
            net = task_of(cfg).export_net(model)[0]
            models[f'{name} (train)'] = net
            if not train_step:
                models[f'{name} (fused)'] = fused_copy(net)
        else:
            import timm
            model = timm.create_model(name).eval()
            fused = model if train_step else fused_copy(model)
            changed = count_params(fused) != count_params(model)
            models[f'{name} (fused)' if changed else name] = fused
    return models


class OnnxRuntimeModel(nn.Module):
    """An onnxruntime CPU session behind a module's call (fp32 inputs, any memory format)."""

    def __init__(self, path: str, threads: int = 1):
        super().__init__()
        self.session = onnxruntime_session(path, threads)

    def forward(self, x):
        inputs = np.ascontiguousarray(x.float().numpy())
        return self.session.run(None, {self.session.get_inputs()[0].name: inputs})


class ExecuTorchModel(nn.Module):
    """An ExecuTorch program (tools/deployment/pytorch2executorch.py) behind a module's
    call; it takes one input shape, the one it was exported at (``--batch-size 0
    --size S``)."""

    def __init__(self, path: str):
        super().__init__()
        from repmobile_mm.apis.executorch_export import (ExecuTorchError, ProgramRunner,
                                                           import_executorch)
        try:
            import_executorch()
        except ExecuTorchError as err:
            raise SystemExit(str(err)) from None
        self.runner, self.error = ProgramRunner(path), ExecuTorchError
        self.path = path

    def forward(self, x):
        try:
            return self.runner(x)
        except self.error as err:
            raise SystemExit(f'{self.path}: {err} (--batch-size 0 --size S times batch 1 '
                             'at the size it was exported at)') from None


def make_runner(model: nn.Module, example: torch.Tensor, mode: str) -> Callable:
    """A no-argument callable that runs the model once on ``example`` in the given mode."""
    if mode == 'eager':
        return lambda: model(example)
    if mode == 'compile':
        compiled = torch.compile(model, dynamic=False)  # one specialized graph per batch size
        return lambda: compiled(example)
    if mode == 'cudagraphs':
        static_input = example.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                model(static_input)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            model(static_input)
        return graph.replay
    raise ValueError(f'unknown mode {mode!r}')


def make_train_step(model: nn.Module, example: torch.Tensor, mode: str,
                    dtype: torch.dtype) -> Callable:
    """A callable for one training step: forward under autocast, a loss, backward."""
    model.train()
    forward = torch.compile(model, dynamic=False) if mode == 'compile' else model

    def step():
        with torch.autocast(example.device.type, dtype=dtype, enabled=dtype != torch.float32):
            out = forward(example)
        out = out[0] if isinstance(out, (tuple, list)) else out
        out.float().logsumexp(1).mean().backward()
        model.zero_grad(set_to_none=True)
    return step


def measure(models, args, batch: int, calls: int) -> Dict[str, List[float]]:
    """Per model, seconds per call in each round; models interleaved within rounds."""
    dtype = DTYPES[args.dtype]
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format
    # training keeps fp32 weights and inputs (autocast casts); inference runs in dtype
    data_dtype = torch.float32 if args.train_step else dtype
    example = torch.randn(batch, 3, args.size, args.size, device=args.device, dtype=data_dtype)
    example = example.contiguous(memory_format=memory_format)
    runners = {}
    with torch.inference_mode(not args.train_step):
        for name, model in models.items():
            model = model.to(device=args.device, dtype=data_dtype, memory_format=memory_format)
            runners[name] = (make_train_step(model, example, args.mode, dtype)
                             if args.train_step else make_runner(model, example, args.mode))
        # the warm-up compiles too
        return interleaved_times(runners, args.rounds, calls, args.warmup, args.device)


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
        args.mode = mode
        throughput = measure(models, args, batch, 5) if batch else {}
        calls = args.latency_calls or (200 if mode == 'cudagraphs' else 20)
        # no batch-1 training step: BatchNorm on the gate's pooled map needs two samples
        latency = {} if args.train_step else measure(models, args, 1, calls)
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


# Published ImageNet-1K top-1 (%) of our fused models: the papers' tables, as quoted in
# shared/specs (repmobile.md, repvit.md: the later release's distilled models,
# repnext.md). The figure draws only models listed here.
PUBLISHED_TOP1 = {
    'RepMobile': {'repmobile_s': 77.2, 'repmobile_m': 78.8, 'repmobile_l': 80.9},
    'RepViT': {'mm_repvit_m0_9': 78.7, 'mm_repvit_m1_0': 80.0, 'mm_repvit_m1_1': 80.7,
               'mm_repvit_m1_5': 82.3, 'mm_repvit_m2_3': 83.3},
    'RepNeXt': {'repnext_m1': 78.8, 'repnext_m2': 80.1, 'repnext_m3': 80.7,
                'repnext_m4': 82.3, 'repnext_m5': 83.3},
}


def variant_label(family: str, name: str) -> str:
    """'RepViT', 'mm_repvit_m0_9' -> 'RepViT-M0.9'."""
    variant = name[name.index(family.lower()) + len(family) + 1:]
    return f"{family}-{variant.upper().replace('_', '.')}"


def top1_latency_points(report: dict) -> Dict[str, List[tuple]]:
    """Family -> [(latency ms, top-1, variant)] of the fused models with a published
    top-1, sorted by latency (one ``--modes`` entry: the first one measured)."""
    mode = report['results'][0]['mode']
    latency = {r['model']: r['latency_ms'] for r in report['results'] if r['mode'] == mode}
    points = {}
    for family, top1 in PUBLISHED_TOP1.items():
        rows = [(latency[f'{name} (fused)'], acc, variant_label(family, name))
                for name, acc in top1.items() if f'{name} (fused)' in latency]
        if rows:
            points[family] = sorted(rows)
    return points


def place_labels(ax, points: List[tuple], texts: List[str], fontsize: int = 8) -> list:
    """Annotate each point with its text at the first of eight offsets where the label's
    box stays inside the axes and overlaps no label placed before it and no point;
    returns the text artists."""
    renderer = ax.figure.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    to_pixels = ax.transData.transform
    markers = [to_pixels(p) for p in points]
    offsets = [(6, 4), (6, -12), (-6, 4), (-6, -12), (0, 10), (0, -16), (12, -4), (-12, -4)]
    placed, boxes = [], []
    for point, text in zip(points, texts):
        for dx, dy in offsets:
            artist = ax.annotate(text, point, xytext=(dx, dy), textcoords='offset points',
                                 fontsize=fontsize, ha='left' if dx >= 0 else 'right')
            box = artist.get_window_extent(renderer).expanded(1.05, 1.1)
            inside = (frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0
                      and box.y1 <= frame.y1)
            if inside and not any(box.overlaps(other) for other in boxes) and not any(
                    box.contains(*marker) for marker in markers):
                break
            artist.remove()
        else:  # every offset collides: keep the first one and let the test say so
            artist = ax.annotate(text, point, xytext=offsets[0], textcoords='offset points',
                                 fontsize=fontsize)
            box = artist.get_window_extent(renderer)
        placed.append(artist)
        boxes.append(box)
    return placed


def plot(report: dict, path: str):
    """Published top-1 against measured batch-1 latency, one line per family (fused)."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    points = top1_latency_points(report)
    if not points:
        raise SystemExit('--plot needs at least one model with a published top-1: '
                         + ', '.join(n for t in PUBLISHED_TOP1.values() for n in t))
    fig, ax = plt.subplots(figsize=(7, 5))
    for family, rows in points.items():
        ax.plot([r[0] for r in rows], [r[1] for r in rows], marker='o', label=family)
    ax.set_xlabel(f"latency at batch 1, fused (ms), {report['size']}x{report['size']}, "
                  f"{report['dtype']}")
    ax.set_ylabel('ImageNet-1K top-1 (%), published')
    ax.set_title(f"{report['machine']}, torch {report['torch']}, {report['date']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(loc='lower right')
    ax.margins(x=0.12, y=0.08)
    fig.tight_layout()
    rows = [r for family_rows in points.values() for r in family_rows]
    place_labels(ax, [r[:2] for r in rows], [r[2] for r in rows])
    fig.savefig(path, dpi=120)
    return fig


if __name__ == '__main__':
    sys.exit(run(main))
