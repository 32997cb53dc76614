"""mim, as the OpenMMLab docs tell users to run things: `mim train/test/run repmobile_mm ...`
from any directory, on config names, with the editable install that `make` makes and
with a built wheel."""
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import tarfile

import pytest

from tests.helpers import ROOT, check_tool, make_folder_dataset

# the tests that share this module's trained checkpoints run in one pytest-xdist worker
# (make test: --dist loadgroup), so that each checkpoint is trained once
ONE_WORKER = pytest.mark.xdist_group('test_mim')

MIM = osp.join(osp.dirname(sys.executable), 'mim')
DIGITS = 'repmobile-s_1xb64_digits.py'
# one config of each task, by name alone
CONFIG_NAMES = {
    'classification/configs/repmobile/repmobile-s_1xb64_digits.py': DIGITS,
    'detection/configs/repvit/mask-rcnn_repvit-m1.1_fpn_1x_coco.py':
        'mask-rcnn_repvit-m1.1_fpn_1x_coco.py',
    'segmentation/configs/repnext/deploy/fpn_repnext-m3-deploy_4xb4-80k_ade20k-512x512.py':
        'fpn_repnext-m3-deploy_4xb4-80k_ade20k-512x512.py',
}


def mim(*args, cwd, env=None):
    result = subprocess.run([MIM, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def tiny_digits_options(data):
    return ['--cfg-options', f'train_dataloader.dataset.data_root={data}',
            f'val_dataloader.dataset.data_root={data}',
            f'test_dataloader.dataset.data_root={data}', 'train_dataloader.batch_size=6',
            'train_cfg.max_epochs=1', 'model.head.num_classes=3',
            'data_preprocessor.num_classes=3']


@pytest.fixture(scope='session')
def trained_by_mim(tmp_path_factory):
    """`mim train` and `mim test repmobile_mm <config name>` in a directory outside the
    repository, with the editable install."""
    tmp = tmp_path_factory.mktemp('mim')
    make_folder_dataset(str(tmp / 'data'))
    options = tiny_digits_options(tmp / 'data')
    output = mim('train', 'repmobile_mm', DIGITS, '--work-dir', 'work', *options, cwd=tmp)
    assert 'Epoch(train) [1][2/2]' in output
    checkpoint = str(tmp / 'work' / 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    mim('test', 'repmobile_mm', DIGITS, '--checkpoint', checkpoint, '--out', 'metrics.json',
        '--work-dir', 'test', *options, cwd=tmp)
    with open(tmp / 'metrics.json') as f:
        metrics = json.load(f)
    return dict(tmp=tmp, options=options, checkpoint=checkpoint, metrics=metrics)


def mim_lookup(code, tmp_path):
    """Run ``code`` with mim's own lookup functions, as the ``mim`` command does: from
    outside the repository (whose egg-info a process started there would see first)."""
    result = subprocess.run(
        [sys.executable, '-W', 'ignore', '-c',
         'from mim.utils import get_installed_path, recursively_find\n' + code],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout.splitlines()


def test_the_editable_install_is_where_mim_looks(tmp_path):
    root, = mim_lookup("print(get_installed_path('repmobile_mm'))", tmp_path)
    assert osp.isdir(root) and osp.samefile(root, osp.join(ROOT, 'repmobile_mm')), \
        f'mim looks in {root}, not this tree: install it with make (an egg-link, not PEP 660)'


@pytest.mark.parametrize('path,name', CONFIG_NAMES.items(), ids=['cls', 'det', 'seg'])
def test_each_task_finds_its_configs_by_name(path, name, tmp_path):
    """mim resolves a config name by searching the installed package (links followed)."""
    found = mim_lookup(f"print(*recursively_find(get_installed_path('repmobile_mm'), "
                       f"'{name}', followlinks=True), sep='\\n')", tmp_path)
    assert len(found) == 1 and found[0], f'mim finds {found} for {name}'
    assert osp.samefile(found[0], osp.join(ROOT, path))


@ONE_WORKER
@pytest.mark.slow
def test_mim_test_and_run_from_another_directory(trained_by_mim):
    """`mim test` scores what tools/test.py scores; `mim run` finds our tools."""
    tmp = trained_by_mim['tmp']
    config = osp.join(ROOT, 'classification/configs/repmobile', DIGITS)
    check_tool('tools/test.py', config, trained_by_mim['checkpoint'], '--out',
               str(tmp / 'direct.json'), '--work-dir', str(tmp / 'direct'),
               *trained_by_mim['options'])
    with open(tmp / 'direct.json') as f:
        assert trained_by_mim['metrics'] == json.load(f)
    assert 'accuracy/top1' in trained_by_mim['metrics']
    output = mim('run', 'repmobile_mm', 'get_flops', config, '--shape', '32', '32', cwd=tmp)
    assert 'deploy   form:' in output and 'MACs' in output


@ONE_WORKER
@pytest.mark.slow
def test_mim_uses_a_wheel_built_from_the_sdist(trained_by_mim, tmp_path):
    """An sdist of this tree (built from a copy: a build copies configs and tools into
    repmobile_mm/.mim, which must not replace the working tree's links) carries what
    setup.py reads (MANIFEST.in); the wheel built from it carries the tools and configs
    mim needs."""
    source = tmp_path / 'source'
    files = subprocess.run(['git', 'ls-files'], cwd=ROOT, capture_output=True, text=True,
                           timeout=60, check=True).stdout.split()
    assert 'setup.py' in files
    for name in files:
        os.makedirs(osp.dirname(source / name), exist_ok=True)
        shutil.copy2(osp.join(ROOT, name), source / name)
    subprocess.run([sys.executable, 'setup.py', '-q', 'sdist', '-d', str(tmp_path / 'sdist')],
                   cwd=source, check=True, timeout=300, capture_output=True)
    sdist, = os.listdir(tmp_path / 'sdist')
    with tarfile.open(tmp_path / 'sdist' / sdist) as archive:
        names = {name.split('/', 1)[1] for name in archive.getnames() if '/' in name}
    assert {'LICENSE', 'CITATION.cff', 'requirements/runtime.txt', 'tools/slurm_test.sh',
            'model-index.yml', 'classification/configs/repvit/metafile.yml',
            'detection/configs/repvit/mask-rcnn_repvit-m1.1_fpn_1x_coco.py'} <= names
    pip = [sys.executable, '-m', 'pip', '--disable-pip-version-check']
    subprocess.run([*pip, 'wheel', '-q', '--no-deps', '--no-build-isolation', '-w',
                    str(tmp_path / 'dist'), str(tmp_path / 'sdist' / sdist)], check=True,
                   timeout=300, capture_output=True)
    wheel, = os.listdir(tmp_path / 'dist')
    subprocess.run([*pip, 'install', '-q', '--no-deps', '--target', str(tmp_path / 'site'),
                    str(tmp_path / 'dist' / wheel)], check=True, timeout=300,
                   capture_output=True)
    installed = tmp_path / 'site' / 'repmobile_mm'
    assert osp.isfile(installed / '.mim' / 'tools' / 'test.py')
    assert osp.isfile(installed / '.mim' / 'model-index.yml')  # mim search reads it
    env = dict(os.environ, PYTHONPATH=str(tmp_path / 'site'))
    where = subprocess.run(
        [sys.executable, '-W', 'ignore', '-c',
         'from mim.utils import get_installed_path; import repmobile_mm; '
         "print(get_installed_path('repmobile_mm')); print(repmobile_mm.__file__)"],
        capture_output=True, text=True, timeout=120, env=env, check=True,
        cwd=tmp_path).stdout.split()  # not from the repository, whose egg-info `-c` would see
    assert osp.samefile(where[0], installed) and where[1].startswith(str(installed))
    tmp = trained_by_mim['tmp']
    output = mim('test', 'repmobile_mm', DIGITS, '--checkpoint', trained_by_mim['checkpoint'],
                 '--out', 'wheel_metrics.json', '--work-dir', 'test_wheel',
                 *trained_by_mim['options'], cwd=tmp, env=env)
    assert str(installed / '.mim') in output  # mim ran the wheel's tools.test and config
    with open(tmp / 'wheel_metrics.json') as f:
        assert json.load(f) == trained_by_mim['metrics']
