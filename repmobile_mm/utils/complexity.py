"""Parameter and MAC counts in the convention of the published tables."""
from typing import Sequence

import torch
from mmengine.analysis import FlopAnalyzer
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@torch.no_grad()
def count_macs(model: nn.Module, input_shape: Sequence[int] = (1, 3, 224, 224)) -> int:
    """Multiply-accumulates per image, counted by mmengine's (fvcore's) FlopAnalyzer.

    Its convention (convolutions, linear layers, BatchNorm and adaptive pooling;
    no activations or additions) reproduces the published RepMobile table.
    """
    was_training = model.training
    model.eval()
    try:
        param = next(model.parameters())
        inputs = torch.zeros(input_shape, device=param.device, dtype=param.dtype)
        analyzer = FlopAnalyzer(model, inputs)
        analyzer.unsupported_ops_warnings(False)
        analyzer.uncalled_modules_warnings(False)
        return analyzer.total() // input_shape[0]
    finally:
        model.train(was_training)
