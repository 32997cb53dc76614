"""Multi-process training on machines with and without CUDA.

mmengine 0.10.7 starts every process group with ``torch.cuda.set_device`` and wraps
models in DDP with ``device_ids``, so ``--launcher pytorch`` fails on a CPU-only
machine whatever ``env_cfg.dist_cfg.backend`` says. There, this module starts the
group on gloo itself (mmengine then keeps it) and wraps with
``CPUDistributedDataParallel``; GPUs keep mmengine's NCCL path unchanged.
"""
import os

import torch
import torch.distributed as torch_dist
from mmengine.config import Config
from mmengine.model import MMDistributedDataParallel, revert_sync_batchnorm
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

from ..errors import ConfigError, DeviceError


@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """mmengine's DDP wrapper for a model on CPU: no ``device_ids`` (DDP refuses them
    for CPU modules), and SyncBN layers as BatchNorm (torch's SyncBatchNorm runs on
    GPUs only), so each process normalizes over its own batch."""

    def __init__(self, module: nn.Module, device_ids=None, **kwargs):
        if any(isinstance(m, nn.SyncBatchNorm) for m in module.modules()):
            module = revert_sync_batchnorm(module)
        super().__init__(module=module, device_ids=None, **kwargs)


def setup_distributed(cfg: Config) -> str:
    """Prepare ``cfg`` (and, without CUDA, the process group) for its launcher; returns
    the line to log: the backend and what runs where."""
    if cfg.get('launcher', 'none') == 'none':
        return ''
    if torch.cuda.is_available():
        backend = cfg.get('env_cfg', {}).get('dist_cfg', {}).get('backend', 'nccl')
        return f'distributed ({cfg.launcher} launcher): {backend} on CUDA devices'
    if cfg.launcher != 'pytorch':
        raise DeviceError(f'--launcher {cfg.launcher} needs CUDA devices here; on a CPU-only '
                          'machine use --launcher pytorch (tools/dist_train.sh, torchrun)')
    if not torch_dist.is_initialized():
        torch_dist.init_process_group('gloo', rank=int(os.environ['RANK']),
                                      world_size=int(os.environ['WORLD_SIZE']))
    wrapper = cfg.get('model_wrapper_cfg') or {}
    if wrapper.get('type', 'MMDistributedDataParallel') != 'MMDistributedDataParallel':
        raise ConfigError(f"model_wrapper_cfg type {wrapper['type']!r} cannot run on CPU: "
                          'leave it unset for CPU-only multi-process training')
    cfg.model_wrapper_cfg = dict(
        wrapper, type='CPUDistributedDataParallel',
        broadcast_buffers=wrapper.get('broadcast_buffers', False),
        find_unused_parameters=wrapper.get(
            'find_unused_parameters', cfg.get('find_unused_parameters', False)))
    return (f'distributed ({cfg.launcher} launcher): gloo on CPU, '
            f'{torch_dist.get_world_size()} processes; SyncBN layers run as BatchNorm '
            "(torch's SyncBatchNorm needs GPUs)")


def bare_model(runner):
    """The runner's model without its distributed wrapper."""
    from mmengine.model import is_model_wrapper
    return runner.model.module if is_model_wrapper(runner.model) else runner.model
