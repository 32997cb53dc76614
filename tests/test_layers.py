"""The layers of docs/development.md, read from the import statements of every file."""
import ast
import glob
import os.path as osp

import pytest

from tests.helpers import ROOT

# layer -> package prefixes its modules must not import (relative imports resolved)
FORBIDDEN = {
    'repmobile_mm/models': ('repmobile_mm.apis', 'repmobile_mm.engine',
                            'repmobile_mm.integrations', 'mmcv', 'mmdet', 'mmseg', 'mmpretrain'),
    'repmobile_mm/engine': ('repmobile_mm.apis', 'repmobile_mm.integrations'),
    'repmobile_mm/integrations': ('repmobile_mm.apis', 'mmseg'),
    'repmobile_mm': ('tools', ),
    'tools': ('tools', ),
    'tests': ('tools', ),
}


def imported_modules(path):
    """Absolute names of the modules a file imports (at any depth of its code), and a
    ``tools`` entry for a file loaded by path from tools/ (importlib, runpy)."""
    package = osp.relpath(osp.dirname(path), ROOT).replace(osp.sep, '.')
    names = []
    for node in ast.walk(ast.parse(open(path).read())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split('.')[:len(package.split('.')) - node.level + 1] \
                if node.level else []
            module = '.'.join(base + ([node.module] if node.module else []))
            names += [module] + [f'{module}.{alias.name}' for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, 'attr', '') in (
                'spec_from_file_location', 'SourceFileLoader'):
            names.append('tools')  # a module loaded from a file: only tools are files
    return names


@pytest.mark.parametrize('layer', sorted(FORBIDDEN))
def test_each_layer_imports_only_what_it_may(layer):
    files = glob.glob(osp.join(ROOT, layer, '**', '*.py'), recursive=True)
    assert files, f'no files under {layer}'
    wrong = [f'{osp.relpath(path, ROOT)} imports {name}'
             for path in files for name in imported_modules(path)
             if any(name == p or name.startswith(p + '.') for p in FORBIDDEN[layer])]
    assert not wrong, '\n'.join(wrong)


def test_the_package_raises_and_the_tools_exit():
    """No SystemExit or sys.exit under repmobile_mm/: the tools' edge turns the package's
    exceptions into exits (repmobile_mm.apis.cli.run)."""
    files = glob.glob(osp.join(ROOT, 'repmobile_mm', '**', '*.py'), recursive=True)
    exits = [f'{osp.relpath(path, ROOT)}:{node.lineno}' for path in files
             for node in ast.walk(ast.parse(open(path).read()))
             if isinstance(node, ast.Name) and node.id == 'SystemExit'
             or isinstance(node, ast.Attribute) and node.attr == 'exit'
             and isinstance(node.value, ast.Name) and node.value.id == 'sys']
    assert files and not exits, exits


def test_only_the_task_adapter_knows_the_task_libraries():
    """Outside apis/tasks.py (and each library's own integration module) nothing in the
    package imports mmdet, mmseg or mmpretrain, and no file outside it compares
    default_scope."""
    libraries = ('mmdet', 'mmseg', 'mmpretrain')
    allowed = {osp.join('repmobile_mm', 'apis', 'tasks.py'): libraries,
               osp.join('repmobile_mm', 'integrations', 'mmpretrain.py'): ('mmpretrain', ),
               osp.join('repmobile_mm', 'integrations', 'mmdet.py'): ('mmdet', )}
    files = glob.glob(osp.join(ROOT, 'repmobile_mm', '**', '*.py'), recursive=True)
    assert all(osp.join(ROOT, path) in files for path in allowed)
    wrong = [f'{osp.relpath(path, ROOT)} imports {name}' for path in files
             for name in imported_modules(path)
             if any(name == p or name.startswith(p + '.') for p in libraries
                    if p not in allowed.get(osp.relpath(path, ROOT), ()))]
    tools = glob.glob(osp.join(ROOT, 'tools', '**', '*.py'), recursive=True)
    compared = [osp.relpath(path, ROOT) for path in files + tools
                if osp.relpath(path, ROOT) != osp.join('repmobile_mm', 'apis', 'tasks.py')
                and ('default_scope ==' in open(path).read()
                     or 'default_scope not in' in open(path).read())]
    assert files and tools and not wrong and not compared, wrong + compared
