"""Convert a published classification checkpoint for tools/test.py and the configs.

    python tools/model_converters/convert_official.py SRC DST [--force]

Detects what SRC holds and says which config to use:
- published RepMobile (``model``: ``stem.*``, ``layer0-3.*``, ``head.*``, ``classifier.*``);
- published RepViT of either release (``model``: ``features.*``, ``classifier.*``);
- published RepNeXt (``model``: ``stem.stem.*``, ``stages.*``, ``head.*``; always with the
  distillation head ``head.head_dist``);
- timm's RepViT weights (``stem.*``, ``stages.*``, ``head.*``; a ``.pth`` of
  ``timm.create_model('repvit_m0_9').state_dict()``, or timm's ``.safetensors``),
  timm's ``repvit_m1/m2/m3`` being the first release;
with or without a distillation head. Keys become ``backbone.*``, ``neck.*``, ``head.*``.
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.published_weights import convert, read_source
from repmobile_mm.engine.checkpoint import check_output_path, save_atomically


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published checkpoint (.pth) or timm weights '
                        '(.pth state dict or .safetensors)')
    parser.add_argument('dst', help='converted checkpoint')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args()
    check_output_path(args.dst, args.force)
    state_dict, config = convert(read_source(args.src))
    save_atomically({'state_dict': state_dict, 'meta': dict(converted_from=args.src)},
                    args.dst, args.force)
    print(f'wrote {args.dst}; test it with {config}')


if __name__ == '__main__':
    sys.exit(run(main))
