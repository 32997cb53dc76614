"""The model index (repmobile_mm/apis/model_index.py): every config has a metafile entry
or is a demo config, the metafiles and the tables generated from them are current, and
mim and mmpretrain's model hub find the models. The Parameters of every entry are
checked where each config is built (tests/test_{classification,detection,segmentation}.py:
``assert_indexed_parameters``); FLOPs here, on one config of each task and form."""
import os
import os.path as osp
import subprocess

import numpy as np
import pytest
import torch

from repmobile_mm.apis import model_index as mi
from tests.helpers import ROOT, indexed_metadata
from tests.test_mim import MIM


@pytest.fixture(scope='session')
def files():
    return mi.read_metafiles(ROOT)


def test_every_config_has_an_entry_or_is_a_demo_config(files):
    configs = mi.config_files(ROOT)
    demos = [c for c in configs if mi.DEMO_CONFIG.search(c)]
    entries = [m for content in files.values() for m in content['Models']]
    assert len(demos) == 22 and len(entries) == len(configs) - len(demos) > 100
    assert sorted(m['Config'] for m in entries) == sorted(set(configs) - set(demos))
    names = [m['Name'] for m in entries]
    assert len(set(names)) == len(names) and all(n == n.lower() for n in names)
    assert all(osp.isfile(osp.join(ROOT, m['Config'])) for m in entries)


def test_metafiles_are_what_the_generator_writes(files):
    """Everything but the computed figures (checked elsewhere) regenerated from the
    configs and the published table; the published models all have results."""
    stored = {m['Config']: m['Metadata'] for c in files.values() for m in c['Models']}
    regenerated = mi.metafiles(ROOT, complexity_of=lambda config: {
        k: stored[config][k] for k in ('Parameters', 'FLOPs')})
    assert regenerated == files
    with open(osp.join(ROOT, 'model-index.yml')) as f:
        assert f.read() == mi.dump_yaml(mi.model_index(regenerated))
    published = [m for c in files.values() for m in c['Models']
                 if 'Results' in m and '-deploy_' not in m['Name']]
    assert len(published) == 16 + 8 + 7
    assert len([m for m in published if 'Weights' in m]) == 13 + 6 + 6  # RepMobile's: none


def test_tables_are_current(files):
    texts = mi.updated_tables(ROOT, files)
    assert len(texts) == 4
    for doc, text in texts.items():
        with open(osp.join(ROOT, doc)) as f:
            assert f.read() == text, f'{doc}: run python tools/misc/update_model_index.py ' \
                                     '--tables-only'
        assert text.count('| [') >= 7, doc


@pytest.mark.slow
@pytest.mark.parametrize('config', [
    'classification/configs/repvit/repvit-m1.1_8xb256-300e-distill_in1k.py',
    'classification/configs/repnext/deploy/repnext-m1-deploy_8xb256-300e_in1k.py',
    'detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_1x_coco.py',
    'segmentation/configs/repvit/deploy/fpn_repvit-m1.1-deploy_8xb4-40k_ade20k-512x512.py',
])
def test_flops_are_what_the_tools_count_now(config):
    assert mi.complexity(ROOT, config) == {
        k: indexed_metadata()[osp.join(ROOT, config)][k] for k in ('Parameters', 'FLOPs')}


def test_mim_search_lists_and_filters_the_models(tmp_path):
    result = subprocess.run(
        [MIM, 'search', 'repmobile_mm', '--condition', 'parameters<3000000', '--field',
         'parameters', 'flops'], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    found = [line.split(': ')[1] for line in result.stdout.splitlines()
             if line.startswith('config id: ')]
    expected = [m['Name'] for c in mi.read_metafiles(ROOT).values() for m in c['Models']
                if m['Metadata']['Parameters'] < 3000000]
    assert sorted(found) == sorted(expected) and len(found) >= 2
    assert 'flops' in result.stdout and 'parameters' in result.stdout


@pytest.mark.slow
def test_mim_download_writes_the_config_beside_the_weights(tmp_path):
    """``mim download`` by metafile name: the weights' file name is the release URL's
    (already there: no machine here reaches the release host, and mim keeps a file it
    finds), the config dumped beside it."""
    name = 'repnext-m3_8xb256-300e-distill_in1k'
    (tmp_path / 'repnext_m3_distill_300e.pth').write_bytes(b'kept')
    result = subprocess.run([MIM, 'download', 'repmobile_mm', '--config', name, '--dest',
                             str(tmp_path)], cwd=tmp_path, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert 'repnext_m3_distill_300e.pth exists' in result.stdout
    assert (tmp_path / 'repnext_m3_distill_300e.pth').read_bytes() == b'kept'
    assert "type='RepNeXt'" in (tmp_path / f'{name}.py').read_text()


def test_mmpretrain_hub_loads_the_published_weights_by_name(reference_keys, tmp_path,
                                                            monkeypatch):
    """list_models and get_model(NAME, pretrained=True) by metafile name; the release
    file already in torch's hub cache (no machine here reaches the release host), read
    through the package's loader."""
    import mmpretrain
    from mmengine.registry import init_default_scope

    import repmobile_mm.integrations.mmpretrain  # noqa: F401  (registers the metafiles)
    from tests.test_published_checkpoints import random_release

    # mmpretrain's inferencer builds its pipeline in the current default scope, which an
    # earlier test's mmseg or mmdet model (like any mmengine runner) leaves set
    init_default_scope('mmpretrain')
    assert 'repvit-m1.1_8xb256-300e-distill_in1k' in mmpretrain.list_models('*repvit*')
    assert len(mmpretrain.list_models('repnext-*')) == 24
    monkeypatch.setenv('TORCH_HOME', str(tmp_path))
    cache = tmp_path / 'hub' / 'checkpoints'
    os.makedirs(cache)
    weights = random_release(reference_keys('repvit_m1_1'))
    torch.save({'model': weights}, cache / 'repvit_m1_1_distill_300e.pth')
    model = mmpretrain.get_model('repvit-m1.1_8xb256-300e-distill_in1k', pretrained=True)
    own = model.state_dict()
    converted = {k.replace('classifier.', 'head.', 1) if k.startswith('classifier.')
                 else f'backbone.{k}': v for k, v in weights.items()}
    assert own.keys() == converted.keys()
    for key, value in own.items():
        assert torch.equal(value, converted[key].to(value.dtype)), key
    inferencer = mmpretrain.ImageClassificationInferencer(
        'repvit-m1.1_8xb256-300e-distill_in1k', pretrained=True)
    result, = inferencer(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8))
    assert 0 <= result['pred_label'] < 1000 and len(result['pred_scores']) == 1000
