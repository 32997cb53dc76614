import os.path as osp

import pytest

import repmobile_mm

PACKAGE = osp.dirname(repmobile_mm.__file__)


def test_mim_extension_ships_tools_and_configs():
    """`mim train repmobile_mm CONFIG` looks for tools and configs under repmobile_mm/.mim."""
    mim = osp.join(PACKAGE, '.mim')
    assert osp.isfile(osp.join(mim, 'tools', 'train.py')), 'run pip install -e . again'
    assert osp.isdir(osp.join(mim, 'configs', '_base_'))
    assert osp.isfile(osp.join(mim, 'classification', 'configs', 'repmobile',
                               'repmobile-s_4xb256-300e_in1k.py'))


def test_missing_reference_fixtures_fail_in_ci_and_skip_elsewhere(monkeypatch, tmp_path):
    import tests.conftest as conftest
    monkeypatch.setattr(conftest, 'REFERENCE_DIR', str(tmp_path / 'absent'))
    monkeypatch.setenv('CI', 'true')
    with pytest.raises(pytest.fail.Exception, match='CI checks against them'):
        conftest.require_reference_dir()
    monkeypatch.delenv('CI')
    with pytest.raises(pytest.skip.Exception, match='reference fixtures not found'):
        conftest.require_reference_dir()
