"""The README and docs/ name only what exists: every relative link (and its anchor) and
every repository path they mention, in prose and in commands; the README's quick-start
commands run."""
import glob
import os.path as osp
import re
import shlex

import pytest

from repmobile_mm.apis.runner import load_config
from .helpers import ROOT, check_tool, make_folder_dataset, on_tiny_data

PAGES = sorted(['README.md', *glob.glob('docs/**/*.md', root_dir=ROOT, recursive=True),
                *glob.glob('*/README.md', root_dir=ROOT), 'tests/data/README.md'])
LINK = re.compile(r'\[[^\]]*\]\(([^)\s]+)\)')
CODE = re.compile(r'`([^`\n]+)`|```[^\n]*\n(.*?)```', re.S)
# paths into the repository, as prose and commands name them
TOP = ('repmobile_mm/', 'tools/', 'configs/', 'classification/', 'detection/',
       'segmentation/', 'docs/', 'tests/', 'requirements/', '.ci/')
PATH = re.compile(r'(?<![\w./-])((?:%s)[^\s`\'"),;:]*)' % '|'.join(re.escape(t) for t in TOP))
PLACEHOLDER = re.compile(r'[*{}<>\[\]]|\.\.|\b[A-Z]{3,}\b')


def exists(path):
    """A file or folder, or a module's attribute (``tests/helpers.run_tool``)."""
    path = path.rstrip('.')
    module = re.sub(r'\.\w+$', '.py', path)
    return osp.exists(osp.join(ROOT, path)) or osp.isfile(osp.join(ROOT, module))


def anchors(page):
    """GitHub's heading anchors of a markdown page."""
    with open(osp.join(ROOT, page)) as f:
        text = re.sub(r'```.*?```', '', f.read(), flags=re.S)
    return {re.sub(r'[^\w\- ]', '', heading.strip().lower()).replace(' ', '-')
            for heading in re.findall(r'^#+ (.+)$', text, re.M)}


def test_the_pages_are_found():
    assert len(PAGES) >= 15 and 'docs/deployment.md' in PAGES and 'detection/README.md' in PAGES


@pytest.mark.parametrize('page', PAGES)
def test_links_and_paths_exist(page):
    with open(osp.join(ROOT, page)) as f:
        text = f.read()
    missing = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target):
            continue  # a web address
        path, _, anchor = target.partition('#')
        resolved = osp.normpath(osp.join(osp.dirname(page), path)) if path else page
        if not osp.exists(osp.join(ROOT, resolved)):
            missing.append(f'link {target}')
        elif anchor and resolved.endswith('.md') and anchor not in anchors(resolved):
            missing.append(f'anchor {target}')
    for inline, block in CODE.findall(text):
        for path in PATH.findall(inline or block):
            if '*' in path and not PLACEHOLDER.search(path.replace('*', '')):
                if not glob.glob(path, root_dir=ROOT):
                    missing.append(f'pattern {path}')
            elif not PLACEHOLDER.search(path) and not exists(path):
                missing.append(f'path {path}')
    assert not missing, f'{page} names what does not exist: {missing}'


def test_the_readme_is_a_front_page():
    assert osp.getsize(osp.join(ROOT, 'README.md')) <= 12 * 1024


def quick_start_blocks():
    """The README's quick-start command blocks, each a list of argument lists."""
    with open(osp.join(ROOT, 'README.md')) as f:
        section = f.read().split('\n## Quick start\n', 1)[1].split('\n## ', 1)[0]
    return [[shlex.split(line) for line in block.strip().splitlines()]
            for block in re.findall(r'```bash\n(.*?)```', section, re.S)]


# each task's quick start: the recipe kind of tests/helpers.on_tiny_data, and its data
QUICK_START = {'classification': ('in1k', None), 'detection': ('coco', 'shapes_data'),
               'segmentation': ('ade20k', 'scenes_data')}


@pytest.mark.slow
@pytest.mark.parametrize('task', sorted(QUICK_START))
def test_quick_start_commands_run_on_the_demos_small_data(task, tmp_path, request):
    """Each command of the task's quick start, as written, with its configs on the tiny
    generated data (tests/helpers.on_tiny_data: a few iterations), `dist_train.sh ...
    8` as tools/train.py in this process (two processes: tests/test_runs.py), the
    checkpoint it names the one the training wrote, and the files it writes in a
    temporary folder; each writes what it names."""
    blocks = quick_start_blocks()
    ours = [block for block in blocks if block[0][1].startswith(f'{task}/')]
    assert len(blocks) == 3 and len(ours) == 1
    kind, fixture = QUICK_START[task]
    if fixture:
        data = request.getfixturevalue(fixture)
    else:
        data = str(tmp_path / 'data')
        make_folder_dataset(data, per_class=2)
    work = str(tmp_path / 'work')
    configs = {}  # the README's config -> its copy on the tiny data

    def small(config):
        if config not in configs:
            configs[config] = str(tmp_path / f'{len(configs)}.py')
            on_tiny_data(kind, load_config(osp.join(ROOT, config)), data, train=True).dump(
                configs[config])
        return configs[config]

    commands = [command[1:] if command[0] == 'python' else command for command in ours[0]]
    assert [c[0] for c in commands][:4] == ['tools/dist_train.sh', 'tools/test.py',
                                            'tools/reparameterize_model.py', 'tools/test.py']
    for step, (tool, *args) in enumerate(commands):
        if tool == 'tools/dist_train.sh':
            config, gpus = args
            assert gpus == '8'
            tool, args = 'tools/train.py', [config, '--work-dir', work]
        files = []  # the .pth and .onnx files it names, in a temporary folder
        for i, arg in enumerate(args):
            if arg.endswith('.py'):
                args[i] = small(arg)
            elif arg.startswith('work_dirs/'):
                with open(osp.join(work, 'last_checkpoint')) as f:
                    args[i] = f.read().strip()
            elif arg.endswith(('.pth', '.onnx')):
                args[i] = str(tmp_path / arg)
                files.append(args[i])
        if tool == 'tools/test.py':
            args += ['--work-dir', str(tmp_path / f'test{step}')]
        if tool == 'tools/deployment/quantize_onnx.py':
            args += ['--latency-rounds', '1']  # not 50 rounds of 10 calls a model
        check_tool(tool, *args)
        if tool not in ('tools/train.py', 'tools/test.py'):  # its output: the last file
            assert osp.isfile(files[-1]), f'{tool} did not write {files[-1]}'
