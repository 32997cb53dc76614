"""Convert a published RepMobile classification checkpoint for tools/test.py.

    python tools/model_converters/convert_official.py SRC DST

The published checkpoints hold the whole model under ``model`` with the keys
``stem.*``, ``layer0-3.*`` (backbone), ``head.*`` (1x1 conv head) and
``classifier.*`` (MLPs). They become ``backbone.*``, ``neck.*`` and ``head.*``.
"""
import argparse

import torch

PREFIXES = (('stem.', 'backbone.stem.'), ('layer', 'backbone.layer'), ('head.', 'neck.'),
            ('classifier.', 'head.'))


def convert(published: dict) -> dict:
    converted = {}
    for key, value in published.items():
        for old, new in PREFIXES:
            if key.startswith(old):
                converted[new + key[len(old):]] = value
                break
        else:
            raise SystemExit(f'unexpected key {key!r}: not a published RepMobile classifier')
    return converted


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published checkpoint (.pth)')
    parser.add_argument('dst', help='converted checkpoint')
    args = parser.parse_args()
    try:
        checkpoint = torch.load(args.src, map_location='cpu', weights_only=True)
    except FileNotFoundError:
        raise SystemExit(f'checkpoint not found: {args.src}') from None
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get('model'), dict):
        raise SystemExit(f"{args.src}: expected the published format, the weights under 'model'")
    state_dict = convert(checkpoint['model'])
    torch.save({'state_dict': state_dict, 'meta': dict(converted_from=args.src)}, args.dst)
    width = state_dict['backbone.layer3.0.conv_dw.1.weight'].shape[0]
    arch = {512: 's', 640: 'm', 768: 'l'}.get(width, f'(custom, last stage width {width})')
    distill = '-distill' if any(k.startswith('head.classifier_dist.') for k in state_dict) else ''
    print(f'wrote {args.dst}; test it with classification/configs/repmobile/'
          f'repmobile-{arch}_4xb256-300e{distill}_in1k.py')


if __name__ == '__main__':
    main()
