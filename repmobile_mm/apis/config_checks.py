"""Configs that cannot work, said in one line that names the config key and the fix
(instead of a registry KeyError, a missing-file traceback from a dataset, or a
convolution shape error from deep inside torch)."""
import difflib
import importlib
import os.path as osp
import re
from contextlib import contextmanager
from typing import Iterator, List

from mmengine.config import Config
from torch import nn

from ..errors import ConfigError

# data roots of this repository's configs -> how to get them
DATA_HINTS = {
    'data/digits': 'python tools/dataset_converters/export_digits.py writes it',
    'data/shapes': 'python tools/dataset_converters/make_shapes.py writes it',
    'data/scenes': 'python tools/dataset_converters/make_scenes.py writes it',
    'data/imagenet': 'put ImageNet-1K there (train/, val/, meta/ as mmpretrain expects)',
    'data/coco': 'put COCO 2017 there (annotations/, train2017/, val2017/)',
    'data/ade': 'put ADEChallengeData2016 there (images/, annotations/)',
}


def type_keys(node, name: str, prefix: str = '') -> List[str]:
    """Config keys whose ``type`` is ``name`` (e.g. ``model.backbone.type``)."""
    keys = []
    if isinstance(node, dict):
        if node.get('type') == name:
            keys.append(f'{prefix}type')
        for key, value in node.items():
            keys += type_keys(value, name, f'{prefix}{key}.')
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            keys += type_keys(value, name, f'{prefix}{i}.')
    return keys


def registered_names(scope: str, registry_name: str) -> List[str]:
    """Every name the ``scope::registry_name`` registry can build (with its parents)."""
    try:
        module = importlib.import_module(f'{scope}.registry')
    except ImportError:
        return []
    names = []
    for value in vars(module).values():
        if getattr(value, 'name', None) == registry_name and hasattr(value, 'module_dict'):
            registry = value
            while registry is not None:
                names += list(registry.module_dict)
                registry = registry.parent
    return sorted(set(names))


@contextmanager
def explained_registry_errors(cfg: Config) -> Iterator[None]:
    """Turn mmengine's "X is not in the scope::registry registry" KeyError into one
    line with the config key and the closest registered names."""
    try:
        yield
    except KeyError as err:
        match = re.search(r'([\w.]+) is not in the (\w+)::(\w+) registry', str(err))
        if not match:
            raise
        name, scope, registry_name = match.groups()
        keys = type_keys(cfg.to_dict(), name) or ['type']
        names = registered_names(scope, registry_name)
        close = [n for n in names if n.lower() == name.lower()] or \
            difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(repr(n) for n in close)}?" if close else \
            ' (is the package that registers it in custom_imports?)'
        raise ConfigError(f'{keys[0]}={name!r}: no {registry_name} of that name is registered '
                          f'in {scope}{hint}') from None


def check_data_roots(cfg: Config, fields: List[str]) -> None:
    """Every ``<field>.dataset.data_root`` (through wrapper datasets) exists."""
    for field in fields:
        loader = cfg.get(field)
        dataset, key = (loader or {}).get('dataset'), f'{field}.dataset'
        while isinstance(dataset, dict):
            root = dataset.get('data_root')
            if root and not osp.isdir(root):
                root_path = osp.normpath(root)
                hint = next((h for r, h in DATA_HINTS.items()
                             if root_path == r or root_path.startswith(r + osp.sep)), None)
                raise ConfigError(
                    f'{key}.data_root: {root} does not exist'
                    + (f' ({hint})' if hint else '')
                    + f'; or point it elsewhere with --cfg-options {key}.data_root=PATH')
            dataset, key = dataset.get('dataset'), f'{key}.dataset'


def check_backbone_outputs(model: nn.Module) -> None:
    """The neck (or a classifier's head) takes the channels our backbone gives."""
    backbone = getattr(model, 'backbone', None)
    given = getattr(backbone, 'out_channels', None)
    if not isinstance(given, (list, tuple)) or not given:
        return  # not one of ours
    out_indices = tuple(getattr(backbone, 'out_indices', ()))
    neck = getattr(model, 'neck', None)
    expected = getattr(neck, 'in_channels', None)
    key = 'model.neck.in_channels'
    if expected is None:  # a classifier pooling without parameters: the head takes it
        expected, key = getattr(getattr(model, 'head', None), 'in_channels', None), \
            'model.head.in_channels'
    if expected is None:
        return
    if isinstance(expected, (list, tuple)):
        if list(expected) != list(given):
            raise ConfigError(f'{key}={list(expected)} but model.backbone (out_indices='
                              f'{out_indices}) gives {list(given)} channels: set {key}='
                              f'{list(given)}, or out_indices to the stages it expects')
    elif expected != given[-1]:
        raise ConfigError(f'{key}={expected} but the last output of model.backbone '
                          f'(out_indices={out_indices}) has {given[-1]} channels: set '
                          f'{key}={given[-1]}, or end out_indices at the last stage')
