"""Hooks: model EMA as the published RepViT recipe keeps it (on mmengine's
``EMAHook``), channels-last weights for CPU training, a stop on a non-finite loss."""
import math

import torch
from mmengine.hooks import EMAHook, Hook
from mmengine.registry import HOOKS

from ..errors import ConfigError, NonFiniteLossError


@HOOKS.register_module()
class RawEvalEMAHook(EMAHook):
    """mmengine's EMA, with evaluation and checkpoints on the raw model.

    The published recipes (timm's ``--model-ema``) keep an exponential moving
    average of the weights beside the model but evaluate, choose the best
    checkpoint and save the raw model. mmengine's ``EMAHook`` swaps the averaged
    weights in for validation and saves them as ``state_dict``; this hook keeps
    them in ``ema_state_dict`` only (and resumes them from there).
    """

    def before_val_epoch(self, runner) -> None:
        pass

    def after_val_epoch(self, runner, metrics=None) -> None:
        pass

    def before_test_epoch(self, runner) -> None:
        pass

    def after_test_epoch(self, runner, metrics=None) -> None:
        pass

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['ema_state_dict'] = self.ema_model.state_dict()

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        if 'ema_state_dict' in checkpoint and runner._resume:
            self.ema_model.load_state_dict(checkpoint['ema_state_dict'], strict=self.strict_load)
        else:  # a fresh average from the loaded weights, as mmengine does
            super().after_load_checkpoint(runner, checkpoint)


@HOOKS.register_module()
class ChannelsLastHook(Hook):
    """Store the model's 4-D weights channels-last before the run.

    Convolutions then run channels-last whatever the data layout, which computes the
    same values and is what the depthwise convolutions' backward needs to be fast on
    CPU (a RepNeXt-M1 training step on 32x32 digits takes half the time). mmcv's own
    RoIAlign reads channels-last features wrongly in its forward (mmcv 2.1.0), so
    detectors must use torchvision's (``roi_layer=dict(use_torchvision=True)``), which
    gives the same values: this hook refuses the other.
    """

    priority = 'VERY_HIGH'

    def before_run(self, runner) -> None:
        from .distributed import bare_model
        model = bare_model(runner)
        check_channels_last_safe(model)
        model.to(memory_format=torch.channels_last)


def check_channels_last_safe(model: torch.nn.Module) -> None:
    """Stop with one line naming the first module that misreads channels-last inputs."""
    try:
        from mmcv.ops import RoIAlign
    except ImportError:  # no mmcv, no mmcv RoIAlign
        return
    for name, module in model.named_modules():
        if isinstance(module, RoIAlign) and not module.use_torchvision:
            raise ConfigError(
                f'ChannelsLastHook: {name} is mmcv\'s RoIAlign, which reads channels-last '
                'features wrongly; set roi_layer=dict(use_torchvision=True) in the RoI '
                'extractors (same values) or drop the hook')


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss terms are not all finite,
    naming them, before any later hook (the checkpoint hook) writes the broken
    weights. tools/train.py adds it to every run."""

    priority = 'VERY_HIGH'

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        terms = {name: float(value.detach() if torch.is_tensor(value) else value)
                 for name, value in (outputs or {}).items() if 'loss' in name}
        if all(math.isfinite(value) for value in terms.values()):
            return
        listed = ', '.join(f'{name}={value:.4g}' for name, value in terms.items())
        raise NonFiniteLossError(f'iteration {runner.iter + 1}: the loss is not finite ({listed}); '
                                 'stopped before saving a checkpoint of these weights (a lower '
                                 'learning rate, or gradient clipping, usually helps)')
