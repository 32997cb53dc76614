"""Hooks: model EMA as the published RepViT recipe keeps it (on mmengine's
``EMAHook``), channels-last weights for CPU training, a stop on a non-finite loss, a
resumable stop on SIGTERM or SIGINT, random number generators resumed."""
import math
import os.path as osp
import random
import signal
import threading

import numpy as np
import torch
from mmengine.dist import all_reduce, get_rank, is_main_process
from mmengine.hooks import EMAHook, Hook
from mmengine.logging import print_log
from mmengine.registry import HOOKS
from mmengine.runner import EpochBasedTrainLoop

from ..errors import ConfigError, NonFiniteLossError, PreemptedError


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
    detectors must use ``SeparableRoIExtractor`` (what the shapes configs do) or
    torchvision's RoIAlign (``roi_layer=dict(use_torchvision=True)``), which give the
    same values: this hook refuses mmcv's.
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
                "features wrongly; use type='SeparableRoIExtractor' (custom_imports "
                "'repmobile_mm.integrations.mmdet') or roi_layer=dict(use_torchvision=True) "
                'in the RoI extractors (same values), or drop the hook')


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


@HOOKS.register_module()
class PreemptionHook(Hook):
    """SIGTERM (what SLURM and most schedulers send before SIGKILL when they preempt a
    job or its time runs out) or SIGINT (Ctrl-C; a second one stops at once): the run
    finishes the current iteration, every process agreeing on which one, saves a
    checkpoint to resume from (mmengine's ``Runner.save_checkpoint``: model, optimizer,
    schedulers, loop position, message hub, the EMA weights; rank 0 writes), names it
    in ``last_checkpoint``, and stops with a :class:`PreemptedError` saying where to
    resume from (the tools exit with status 1). An iteration-based loop resumes at that
    iteration; mmengine's epoch loop cannot start mid-epoch, so it repeats the
    interrupted epoch's first iterations, which the message counts. Stopped in an
    epoch's last iteration, the run stops once that epoch is counted (``epoch_N.pth``,
    before its validation) and resumes at the next one, repeating nothing.
    tools/train.py adds it to every run."""

    priority = 'VERY_LOW'  # after the schedulers stepped and the other hooks saved

    def __init__(self):
        self.received = 0  # the signal this process received
        self.stopping = 0  # the signal any process received, once they agreed
        self.previous = {}

    def receive(self, signum, frame) -> None:
        if self.received:  # asked twice: stop now, as without this hook
            signal.signal(signum, self.previous.get(signum, signal.SIG_DFL))
            signal.raise_signal(signum)
        self.received = signum

    def before_train(self, runner) -> None:
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGTERM, signal.SIGINT):
                self.previous[signum] = signal.signal(signum, self.receive)

    def after_train(self, runner) -> None:
        self.restore_signals()

    def restore_signals(self) -> None:
        """Give the process its own SIGTERM and SIGINT handlers back (after training, or
        when training stopped with an exception: ``apis.runner.train``)."""
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)
        self.previous = {}

    def after_train_iter(self, runner, batch_idx: int, data_batch=None, outputs=None) -> None:
        received = torch.tensor([self.received])
        all_reduce(received, op='max')  # every process stops after the same iteration
        self.stopping = int(received.item())
        if not self.stopping:
            return
        loop = runner.train_loop
        if isinstance(loop, EpochBasedTrainLoop) and batch_idx + 1 == len(loop.dataloader):
            return  # the epoch's last iteration: stop once the epoch is counted (below)
        done = runner.iter + 1
        repeated = ''
        if isinstance(loop, EpochBasedTrainLoop):  # mid-epoch: the epoch restarts
            repeated = (f'; epoch {runner.epoch + 1} restarts there, repeating its first '
                        f'{batch_idx + 1} iterations')
        self.stop(runner, f'iter_{done}.pth', False, done, repeated)

    def after_train_epoch(self, runner) -> None:
        if self.stopping:  # after the checkpoint hook: resumes at the next epoch
            self.stop(runner, f'epoch_{runner.epoch + 1}.pth', True, runner.iter, '')

    def stop(self, runner, filename: str, by_epoch: bool, done: int, repeated: str) -> None:
        runner.save_checkpoint(runner.work_dir, filename, by_epoch=by_epoch)
        path = osp.join(runner.work_dir, filename)
        if is_main_process():
            with open(osp.join(runner.work_dir, 'last_checkpoint'), 'w') as f:
                f.write(path)
        self.restore_signals()
        raise PreemptedError(f'{signal.Signals(self.stopping).name} received: stopped after '
                             f'iteration {done} (epoch {runner.epoch + 1}), saved {path}; '
                             f'continue with --resume{repeated}')


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Checkpoints keep the random number generators (Python's, NumPy's, torch's and
    CUDA's: augmentations drawn in the training process, dropout, drop path) of the
    process that writes them, and a resumed run takes them back before its first
    iteration, after the iteration loop has skipped the data already trained on (which
    draws from them), so that it draws what the uninterrupted run would have drawn.
    mmengine's checkpoints keep only the seed. Processes seeded alike (mmengine's
    default, without ``randomness.diff_rank_seed``) draw alike, so every process takes
    them back; with different seeds, processes other than the first draw anew.
    DataLoader workers seed themselves from the seed (mmengine's ``worker_init_fn``).
    tools/train.py adds it to every run."""

    def __init__(self):
        self.pending = None

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        checkpoint['random_state'] = random_state()  # only the writing process gets here

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        state = checkpoint.get('random_state')
        if not runner._resume or state is None:
            return
        if get_rank() > 0 and runner._randomness_cfg.get('diff_rank_seed', False):
            print_log(f'randomness.diff_rank_seed: process {get_rank()} draws anew after '
                      'the resume (the checkpoint keeps the first process\'s generators)',
                      logger='current')
            return
        self.pending = state

    def before_train_iter(self, runner, batch_idx: int, data_batch=None) -> None:
        if self.pending is not None:
            set_random_state(self.pending)
            self.pending = None


def random_state() -> dict:
    """This process's generators, in types that ``weights_only`` loading reads."""
    numpy_state = np.random.get_state(legacy=False)
    numpy_state['state']['key'] = torch.from_numpy(numpy_state['state']['key'].astype(np.int64))
    state = dict(python=random.getstate(), numpy=numpy_state, torch=torch.get_rng_state())
    if torch.cuda.is_available():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_random_state(state: dict) -> None:
    random.setstate(state['python'])
    numpy_state = dict(state['numpy'])
    numpy_state['state'] = dict(numpy_state['state'],
                                key=numpy_state['state']['key'].numpy().astype(np.uint32))
    np.random.set_state(numpy_state)
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])
