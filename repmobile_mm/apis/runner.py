"""Training and testing from a config: loading, CLI merging, :func:`train` and
:func:`evaluate` (tools/train.py and tools/test.py are their command lines).

The config's ``default_scope`` (mmpretrain, mmdet or mmseg) decides the library;
mmengine imports that library's modules when the runner builds them.
"""
import inspect
import os
import os.path as osp
from typing import Optional

import torch
from mmengine.config import Config, DictAction

from ..errors import ConfigError, DeviceError
from .tasks import task_of

# top-level config keys that this package reads (engine/bad_samples.py)
OUR_CONFIG_KEYS = {'skip_bad_samples'}


def load_config(path: str, cfg_options: Optional[dict] = None) -> Config:
    """Load a config with a clear error for a missing file or an unknown override key."""
    if not osp.isfile(path):
        raise ConfigError(f'config file not found: {path}')
    cfg = Config.fromfile(path)
    if cfg_options:
        check_override_keys(cfg, cfg_options)
        cfg.merge_from_dict(cfg_options)
    task_of(cfg, path)  # a known default_scope, or one line saying which are
    return cfg


def check_override_keys(cfg: Config, cfg_options: dict) -> None:
    """Refuse ``--cfg-options`` whose top-level key the config does not have.

    Nested keys may be new (they add arguments), and so may the runner's own
    arguments (``work_dir``, ``load_from``, ...) and ours (``skip_bad_samples``); any
    other new top-level key is a typo that mmengine would ignore silently.
    """
    from mmengine.runner import Runner
    runner_args = set(inspect.signature(Runner.__init__).parameters)
    known = set(cfg.keys()) | runner_args | OUR_CONFIG_KEYS
    unknown = sorted({key.split('.')[0] for key in cfg_options} - known)
    if unknown:
        raise ConfigError(f'--cfg-options: unknown config key(s) {unknown}; the config '
                          f'has {sorted(cfg.keys())}')


def set_work_dir(cfg: Config, config_path: str, work_dir: Optional[str]) -> None:
    if work_dir is not None:
        cfg.work_dir = work_dir
    elif cfg.get('work_dir') is None:
        cfg.work_dir = osp.join('./work_dirs', osp.splitext(osp.basename(config_path))[0])


def apply_library_dataloader_defaults(cfg: Config) -> None:
    """Dataloader defaults that each library's own train.py/test.py adds.

    mmpretrain's tools batch with ``default_collate``; mmdet and mmseg keep
    mmengine's ``pseudo_collate``. Workers persist only when there are some.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        task_of(cfg).dataloader_defaults(loader)
        if loader.get('num_workers', 0) > 0:
            loader.setdefault('persistent_workers', True)


def add_cfg_options(parser) -> None:
    """``--cfg-options key=value ...``, as every OpenMMLab tool takes it."""
    parser.add_argument('--cfg-options', nargs='+', action=DictAction,
                        help='override config entries, key=value')


def add_common_args(parser) -> None:
    """The arguments tools/train.py and tools/test.py share."""
    parser.add_argument('--work-dir', help='where logs (and checkpoints) go')
    add_cfg_options(parser)
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm', 'mpi'],
                        default='none', help='job launcher')
    # torch.distributed.launch passes --local-rank (older: --local_rank); torchrun sets LOCAL_RANK
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)


def config_from_args(args) -> Config:
    """Load the config and apply the shared arguments of ``add_common_args``."""
    os.environ.setdefault('LOCAL_RANK', str(args.local_rank))
    cfg = load_config(args.config, args.cfg_options)
    cfg.launcher = args.launcher
    set_work_dir(cfg, args.config, args.work_dir)
    return cfg


def build_runner(cfg: Config):
    from mmengine.logging import print_log
    from mmengine.registry import RUNNERS
    from mmengine.runner import Runner

    from ..engine.bad_samples import guard_dataloaders
    from ..engine.distributed import bare_model, setup_distributed
    from .config_checks import check_backbone_outputs, explained_registry_errors
    distributed = setup_distributed(cfg)
    hooks = cfg.get('custom_hooks') or []
    ours = [dict(type=name) for name in ('FiniteLossHook', 'PreemptionHook', 'RandomStateHook')
            if not any(hook.get('type') == name for hook in hooks)]
    cfg.custom_hooks = [*hooks, *ours]
    with explained_registry_errors(cfg):
        runner = RUNNERS.build(cfg) if 'runner_type' in cfg else Runner.from_cfg(cfg)
    guard_dataloaders(runner, cfg.get('skip_bad_samples'))
    check_backbone_outputs(bare_model(runner))
    if distributed:
        print_log(distributed, logger='current')
    return runner


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to its AMP twin (ours too: AGC keeps working)."""
    if not torch.cuda.is_available():  # mmengine's AmpOptimWrapper asserts a device
        raise DeviceError('--amp needs a CUDA device (mmengine\'s AmpOptimWrapper scales '
                          'losses with torch.cuda.amp); on CPU, train without --amp')
    wrapper = cfg.optim_wrapper
    amp_types = {'OptimWrapper': 'AmpOptimWrapper', 'AGCOptimWrapper': 'AGCAmpOptimWrapper'}
    current = wrapper.get('type', 'OptimWrapper')
    if current in amp_types.values():
        return
    if current not in amp_types:
        raise ConfigError(f'--amp: no AMP version of optim_wrapper type {current!r}')
    wrapper.type = amp_types[current]
    wrapper.setdefault('loss_scale', 'dynamic')


