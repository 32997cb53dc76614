"""Export scikit-learn's 1,797 handwritten digits as an mmpretrain CustomDataset folder.

Writes ``{out}/{train,val}/{0..9}/*.png`` (RGB, upscaled from 8x8 with bicubic
interpolation); the train/val split (80/20, stratified) is fixed by the seed.

Its command line: ``tools/dataset_converters/export_digits.py``.
"""
import os
import os.path as osp

import numpy as np
from PIL import Image


def export_digits(out: str, size: int = 32, seed: int = 0, val_fraction: float = 0.2) -> dict:
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
