"""Building a config's model and loading checkpoints into it, with clear errors.

Shared by tools/reparameterize_model.py, tools/analysis_tools/get_flops.py and
the deployment tools.
"""
import copy
from typing import Optional, Sequence, Tuple

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from ..engine.checkpoint import read_checkpoint
from ..errors import CheckpointError, CheckpointFormError
from ..models.utils.fuse import FUSE_METHODS
from .config_checks import check_backbone_outputs, explained_registry_errors
from .tasks import Task, task_of

DEFAULT_TEST_SIZE = (224, 224)


def build_model(cfg: Config) -> nn.Module:
    """Build ``cfg.model`` in the library that the config's ``default_scope`` names."""
    task = task_of(cfg)
    init_default_scope(task.scope)
    registry = task.registry()
    model_cfg = copy.deepcopy(cfg.model)
    if cfg.get('data_preprocessor') is not None:
        model_cfg.setdefault('data_preprocessor', cfg.data_preprocessor)
    with explained_registry_errors(cfg):
        model = registry.build(model_cfg)
    check_backbone_outputs(model)
    return model


def read_state_dict(path: str) -> dict:
    """The model weights of a checkpoint file (mmengine's ``state_dict`` or a bare dict)."""
    return state_dict_of(read_checkpoint(path), path)


def state_dict_of(checkpoint, path: str) -> dict:
    """The model weights in a loaded checkpoint (read from ``path``)."""
    if isinstance(checkpoint, dict) and isinstance(checkpoint.get('state_dict'), dict):
        return checkpoint['state_dict']
    if isinstance(checkpoint, dict) and all(torch.is_tensor(v) for v in checkpoint.values()):
        return checkpoint
    raise CheckpointError(f'{path} holds no model weights (expected a dict with a '
                          "'state_dict' entry, or a dict of tensors)")


def describe_mismatch(model: nn.Module, state_dict: dict, limit: int = 5) -> str:
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f'{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}'
              for k, v in own.items() if k in state_dict and state_dict[k].shape != v.shape]
    parts = []
    for name, items in (('missing', missing), ('unexpected', unexpected),
                        ('shape mismatch (checkpoint vs model)', shapes)):
        if items:
            more = f' and {len(items) - limit} more' if len(items) > limit else ''
            parts.append(f"{len(items)} {name}: {', '.join(items[:limit])}{more}")
    return '; '.join(parts)


def load_weights(model: nn.Module, state_dict: dict, checkpoint: str, config: str) -> None:
    """Load strictly; on mismatch, say which keys and shapes differ (not a deep traceback)."""
    try:
        model.load_state_dict(state_dict, strict=True)
    except CheckpointFormError as err:
        raise CheckpointFormError(f'{checkpoint}: {err}') from None
    except RuntimeError:
        raise CheckpointError(f'{checkpoint} does not fit the model of {config} (another '
                              f'architecture or number of classes?): '
                              f'{describe_mismatch(model, state_dict)}') from None


def fits(model: nn.Module, state_dict: dict) -> bool:
    """Whether ``state_dict`` loads strictly into ``model`` (which is left unchanged)."""
    try:
        copy.deepcopy(model).load_state_dict(state_dict, strict=True)
    except RuntimeError:
        return False
    return True


def has_fusable_modules(model: nn.Module) -> bool:
    return any(callable(getattr(m, name, None)) for m in model.modules() for name in FUSE_METHODS)


def test_input_size(cfg: Config, default: Optional[Tuple[int, int]] = DEFAULT_TEST_SIZE
                    ) -> Optional[Tuple[int, int]]:
    """(H, W) of the test images, from the test pipeline's crop or resize step;
    ``default`` where it has none (the images keep their own size)."""
    pipeline = cfg.get('test_pipeline') or cfg.get('test_dataloader', {}).get(
        'dataset', {}).get('pipeline', [])
    size = None
    for step in pipeline:
        for key in ('crop_size', 'scale'):
            value = step.get(key) if isinstance(step, dict) else None
            if value is not None:
                size = value
    if size is None:
        return default
    if isinstance(size, int):
        return size, size
    width, height = size  # mm pipelines give (w, h)
    return height, width


def flatten_outputs(outputs) -> Sequence[torch.Tensor]:
    if torch.is_tensor(outputs):
        return [outputs]
    if isinstance(outputs, dict):
        outputs = list(outputs.values())
    return [t for item in outputs for t in flatten_outputs(item)]


@torch.no_grad()
def max_difference(model_a: nn.Module, model_b: nn.Module, inputs: torch.Tensor,
                   task: Task) -> Tuple[float, float]:
    """Largest absolute difference of the two models' outputs (what ``task`` compares)
    and the outputs' largest magnitude."""
    outs_a = flatten_outputs(task.comparable(model_a)(inputs))
    outs_b = flatten_outputs(task.comparable(model_b)(inputs))
    diff = max((a.double() - b.double()).abs().max().item() for a, b in zip(outs_a, outs_b))
    scale = max(a.double().abs().max().item() for a in outs_a)
    return diff, scale
