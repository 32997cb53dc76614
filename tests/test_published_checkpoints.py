"""Published checkpoints wherever a checkpoint is expected, by URL (and so by path: a URL
is read from its downloaded copy). A server on 127.0.0.1 serves release files in the
published layouts: the published structures' tiny random weights of tests/data/reference
(whose published outputs the loaded models must give) and random weights under the
full-size published key lists. They are read by mmengine's loaders (a backbone's
``init_cfg``, ``load_checkpoint`` as ``load_from`` uses it, ``init_detector``,
``init_model``), by the tools and by timm."""
import functools
import http.server
import json
import os
import threading
from types import SimpleNamespace

import pytest
import torch
from mmengine.runner.checkpoint import load_checkpoint

from repmobile_mm.apis.model_io import build_model
from repmobile_mm.apis.runner import load_config
from repmobile_mm.engine.checkpoint import read_checkpoint
from repmobile_mm.errors import CheckpointError
from repmobile_mm.models.published import RELEASE_URLS
from tests.helpers import ROOT, assert_close_to_max, check_tool, make_folder_dataset, paired
from tests.test_classification import (DISTILL_S, REPNEXT_DISTILL, REPVIT_DISTILL, TINY_ARCH,
                                       TINY_REPVIT)

TINY_REPNEXT = dict(_delete_=True, dims=(16, 32, 64, 128), depths=(1, 1, 2, 1))
# reference file -> (classification config, overrides for the tiny published structure)
CLASSIFIERS = {
    'repmobile_tiny': (DISTILL_S.replace('-distill', ''), {
        'model.backbone.arch': TINY_ARCH, 'model.neck.in_channels': 128,
        'model.head.num_classes': 10}),
    'repvit_tiny_distill': (REPVIT_DISTILL, {
        'model.backbone.arch': TINY_REPVIT, 'model.head.in_channels': 128,
        'model.head.num_classes': 10}),
    'repvit_v1_tiny_distill': (REPVIT_DISTILL, {
        'model.backbone.arch': dict(TINY_REPVIT, first_release=True),
        'model.head.in_channels': 128, 'model.head.num_classes': 10}),
    'repnext_tiny_distill': (REPNEXT_DISTILL, {
        'model.backbone.arch': TINY_REPNEXT, 'model.head.in_channels': 128,
        'model.head.num_classes': 10}),
}
COCO = os.path.join(ROOT, 'detection/configs/repvit/mask-rcnn_repvit-m1.1_fpn_1x_coco.py')
ADE20K = os.path.join(
    ROOT, 'segmentation/configs/repnext/fpn_repnext-m3_4xb4-80k_ade20k-512x512.py')
CLASSES = ('rectangle', 'ellipse', 'triangle')


