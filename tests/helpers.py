"""Assertions, tool runners and tiny data shared by the tests."""
import contextlib
import functools
import io
import os
import os.path as osp
import runpy
import shutil
import subprocess
import sys
import traceback
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


# Input sizes of the float64 checks that a full-size backbone's fused form computes
# what its training form does: even into every stride-2 layer (64x96, maps down to 2x3
# at stride 32, the borders 224x224 meets at 8 times the cost), odd (67x45), and down
# to 1x1 at stride 32 (33x97).
FOLD_SIZES = [(64, 96), (67, 45), (33, 97)]


def sweep(values, fast):
    """Parameters for a test over every variant (or config): those for which ``fast``
    holds run in every tier, the others are marked ``slow`` (``make test`` runs them,
    ``make test-fast`` does not)."""
    return [value if fast(value) else pytest.param(value, marks=pytest.mark.slow)
            for value in values]


def run_tool(*args, timeout=900, env=None, process=False):
    """Run a repository tool as ``python TOOL ARGS`` from the repository root would, and
    return what it printed and its exit status (a ``CompletedProcess``).

    Python tools run in this process (:func:`run_tool_here`: no interpreter and library
    start-up, seconds saved per run) unless ``process`` or an ``env`` is given; shell
    tools (``.sh``, with bash and this interpreter as ``PYTHON``) and ``process=True`` runs
    are real processes, for what only a process shows; one still running after
    ``timeout`` seconds fails the test (subprocess.TimeoutExpired)."""
    if args[0].endswith('.py') and env is None and not process:
        return run_tool_here(*args)
    if args[0].endswith('.sh'):
        command = ['bash', *args]
        env = dict(os.environ if env is None else env, PYTHON=sys.executable,
                   PYTHONWARNINGS='ignore')
    else:
        command = [sys.executable, '-W', 'ignore', *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env=env)


def run_tool_here(script, *args):
    """``python -W ignore SCRIPT ARGS`` in this process: stdout and stderr captured, the
    exit status as the interpreter would give it (``sys.exit(message)``: the message on
    stderr and 1; an exception: its traceback and 1), warnings ignored, and the working
    directory, ``sys.argv`` and torch's thread count restored afterwards. mmengine's
    loggers, message hubs and visualizers made by the run are dropped after it, so that
    a later run of the same config in the same second starts afresh (mmengine names
    them after the config and the second)."""
    from mmengine.logging import MessageHub, MMLogger
    from mmengine.visualization import Visualizer
    registries = (MMLogger, MessageHub, Visualizer)
    before = {cls: set(cls._instance_dict) for cls in registries}
    stdout, stderr, code = io.StringIO(), io.StringIO(), 0
    cwd, argv, threads = os.getcwd(), sys.argv, torch.get_num_threads()
    try:
        os.chdir(ROOT)
        sys.argv = [script, *args]
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), \
                warnings.catch_warnings():
            warnings.simplefilter('ignore')
            try:
                runpy.run_path(osp.join(ROOT, script), run_name='__main__')
            except SystemExit as exit_:
                if isinstance(exit_.code, str):
                    print(exit_.code, file=sys.stderr)
                code = exit_.code if isinstance(exit_.code, int) else int(
                    exit_.code is not None)
            except Exception:
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(cwd)
        sys.argv = argv
        torch.set_num_threads(threads)
        for cls in registries:
            for name in set(cls._instance_dict) - before[cls]:
                instance = cls._instance_dict.pop(name)
                for handler in getattr(instance, 'handlers', [])[:]:
                    handler.close()
                    instance.removeHandler(handler)
    return subprocess.CompletedProcess([script, *args], code, stdout.getvalue(),
                                       stderr.getvalue())


def python_output(code, *args, timeout=120):
    """The stdout of ``python -c CODE ARGS`` in a fresh interpreter (for what a process
    does at import or to process-wide state); a failing run fails the test."""
    result = subprocess.run([sys.executable, '-c', code, *args], capture_output=True,
                            text=True, timeout=timeout)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def check_tool(*args, timeout=900, env=None, process=False):
    """:func:`run_tool`, failing the test (with the end of the output) unless it exits 0."""
    result = run_tool(*args, timeout=timeout, env=env, process=process)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def refusal(*args, env=None) -> str:
    """The message of a tool run (:func:`run_tool`) that must refuse: exit status 1,
    the message the last line of stderr, no traceback."""
    result = run_tool(*args, env=env)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and lines and 'Traceback' not in result.stderr, \
        f'exit {result.returncode}: {result.stdout[-1500:]}{result.stderr[-1500:]}'
    return lines[-1]


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


