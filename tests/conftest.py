import json
import os.path as osp

import numpy as np
import pytest
import torch

from repmobile_mm.engine.checkpoint import allow_mmengine_checkpoint_globals

# The tests read mmengine training checkpoints in this process (the mm inferencers,
# resumed runners): allow those globals here, as the tools do.
allow_mmengine_checkpoint_globals()

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
