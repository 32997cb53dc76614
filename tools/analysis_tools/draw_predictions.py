"""Draw a model's predictions on a few images into one picture, with its library's own
inferencer and visualizer (mmpretrain, mmdet or mmseg, by the config's default_scope).

    python tools/analysis_tools/draw_predictions.py CONFIG CHECKPOINT OUT.png \
        --images 'data/shapes/val2017/*.jpg' [--count 6] [--title TEXT] [--force]
        [--cfg-options k=v ...]

Classifiers: each image with its predicted class and score; detectors: boxes and
masks; segmentors: the segmentation overlay. A fused checkpoint goes with the
config's deploy twin. OUT is never replaced without --force, nor left half written.
"""
import argparse
import glob
import io
import sys

import numpy as np

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.runner import add_cfg_options, load_config
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.engine.checkpoint import (allow_mmengine_checkpoint_globals, read_checkpoint,
                                            write_atomically)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('checkpoint')
    parser.add_argument('out', help='the PNG to write')
    parser.add_argument('--images', nargs='+', required=True,
                        help='image files or glob patterns (quoted)')
    parser.add_argument('--count', type=int, default=6,
                        help='how many images, spread evenly over the sorted list')
    parser.add_argument('--title', help='a title over the pictures')
    parser.add_argument('--score-thr', type=float, default=0.5,
                        help='detections below this score are not drawn')
    parser.add_argument('--force', action='store_true', help='replace an existing OUT')
    add_cfg_options(parser)
    return parser.parse_args()


def pick_images(patterns, count):
    images = sorted({path for pattern in patterns for path in glob.glob(pattern)})
    if not images:
        raise SystemExit(f'--images: no image matches {patterns}')
    return images[::max(1, len(images) // count)][:count]


def main():
    args = parse_args()
    allow_mmengine_checkpoint_globals()  # the mm inferencers load checkpoints with mmengine
    cfg = load_config(args.config, args.cfg_options)
    read_checkpoint(args.checkpoint)  # a missing, broken or unsafe file: one line, now
    images = pick_images(args.images, args.count)
    panels, captions = task_of(cfg).draw(cfg, args.checkpoint, images, args.score_thr)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, panel, caption in zip(np.atleast_1d(axes), panels, captions):
        ax.imshow(panel, interpolation='nearest')
        ax.set_title(caption, fontsize=9)
        ax.axis('off')
    if args.title:
        figure.suptitle(args.title, fontsize=9)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format='png', dpi=110)
    plt.close(figure)

    def write(partial):
        with open(partial, 'wb') as f:
            f.write(png.getvalue())
    write_atomically(args.out, write, args.force)
    print(f'wrote {args.out} ({len(panels)} images)')


if __name__ == '__main__':
    sys.exit(run(main))
