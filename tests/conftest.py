import functools
import json
import os
import os.path as osp

import numpy as np
import pytest
import torch

# Under pytest-xdist (make test: two workers on two cores) each worker, and the tools it
# starts, computes with one thread: two workers with two threads each slow each other.
if os.environ.get('PYTEST_XDIST_WORKER'):
    os.environ['OMP_NUM_THREADS'] = '1'
    torch.set_num_threads(1)


@pytest.fixture(scope='session', autouse=True)
def quick_library_waits():
    """Three waits of the libraries that cost the tests more than their work on 2 cores,
    cut for the tests' process (the tools' own processes keep them): mmengine reads the
    170 YAML metafiles of an mm package each time a config inherits from it
    (``mmpretrain::_base_/...``, ``mmdet::mask_rcnn/...``; about 0.8 s a config; read
    once here, they do not change), formats every config it logs and dumps with yapf
    (seconds a runner; the tests read neither), and torch gives each data loader worker
    5 s to exit when the loader goes (``MP_STATUS_CHECK_INTERVAL``, also its polling
    period), after which it ends the worker anyway."""
    import mmengine.config.config
    import mmengine.config.utils
    import torch.utils.data._utils
    with pytest.MonkeyPatch.context() as patch:
        # mmengine.config.utils reads only those metafiles with its `load`
        patch.setattr(mmengine.config.utils, 'load',
                      functools.lru_cache(maxsize=None)(mmengine.config.utils.load))
        patch.setattr(mmengine.config.config, 'FormatCode', lambda text, **kwargs: (text, None))
        patch.setattr(torch.utils.data._utils, 'MP_STATUS_CHECK_INTERVAL', 0.2)
        yield


# What the published implementations computed on tiny models with random weights, kept
# in the repository (tests/data/make_reference_data.py says how it was derived).
REFERENCE_DIR = osp.join(osp.dirname(__file__), 'data', 'reference')


@pytest.fixture(scope='session')
def reference():
    """Load a published-implementation fixture: state dict, inputs, outputs, features."""

    def load(name):
        with np.load(osp.join(REFERENCE_DIR, f'{name}.npz')) as data:
            state_dict = {k[len('state_dict/'):]: torch.from_numpy(data[k])
                          for k in data.files if k.startswith('state_dict/')}
            arrays = {k: torch.from_numpy(data[k]) for k in data.files
                      if not k.startswith('state_dict/')}
        return state_dict, arrays

    return load


@pytest.fixture(scope='session')
def reference_keys():
    """Key and shape of every state dict entry of a full-size published variant."""
    with open(osp.join(REFERENCE_DIR, 'keys.json')) as f:
        variants = json.load(f)

    def load(name):
        return {key: tuple(shape) for key, shape in variants[name].items()}

    return load


@pytest.fixture(scope='session')
def shapes_data(tmp_path_factory):
    """A tiny generated COCO-format shapes set (4 training, 2 validation images), made
    once per session; tests read it and write elsewhere. Ends with a slash, as the
    configs' data roots do."""
    from repmobile_mm.apis.data import make_shapes
    data = str(tmp_path_factory.mktemp('data') / 'shapes') + '/'
    make_shapes(data, num_train=4, num_val=2, seed=1)
    return data


@pytest.fixture(scope='session')
def scenes_data(tmp_path_factory):
    """A tiny generated ADE20K-layout scenes set (4 training, 2 validation images)."""
    from repmobile_mm.apis.data import make_scenes
    data = str(tmp_path_factory.mktemp('data') / 'scenes')
    make_scenes(data, num_train=4, num_val=2, seed=1)
    return data


def pytest_collection_modifyitems(items):
    """The slow tests first (otherwise in collection order): under pytest-xdist the two
    workers then end together, instead of one waiting on a long test handed out last."""
    items.sort(key=lambda item: item.get_closest_marker('slow') is None)


def pytest_runtest_setup(item):
    """Under ``--dist loadgroup`` (make test) an ``xdist_group`` test carries its group in
    its node id, which is how pytest-xdist sends a group to one worker. Were it lost
    (pytest 9.2 with pytest-xdist 3.8 drops it: pytest-dev/pytest-xdist#1386), each
    worker would train the group's checkpoints again, silently: fail instead."""
    if (os.environ.get('PYTEST_XDIST_WORKER') and item.config.getvalue('loadgroup')
            and item.get_closest_marker('xdist_group') and '@' not in item.nodeid):
        pytest.fail('pytest-xdist lost this test\'s xdist_group: install the pytest of '
                    'requirements/constraints.txt (make install)', pytrace=False)
