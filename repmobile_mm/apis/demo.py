"""The demo's journeys through the package API, in one process (tools/demo.py is its
command line, ``make demo`` runs it from the repository root).

1. Backbones: build the published classifiers, fuse them, check and time both forms.
2. Each task on data made or shipped here: write the data if missing, train, test,
   fuse, test the fused checkpoint with the deploy twin of the config, draw the fused
   model's predictions with the library's own inferencer, and time both forms. A
   journey's backbone may start from an earlier journey's checkpoint (RepMobile-S:
   digits, then scenes, then shapes), as published recipes start from ImageNet.

Each stage's output (mmengine's log, warnings) goes to a log file in its run's work
dir; the console shows a progress bar per stage and the result tables.
"""
import copy
import gc
import json
import os
import os.path as osp
import re
import shutil
import sys
import time
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ..errors import DemoFloorError, ExportError
from ..models import RepMobileNet, RepNeXtNet, RepViTNet, fused_copy
from ..utils import (count_macs, count_params, interleaved_latency, randomize_batchnorm,
                     relative_difference)
from .data import export_digits, make_scenes, make_shapes
from .fusion import reparameterize_checkpoint
from .model_io import build_model, load_weights, read_state_dict
from .pictures import draw_predictions
from .runner import evaluate, load_config, name_run, train
from .tasks import task_of


@dataclass
class Journey:
    title: str
    config: str
    deploy_config: str
    data_root: str  # exists once the data is written
    make_data: Callable[[], object]
    metrics: Dict[str, str]  # metric key -> column title
    latency_shape: Tuple[int, int]
    images: str  # glob of held-out images for the picture
    # metric key -> the lowest result a user can trust the journey at (make demo stops
    # below it); shorter schedules miss them (docs/benchmarks.md)
    floors: Dict[str, float]
    # the journey whose trained checkpoint the backbone starts from (the config's
    # Pretrained init_cfg, pointed at that run), as published recipes start from ImageNet
    backbone_from: Optional[str] = None


@dataclass
class JourneyReport:
    """A journey's lines of the demo's summary, each floor its result missed (the
    journey, the metric, its value and the floor: the demo's one-line stop names them),
    and its trained checkpoint (where a later journey's backbone starts)."""
    lines: List[str]
    missed: List[str]
    checkpoint: str = ''


def digits(title: str, family: str, variant: str) -> Journey:
    return Journey(
        f'Classification: {title} on scikit-learn digits (real data, 360 held out)',
        f'classification/configs/{family}/{variant}_1xb64_digits.py',
        f'classification/configs/{family}/deploy/{variant}-deploy_1xb64_digits.py',
        'data/digits/val', partial(export_digits, 'data/digits'),
        {'accuracy/top1': 'top-1 %'}, (32, 32), 'data/digits/val/*/*.png',
        {'accuracy/top1': 98.3})


# RepMobile-S's backbone goes through a chain, each run starting from the one before:
# digits, scenes (Semantic FPN), shapes (Mask R-CNN); from scratch, the dense runs
# need 1.7 (scenes) and 2 (shapes) times the iterations to meet their floors
# (docs/benchmarks.md)
JOURNEYS = {
    'classification': digits('RepMobile-S', 'repmobile', 'repmobile-s'),
    'classification-repvit': digits('RepViT-M0.9', 'repvit', 'repvit-m0.9'),
    'classification-repnext': digits('RepNeXt-M1', 'repnext', 'repnext-m1'),
    'segmentation': Journey(
        'Semantic segmentation: Semantic FPN RepMobile-S on generated scenes',
        'segmentation/configs/repmobile/fpn_repmobile-s_digits-pre_1xb8-700i_scenes-128x128.py',
        'segmentation/configs/repmobile/deploy/'
        'fpn_repmobile-s-deploy_digits-pre_1xb8-700i_scenes-128x128.py',
        'data/scenes/images/validation', partial(make_scenes, 'data/scenes'),
        {'mIoU': 'mIoU %'}, (128, 128), 'data/scenes/images/validation/*.jpg',
        {'mIoU': 50.0}, backbone_from='classification'),
    'detection': Journey(
        'Detection + instance segmentation: Mask R-CNN RepMobile-S on generated shapes',
        'detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_scenes-pre_1xb8-450i_shapes.py',
        'detection/configs/repmobile/deploy/'
        'mask-rcnn_repmobile-s-deploy_fpn_scenes-pre_1xb8-450i_shapes.py',
        'data/shapes/val2017', partial(make_shapes, 'data/shapes'),
        {'coco/bbox_mAP': 'box AP', 'coco/segm_mAP': 'mask AP'}, (128, 128),
        'data/shapes/val2017/*.jpg', {'coco/bbox_mAP': 0.30}, backbone_from='segmentation'),
}

