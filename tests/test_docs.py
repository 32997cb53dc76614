"""The README and docs/ name only what exists: every relative link (and its anchor) and
every repository path they mention, in prose and in commands."""
import glob
import os.path as osp
import re

import pytest

from .helpers import ROOT

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
