"""Model EMA as the published RepViT recipe keeps it, on mmengine's ``EMAHook``."""
from mmengine.hooks import EMAHook
from mmengine.registry import HOOKS


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
