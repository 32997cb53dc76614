"""`make demo`: the journeys of the suite on this machine (2 CPU cores are enough).

1. Backbones: build RepMobile-S, RepViT-M0.9 and RepNeXt-M1 (``--backbones`` adds
   RepMobile-M and -L), fuse them, check and time both forms.
2. Each task on data made or shipped here: classification on scikit-learn's
   handwritten digits (RepMobile-S, RepViT-M0.9 and RepNeXt-M1), Mask R-CNN on generated
   shapes (COCO format) and Semantic FPN on generated scenes (ADE20K layout) with
   RepMobile-S, whose backbone goes through a chain: the digits classifier's starts the
   scenes run, the scenes run's starts the shapes run. These small runs store their
   weights channels-last (ChannelsLastHook), which on CPU trains RepNeXt in half the
   time and computes the same.
   For each: write the data if missing, train, test, fuse, test the fused checkpoint
   with the deploy twin of the config, print both results side by side, and draw the
   fused model's predictions with the library's own inferencer into one picture.

Every stage runs in this process through the package API (repmobile_mm.apis.demo).
The console shows a progress bar per stage and the result tables; each stage's full
output goes to a log file in its run's work dir, named as the stage ends.
"""
import argparse
import os
import os.path as osp
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.demo import BACKBONES, DEFAULT_BACKBONES, JOURNEYS, run_demo


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--backbones', nargs='+', default=DEFAULT_BACKBONES,
                        choices=list(BACKBONES), help='rows of the backbone table')
    parser.add_argument('--rounds', type=int, default=10,
                        help='timed rounds of 3 calls per form (utils/timing.py)')
    parser.add_argument('--tasks', nargs='*', default=list(JOURNEYS), choices=list(JOURNEYS),
                        help='task journeys to run after the backbone table (with the '
                        'journeys their backbones start from)')
    parser.add_argument('--work-dir', default='work_dirs/demo', help='where runs are written')
    args = parser.parse_args()
    os.chdir(osp.dirname(osp.dirname(osp.abspath(__file__))))  # the configs' relative paths
    run_demo(args.backbones, args.rounds, args.tasks, args.work_dir)


if __name__ == '__main__':
    sys.exit(run(main))
