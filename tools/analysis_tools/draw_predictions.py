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
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.pictures import draw_predictions
from repmobile_mm.apis.runner import add_cfg_options


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


def main():
    args = parse_args()
    drawn = draw_predictions(args.config, args.checkpoint, args.images, args.out,
                             count=args.count, title=args.title, score_thr=args.score_thr,
                             force=args.force, cfg_options=args.cfg_options)
    print(f'wrote {args.out} ({drawn} images)')


if __name__ == '__main__':
    sys.exit(run(main))
