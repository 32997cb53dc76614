"""SeparableRoIAlign (the shapes configs' RoIAlign) against mmcv's RoIAlign, which it
replaces: values and gradients in float64, either memory layout, RoIs partly or wholly
outside the map, empty RoIs, images without RoIs, odd and non-square sizes."""
import os.path as osp

import pytest
import torch

import repmobile_mm  # noqa: F401
from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.errors import ConfigError
from repmobile_mm.models.utils.roi_align import SeparableRoIAlign
from tests.helpers import ROOT, assert_close_to_max

SHAPES = osp.join(ROOT, 'detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py')


def random_rois(generator, images, count, extent):
    """RoIs over ``images`` (the last left without any), some beyond the map's edges,
    some tiny, one empty (which the reference kernels pool to zero when aligned)."""
    corner = torch.rand(count, 2, generator=generator, dtype=torch.float64) * extent * 1.2 - \
        extent * 0.1
    size = torch.rand(count, 2, generator=generator, dtype=torch.float64) * extent * 0.8
    size[:4] = torch.tensor([[0.3, 0.2], [2.0, 1.5], [0.0, 0.0], [0.7, 5.0]],
                            dtype=torch.float64)
    index = torch.randint(0, images - 1, (count, 1), generator=generator).double()
    return torch.cat([index, corner, corner + size], 1)


@pytest.mark.parametrize('sampling_ratio', [0, 2, 3])
@pytest.mark.parametrize('aligned', [True, False])
@pytest.mark.parametrize('output_size,spatial_scale,height,width', [
    ((7, 7), 0.25, 32, 32), ((14, 14), 0.125, 13, 21), ((5, 9), 0.5, 17, 11)])
def test_values_and_gradients_are_mmcvs(sampling_ratio, aligned, output_size, spatial_scale,
                                        height, width):
    from mmcv.ops import RoIAlign
    generator = torch.Generator().manual_seed(sampling_ratio * 7 + height)
    features = torch.randn(3, 6, height, width, generator=generator, dtype=torch.float64)
    rois = random_rois(generator, 3, 40, max(height, width) / spatial_scale)
    reference = RoIAlign(output_size, spatial_scale, sampling_ratio, aligned=aligned)
    ours = SeparableRoIAlign(output_size, spatial_scale, sampling_ratio, aligned=aligned)
    upstream = torch.randn(40, 6, *output_size, generator=generator, dtype=torch.float64)
    results = []
    for module, layout in ((reference, torch.contiguous_format), (ours, torch.contiguous_format),
                           (ours, torch.channels_last)):
        x = features.clone(memory_format=layout).requires_grad_(True)
        out = module(x, rois)
        (out * upstream).sum().backward()
        results.append((out, x.grad))
    (expected, expected_grad), *others = results
    assert expected.abs().max() > 0 and expected_grad.abs().max() > 0
    if aligned and sampling_ratio == 0:
        assert (expected[2] == 0).all()  # the empty RoI: no samples
    for out, grad in others:
        assert out.shape == expected.shape == (40, 6) + output_size
        assert_close_to_max(out, expected, 1e-12, 'values')
        assert_close_to_max(grad, expected_grad, 1e-12, 'gradients')


def test_samples_on_the_edges_of_the_reference_rules():
    """One sample per RoI, placed exactly one pixel outside the map (still read, from
    the edge), at the far edge and just beyond it (zero)."""
    from mmcv.ops import RoIAlign
    features = torch.randn(1, 3, 5, 8, dtype=torch.float64)
    rois = torch.tensor([[0, -2., -2., 0., 0.], [0, 7., 4., 9., 6.], [0, 7.1, 4.1, 9.1, 6.1],
                         [0, -2.1, 1., -0.1, 3.]], dtype=torch.float64)
    expected = RoIAlign(1, 1.0, 1, aligned=False)(features, rois)
    assert (expected[:2] != 0).all() and (expected[2:] == 0).all()
    assert_close_to_max(SeparableRoIAlign(1, 1.0, 1, aligned=False)(features, rois),
                        expected, 1e-12, 'edges')


def test_no_rois_give_no_features():
    out = SeparableRoIAlign(7, 0.5)(torch.randn(2, 4, 9, 9), torch.zeros(0, 5))
    assert out.shape == (0, 4, 7, 7)


def test_shapes_configs_extract_rois_with_it():
    model = build_model(load_config(SHAPES))
    for extractor in (model.roi_head.bbox_roi_extractor, model.roi_head.mask_roi_extractor):
        assert type(extractor).__name__ == 'SeparableRoIExtractor'
        assert len(extractor.roi_layers) == 4
        assert all(isinstance(layer, SeparableRoIAlign) for layer in extractor.roi_layers)
    assert model.roi_head.bbox_roi_extractor.roi_layers[1].spatial_scale == 1 / 8
    assert model.roi_head.mask_roi_extractor.roi_layers[0].output_size == (14, 14)


@pytest.mark.parametrize('roi_layer,message', [
    (dict(type='RoIPool', output_size=7),
     r"roi_layer type 'RoIPool' needs mmdet's SingleRoIExtractor"),
    (dict(type='RoIAlign', output_size=7, pool_mode='max'),
     r"roi_layer: SeparableRoIAlign averages its samples; pool_mode='max' needs mmcv"),
    (dict(type='RoIAlign', output_size=7, sampling_ratio=-1),
     r'roi_layer: sampling_ratio must be 0 \(adaptive\) or positive; got -1'),
])
def test_the_extractor_refuses_what_it_cannot_compute_in_one_line(roi_layer, message):
    cfg = load_config(SHAPES)
    cfg.model.roi_head.bbox_roi_extractor.roi_layer = roi_layer
    with pytest.raises(ConfigError, match=message):
        build_model(cfg)
