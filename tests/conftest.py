import os
import os.path as osp

import numpy as np
import pytest
import torch

from repmobile_mm.engine.checkpoint import allow_mmengine_checkpoint_globals

# The tests read mmengine training checkpoints in this process (the mm inferencers,
# resumed runners): allow those globals here, as the tools do.
allow_mmengine_checkpoint_globals()

REFERENCE_DIR = osp.join(osp.dirname(__file__), '..', '..', 'shared', 'reference')


def require_reference_dir():
    """Skip without the published outputs (the shared/ folder beside the checkout),
    except in CI (``.ci/run`` sets ``CI``), where their absence fails the test."""
    if osp.isdir(REFERENCE_DIR):
        return
    message = (f'reference fixtures not found at {osp.abspath(REFERENCE_DIR)} '
               '(the shared/ folder beside the checkout)')
    if os.environ.get('CI'):
        pytest.fail(message + ': CI checks against them', pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope='session')
def reference():
    """Load a published-implementation fixture: state dict, inputs, outputs, features."""
    require_reference_dir()

    def load(name):
        data = np.load(osp.join(REFERENCE_DIR, f'{name}.npz'))
        state_dict = {
            k[len('state_dict/'):]: torch.from_numpy(data[k])
            for k in data.files if k.startswith('state_dict/')
        }
        arrays = {k: torch.from_numpy(data[k]) for k in data.files
                  if not k.startswith('state_dict/')}
        return state_dict, arrays

    return load


@pytest.fixture(scope='session')
def reference_keys():
    require_reference_dir()

    def load(name):
        with open(osp.join(REFERENCE_DIR, f'{name}.keys.txt')) as f:
            rows = [line.rstrip('\n').split('\t') for line in f if line.strip()]
        return {key: tuple(int(d) for d in shape.strip('()').split(',') if d.strip())
                for key, shape in rows}

    return load
