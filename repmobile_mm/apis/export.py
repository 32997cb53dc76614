"""What every export shares, and ONNX: a config's fused model, the normalization an
image input builds in, ONNX export, onnxruntime sessions and their check against
PyTorch (what to export is the task's: ``tasks.Task.export_net``).
"""
from typing import Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from torch import nn

from ..errors import ConfigError, ExportError
from ..models.utils.fuse import fused_copy
from ..utils.compare import relative_difference
from .model_io import build_model, load_weights, read_state_dict
from .runner import load_config


class Normalized(nn.Module):
    """``net`` on 0-255 images: the config's per-channel mean and std built in."""

    def __init__(self, net: nn.Module, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.net = net
        self.register_buffer('mean', torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer('inv_std', 1 / torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return self.net((x - self.mean) * self.inv_std)


def fused_model(config: str, checkpoint: str, cfg_options: Optional[dict] = None
                ) -> Tuple[Config, nn.Module]:
    """The config and its model with the checkpoint loaded strictly, fused, in eval mode.

    A training config takes a training checkpoint (fused here); a deploy config a fused one.
    """
    cfg = load_config(config, cfg_options)
    model = build_model(cfg).eval()
    load_weights(model, read_state_dict(checkpoint), checkpoint, config)
    return cfg, fused_copy(model)


def preprocessing(cfg: Config) -> Tuple[list, list, bool]:
    """``(mean, std, rgb)`` of the config's data preprocessor: the 0-255 per-channel
    mean and std, and whether the model sees RGB (mm's loaders read BGR)."""
    pre = cfg.get('data_preprocessor') or cfg.model.get('data_preprocessor') or {}
    mean, std = pre.get('mean'), pre.get('std')
    if mean is None or std is None:
        raise ConfigError('the config\'s data_preprocessor has no mean and std to build into '
                          'the image input')
    rgb = bool(pre.get('to_rgb', pre.get('bgr_to_rgb', False)))
    return list(mean), list(std), rgb


def onnx_export(net: nn.Module, path: str, num_outputs: int, spatial_outputs: bool,
                example: Optional[torch.Tensor] = None, opset: int = 17) -> None:
    """ONNX with dynamic batch and input size (and output size for maps)."""
    output_names = [f'output{i}' for i in range(num_outputs)]
    image_axes = {0: 'batch', 2: 'height', 3: 'width'}
    dynamic = {'input': image_axes}
    for name in output_names:
        dynamic[name] = image_axes if spatial_outputs else {0: 'batch'}
    example = torch.randn(1, 3, 224, 224) if example is None else example
    torch.onnx.export(net, (example, ), path, input_names=['input'],
                      output_names=output_names, dynamic_axes=dynamic, opset_version=opset,
                      dynamo=False)


def onnxruntime_session(path: str, threads: int = 1):
    """An onnxruntime CPU session, full graph optimization (QDQ pairs become int8
    kernels), ``threads`` intra-op threads: on 2 cores one is the fastest and steadiest."""
    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(path, options, providers=['CPUExecutionProvider'])


def onnx_precision(path: str) -> str:
    """'int8' for a quantized ONNX file (QDQ or QOperator), else 'fp32'."""
    import onnx
    quantized = ('QuantizeLinear', 'QLinearConv', 'ConvInteger', 'MatMulInteger')
    graph = onnx.load(path, load_external_data=False).graph
    return 'int8' if any(node.op_type in quantized for node in graph.node) else 'fp32'


def check_with_onnxruntime(net: nn.Module, path: str, inputs) -> float:
    """Largest difference between onnxruntime and PyTorch on ``inputs`` (tensors),
    relative to the largest output; a shape mismatch is an :class:`ExportError`."""
    session = onnxruntime_session(path)
    worst = 0.0
    for x in inputs:
        with torch.no_grad():
            expected = net(x)
        expected = [expected] if torch.is_tensor(expected) else list(expected)
        got = session.run(None, {'input': x.numpy()})
        for e, g in zip(expected, got):
            e = e.numpy()
            if e.shape != g.shape:
                raise ExportError(f'onnxruntime output shape {g.shape} != PyTorch {e.shape}')
            worst = max(worst, relative_difference(e, g))
    return worst
