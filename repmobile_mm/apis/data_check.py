"""Load every sample of a config's split before a long run
(tools/analysis_tools/check_dataset.py)."""
import os
from typing import List, Tuple

import torch
from mmengine.config import Config

from ..engine.bad_samples import base_datasets, describe_sample, first_line
from ..errors import ConfigError
from .tasks import task_of

SPLITS = ('train', 'val', 'test')


def build_split_dataset(cfg: Config, split: str):
    """The dataset of ``<split>_dataloader``, built as the runner builds it."""
    from mmengine.registry import DATASETS, init_default_scope

    from .config_checks import check_data_roots, explained_registry_errors
    field = f'{split}_dataloader'
    if split not in SPLITS or not cfg.get(field):
        raise ConfigError(f'the config has no {field} (splits: {", ".join(SPLITS)})')
    check_data_roots(cfg, [field])
    init_default_scope(task_of(cfg).scope)
    with explained_registry_errors(cfg):
        return DATASETS.build(cfg[field].dataset)


class _Probe(torch.utils.data.Dataset):
    """Item ``i``: ``None``, or the line saying why sample ``i`` fails its pipeline."""

    def __init__(self, dataset):
        self.samples = [(base, i) for base in base_datasets(dataset) for i in range(len(base))]

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        base, index = self.samples[i]
        data_info = base.get_data_info(index)
        where = describe_sample(data_info)
        try:
            base.pipeline(data_info)
        except Exception as err:
            return f'{where}: {first_line(err)}'
        return None


def _keep(item):
    return item


def broken_samples(dataset, workers: int = 0, progress: bool = True) -> Tuple[int, List[str]]:
    """Run every sample of ``dataset`` through its pipeline, in ``workers`` processes:
    how many samples there are, and one line per sample that fails."""
    from mmengine.utils import ProgressBar
    probe = _Probe(dataset)
    loader = torch.utils.data.DataLoader(probe, batch_size=None, num_workers=workers,
                                         collate_fn=_keep)
    bar = ProgressBar(len(probe)) if progress else None
    broken = []
    for problem in loader:
        if problem is not None:
            broken.append(problem)
        if bar is not None:
            bar.update()
    return len(probe), broken


def default_workers() -> int:
    return min(8, len(os.sched_getaffinity(0)))