CHECK_SIZES = [(224, 224), (67, 45), (33, 97)]
# published classifiers (1000 classes) shown in the backbone table
BACKBONES = {
    'RepMobile-S': partial(RepMobileNet, 'S'),
    'RepMobile-M': partial(RepMobileNet, 'M'),
    'RepMobile-L': partial(RepMobileNet, 'L'),
    'RepViT-M0.9': partial(RepViTNet, 'm0_9'),
    'RepNeXt-M1': partial(RepNeXtNet, 'm1'),
}
DEFAULT_BACKBONES = ['RepMobile-S', 'RepViT-M0.9', 'RepNeXt-M1']


def max_relative_difference(model, dtype):
    """Largest |deploy - training| over the check sizes, relative to the largest logit.

    The model is cast before fusing, so the fold runs on the weights it is compared with.
    """
    model = copy.deepcopy(model).to(dtype)
    fused = fused_copy(model)
    worst = 0.0
    with torch.no_grad():
        for height, width in CHECK_SIZES:
            x = torch.randn(2, 3, height, width, dtype=dtype)
            worst = max(worst, relative_difference(model(x), fused(x)))
    return worst


def backbone_table(names: Sequence[str], rounds: int = 10) -> List[str]:
    """Print (and return) one row per published classifier: both forms' size, cost,
    agreement in float32 and float64, and latency; a float64 difference above 1e-8
    raises."""
    print(f'Training form vs fused deploy form ({torch.get_num_threads()} CPU '
          'threads, 1000 classes, eval mode, randomized BatchNorm statistics)')
    header = (f"{'variant':<12} {'params train/deploy':>20} {'MACs train/deploy':>18} "
              f"{'max rel diff fp32/fp64':>23} {'latency b1 train/deploy':>24} {'speed-up':>8}")
    rows = [header, '-' * len(header)]
    print('\n'.join(rows))
    for name in names:
        torch.manual_seed(0)
        model = randomize_batchnorm(BACKBONES[name]()).eval()
        fused = fused_copy(model)
        diff32 = max_relative_difference(model, torch.float32)
        diff64 = max_relative_difference(model, torch.float64)
        latency = interleaved_latency({'train': model, 'deploy': fused},
                                      torch.randn(1, 3, 224, 224), rounds=rounds, calls=3)
        rows.append(
            f'{name:<12} {count_params(model) / 1e6:>9.2f}M /{count_params(fused) / 1e6:>6.2f}M '
            f'{count_macs(model) / 1e9:>9.3f}G /{count_macs(fused) / 1e9:>6.3f}G '
            f'{diff32:>13.1e} /{diff64:>8.1e} '
            f"{latency['train']:>12.1f} ms /{latency['deploy']:>6.1f} ms "
            f"{latency['train'] / latency['deploy']:>7.2f}x")
        print(rows[-1], flush=True)
        if diff64 > 1e-8:
            raise ExportError(f'{name}: the deploy form differs from the training form by '
                              f'{diff64:.2e} in float64')
    return rows


class StageProgress:
    """One console line per stage: a bar redrawn in place on a terminal; in a log
    (no terminal) a line every quarter, so that CI output stays short."""
    width = 30

    def __init__(self, title: str, console=None):
        self.title, self.start, self.shown = title, time.time(), -1
        self.console = console or sys.stdout
        self.tty = self.console.isatty()
        self.update(0.0)

    def update(self, fraction: float):
        fraction = min(max(fraction, 0.0), 1.0)
        step = int(fraction * 100) if self.tty else int(fraction * 4) * 25
        if step == self.shown or (not self.tty and step in (0, 100)):
            return  # a log shows the quarters between start and end only
        self.shown = step
        filled = int(self.width * fraction)
        line = (f'  {self.title:<24} [{"#" * filled}{"." * (self.width - filled)}] '
                f'{100 * fraction:3.0f}%  {time.time() - self.start:4.0f} s')
        print('\r' + line if self.tty else line, end='' if self.tty else '\n', flush=True,
              file=self.console)

    def finish(self, note: str):
        if self.tty:
            print('\r' + ' ' * (self.width + 45), end='\r', file=self.console)
        print(f'  {self.title:<24} done in {time.time() - self.start:4.0f} s  {note}',
              flush=True, file=self.console)