def name_run(cfg: Config, name: str) -> None:
    """Give a run its own mmengine logger, message hub and visualizer.

    mmengine keys them by name: by default the config's file name and the second the
    run starts, and mmdet's and mmseg's configs name every visualizer ``'visualizer'``,
    so a second run in one process would log, count and draw into the first one's.
    """
    cfg.experiment_name = name
    if isinstance(cfg.get('visualizer'), dict):
        cfg.visualizer.name = name


def train(cfg: Config, validate: bool = True, resume: Optional[str] = None,
          amp: bool = False, auto_scale_lr: bool = False):
    """Train the model of ``cfg`` into ``cfg.work_dir``; returns the runner.

    ``resume``: a checkpoint, or ``'auto'`` for the latest one in the work dir.
    """
    from ..engine.checkpoint import (read_checkpoint, readable_latest_checkpoint,
                                     write_checkpoints_atomically)
    from ..engine.hooks import PreemptionHook
    from .config_checks import check_data_roots, explained_registry_errors
    if not validate:
        cfg.val_cfg = cfg.val_dataloader = cfg.val_evaluator = None
    if amp:
        enable_amp(cfg)
    warning = None
    if resume == 'auto':  # mmengine's own search would take a truncated last checkpoint
        cfg.load_from, warning = readable_latest_checkpoint(cfg.work_dir)
        cfg.resume = True
    elif resume is not None:
        read_checkpoint(resume)  # a missing, broken or unsafe file: one line, now
        cfg.resume, cfg.load_from = True, resume
    if auto_scale_lr:
        cfg.auto_scale_lr.enable = True
    apply_library_dataloader_defaults(cfg)
    check_data_roots(cfg, ['train_dataloader'] + (['val_dataloader'] if cfg.get('val_cfg')
                                                  is not None else []))
    write_checkpoints_atomically()
    runner = build_runner(cfg)
    if warning:  # in the run's log
        runner.logger.warning(warning)
    try:
        with explained_registry_errors(cfg):  # datasets, transforms and hooks build here
            runner.train()
    finally:  # a run stopped by an exception leaves the process its signal handlers
        for hook in runner.hooks:
            if isinstance(hook, PreemptionHook):
                hook.restore_signals()
        stop_loader_workers(runner)
    return runner


def stop_loader_workers(runner) -> None:
    """End the worker processes of the run's data loaders now, as its loops ended.

    Persistent workers, and those of an iteration loop's endless iterator, live as long
    as their loader; the runner sits in reference cycles, so the loader goes only when
    the garbage collector finds it, and torch's shutdown from there waited out its
    5-second join for each loader: the next runner in the process (the demo's next
    stage, the next test) paid it. The iterators are torch's and mmengine's own
    (private) attributes; shutting down twice is a no-op.
    """
    for name in ('_train_loop', '_val_loop', '_test_loop'):
        loop = getattr(runner, name, None)
        for holder in (getattr(loop, 'dataloader', None),
                       getattr(loop, 'dataloader_iterator', None)):  # IterBasedTrainLoop
            iterator = getattr(holder, '_iterator', None)
            if hasattr(iterator, '_shutdown_workers'):
                iterator._shutdown_workers()


def evaluate(cfg: Config, checkpoint: str, dump: Optional[str] = None,
             amp: bool = False) -> dict:
    """Score ``checkpoint`` on the test split of ``cfg``; returns the metrics as floats.

    The checkpoint is loaded strictly, unlike the runner's own loading: a checkpoint of
    another model fails with the differing keys named instead of scoring at chance level.
    ``dump``: also write every image's prediction to this pickle (mmengine's DumpResults).
    """
    from ..engine.distributed import bare_model
    from .config_checks import check_data_roots, explained_registry_errors
    from .model_io import load_weights, read_state_dict
    if dump and not dump.endswith(('.pkl', '.pickle')):
        raise ConfigError(f'--dump writes a pickle: name it .pkl, not {dump}')
    state_dict = read_state_dict(checkpoint)
    if amp:
        cfg.test_cfg.fp16 = True
    apply_library_dataloader_defaults(cfg)
    if dump:
        evaluators = cfg.test_evaluator if isinstance(cfg.test_evaluator, list) else [
            cfg.test_evaluator]
        cfg.test_evaluator = [*evaluators, dict(type='DumpResults', out_file_path=dump)]
    runner = build_runner(cfg)
    load_weights(bare_model(runner), state_dict, checkpoint, cfg.filename)
    check_data_roots(cfg, ['test_dataloader'])
    try:
        with explained_registry_errors(cfg):  # datasets, transforms and metrics build here
            metrics = runner.test()
    finally:
        stop_loader_workers(runner)
    return {key: float(value) for key, value in metrics.items()}
