"""A config's own images for the deployment tools: calibration of int8 models and
evaluation of exported ones with the config's metric.

Shared by tools/deployment/quantize_onnx.py (onnxruntime) and pytorch2executorch.py.
"""
from typing import Callable, Iterator, Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError
from .tasks import task_of


def split_loader(cfg, split: str, limit: Optional[int] = None, seed: int = 0):
    """A split's data through the config's test pipeline: the whole split in the
    config's batches, or ``limit`` images one at a time, drawn with ``seed``."""
    from mmengine.runner import Runner
    loader_cfg = cfg.get(f'{split}_dataloader')
    if loader_cfg is None:
        raise ConfigError(f'the config has no {split}_dataloader to draw images from')
    dataset = dict(loader_cfg.dataset)
    dataset['pipeline'] = cfg.get('test_pipeline') or cfg.val_dataloader.dataset.pipeline
    if limit is None:
        loader = dict(loader_cfg, dataset=dataset, num_workers=0, persistent_workers=False,
                      sampler=dict(type='DefaultSampler', shuffle=False))
    else:
        loader = dict(dataset=dataset, batch_size=1, num_workers=0,
                      sampler=dict(type='DefaultSampler', shuffle=True, seed=seed))
    return Runner.build_dataloader(loader)


def preprocessed(model, loader, limit: Optional[int] = None
                 ) -> Iterator[Tuple[dict, np.ndarray, list]]:
    """``(data_batch, inputs array, data samples)`` of a loader's batches through the
    model's data preprocessor."""
    for i, data_batch in enumerate(loader):
        if limit is not None and i == limit:
            break
        with torch.no_grad():
            data = model.data_preprocessor(data_batch, False)
        yield data_batch, data['inputs'].float().numpy(), data['data_samples']


def evaluate(cfg, model, logits: Callable[[np.ndarray], torch.Tensor]) -> dict:
    """The config's validation metric with ``logits`` (a preprocessed batch -> the
    exported model's logits) and the model's own post-processing (mmpretrain's head,
    mmseg's ``postprocess_result``)."""
    from mmengine.evaluator import Evaluator
    loader = split_loader(cfg, 'val')
    evaluator = Evaluator(cfg.val_evaluator)
    evaluator.dataset_meta = loader.dataset.metainfo
    task, count = task_of(cfg), 0
    for data_batch, inputs, samples in preprocessed(model, loader):
        predictions = task.predictions(model, logits(inputs), samples)
        evaluator.process(data_samples=predictions, data_batch=data_batch)
        count += len(samples)
    return evaluator.evaluate(count)
