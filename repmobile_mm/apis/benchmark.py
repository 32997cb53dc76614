"""Side-by-side speed of models in one process: ours in both forms, the published
structures, timm peers, ONNX files (onnxruntime) and ExecuTorch programs, timed by the
one timer (``repmobile_mm.utils.timing``). Its command line:
tools/analysis_tools/benchmark.py.
"""
from typing import Callable, Dict, List

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from ..models import fused_copy
from ..models.published import published_repnext_fuse, published_structure
from ..utils import count_params, randomize_batchnorm
from ..utils.timing import interleaved_times
from .export import onnx_precision, onnxruntime_session
from .tasks import task_of

DTYPES = {'fp32': torch.float32, 'fp16': torch.float16, 'bf16': torch.bfloat16}
OURS = ('repmobile_', 'mm_repvit_', 'repnext_')  # prefixes of our timm registrations


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
                raise ConfigError(f'--train-step cannot train an ONNX file: {name}')
            models[f'{name} (onnxruntime {onnx_precision(name)})'] = OnnxRuntimeModel(
                name, ort_threads)
        elif name.endswith('.pte'):
            if train_step:
                raise ConfigError(f'--train-step cannot train an ExecuTorch program: {name}')
            models[f'{name} (ExecuTorch)'] = ExecuTorchModel(name)
        elif name.endswith('.py'):
            from .model_io import build_model
            from .runner import load_config
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
        from .executorch_export import ProgramRunner, import_executorch
        import_executorch()
        self.runner, self.path = ProgramRunner(path), path

    def forward(self, x):
        from .executorch_export import ExecuTorchError
        try:
            return self.runner(x)
        except ExecuTorchError as err:
            raise ExecuTorchError(f'{self.path}: {err} (--batch-size 0 --size S times batch '
                                  '1 at the size it was exported at)') from None


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


def measure(models: Dict[str, nn.Module], batch: int, calls: int, size: int = 224,
            device: str = 'cpu', dtype: str = 'fp32', channels_last: bool = False,
            mode: str = 'eager', train_step: bool = False, rounds: int = 10,
            warmup: int = 10) -> Dict[str, List[float]]:
    """Per model, seconds per call in each round (``utils.timing``: models interleaved
    within rounds), at ``batch`` images of ``size`` x ``size``."""
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    # training keeps fp32 weights and inputs (autocast casts); inference runs in dtype
    data_dtype = torch.float32 if train_step else DTYPES[dtype]
    example = torch.randn(batch, 3, size, size, device=device, dtype=data_dtype)
    example = example.contiguous(memory_format=memory_format)
    runners = {}
    with torch.inference_mode(not train_step):
        for name, model in models.items():
            model = model.to(device=device, dtype=data_dtype, memory_format=memory_format)
            runners[name] = (make_train_step(model, example, mode, DTYPES[dtype])
                             if train_step else make_runner(model, example, mode))
        # the warm-up compiles too
        return interleaved_times(runners, rounds, calls, warmup, device)
