"""Write an ADE20K-layout semantic segmentation dataset of generated scenes.

    python tools/dataset_converters/make_scenes.py [--out data/scenes] [--train 600] [--val 60]

What it writes and how: ``repmobile_mm.apis.data.make_scenes``.
"""
import argparse

from repmobile_mm.apis.data import make_scenes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/scenes')
    parser.add_argument('--train', type=int, default=600, help='training scenes')
    parser.add_argument('--val', type=int, default=60, help='validation scenes')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    counts = make_scenes(args.out, args.train, args.val, args.seed)
    print(f"wrote {counts['training']} training and {counts['validation']} validation "
          f'scenes to {args.out}')


if __name__ == '__main__':
    main()
