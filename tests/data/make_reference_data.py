"""Derive tests/data/reference from the published implementations' outputs.

    python tests/data/make_reference_data.py [--src ../shared/reference]

The source folder (shared beside the checkout, not part of it; its README.md says how
each file was made) holds, per tiny published model, a state dict with random weights
and randomized BatchNorm statistics, two inputs, and the published code's logits and
stage features on them, plus the key lists of the full-size variants and their
parameter counts. This keeps what the tests compare, so that they run in any clone:

- ``<name>.npz`` (compressed): ``state_dict/<key>`` as published (float32: the weights
  decide the outputs, and any rounding of them would move the outputs by more than the
  tests' 1e-4), ``input0``/``input1`` and ``output0``/``output1``, and every
  ``inputI/featureJ``. The two RepMobile files are most of the size: the published
  RepMobile classifier has 1024x1024 linear layers (two with the distillation head).
- ``keys.json``: every published variant's key list with shapes, one object.
- ``published_params.json``: copied.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil

import numpy as np

HERE = osp.dirname(osp.abspath(__file__))
ARRAYS = ('state_dict/', 'input', 'output')


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--src', default=osp.join(HERE, '..', '..', '..', 'shared', 'reference'))
    parser.add_argument('--out', default=osp.join(HERE, 'reference'))
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for path in sorted(glob.glob(osp.join(args.src, '*.npz'))):
        with np.load(path) as data:
            kept = {key: data[key] for key in data.files if key.startswith(ARRAYS)}
        out = osp.join(args.out, osp.basename(path))
        np.savez_compressed(out, **kept)
        print(f'{out}: {len(kept)} arrays, {osp.getsize(out) / 1e6:.2f} MB')
    keys = {}
    for path in sorted(glob.glob(osp.join(args.src, '*.keys.txt'))):
        with open(path) as f:
            rows = [line.rstrip('\n').split('\t') for line in f if line.strip()]
        keys[osp.basename(path)[:-len('.keys.txt')]] = {
            key: [int(d) for d in shape.strip('()').split(',') if d.strip()]
            for key, shape in rows}
    with open(osp.join(args.out, 'keys.json'), 'w') as f:
        json.dump(keys, f, separators=(',', ':'))
    shutil.copy(osp.join(args.src, 'published_params.json'), args.out)
    print(f'{len(keys)} key lists, published_params.json -> {args.out}')


if __name__ == '__main__':
    main()
