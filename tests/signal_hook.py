"""Stand-ins for what happens to a run (tests/test_runs.py): a cluster scheduler's
SIGTERM after a given iteration, to the launcher (torchrun, which passes it on to every
process) or to the process itself; an error in the middle of training. Configs import
them with ``custom_imports``."""
import os
import signal

from mmengine.dist import is_main_process
from mmengine.hooks import Hook
from mmengine.registry import HOOKS


@HOOKS.register_module()
class SendSigtermAt(Hook):

    def __init__(self, iteration: int, to_launcher: bool = False):
        self.iteration = iteration
        self.to_launcher = to_launcher

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration and is_main_process():
            os.kill(os.getppid() if self.to_launcher else os.getpid(), signal.SIGTERM)


@HOOKS.register_module()
class RaiseAt(Hook):

    def __init__(self, iteration: int):
        self.iteration = iteration

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if runner.iter + 1 == self.iteration:
            raise RuntimeError(f'stand-in failure after iteration {self.iteration}')
