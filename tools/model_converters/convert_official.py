"""Convert a published classification checkpoint to this package's layout, in a file.

    python tools/model_converters/convert_official.py SRC DST [--force]

The configs and tools read release files as they are (converted in memory, the same
conversion: repmobile_mm/engine/published.py); this writes it once. SRC is a file or
an http(s) URL. Detects what SRC holds and says which config to use:
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
from repmobile_mm.engine.checkpoint import check_output_path, load_file, local_copy, save_atomically
from repmobile_mm.engine.published import converted_release


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('src', help='published checkpoint (.pth) or timm weights '
                        '(.pth state dict or .safetensors)')
    parser.add_argument('dst', help='converted checkpoint')
    parser.add_argument('--force', action='store_true', help='replace an existing dst')
    args = parser.parse_args()
    check_output_path(args.dst, args.force)
    checkpoint = converted_release(load_file(local_copy(args.src)), args.src)
    save_atomically(checkpoint, args.dst, args.force)
    print(f"wrote {args.dst}; test it with {checkpoint['meta']['config']}")


if __name__ == '__main__':
    sys.exit(run(main))