def mmengine_progress(total_epochs: Optional[int] = None) -> Callable[[str], Optional[float]]:
    """Reads progress from mmengine's log lines: ``Epoch(train) [e][i/n]`` (with the
    run's epoch count), ``Iter(train) [i/n]``, ``Epoch(test) [i/n]``."""
    epoch_line = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
    iter_line = re.compile(r'(?:Iter\(train\)|Epoch\(test\))\s*\[\s*(\d+)/(\d+)\]')

    def parse(text: str) -> Optional[float]:
        match = epoch_line.search(text)
        if match and total_epochs:
            epoch, i, n = map(int, match.groups())
            return ((epoch - 1) + i / n) / total_epochs
        match = iter_line.search(text)
        if match:
            i, n = map(int, match.groups())
            return i / n
        return None
    return parse


class StageLog:
    """A text stream that appends to a log file and moves a progress bar.

    Opened for each write: mmengine's loggers keep the stream they were made with,
    and may write to it after the stage has ended.
    """

    def __init__(self, path: str, bar: StageProgress, progress=None):
        self.path, self.bar, self.progress = path, bar, progress

    def write(self, text: str) -> int:
        with open(self.path, 'a') as f:
            f.write(text)
        fraction = self.progress(text) if self.progress else None
        if fraction is not None:
            self.bar.update(fraction)
        return len(text)

    def flush(self):
        pass

    def isatty(self) -> bool:
        return False


@contextmanager
def stage(title: str, log: str, progress=None) -> Iterator[None]:
    """Run a stage with its output in ``log`` and a progress bar on the console; on
    failure, show the end of the log and its path before the error."""
    bar = StageProgress(title)
    with open(log, 'w'):
        pass
    try:
        with redirect_stdout(StageLog(log, bar, progress)), \
                redirect_stderr(StageLog(log, bar)):
            yield
    except BaseException:
        with open(log) as f:
            tail = f.readlines()[-25:]
        print(f'\n{"".join(tail)}\n{title} failed; full output: {log}', flush=True)
        raise
    bar.update(1.0)
    bar.finish(f'log: {log}')


def load_trained(config: str, checkpoint: str, cfg_options: Optional[dict] = None):
    model = build_model(load_config(config, cfg_options)).eval()
    load_weights(model, read_state_dict(checkpoint), checkpoint, config)
    return model


def schedule(cfg) -> str:
    """``450 iterations`` or ``6 epochs``: the training loop's length."""
    loop = cfg.train_cfg
    count, unit = (loop.max_iters, 'iteration') if loop.get('max_iters') else \
        (loop.max_epochs, 'epoch')
    return f'{count} {unit}{"s" if count != 1 else ""}'