@pytest.fixture(scope='session')
def server(tmp_path_factory):
    """``url`` (ending in /) serving ``folder``; ``requests``: the paths asked for."""
    folder = tmp_path_factory.mktemp('releases')
    requests = []

    class Handler(http.server.SimpleHTTPRequestHandler):

        def do_GET(self):
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(
        ('127.0.0.1', 0), functools.partial(Handler, directory=str(folder)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield SimpleNamespace(url=f'http://127.0.0.1:{httpd.server_port}/', folder=folder,
                          requests=requests)
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture
def hub(tmp_path, monkeypatch):
    """torch's hub cache in the test's folder (where downloads go); its checkpoints folder."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch'))
    monkeypatch.setenv('no_proxy', '127.0.0.1')
    return tmp_path / 'torch' / 'hub' / 'checkpoints'


def serve(server, name, checkpoint):
    """Put ``checkpoint`` on the server as ``name``; its URL."""
    torch.save(checkpoint, server.folder / name)
    return server.url + name


def random_release(keys):
    """Random weights under a full-size published key list (``reference_keys``)."""
    generator = torch.Generator().manual_seed(0)
    return {k: torch.zeros(shape, dtype=torch.long) if k.endswith('num_batches_tracked')
            else torch.randn(shape, generator=generator) for k, shape in keys.items()}


@pytest.mark.parametrize('name', sorted(CLASSIFIERS))
def test_release_file_by_url_gives_the_published_logits(name, reference, server, hub):
    """mmengine's load_checkpoint (what load_from, init_detector and the inferencers
    call) takes the release file's URL; downloaded once, then read from the cache."""
    state_dict, arrays = reference(name)
    url = serve(server, f'{name}_300e.pth', {'model': state_dict})
    config, overrides = CLASSIFIERS[name]
    model = build_model(load_config(config, overrides)).eval()
    load_checkpoint(model, url, map_location='cpu', strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')
    assert os.listdir(hub) == [f'{name}_300e.pth']
    read_checkpoint(url)
    assert server.requests.count(f'/{name}_300e.pth') == 1


@pytest.mark.parametrize('config,release,family', [
    (COCO, 'repvit_m1_1', 'RepViT'),
    (ADE20K, 'repnext_m3', 'RepNeXt'),
    ('detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_1x_coco.py', 'repmobile_s',
     'RepMobile'),
])
def test_backbone_init_cfg_takes_the_release_file(config, release, family, reference_keys,
                                                  server, hub):
    """The config's own init_cfg (prefix='backbone.') and one without the prefix load
    every backbone weight from the ImageNet release file; a release of another variant
    is a one-line error, not a random backbone."""
    from mmengine.registry import MODELS
    weights = random_release(reference_keys(release))
    url = serve(server, f'{release}_distill_300e.pth', {'model': weights})
    backbone_cfg = load_config(os.path.join(ROOT, config)).model.backbone
    assert backbone_cfg.init_cfg.prefix == 'backbone.'
    converted = read_checkpoint(url)['state_dict']
    for init_cfg in (dict(backbone_cfg.init_cfg, checkpoint=url),
                     dict(type='Pretrained', checkpoint=url)):
        backbone = MODELS.build(dict(backbone_cfg, init_cfg=init_cfg))
        backbone.init_weights()
        own = backbone.state_dict()
        assert len(own) > 100
        for key, value in own.items():
            assert torch.equal(value, converted[f'backbone.{key}'].to(value.dtype)), key
    other = 'repnext_m1' if family != 'RepNeXt' else 'repvit_m0_9'
    url = serve(server, f'{other}_distill_300e.pth',
                {'model': random_release(reference_keys(other))})
    backbone = MODELS.build(dict(backbone_cfg, init_cfg=dict(backbone_cfg.init_cfg,
                                                             checkpoint=url)))
    with pytest.raises(CheckpointError, match=f'does not fit the training form of this '
                       f'{family} backbone: .* weights missing') as error:
        backbone.init_weights()
    assert '\n' not in str(error.value)


def mm2_checkpoint(model, backbone_weights, meta):
    """What mmdet 2.x / mmseg 0.x saved: ``meta`` (with ``CLASSES``), the whole model's
    ``state_dict`` (the backbone in the published keys: ``backbone.features.*``,
    ``backbone.stages.*``), an optimizer."""
    state_dict = {k: v for k, v in model.state_dict().items() if not k.startswith('backbone.')}
    state_dict.update({f'backbone.{k}': v for k, v in backbone_weights.items()
                       if not k.startswith(('classifier.', 'head.'))})
    return dict(meta=meta, state_dict=state_dict, optimizer=dict(state={}, param_groups=[]))


def test_published_mask_rcnn_checkpoint_loads_with_init_detector(reference, server, hub):
    """The published COCO checkpoint's layout (tiny RepViT backbone of the published
    structure) loads strictly into our mmdet 3.x config, with its classes."""
    from mmdet.apis import init_detector
    state_dict, arrays = reference('repvit_tiny_distill')
    cfg = load_config(COCO, {'model.backbone.arch': TINY_REPVIT,
                             'model.backbone.out_feature_indices': (2, 4, 7, 9),
                             'model.backbone.init_cfg': None,
                             'model.neck.in_channels': [16, 32, 64, 128],
                             'model.roi_head.bbox_head.num_classes': 3,
                             'model.roi_head.mask_head.num_classes': 3})
    checkpoint = mm2_checkpoint(build_model(cfg), state_dict, dict(
        mmdet_version='2.28.2', CLASSES=CLASSES, epoch=12))
    url = serve(server, 'repvit_tiny_coco.pth', checkpoint)
    model = init_detector(cfg, url, device='cpu')
    assert model.dataset_meta['classes'] == CLASSES
    assert model.state_dict().keys() == checkpoint['state_dict'].keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint['state_dict'][key]), key
    with torch.no_grad():
        features = model.backbone(arrays['input1'])
    for i, (got, tap) in enumerate(paired(features, (2, 4, 7, 9))):
        assert_close_to_max(got, arrays[f'input1/feature{tap}'], 1e-4, f'tap {i}')


def test_published_semantic_fpn_checkpoint_loads_with_init_model(reference, server, hub):
    """The published ADE20K checkpoint's layout (tiny RepNeXt backbone of the published
    structure) loads strictly into our mmseg 1.x config, with classes and palette."""
    from mmseg.apis import init_model
    state_dict, arrays = reference('repnext_tiny_distill')
    cfg = load_config(ADE20K, {'model.backbone.arch': TINY_REPNEXT,
                               'model.backbone.init_cfg': None,
                               'model.neck.in_channels': [16, 32, 64, 128],
                               'model.decode_head.num_classes': 3})
    palette = [[255, 0, 0], [0, 255, 0], [0, 0, 255]]
    checkpoint = mm2_checkpoint(build_model(cfg), state_dict, dict(
        mmseg_version='0.30.0', CLASSES=CLASSES, PALETTE=palette, iter=80000))
    url = serve(server, 'repnext_tiny_ade20k.pth', checkpoint)
    model = init_model(cfg, url, device='cpu')
    assert tuple(model.dataset_meta['classes']) == CLASSES
    assert [list(c) for c in model.dataset_meta['palette']] == palette
    assert model.state_dict().keys() == checkpoint['state_dict'].keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, checkpoint['state_dict'][key]), key
    with torch.no_grad():
        features = model.backbone(arrays['input0'])
    for j, got in enumerate(features):
        assert_close_to_max(got, arrays[f'input0/feature{j}'], 1e-4, f'stage {j}')


