"""Assertions, tool runners and tiny data shared by the tests."""
import os
import os.path as osp
import runpy
import subprocess
import sys

import numpy as np
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def run_tool(*args, timeout=900, env=None):
    """Run a repository tool as a user would, from the repository root (``.sh`` tools
    with bash and this interpreter as ``PYTHON``); a tool still running after
    ``timeout`` seconds fails the test (subprocess.TimeoutExpired)."""
    if args[0].endswith('.sh'):
        command = ['bash', *args]
        env = dict(os.environ if env is None else env, PYTHON=sys.executable,
                   PYTHONWARNINGS='ignore')
    else:
        command = [sys.executable, '-W', 'ignore', *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_in_process(monkeypatch, script, *args):
    """Run a repository tool's ``__main__`` in this process, as ``python SCRIPT ARGS``
    from the repository root would (no interpreter and library start-up: seconds
    saved per run). A tool ends in ``sys.exit``: a success returns, a refusal
    surfaces as the ``SystemExit`` carrying its one-line message."""
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, 'argv', [script, *args])
    try:
        runpy.run_path(osp.join(ROOT, script), run_name='__main__')
    except SystemExit as exit_:
        if exit_.code not in (None, 0):
            raise


def python_output(code, *args, timeout=120):
    """The stdout of ``python -c CODE ARGS`` in a fresh interpreter (for what a process
    does at import or to process-wide state); a failing run fails the test."""
    result = subprocess.run([sys.executable, '-c', code, *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def check_tool(*args, timeout=900, env=None):
    result = run_tool(*args, timeout=timeout, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def paired(first, second):
    """``zip`` of two result lists that fails when they are empty or of unequal length
    (a plain ``zip`` would pass over nothing)."""
    first, second = list(first), list(second)
    assert len(first) == len(second) > 0, f'{len(first)} results against {len(second)}'
    return list(zip(first, second))


def assert_close_to_max(actual, expected, rtol, what=''):
    """|actual - expected| <= rtol * max|expected| (relative to the largest magnitude)."""
    err = (actual.double() - expected.double()).abs().max().item()
    scale = expected.double().abs().max().item()
    assert err <= rtol * scale, f'{what}: max diff {err:.3g} > {rtol:g} * {scale:.3g}'


def training_twin(deploy_config):
    """The training config that a config under deploy/ is the fused form of."""
    return deploy_config.replace('/deploy/', '/').replace('-deploy_', '_')


def trained_and_fused(config, deploy_config, run):
    """``(form, config, checkpoint)`` of a training run's checkpoint (``run``: the
    fixture's ``tmp``, ``checkpoint`` and ``options``) and of the fused checkpoint that
    tools/reparameterize_model.py writes from it, for the deploy twin."""
    fused = str(run['tmp'] / 'fused_for_inferencer.pth')
    check_tool('tools/reparameterize_model.py', config, run['checkpoint'], fused,
               *run['options'])
    return [('training', config, run['checkpoint']), ('fused', deploy_config, fused)]


def fuse_with_tool(config, model, folder, monkeypatch):
    """Save ``model`` (built from the training ``config``) and fuse it with
    tools/reparameterize_model.py, in this process (a check input of 64x64); returns the
    fused checkpoint's path, for the config's deploy twin."""
    src, dst = osp.join(folder, 'trained.pth'), osp.join(folder, 'fused.pth')
    torch.save({'state_dict': model.state_dict()}, src)
    run_in_process(monkeypatch, 'tools/reparameterize_model.py', config, src, dst,
                   '--shape', '64', '64')
    return dst


def make_folder_dataset(root, per_class=4, classes=3, size=32):
    """A tiny CustomDataset folder of random images."""
    rng = np.random.default_rng(0)
    for split in ('train', 'val'):
        for c in range(classes):
            folder = osp.join(root, split, str(c))
            os.makedirs(folder, exist_ok=True)
            for i in range(per_class):
                pixels = rng.integers(0, 255, (size, size, 3), dtype=np.uint8)
                Image.fromarray(pixels).save(osp.join(folder, f'{i}.png'))
