"""Exact folding arithmetic shared by every re-parameterizable module.

Folds are computed in float64 and cast back to the parameter dtype, so a float32
model loses nothing to the fold itself.
"""
import copy
from typing import Tuple

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ...errors import CheckpointFormError


def bn_scale_shift(bn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Return (scale, shift) in float64 with ``bn(x) == scale * x + shift`` in eval mode.

    Accepts any ``_BatchNorm`` subclass (BN, SyncBN, mmengine's ``_BatchNormXd``).
    """
    if not isinstance(bn, _BatchNorm):
        raise TypeError(f'expected a BatchNorm layer, got {type(bn).__name__}')
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError(
            f'{type(bn).__name__} has no running statistics '
            '(track_running_stats=False), so it cannot be folded')
    mean = bn.running_mean.double()
    std = (bn.running_var.double() + bn.eps).sqrt()
    weight = bn.weight.double() if bn.weight is not None else torch.ones_like(mean)
    bias = bn.bias.double() if bn.bias is not None else torch.zeros_like(mean)
    scale = weight / std
    return scale, bias - mean * scale


def conv_params64(conv: nn.Conv2d) -> Tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a convolution or linear layer in float64 (zero bias if it has none)."""
    weight = conv.weight.double()
    bias = (conv.bias.double() if conv.bias is not None else
            weight.new_zeros(weight.shape[0]))
    return weight, bias


def copy_params(dst: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """Load float64 fold results into ``dst``, cast to its own dtype and device."""
    with torch.no_grad():
        dst.weight.copy_(weight.reshape(dst.weight.shape))
        dst.bias.copy_(bias)
    return dst


def fuse_conv_bn(conv: nn.Module, bn: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold a BatchNorm that follows a convolution or linear layer: ``bn(conv(x))``."""
    weight, bias = conv_params64(conv)
    scale, shift = bn_scale_shift(bn)
    shape = (-1, ) + (1, ) * (weight.dim() - 1)
    return weight * scale.reshape(shape), bias * scale + shift


def fused_layer_like(layer: nn.Module, weight: torch.Tensor, bias: torch.Tensor) -> nn.Module:
    """A new conv or linear layer shaped like ``layer`` (with a bias) holding a fold's result.

    Built in ``layer``'s own dtype and device, so a float64 model stays float64.
    """
    if isinstance(layer, nn.Linear):
        fused = nn.Linear(layer.in_features, layer.out_features)
    else:
        fused = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size,
                          layer.stride, layer.padding, layer.dilation, layer.groups)
    fused.train(layer.training)
    return copy_params(fused.to(layer.weight), weight, bias)


def fuse_conv_bn_in_sequential(seq: nn.Sequential, index: int = 0) -> None:
    """Fold ``seq[index + 1]`` (a BatchNorm) into the conv or linear layer ``seq[index]``.

    The BatchNorm's place is kept by an ``nn.Identity``, so the other layers keep
    their indices (and state-dict keys) and the fused layer gains a bias.
    """
    layer, bn = seq[index], seq[index + 1]
    seq[index] = fused_layer_like(layer, *fuse_conv_bn(layer, bn))
    seq[index + 1] = nn.Identity()


def pad_to_kernel(weight: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """A kh x kw kernel (1x1, 1x3, 5x3, ...) as the centre taps of a square
    ``kernel_size`` kernel: the same output with that kernel's 'same' padding."""
    pad_h = (kernel_size - weight.shape[-2]) // 2
    pad_w = (kernel_size - weight.shape[-1]) // 2
    return torch.nn.functional.pad(weight, [pad_w, pad_w, pad_h, pad_h])


def add_depthwise_identity(weight: torch.Tensor) -> torch.Tensor:
    """Add the identity to a depthwise kernel of shape (C, 1, k, k): +1 on each centre tap."""
    weight = weight.clone()
    centre = weight.shape[-1] // 2
    weight[:, 0, centre, centre] += 1
    return weight


def guard_checkpoint_form(module: nn.Module, name: str, trained_key: str,
                          fused_key: str) -> None:
    """Make ``module`` refuse, with a clear message, a state dict of its other form.

    ``trained_key`` is a key only the training form has (a BatchNorm's
    ``running_mean``), ``fused_key`` one only the deploy form has (the bias the
    fold adds); both relative to ``module``. ``module.deploy`` tells its own form.
    Runs for ``load_state_dict`` and mmengine's loaders alike, strict or not.
    """

    def hook(module, state_dict, prefix, *args):
        trained = f'{prefix}{trained_key}' in state_dict
        fused = f'{prefix}{fused_key}' in state_dict and not trained
        if module.deploy and trained:
            raise CheckpointFormError(
                f'the checkpoint holds the training form of the {name} (it has '
                f"'{prefix}{trained_key}'), but the model was built in deploy form "
                '(deploy=True): load it with the training config, or fuse it first with '
                'tools/reparameterize_model.py')
        if not module.deploy and fused:
            raise CheckpointFormError(
                f'the checkpoint holds the fused deploy form of the {name} (it has '
                f"'{prefix}{fused_key}' and no BatchNorm), but the model was built in "
                'training form (deploy=False): load it with the deploy config (the configs '
                'under deploy/, or deploy=True)')

    module.register_load_state_dict_pre_hook(hook)


def fuse_bn_conv1x1(bn: nn.Module, conv: nn.Module) -> Tuple[torch.Tensor, torch.Tensor]:
    """Fold a BatchNorm that precedes a 1x1 convolution: ``conv(bn(x))``.

    Exact because a 1x1 convolution has no padding that could see the BN shift.
    """
    weight, bias = conv_params64(conv)
    scale, shift = bn_scale_shift(bn)
    weight = weight.reshape(weight.shape[0], -1)
    return weight * scale, bias + weight @ shift


FUSE_METHODS = ('switch_to_deploy', 'reparameterize', 'fuse')


def reparameterize_model(model: nn.Module) -> nn.Module:
    """Fuse every submodule that offers ``switch_to_deploy``, ``reparameterize`` or ``fuse``.

    Covers our modules, mmpretrain's RepVGG/MobileOne and timm's re-parameterizable
    models. Modules are visited parents first; a module with such a method fuses its
    own subtree. A method that returns a new module (timm's ``fuse``, our
    ``Conv2dBN.fuse``) has it put in place of the old one. Returns the fused model
    (a new object only in that case).
    """
    for name in FUSE_METHODS:
        method = getattr(model, name, None)
        if callable(method):
            result = method()
            return result if isinstance(result, nn.Module) else model
    fuse_children(model)
    return model


def fused_copy(model: nn.Module) -> nn.Module:
    """A fused deep copy of ``model`` (in its mode), which is left as it is."""
    return reparameterize_model(copy.deepcopy(model))


def fuse_children(module: nn.Module) -> None:
    """``reparameterize_model`` on each child of ``module``, replacing the ones it rebuilds."""
    for child_name, child in module.named_children():
        fused = reparameterize_model(child)
        if fused is not child:
            setattr(module, child_name, fused)