def test_repnext_fused_release_loads_into_the_deploy_twin(reference, server, hub):
    """RepNeXt's ``*_fused.pt`` (TorchScript of the published fuse, which keeps the
    BatchNorm after each token mixer and averages the two heads) by URL into our deploy
    config: its BatchNorms folded as ours are, the published logits."""
    from repmobile_mm.models import RepNeXtNet
    from repmobile_mm.models.published import published_repnext_fuse
    state_dict, arrays = reference('repnext_tiny_distill')
    published = RepNeXtNet(dict(dims=(16, 32, 64, 128), depths=(1, 1, 2, 1)), num_classes=10)
    published.eval()
    published.load_state_dict(state_dict, strict=True)
    name = 'repnext_tiny_distill_300e_fused.pt'
    torch.jit.save(torch.jit.script(published_repnext_fuse(published)),
                   str(server.folder / name))
    config, overrides = CLASSIFIERS['repnext_tiny_distill']
    deploy = config.replace('/repnext/', '/repnext/deploy/').replace('m1_', 'm1-deploy_')
    model = build_model(load_config(deploy, overrides)).eval()
    load_checkpoint(model, server.url + name, map_location='cpu', strict=True)
    for i in range(2):
        with torch.no_grad():
            logits = model(arrays[f'input{i}'], mode='tensor')
        assert_close_to_max(logits, arrays[f'output{i}'], 1e-4, f'output{i}')