def run_journey(journey: Journey, work_dir: str, picture: str,
                cfg_options: Optional[dict] = None,
                backbone_checkpoint: Optional[str] = None) -> JourneyReport:
    """Data, train, test, fuse, test the fused checkpoint, picture; its report.

    ``cfg_options``: overrides of both configs (``--cfg-options``), e.g. a shorter
    schedule or another data root. ``backbone_checkpoint``: where training starts the
    backbone (the report's checkpoint of ``journey.backbone_from``). Raises when the
    fused checkpoint scores differently from the trained one.
    """
    print(f'\n== {journey.title} ==', flush=True)
    shutil.rmtree(work_dir, ignore_errors=True)
    os.makedirs(work_dir)
    name = osp.basename(work_dir)
    if not osp.isdir(journey.data_root):
        with stage('data', osp.join(work_dir, 'data.log')):
            journey.make_data()
    cfg = load_config(journey.config, cfg_options)
    cfg.work_dir = work_dir
    if backbone_checkpoint:
        cfg.model.backbone.init_cfg = dict(type='Pretrained', checkpoint=backbone_checkpoint,
                                           prefix='backbone.')
    name_run(cfg, f'{name}_train')
    trained = schedule(cfg)
    start = time.time()
    # no validation at the end of training: the checkpoint is scored next
    with stage('train', osp.join(work_dir, 'train.log'),
               mmengine_progress(cfg.train_cfg.get('max_epochs'))):
        runner = train(cfg, validate=False)
    checkpoint = runner.message_hub.get_info('last_ckpt')  # set by CheckpointHook
    del runner
    gc.collect()  # the runner's model and optimizer (it sits in reference cycles)
    train_time = time.time() - start
    fused = osp.join(work_dir, 'fused.pth')
    with stage('fuse', osp.join(work_dir, 'fuse.log')):
        print(reparameterize_checkpoint(journey.config, checkpoint, fused,
                                        cfg_options=cfg_options))
    results = {}
    for form, config, ckpt in (('training', journey.config, checkpoint),
                               ('fused', journey.deploy_config, fused)):
        cfg = load_config(config, cfg_options)
        cfg.work_dir = osp.join(work_dir, f'test_{form}')
        name_run(cfg, f'{name}_test_{form}')
        with stage(f'test ({form})', osp.join(work_dir, f'test_{form}.log'), mmengine_progress()):
            results[form] = evaluate(cfg, ckpt)
        with open(osp.join(work_dir, f'test_{form}.json'), 'w') as f:
            json.dump(results[form], f, indent=2)
    with stage('picture (inferencer)', osp.join(work_dir, 'picture.log')):
        draw_predictions(journey.deploy_config, fused, [journey.images], picture,
                         title=journey.title, force=True, cfg_options=cfg_options)
    height, width = journey.latency_shape
    with stage('latency', osp.join(work_dir, 'latency.log')):
        models = {'training': load_trained(journey.config, checkpoint, cfg_options),
                  'fused': load_trained(journey.deploy_config, fused, cfg_options)}
        task = task_of(load_config(journey.config, cfg_options))
        latency = interleaved_latency({form: task.comparable(m) for form, m in models.items()},
                                      torch.randn(1, 3, height, width), rounds=10, calls=2)

    lines = [journey.title,
             f'  trained {trained} in {train_time:.0f} s; whole task '
             f'{time.time() - start:.0f} s; picture {picture}',
             f"  {'form':<9}" + ''.join(f'{title:>10}' for title in journey.metrics.values()) +
             f"{'params':>9}{f'latency b1 {height}x{width} ({task.parts})':>37}"]
    for form in ('training', 'fused'):
        lines.append(f'  {form:<9}' + ''.join(f'{results[form][key]:>10.3f}'
                                              for key in journey.metrics)
                     + f'{count_params(models[form]) / 1e6:>8.2f}M{latency[form]:>34.1f} ms')
    missed = []
    for key, floor in journey.floors.items():
        value, metric = results['training'][key], journey.metrics[key]
        lines.append(f'  floor: {metric} >= {floor:g}: {"met" if value >= floor else "NOT MET"}')
        if value < floor:
            missed.append(f'{journey.title}: {metric} {value:.3f} < {floor:g}')
    print('\n'.join(lines), flush=True)
    if results['training'] != results['fused']:
        raise ExportError(f'{journey.title}: the fused checkpoint scores differently')
    return JourneyReport(lines, missed, checkpoint)


def with_backbone_sources(names: Sequence[str]) -> List[str]:
    """``names`` in the order of JOURNEYS, with each journey its backbone starts from."""
    wanted, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in wanted:
            wanted.add(name)
            todo += [JOURNEYS[name].backbone_from] if JOURNEYS[name].backbone_from else []
    return [name for name in JOURNEYS if name in wanted]


def run_demo(backbones: Sequence[str] = DEFAULT_BACKBONES, rounds: int = 10,
             journeys: Sequence[str] = tuple(JOURNEYS), work_dir: str = 'work_dirs/demo'):
    """The backbone table, then each journey (and the journeys their backbones start
    from); prints a summary, the floors and the total time, and raises when a result is
    below its floor."""
    start = time.time()
    backbone_table(backbones, rounds)
    names = with_backbone_sources(journeys)
    if set(names) != set(journeys):
        print('\nalso running ' + ', '.join(sorted(set(names) - set(journeys))) +
              ': the backbones of the journeys asked for start from them')
    trained = {}
    for name in names:
        source = JOURNEYS[name].backbone_from
        trained[name] = run_journey(JOURNEYS[name], osp.join(work_dir, name),
                                    osp.join(work_dir, f'{name}.png'),
                                    backbone_checkpoint=source and trained[source].checkpoint)
    reports = list(trained.values())
    summary = [line for report in reports for line in report.lines]
    if summary:
        print('\n== Summary ==\n' + '\n'.join(summary))
    print(f'demo finished in {time.time() - start:.0f} s '
          f'({time.strftime("%Y-%m-%d")}, {os.cpu_count()} CPU cores)')
    missed = [floor for report in reports for floor in report.missed]
    if missed:
        raise DemoFloorError(f'results below their floors: {"; ".join(missed)}')
