"""Parameters and MACs of the model a config builds, in training and fused form.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]

MACs follow mmengine's FlopAnalyzer (the published tables' convention). For detectors
they are the backbone's and neck's (``extract_feat``): mmdet's two-stage heads need
image metadata that a shape alone does not give.
"""
import argparse
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.model_io import build_model, test_input_size
from repmobile_mm.apis.runner import add_cfg_options, load_config
from repmobile_mm.apis.tasks import task_of
from repmobile_mm.models import fused_copy
from repmobile_mm.utils import count_macs, count_params


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's test size)")
    add_cfg_options(parser)
    args = parser.parse_args()
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg).eval()
    height, width = args.shape or test_input_size(cfg)
    shape = (1, 3, height, width)
    task = task_of(cfg)
    print(f'{args.config} at {height}x{width}'
          + (f' (MACs of the {task.parts})' if task.parts != 'model' else ''))
    for form, net in (('training', model), ('deploy', fused_copy(model))):
        print(f'  {form:<8} form: {count_params(net) / 1e6:.2f}M parameters, '
              f'{count_macs(task.comparable(net), shape) / 1e9:.3f}G MACs')


if __name__ == '__main__':
    sys.exit(run(main))
