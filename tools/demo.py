"""`make demo`: the journeys of the suite on this machine (2 CPU cores are enough).

1. Backbones: build RepMobile-S, RepViT-M0.9 and RepNeXt-M1 (``--backbones`` adds
   RepMobile-M and -L), fuse them, check and time both forms.
2. Each task on data made or shipped here: classification on scikit-learn's
   handwritten digits (RepMobile-S, RepViT-M0.9 and RepNeXt-M1), Mask R-CNN on generated
   shapes (COCO format) and Semantic FPN on generated scenes (ADE20K layout) with
   RepMobile-S. These small runs store their weights channels-last (ChannelsLastHook),
   which on CPU trains RepNeXt in half the time and computes the same.
   For each: write the data if missing, train
   with tools/train.py, test with tools/test.py, fuse with
   tools/reparameterize_model.py, test the fused checkpoint with the deploy twin of
   the config, print both results side by side, and draw the fused model's
   predictions with the library's own inferencer into one picture.

The console shows a progress bar per stage and the result tables; each tool's full
output goes to a log file in its run's work dir, named as the stage ends.
"""
import argparse
import copy
import json
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import partial
from typing import Callable, Dict, Optional, Tuple

import torch

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.model_io import build_model, load_weights, read_state_dict
from repmobile_mm.apis.runner import load_config
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.models import RepMobileNet, RepNeXtNet, RepViTNet, fused_copy
from repmobile_mm.utils import (count_macs, count_params, interleaved_latency, randomize_batchnorm,
                                relative_difference)

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


@dataclass
class Task:
    title: str
    config: str
    deploy_config: str
    checkpoint: str  # file name the training run ends with
    data_check: str  # a path that exists once the data is written
    data_tool: Tuple[str, ...]
    metrics: Dict[str, str]  # metric key -> column title
    latency_shape: Tuple[int, int]
    images: str  # glob of held-out images for the picture


