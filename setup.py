"""Packaging for repmobile_mm (pip install -e . / mim install -e .)."""
import os
import os.path as osp
import shutil
import sys
from setuptools import find_packages, setup

ROOT = osp.dirname(osp.abspath(__file__))
# What mim needs inside the package: tools and configs (`mim train repmobile_mm CONFIG`),
# the model index and its metafiles (`mim search`, `mim download`).
MIM_ITEMS = ('configs', 'tools', 'classification', 'detection', 'segmentation',
             'model-index.yml')


def add_mim_extension():
    """Populate ``repmobile_mm/.mim``: links for editable installs, copies for builds.

    PEP 660 editable installs run ``editable_wheel`` rather than ``develop``; both
    get links, so the installed tools and configs follow the working tree.
    """
    if {'develop', 'editable_wheel'} & set(sys.argv):
        link = True
    elif {'sdist', 'bdist_wheel', 'build'} & set(sys.argv):
        link = False
    else:
        return
    mim_dir = osp.join(ROOT, 'repmobile_mm', '.mim')
    os.makedirs(mim_dir, exist_ok=True)
    for item in MIM_ITEMS:
        src, dst = osp.join(ROOT, item), osp.join(mim_dir, item)
        if not osp.exists(src):
            continue
        if osp.islink(dst) or osp.isfile(dst):
            os.remove(dst)
        elif osp.isdir(dst):
            shutil.rmtree(dst)
        if link:
            os.symlink(osp.relpath(src, mim_dir), dst)
        elif osp.isdir(src):
            shutil.copytree(src, dst)
        else:
            shutil.copy(src, dst)


def read_version():
    """``__version__`` of repmobile_mm/version.py, without importing the package."""
    namespace = {}
    with open(osp.join(ROOT, 'repmobile_mm', 'version.py')) as f:
        exec(f.read(), namespace)
    return namespace['__version__']


def read_requirements(name):
    with open(osp.join(ROOT, 'requirements', name)) as f:
        lines = (line.split('#')[0].strip() for line in f)
        return [line for line in lines if line]


def extras():
    """The optional requirements; ``all``: every one a user runs (not the tests')."""
    groups = {
        'mm': read_requirements('mminstall.txt'),
        'tests': read_requirements('tests.txt'),
        'deploy': read_requirements('deploy.txt'),
        # with their declared dependencies (make installs them --no-deps)
        'executorch': read_requirements('executorch.txt'),
    }
    groups['all'] = sorted({r for name in ('mm', 'deploy', 'executorch') for r in groups[name]})
    return groups


if __name__ == '__main__':
    add_mim_extension()
    setup(
        name='repmobile_mm',
        version=read_version(),
        description='Re-parameterizable mobile CNN backbones (RepMobile) for OpenMMLab 2.0',
        long_description=open(osp.join(ROOT, 'README.md')).read(),
        long_description_content_type='text/markdown',
        license='Apache-2.0',
        python_requires='>=3.8',
        packages=find_packages(include=['repmobile_mm', 'repmobile_mm.*']),
        include_package_data=True,
        package_data={'repmobile_mm': ['.mim/**/*']},
        # Loose on purpose: an existing OpenMMLab environment keeps its torch.
        # requirements/*.txt pin the tested stack that `make` installs.
        install_requires=['torch', 'mmengine>=0.10.0', 'timm'],
        extras_require=extras(),
        zip_safe=False)