def assert_twin_loads_fused_training_model(deploy_model, deploy_config):
    """The training twin of ``deploy_config``, built and fused as
    tools/reparameterize_model.py fuses it, loads strictly into ``deploy_model`` (the
    tool's own writing and reading are tested on the small configs and the twins of
    tests/test_deploy_twins.py)."""
    from repmobile_mm.apis.model_io import build_model
    from repmobile_mm.apis.runner import load_config
    from repmobile_mm.models import reparameterize_model
    training = build_model(load_config(training_twin(deploy_config))).eval()
    deploy_model.load_state_dict(reparameterize_model(training).state_dict(), strict=True)


def assert_families_have_configs_and_twins(configs, dataset):
    """Each family has training configs of the published ``dataset`` among ``configs`` (so
    the config tests run over a list that is not empty), and every training config has
    its deploy twin under deploy/ and every twin its training config."""
    for family in ('repmobile', 'repvit', 'repnext'):
        ours = [p for p in configs if f'/configs/{family}/' in p]
        training = sorted(p for p in ours if '/deploy/' not in p)
        deploy = sorted(training_twin(p) for p in ours if '/deploy/' in p)
        assert any(dataset in osp.basename(p) for p in training), family
        assert training == deploy, family


@functools.lru_cache(maxsize=None)
def indexed_metadata() -> dict:
    """Config path (absolute) -> its Metadata in the metafiles (model-index.yml)."""
    from repmobile_mm.apis.model_index import read_metafiles
    return {osp.join(ROOT, model['Config']): model['Metadata']
            for content in read_metafiles(ROOT).values() for model in content['Models']}


def assert_indexed_parameters(model, path):
    """The metafile's Parameters of the config at ``path`` are the built model's (a demo
    config has no entry)."""
    from repmobile_mm.apis.model_index import DEMO_CONFIG
    from repmobile_mm.utils import count_params
    if DEMO_CONFIG.search(path):
        assert path not in indexed_metadata()
    else:
        assert indexed_metadata()[path]['Parameters'] == count_params(model), \
            f'{path}: the metafile is out of date (python tools/misc/update_model_index.py)'


def trained_and_fused(config, deploy_config, run):
    """``(form, config, checkpoint)`` of a training run's checkpoint (``run``: the
    fixture's ``tmp``, ``checkpoint`` and ``options``) and of the fused checkpoint that
    tools/reparameterize_model.py writes from it, for the deploy twin."""
    fused = str(run['tmp'] / 'fused_for_inferencer.pth')
    check_tool('tools/reparameterize_model.py', config, run['checkpoint'], fused,
               *run['options'])
    return [('training', config, run['checkpoint']), ('fused', deploy_config, fused)]


def check_picture(deploy_config, fused, images, picture, options=(), count=2):
    """tools/analysis_tools/draw_predictions.py on a fused checkpoint: one PNG with
    ``count`` panels side by side."""
    result = check_tool('tools/analysis_tools/draw_predictions.py', deploy_config, fused,
                        picture, '--images', images, '--count', str(count), *options)
    assert f'wrote {picture} ({count} images)' in result.stdout
    with Image.open(picture) as png:
        assert png.format == 'PNG' and png.width > count * 100 and png.height > 100


def fuse_with_tool(config, model, folder):
    """Save ``model`` (built from the training ``config``) and fuse it with
    tools/reparameterize_model.py, in this process (a check input of 64x64); returns the
    fused checkpoint's path, for the config's deploy twin."""
    src, dst = osp.join(folder, 'trained.pth'), osp.join(folder, 'fused.pth')
    torch.save({'state_dict': model.state_dict()}, src)
    check_tool('tools/reparameterize_model.py', config, src, dst, '--shape', '64', '64')
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


