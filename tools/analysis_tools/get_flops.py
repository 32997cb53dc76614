"""Parameters and MACs of the model a config builds, in training and fused form.

    python tools/analysis_tools/get_flops.py CONFIG [--shape H W]

MACs follow mmengine's FlopAnalyzer (the published tables' convention). For detectors
they are the backbone's and neck's (``extract_feat``): mmdet's two-stage heads need
image metadata that a shape alone does not give.
"""
import argparse

from torch import nn

from repmobile_mm.engine.model_io import build_model, fused_copy, test_input_size
from repmobile_mm.engine.runner import add_cfg_options, load_config
from repmobile_mm.utils import count_macs, count_params


class DetectorFeatures(nn.Module):
    """A detector's backbone and neck, as one module to count."""

    def __init__(self, detector: nn.Module):
        super().__init__()
        self.detector = detector

    def forward(self, x):
        return self.detector.extract_feat(x)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config')
    parser.add_argument('--shape', type=int, nargs=2, metavar=('H', 'W'),
                        help="input size (default: the config's test size)")
    add_cfg_options(parser)
    args = parser.parse_args()
    cfg = load_config(args.config, args.cfg_options)
    model = build_model(cfg).eval()
    if getattr(model, 'teacher', None) is not None:  # the teacher is not part of the model
        model.teacher = None
    height, width = args.shape or test_input_size(cfg)
    shape = (1, 3, height, width)
    detector = cfg.default_scope == 'mmdet'
    print(f'{args.config} at {height}x{width}'
          + (' (MACs of the backbone and neck)' if detector else ''))
    for form, net in (('training', model), ('deploy', fused_copy(model))):
        counted = DetectorFeatures(net) if detector else net
        print(f'  {form:<8} form: {count_params(net) / 1e6:.2f}M parameters, '
              f'{count_macs(counted, shape) / 1e9:.3f}G MACs')


if __name__ == '__main__':
    main()
