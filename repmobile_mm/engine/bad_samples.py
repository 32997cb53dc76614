"""Data that fails to load: one line naming the sample, or a bounded skip.

A corrupt image otherwise stops a run with a DataLoader worker's traceback, after
however long the run took to reach it. mmengine builds every dataloader through
``Runner.build_dataloader``, before any worker starts (the iteration loop starts its
workers when it is built, before the hooks run), so :func:`guard_dataloaders` wraps
each dataset's pipeline there: a sample whose pipeline fails raises a
:class:`BadSampleError` naming its index and files; in training, with
``skip_bad_samples = dict(max_fraction=...)`` in the config, it is skipped instead
(mmengine's training dataset then loads another sample in its place) and logged,
until a loading process has met more than ``floor(max_fraction * len(dataset))``
distinct bad samples. Each loading process counts what it meets: shuffled anew each
epoch, every process meets every sample over the run, so its count approaches the
run's; within the first epoch a run may skip up to that many in each process.
"""
import logging
import math
from typing import Iterator, Optional

from mmengine.logging import print_log

from ..errors import BadSampleError, ConfigError

FILE_KEYS = ('img_path', 'seg_map_path')  # the files a sample's pipeline reads


def describe_sample(data_info: dict) -> str:
    """``sample 12 (a.png, a_seg.png)``: what a message names."""
    files = [str(data_info[key]) for key in FILE_KEYS if data_info.get(key)]
    where = f'sample {data_info.get("sample_idx", "?")}'
    return f'{where} ({", ".join(files)})' if files else where


def first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return f'{type(err).__name__}: {lines[0]}' if lines else type(err).__name__


class GuardedPipeline:
    """A dataset's pipeline, failing (or skipping, while ``max_skipped`` allows) with
    the failing sample named."""

    def __init__(self, pipeline, max_skipped: Optional[int] = None):
        self.pipeline = pipeline
        self.max_skipped = max_skipped  # None: no skipping
        self.skipped = set()  # sample indices, counted in this process

    def __call__(self, data_info: dict):
        where = describe_sample(data_info)  # before the pipeline changes the dict
        index = data_info.get('sample_idx')
        try:
            return self.pipeline(data_info)
        except Exception as err:
            reason = first_line(err)
            if self.max_skipped is None:
                raise BadSampleError(f'{where} cannot be loaded: {reason}') from err
            self.skipped.add(index)
            if len(self.skipped) > self.max_skipped:
                raise BadSampleError(
                    f'{where} cannot be loaded: {reason}; more than {self.max_skipped} bad '
                    f'samples skipped (skip_bad_samples.max_fraction): stopped') from err
            # an error, not a warning: mmengine's loggers show only errors on ranks > 0
            print_log(f'skipped {where}: {reason} ({len(self.skipped)} of at most '
                      f'{self.max_skipped} skipped)', logger='current', level=logging.ERROR)
            return None  # mmengine's training dataset loads another sample instead


def base_datasets(dataset) -> Iterator:
    """The datasets with a pipeline inside wrapper datasets (Concat, Repeat, ...)."""
    inner = getattr(dataset, 'datasets', None) or [getattr(dataset, 'dataset', None)]
    if hasattr(dataset, 'pipeline'):
        yield dataset
    for child in inner:
        if child is not None:
            yield from base_datasets(child)


def max_skipped(skip_cfg, dataset) -> int:
    fraction = (skip_cfg or {}).get('max_fraction')
    if not isinstance(fraction, (int, float)) or not 0 <= fraction < 1:
        raise ConfigError(f'skip_bad_samples.max_fraction must be a fraction in [0, 1), '
                          f'got {fraction!r}')
    return math.floor(fraction * len(dataset))


def guard_dataset(dataset, max_skip: Optional[int] = None) -> None:
    for base in base_datasets(dataset):
        if not isinstance(base.pipeline, GuardedPipeline):
            base.pipeline = GuardedPipeline(base.pipeline, max_skip)


def guard_dataloaders(runner, skip_bad_samples: Optional[dict] = None) -> None:
    """Guard every dataloader ``runner`` builds; ``skip_bad_samples`` applies to the
    training one."""
    build = runner.build_dataloader

    def build_guarded(dataloader, *args, **kwargs):
        training = dataloader is runner._train_dataloader
        loader = build(dataloader, *args, **kwargs)
        skip = skip_bad_samples is not None and training
        guard_dataset(loader.dataset, max_skipped(skip_bad_samples, loader.dataset)
                      if skip else None)
        return loader

    runner.build_dataloader = build_guarded
