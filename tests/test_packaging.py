import json
import os
import os.path as osp

import numpy as np
import pytest

import repmobile_mm
from .helpers import check_tool

PACKAGE = osp.dirname(repmobile_mm.__file__)


def test_mim_extension_ships_tools_and_configs():
    """`mim train repmobile_mm CONFIG` looks for tools and configs under repmobile_mm/.mim."""
    mim = osp.join(PACKAGE, '.mim')
    assert osp.isfile(osp.join(mim, 'tools', 'train.py')), 'run pip install -e . again'
    assert osp.isdir(osp.join(mim, 'configs', '_base_'))
    assert osp.isfile(osp.join(mim, 'classification', 'configs', 'repmobile',
                               'repmobile-s_4xb256-300e_in1k.py'))


def test_reference_data_is_what_its_script_derives(tmp_path):
    """tests/data/reference is what make_reference_data.py derives from the published
    implementations' outputs (checked where those are beside the checkout)."""
    from tests.conftest import REFERENCE_DIR
    source = osp.join(osp.dirname(PACKAGE), '..', 'shared', 'reference')
    if not osp.isdir(source):
        pytest.skip(f'the published outputs are not beside this checkout ({source})')
    check_tool('tests/data/make_reference_data.py', '--src', source, '--out', str(tmp_path))
    names = sorted(os.listdir(REFERENCE_DIR))
    assert names == sorted(os.listdir(tmp_path)) and len(names) == 7
    for name in names:
        kept, derived = osp.join(REFERENCE_DIR, name), str(tmp_path / name)
        if name.endswith('.npz'):
            with np.load(kept) as a, np.load(derived) as b:
                assert sorted(a.files) == sorted(b.files) and len(a.files) > 100
                for key in a.files:
                    assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key
        else:
            with open(kept) as a, open(derived) as b:
                assert json.load(a) == json.load(b)
