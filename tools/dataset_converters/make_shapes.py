"""Write a COCO-format instance segmentation dataset of generated shape images.

    python tools/dataset_converters/make_shapes.py [--out data/shapes] [--train 400] [--val 80]

What it writes and how: ``repmobile_mm.apis.data.make_shapes``.
"""
import argparse

from repmobile_mm.apis.data import make_shapes


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/shapes')
    parser.add_argument('--train', type=int, default=400, help='training images')
    parser.add_argument('--val', type=int, default=80, help='validation images')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args()
    for split, (images, instances) in make_shapes(args.out, args.train, args.val,
                                                  args.seed).items():
        print(f'{split}: {images} images, {instances} instances -> {args.out}')


if __name__ == '__main__':
    main()
