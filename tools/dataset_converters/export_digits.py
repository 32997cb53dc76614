"""Export scikit-learn's 1,797 handwritten digits as an mmpretrain CustomDataset folder.

    python tools/dataset_converters/export_digits.py [--out data/digits] [--size 32] [--seed 0]

What it writes and how: ``repmobile_mm.apis.data.export_digits``.
"""
import argparse

from repmobile_mm.apis.data import export_digits


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/digits')
    parser.add_argument('--size', type=int, default=32, help='side of the saved images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the train/val split')
    args = parser.parse_args()
    counts = export_digits(args.out, args.size, args.seed)
    print(f"wrote {counts['train']} training and {counts['val']} validation images "
          f'to {args.out}')


if __name__ == '__main__':
    main()