def scaled(pipeline, **changes):
    """``pipeline`` with ``changes`` (a step type -> its new arguments) applied; every
    step type named must be there (an empty pipeline: the config has none of its own)."""
    found = {step['type'] for step in pipeline}
    assert not pipeline or set(changes) <= found, (set(changes) - found, pipeline)
    for step in pipeline:
        step.update(changes.get(step['type'], {}))


def on_tiny_data(kind, cfg, data, train=False):
    """``cfg`` (a full-size recipe: ``kind`` in1k, distill, coco or ade20k) on the tiny
    generated set at ``data``: its test data (and with ``train``, its training data, a
    few iterations without validation), its image scales cut to the tiny images' (the
    recipes' 1333x800 and 2048x512 cost seconds an image on random weights and meet
    nothing more), no ImageNet checkpoint, one image a test batch (mmseg's
    preprocessor stacks only images of one size)."""
    loaders = [cfg.test_dataloader] + ([cfg.train_dataloader] if train else [])
    for loader in loaders:
        loader.update(num_workers=0, persistent_workers=False)
    cfg.test_dataloader.batch_size = 1
    if kind in ('in1k', 'distill'):
        for loader, split in zip(loaders, ('val', 'train')):
            loader.dataset = dict(type='CustomDataset', data_root=data, data_prefix=split,
                                  pipeline=loader.dataset.pipeline)
        cfg.model.pop('teacher', None)  # tested, not trained: no teacher to download
    elif kind == 'coco':
        classes = ('rectangle', 'ellipse', 'triangle')
        for loader in loaders:
            loader.dataset.update(data_root=data, metainfo=dict(classes=classes))
            scaled(loader.dataset.pipeline, Resize=dict(scale=(128, 128)))
        scaled(cfg.get('test_pipeline', []), Resize=dict(scale=(128, 128)))
        cfg.test_evaluator.ann_file = osp.join(data, 'annotations/instances_val2017.json')
        cfg.model.roi_head.bbox_head.num_classes = len(classes)
        cfg.model.roi_head.mask_head.num_classes = len(classes)
    else:
        for loader in loaders:
            loader.dataset.data_root = data
        for pipeline in (cfg.test_dataloader.dataset.pipeline, cfg.get('test_pipeline', [])):
            scaled(pipeline, Resize=dict(scale=(512, 128)))
        if train:
            scaled(cfg.train_dataloader.dataset.pipeline, RandomResize=dict(scale=(512, 128)),
                   RandomCrop=dict(crop_size=(128, 128)))
            cfg.model.data_preprocessor.size = (128, 128)
    cfg.model.backbone.pop('init_cfg', None)  # no ImageNet checkpoint here
    if train:  # the validation data is checked, not used (no validation in 2 iterations)
        cfg.val_dataloader, cfg.val_evaluator = cfg.test_dataloader, cfg.test_evaluator
        cfg.train_dataloader.batch_size = 2
        if 'max_iters' in cfg.train_cfg:
            cfg.train_cfg.update(max_iters=2, val_interval=100)
            cfg.default_hooks.checkpoint.interval = 2
        else:
            cfg.train_cfg.update(max_epochs=1, val_interval=100)
            cfg.default_hooks.checkpoint.interval = 1
    return cfg


# the small config of each task that the tests train (demo-sized data)
SMALL_RUNS = {
    'detection': 'detection/configs/repmobile/mask-rcnn_repmobile-s_fpn_1xb8-900i_shapes.py',
    'segmentation': 'segmentation/configs/repmobile/fpn_repmobile-s_1xb8-1000i_scenes-128x128.py',
}
# a file of each task's tiny data set (conftest's shapes_data, scenes_data) that the
# tests corrupt, and its sample's index in the training set
BAD_FILES = {'detection': ('train2017/000001.jpg', 0),
             'segmentation': ('annotations/training/training_00002.png', 2)}


def corrupt(path) -> str:
    """Replace the file at ``path`` with bytes that no image reader takes."""
    with open(path, 'wb') as f:
        f.write(b'not an image')
    return str(path)


def corrupt_copy(data, relative, folder):
    """``(copy, corrupt file)``: a copy of the tiny data set ``data`` in ``folder`` with
    ``relative`` corrupt (``data``'s trailing slash kept)."""
    copy = str(folder) + ('/' if data.endswith('/') else '')
    shutil.copytree(data, copy)
    return copy, corrupt(osp.join(copy, relative))
