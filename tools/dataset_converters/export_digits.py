"""Export scikit-learn's 1,797 handwritten digits as an mmpretrain CustomDataset folder.

    python tools/dataset_converters/export_digits.py [--out data/digits] [--size 32] [--seed 0]

Writes ``{out}/{train,val}/{0..9}/*.png`` (RGB, upscaled from 8x8 with bicubic
interpolation); the train/val split (80/20, stratified) is fixed by the seed.
"""
import argparse
import os
import os.path as osp

import numpy as np
from PIL import Image


def export(out: str, size: int = 32, seed: int = 0, val_fraction: float = 0.2) -> dict:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split
    digits = load_digits()
    images = (digits.images * (255 / 16)).clip(0, 255).astype(np.uint8)
    indices = np.arange(len(images))
    train_idx, val_idx = train_test_split(indices, test_size=val_fraction,
                                          random_state=seed, stratify=digits.target)
    counts = {}
    for split, split_idx in (('train', train_idx), ('val', val_idx)):
        for i in split_idx:
            folder = osp.join(out, split, str(digits.target[i]))
            os.makedirs(folder, exist_ok=True)
            image = Image.fromarray(images[i]).resize((size, size), Image.BICUBIC)
            image.convert('RGB').save(osp.join(folder, f'{i:04d}.png'))
        counts[split] = len(split_idx)
    return counts


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--out', default='data/digits')
    parser.add_argument('--size', type=int, default=32, help='side of the saved images')
    parser.add_argument('--seed', type=int, default=0, help='seed of the train/val split')
    args = parser.parse_args()
    counts = export(args.out, args.size, args.seed)
    print(f"wrote {counts['train']} training and {counts['val']} validation images "
          f'to {args.out}')


if __name__ == '__main__':
    main()