TASKS = {
    'classification': Task(
        'Classification: RepMobile-S on scikit-learn digits (real data, 360 held out)',
        'classification/configs/repmobile/repmobile-s_1xb64_digits.py',
        'classification/configs/repmobile/deploy/repmobile-s-deploy_1xb64_digits.py',
        'epoch_12.pth', 'data/digits/val', ('tools/dataset_converters/export_digits.py',),
        {'accuracy/top1': 'top-1 %'}, (32, 32), 'data/digits/val/*/*.png'),
    'classification-repvit': Task(
        'Classification: RepViT-M0.9 on scikit-learn digits (the same data and schedule)',
        'classification/configs/repvit/repvit-m0.9_1xb64_digits.py',
        'classification/configs/repvit/deploy/repvit-m0.9-deploy_1xb64_digits.py',
        'epoch_12.pth', 'data/digits/val', ('tools/dataset_converters/export_digits.py',),
        {'accuracy/top1': 'top-1 %'}, (32, 32), 'data/digits/val/*/*.png'),
    'classification-repnext': Task(
        'Classification: RepNeXt-M1 on scikit-learn digits (the same data and schedule)',
        'classification/configs/repnext/repnext-m1_1xb64_digits.py',
        'classification/configs/repnext/deploy/repnext-m1-deploy_1xb64_digits.py',
        'epoch_12.pth', 'data/digits/val', ('tools/dataset_converters/export_digits.py',),
        {'accuracy/top1': 'top-1 %'}, (32, 32), 'data/digits/val/*/*.png'),
    'detection': Task(
        'Detection + instance segmentation: Mask R-CNN RepMobile-S on generated shapes',
        'detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py',
        'detection/configs/repmobile/deploy/mask-rcnn_repmobile-s-deploy_fpn_1xb8-900i_shapes.py',
        'iter_900.pth', 'data/shapes/val2017', ('tools/dataset_converters/make_shapes.py',),
        {'coco/bbox_mAP': 'box AP', 'coco/segm_mAP': 'mask AP'}, (128, 128),
        'data/shapes/val2017/*.jpg'),
    'segmentation': Task(
        'Semantic segmentation: Semantic FPN RepMobile-S on generated scenes',
        'segmentation/configs/repmobile/fpn_repmobile-s_1xb8-1000i_scenes-128x128.py',
        'segmentation/configs/repmobile/deploy/fpn_repmobile-s-deploy_1xb8-1000i_scenes-128x128.py',
        'iter_1000.pth', 'data/scenes/images/validation',
        ('tools/dataset_converters/make_scenes.py',), {'mIoU': 'mIoU %'}, (128, 128),
        'data/scenes/images/validation/*.jpg'),
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
DEFAULT_TASKS = list(TASKS)


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
            a, b = model(x), fused(x)
            worst = max(worst, relative_difference(a, b))
    return worst


def backbone_demo(args):
    print(f'Training form vs fused deploy form ({torch.get_num_threads()} CPU '
          'threads, 1000 classes, eval mode, randomized BatchNorm statistics)')
    header = (f"{'variant':<12} {'params train/deploy':>20} {'MACs train/deploy':>18} "
              f"{'max rel diff fp32/fp64':>23} {'latency b1 train/deploy':>24} {'speed-up':>8}")
    print(header)
    print('-' * len(header))
    for name in args.backbones:
        torch.manual_seed(0)
        model = randomize_batchnorm(BACKBONES[name]()).eval()
        fused = fused_copy(model)
        diff32 = max_relative_difference(model, torch.float32)
        diff64 = max_relative_difference(model, torch.float64)
        latency = interleaved_latency({'train': model, 'deploy': fused},
                                      torch.randn(1, 3, 224, 224), rounds=args.rounds, calls=3)
        print(f'{name:<12} {count_params(model) / 1e6:>9.2f}M /{count_params(fused) / 1e6:>6.2f}M '
              f'{count_macs(model) / 1e9:>9.3f}G /{count_macs(fused) / 1e9:>6.3f}G '
              f'{diff32:>13.1e} /{diff64:>8.1e} '
              f"{latency['train']:>12.1f} ms /{latency['deploy']:>6.1f} ms "
              f"{latency['train'] / latency['deploy']:>7.2f}x", flush=True)
        if diff64 > 1e-8:
            raise SystemExit(f'{name}: the deploy form differs from the training '
                             f'form by {diff64:.2e} in float64')


class StageProgress:
    """One console line per stage: a bar redrawn in place on a terminal; in a log
    (no terminal) a line every quarter, so that CI output stays short."""
    width = 30

    def __init__(self, title: str):
        self.title, self.start, self.shown = title, time.time(), -1
        self.tty = sys.stdout.isatty()
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
        print('\r' + line if self.tty else line, end='' if self.tty else '\n', flush=True)

    def finish(self, note: str):
        if self.tty:
            print('\r' + ' ' * (self.width + 45), end='\r')
        print(f'  {self.title:<24} done in {time.time() - self.start:4.0f} s  {note}',
              flush=True)


def mmengine_progress(total_epochs: Optional[int] = None) -> Callable[[str], Optional[float]]:
    """Reads progress from mmengine's log lines: ``Epoch(train) [e][i/n]`` (with the
    run's epoch count), ``Iter(train) [i/n]``, ``Epoch(test) [i/n]``."""
    epoch_line = re.compile(r'Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]')
    iter_line = re.compile(r'(?:Iter\(train\)|Epoch\(test\))\s*\[\s*(\d+)/(\d+)\]')

    def parse(line: str) -> Optional[float]:
        match = epoch_line.search(line)
        if match and total_epochs:
            epoch, i, n = map(int, match.groups())
            return ((epoch - 1) + i / n) / total_epochs
        match = iter_line.search(line)
        if match:
            i, n = map(int, match.groups())
            return i / n
        return None
    return parse


def run_tool(title: str, log: str, *args, progress=None):
    """Run one of the repository's tools as a user would, its whole output into ``log``,
    a progress bar on the console; on failure, the end of the log and its path."""
    bar = StageProgress(title)
    with open(osp.join(ROOT, log), 'w', buffering=1) as out:  # line by line, to follow it
        out.write('$ python ' + ' '.join(args) + '\n')
        process = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in process.stdout:
            out.write(line)
            fraction = progress(line) if progress else None
            if fraction is not None:
                bar.update(fraction)
        code = process.wait()
    if code:
        with open(osp.join(ROOT, log)) as f:
            tail = f.readlines()[-25:]
        print(f'\n{"".join(tail)}', flush=True)
        raise SystemExit(f'{title} failed (exit {code}); full output: {log}')
    bar.update(1.0)
    bar.finish(f'log: {log}')


def load_trained(config, checkpoint):
    model = build_model(load_config(osp.join(ROOT, config))).eval()
    load_weights(model, read_state_dict(osp.join(ROOT, checkpoint)), checkpoint, config)
    return model


def task_demo(task: Task, work_dir: str, picture_dir: str, name: str):
    """Data, train, test, fuse, test the fused checkpoint, picture; the summary lines."""
    print(f'\n== {task.title} ==', flush=True)
    shutil.rmtree(osp.join(ROOT, work_dir), ignore_errors=True)
    os.makedirs(osp.join(ROOT, work_dir))
    if not osp.isdir(osp.join(ROOT, task.data_check)):
        run_tool('data', osp.join(work_dir, 'data.log'), *task.data_tool)
    cfg = load_config(osp.join(ROOT, task.config))
    start = time.time()
    # no validation at the end of training: tools/test.py scores the checkpoint next
    run_tool('train', osp.join(work_dir, 'train.log'), 'tools/train.py', task.config,
             '--work-dir', work_dir, '--no-validate',
             progress=mmengine_progress(cfg.train_cfg.get('max_epochs')))
    train_time = time.time() - start
    checkpoint = osp.join(work_dir, task.checkpoint)
    fused = osp.join(work_dir, 'fused.pth')
    run_tool('fuse', osp.join(work_dir, 'fuse.log'), 'tools/reparameterize_model.py',
             task.config, checkpoint, fused)
    results = {}
    for form, config, ckpt in (('training', task.config, checkpoint),
                               ('fused', task.deploy_config, fused)):
        out = osp.join(work_dir, f'test_{form}.json')
        run_tool(f'test ({form})', osp.join(work_dir, f'test_{form}.log'), 'tools/test.py',
                 config, ckpt, '--work-dir', osp.join(work_dir, f'test_{form}'), '--out', out,
                 progress=mmengine_progress())
        with open(osp.join(ROOT, out)) as f:
            results[form] = json.load(f)
    picture = osp.join(picture_dir, f'{name}.png')
    run_tool('picture (inferencer)', osp.join(work_dir, 'picture.log'),
             'tools/analysis_tools/draw_predictions.py', task.deploy_config, fused, picture,
             '--images', task.images, '--title', task.title, '--force')
    models = {'training': load_trained(task.config, checkpoint),
              'fused': load_trained(task.deploy_config, fused)}
    height, width = task.latency_shape
    task_kind = task_of(cfg)
    latency = interleaved_latency(
        {form: task_kind.comparable(m) for form, m in models.items()},
        torch.randn(1, 3, height, width), rounds=10, calls=2)
    timed = task_kind.parts

    lines = [task.title, f'  trained in {train_time:.0f} s; whole task {time.time() - start:.0f} s; '
             f'picture {picture}',
             f"  {'form':<9}" + ''.join(f'{title:>10}' for title in task.metrics.values()) +
             f"{'params':>9}{f'latency b1 {height}x{width} ({timed})':>37}"]
    for form in ('training', 'fused'):
        lines.append(f'  {form:<9}' + ''.join(f'{results[form][key]:>10.3f}' for key in task.metrics)
                     + f'{count_params(models[form]) / 1e6:>8.2f}M{latency[form]:>34.1f} ms')
    print('\n'.join(lines), flush=True)
    if results['training'] != results['fused']:
        raise SystemExit(f'{task.title}: the fused checkpoint scores differently')
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--backbones', nargs='+', default=DEFAULT_BACKBONES,
                        choices=list(BACKBONES), help='rows of the backbone table')
    parser.add_argument('--rounds', type=int, default=10,
                        help='timed rounds of 3 calls per form (utils/timing.py)')
    parser.add_argument('--tasks', nargs='*', default=DEFAULT_TASKS, choices=list(TASKS),
                        help='task journeys to run after the backbone table')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs are written')
    args = parser.parse_args()
    start = time.time()
    backbone_demo(args)
    summary = []
    for name in args.tasks:
        summary += task_demo(TASKS[name], osp.join(args.work_dir, name), args.work_dir, name)
    if summary:
        print('\n== Summary ==\n' + '\n'.join(summary))
    print(f'demo finished in {time.time() - start:.0f} s')


if __name__ == '__main__':
    sys.exit(run(main))