def test_fuse_tool_takes_the_release_url(reference, server, hub, tmp_path):
    """tools/reparameterize_model.py CONFIG URL OUT: the fused model gives the published
    logits in the deploy twin; tools/test.py CONFIG URL tests it."""
    state_dict, arrays = reference('repvit_tiny_distill')
    url = serve(server, 'repvit_tiny_distill_300e.pth', {'model': state_dict})
    config, overrides = CLASSIFIERS['repvit_tiny_distill']
    training = tmp_path / 'tiny.py'
    data = str(tmp_path / 'data')
    make_folder_dataset(data, per_class=1, classes=10)  # for tools/test.py
    training.write_text(f"""_base_ = {config!r}
model = dict(backbone=dict(arch={TINY_REPVIT!r}), head=dict(in_channels=128, num_classes=10))
data_preprocessor = dict(num_classes=10)
test_dataloader = dict(num_workers=0, persistent_workers=False, dataset=dict(
    _delete_=True, type='CustomDataset', data_root={data!r}, data_prefix='val',
    pipeline=[dict(type='LoadImageFromFile'), dict(type='PackInputs')]))
""")
    fused = str(tmp_path / 'fused.pth')
    check_tool('tools/reparameterize_model.py', str(training), url, fused, '--shape', '64',
               '64')
    # tools/test.py scores the release URL (on 10 random images)
    check_tool('tools/test.py', str(training), url, '--work-dir', str(tmp_path / 'test'),
               '--out', str(tmp_path / 'metrics.json'))
    assert 'accuracy/top1' in json.loads((tmp_path / 'metrics.json').read_text())
    deploy = config.replace('/repvit/', '/repvit/deploy/').replace('m0.9_', 'm0.9-deploy_')
    model = build_model(load_config(deploy, overrides)).eval()
    model.load_state_dict(read_checkpoint(fused)['state_dict'], strict=True)
    with torch.no_grad():
        assert_close_to_max(model(arrays['input1'], mode='tensor'), arrays['output1'], 1e-4)


def test_timm_pretrained_downloads_the_release_file(reference_keys, server, hub, tmp_path):
    """timm's pretrained_cfg names the published URL; through the loopback server (the
    same file name) and offline (``file``), create_model loads the release's weights."""
    import timm
    from timm.models import get_pretrained_cfg
    assert get_pretrained_cfg('mm_repvit_m1_1').url == \
        'https://github.com/THU-MIG/RepViT/releases/download/v1.0/repvit_m1_1_distill_300e.pth'
    assert len(timm.list_pretrained('mm_repvit_*')) == len(timm.list_pretrained('repnext_*')) \
        + 8 == len([k for k in RELEASE_URLS if k.startswith('mm_repvit')])
    weights = random_release(reference_keys('repvit_m1_1'))
    url = serve(server, 'repvit_m1_1_distill_300e.pth', {'model': weights})
    torch.save({'model': weights}, tmp_path / 'offline.pth')
    for overlay in (dict(url=url), dict(file=str(tmp_path / 'offline.pth'))):
        model = timm.create_model('mm_repvit_m1_1', pretrained=True, distillation=True,
                                  pretrained_cfg_overlay=overlay)
        own = model.state_dict()
        assert own.keys() == weights.keys()
        for key, value in own.items():
            assert torch.equal(value, weights[key].to(value.dtype)), key


def test_failed_downloads_leave_nothing_in_the_cache(server, hub):
    with pytest.raises(CheckpointError, match='could not download .*missing.pth') as error:
        read_checkpoint(server.url + 'missing.pth')
    assert '\n' not in str(error.value)
    # a name carrying a SHA-256 prefix that the content does not have
    url = serve(server, 'release-0123abcd.pth', {'model': {}})
    with pytest.raises(CheckpointError, match='does not match the SHA-256 prefix'):
        read_checkpoint(url)
    assert not hub.exists() or os.listdir(hub) == []
