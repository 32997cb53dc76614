"""Fuse a trained checkpoint into its inference form, checked before it is written
(tools/reparameterize_model.py is its command line)."""
import time
from typing import Optional, Tuple

import torch

from ..engine.checkpoint import check_output_path, read_checkpoint, save_atomically
from ..errors import CheckpointError, ConfigError, ExportError
from ..models import fused_copy
from .model_io import (build_model, fits, has_fusable_modules, load_weights, max_difference,
                       state_dict_of, test_input_size)
from .runner import load_config
from .tasks import task_of


def reparameterize_checkpoint(config: str, src: str, dst: str,
                              shape: Optional[Tuple[int, int]] = None, rtol: float = 1e-4,
                              force: bool = False, cfg_options: Optional[dict] = None) -> str:
    """Load ``src`` strictly into the model of ``config``, fuse every module that offers
    switch_to_deploy / reparameterize / fuse, compare both forms on a random input of
    ``shape`` (default: the config's test size) and write the fused weights to ``dst``
    when they agree, with ``src``'s dataset meta (class names, palette).

    ``dst`` is never written over without ``force``, nor left half written. Returns
    the line that says how the forms compared.
    """
    check_output_path(dst, force)  # before any work
    cfg = load_config(config, cfg_options)
    model = build_model(cfg).eval()
    if not has_fusable_modules(model):
        raise ConfigError(f'nothing to fuse: no module of the {type(model).__name__} built by '
                          f'{config} offers switch_to_deploy, reparameterize or fuse')
    checkpoint = read_checkpoint(src)
    state_dict = state_dict_of(checkpoint, src)
    if fits(fused_copy(model), state_dict):
        raise CheckpointError(f'{src} is already fused (deploy form): use it as it is, with '
                              f'the deploy twin of {config} under deploy/')
    load_weights(model, state_dict, src, config)

    start = time.time()
    fused = fused_copy(model)
    height, width = shape or test_input_size(cfg)
    diff, scale = max_difference(model, fused, torch.randn(1, 3, height, width), task_of(cfg))
    report = (f'fused {type(model).__name__} in {time.time() - start:.1f} s; on a random '
              f'1x3x{height}x{width} input the outputs differ by at most {diff:.3g} '
              f'(largest output {scale:.3g}, relative {diff / max(scale, 1e-12):.3g})')
    if not diff <= rtol * scale:
        raise ExportError(f'{report}\nrefusing to write {dst}: the fused model does not '
                          f'reproduce the trained one (relative difference above {rtol:g})')
    meta = dict(fused_from=src, config=config)
    # class names and palette, which the mm inferencers and visualizers read from here
    source_meta = checkpoint.get('meta') if isinstance(checkpoint, dict) else None
    if isinstance(source_meta, dict) and 'dataset_meta' in source_meta:
        meta['dataset_meta'] = source_meta['dataset_meta']
    save_atomically({'state_dict': fused.state_dict(), 'meta': meta}, dst, force)
    return report
