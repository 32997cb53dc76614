"""The model index: a ``metafile.yml`` per config folder and ``model-index.yml`` at the
root, in mmpretrain's schema, read by ``mim search``/``mim download`` (packaged into
``repmobile_mm/.mim``) and by mmpretrain's model hub (``integrations/mmpretrain.py``).

Every config has an entry, except the demo configs (digits, shapes, scenes). Parameters
and FLOPs are computed here from the built model at the config's test size (FLOPs as
OpenMMLab's metafiles count them: multiply-accumulates, of the whole classifier, and of
backbone and neck for detectors and segmentors); published results and weights are
quoted from the publishers (``PUBLISHED``), never measured here. The tables of
docs/model_zoo.md and the task READMEs are generated from the metafiles
(:func:`update_tables`). tools/misc/update_model_index.py is the command line.
"""
import glob
import os.path as osp
import re
from typing import Callable, Dict, List, Optional

from ..errors import RepMobileError
from ..models.published import REPNEXT_RELEASE, REPVIT_FIRST_RELEASE, REPVIT_RELEASE

TASKS = ('classification', 'detection', 'segmentation')
FAMILIES = ('repmobile', 'repvit', 'repnext')
# configs that train in minutes on generated data (the demo's), not published models
DEMO_CONFIG = re.compile(r'_(digits|shapes|scenes)(-\d+x\d+)?\.py$')
CODE = {'repvit': 'https://github.com/THU-MIG/RepViT',
        'repnext': 'https://github.com/suous/RepNeXt'}
PAPERS = {'repvit': ('https://arxiv.org/abs/2307.09283',
                     'RepViT: Revisiting Mobile CNN From ViT Perspective'),
          'repnext': ('https://arxiv.org/abs/2406.16004',
                      'RepNeXt: A Fast Multi-Scale CNN using Structural Reparameterization')}
NAMES = {'repmobile': 'RepMobile', 'repvit': 'RepViT', 'repnext': 'RepNeXt'}
COLLECTION = {'classification': '{}', 'detection': 'Mask R-CNN {}',
              'segmentation': 'Semantic FPN {}'}
DATASET = {'classification': 'ImageNet-1k', 'detection': 'COCO', 'segmentation': 'ADE20K'}


def _published() -> Dict[str, dict]:
    """Config name -> (results as the publishers report them, release URL or None).

    Quoted from the papers and READMEs (shared/specs): ImageNet-1K top-1 of the
    distilled 300-epoch models, Mask R-CNN 1x box/mask AP, Semantic FPN mIoU.
    RepMobile's files are Google Drive share links: no URL a downloader can fetch."""
    table = {}
    top1 = {('repmobile', 's'): 77.2, ('repmobile', 'm'): 78.8, ('repmobile', 'l'): 80.9,
            ('repvit', 'm0.9'): 78.7, ('repvit', 'm1.0'): 80.0, ('repvit', 'm1.1'): 80.7,
            ('repvit', 'm1.5'): 82.3, ('repvit', 'm2.3'): 83.3, ('repvit', 'm1'): 78.5,
            ('repvit', 'm2'): 80.6, ('repvit', 'm3'): 81.4, ('repnext', 'm1'): 78.8,
            ('repnext', 'm2'): 80.1, ('repnext', 'm3'): 80.7, ('repnext', 'm4'): 82.3,
            ('repnext', 'm5'): 83.3}
    variants = {'repmobile': ('s', 'm', 'l'),
                'repvit': ('m0.6', 'm0.9', 'm1.0', 'm1.1', 'm1.5', 'm2.3', 'm1', 'm2', 'm3'),
                'repnext': ('m0', 'm1', 'm2', 'm3', 'm4', 'm5')}
    for family, names in variants.items():
        batch = '4xb256' if family == 'repmobile' else '8xb256'
        for variant in names:
            url = None
            if family == 'repvit':
                url = (f'{REPVIT_FIRST_RELEASE}repvit_{variant}_distill_300.pth'
                       if variant in ('m1', 'm2', 'm3') else
                       f"{REPVIT_RELEASE}repvit_{variant.replace('.', '_')}_distill_300e.pth")
            elif family == 'repnext':
                url = f'{REPNEXT_RELEASE}repnext_{variant}_distill_300e.pth'
            score = top1.get((family, variant))
            table[f'{family}-{variant}_{batch}-300e-distill_in1k'] = dict(
                results={'Top 1 Accuracy': score} if score else None, weights=url)
    boxes = {('repmobile', 's'): (39.8, 37.2), ('repmobile', 'l'): (41.6, 38.6),
             ('repvit', 'm1.1'): (39.8, 37.2), ('repvit', 'm1.5'): (41.6, 38.6),
             ('repvit', 'm2.3'): (44.6, 40.8), ('repnext', 'm3'): (40.8, 37.8),
             ('repnext', 'm4'): (42.9, 39.1), ('repnext', 'm5'): (44.7, 40.7)}
    for (family, variant), (box, mask) in boxes.items():
        url = {'repvit': f"{REPVIT_RELEASE}repvit_{variant.replace('.', '_')}_coco.pth",
               'repnext': f'{REPNEXT_RELEASE}repnext_{variant}_coco.pth'}.get(family)
        table[f'mask-rcnn_{family}-{variant}_fpn_1x_coco'] = dict(
            results={'box AP': box, 'mask AP': mask}, weights=url)
    mious = {('repmobile', 'l', '8xb4-40k'): 42.2, ('repvit', 'm1.1', '8xb4-40k'): 40.6,
             ('repvit', 'm1.5', '8xb4-40k'): 43.6, ('repvit', 'm2.3', '8xb4-40k'): 46.1,
             ('repnext', 'm3', '4xb4-80k'): 40.6, ('repnext', 'm4', '4xb4-80k'): 43.3,
             ('repnext', 'm5', '4xb4-80k'): 45.0}
    for (family, variant, schedule), miou in mious.items():
        url = {'repvit': f"{REPVIT_RELEASE}repvit_{variant.replace('.', '_')}_ade20k.pth",
               'repnext': f'{REPNEXT_RELEASE}repnext_{variant}_ade20k.pth'}.get(family)
        table[f'fpn_{family}-{variant}_{schedule}_ade20k-512x512'] = dict(
            results={'mIoU': miou}, weights=url)
    return table


PUBLISHED = _published()


def config_files(root: str) -> List[str]:
    """Every config of the three task trees, relative to ``root`` (bases excluded)."""
    paths = []
    for task in TASKS:
        paths += glob.glob(osp.join(root, task, 'configs', '*', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(p, root) for p in paths if '/_base_/' not in p)


def indexed_configs(root: str) -> List[str]:
    """The configs that have a metafile entry: all but the demo configs."""
    return [p for p in config_files(root) if not DEMO_CONFIG.search(p)]


def training_name(name: str) -> str:
    """A deploy twin's training config name (``repvit-m1.1-deploy_...`` -> ``repvit-m1.1_...``)."""
    return name.replace('-deploy_', '_')


def complexity(root: str, config: str) -> Dict[str, int]:
    """Parameters of the built model and FLOPs (MACs) of what its task compares, at the
    config's test size."""
    from ..utils import count_macs, count_params
    from .model_io import build_model, test_input_size
    from .runner import load_config
    from .tasks import task_of
    cfg = load_config(osp.join(root, config))
    model = build_model(cfg).eval()
    height, width = test_input_size(cfg)
    return dict(Parameters=count_params(model),
                FLOPs=count_macs(task_of(cfg).comparable(model), (1, 3, height, width)))


def model_entry(config: str, metadata: Dict[str, int]) -> dict:
    """The metafile entry of ``config`` (relative to the root) with computed ``metadata``."""
    task, _, family = config.split('/')[:3]
    name = osp.basename(config)[:-len('.py')]
    entry = dict(Name=name.lower(), **{'In Collection': COLLECTION[task].format(NAMES[family])},
                 Config=config,
                 Metadata=dict(metadata, **{'Training Data': DATASET[task]}))
    published = PUBLISHED.get(training_name(name))
    if published and published['results']:
        tasks = {'classification': [('Image Classification', ['Top 1 Accuracy'])],
                 'detection': [('Object Detection', ['box AP']),
                               ('Instance Segmentation', ['mask AP'])],
                 'segmentation': [('Semantic Segmentation', ['mIoU'])]}[task]
        entry['Results'] = [dict(Task=t, Dataset=DATASET[task],
                                 Metrics={m: published['results'][m] for m in metrics})
                            for t, metrics in tasks]
    if published and published['weights']:
        if name == training_name(name):
            entry['Weights'] = published['weights']
        entry['Converted From'] = dict(Weights=published['weights'], Code=CODE[family])
    return entry


def collection(task: str, family: str) -> dict:
    entry = dict(Name=COLLECTION[task].format(NAMES[family]),
                 Metadata={'Training Data': DATASET[task]}, README=f'{task}/README.md')
    if family in PAPERS:
        entry['Paper'] = dict(URL=PAPERS[family][0], Title=PAPERS[family][1])
        entry['Code'] = dict(URL=CODE[family])
    return entry


def metafiles(root: str, complexity_of: Optional[Callable[[str], Dict[str, int]]] = None,
              progress: Callable[[str], None] = lambda config: None) -> Dict[str, dict]:
    """Metafile path (relative to ``root``) -> its content: every indexed config's entry
    with the Parameters and FLOPs of ``complexity_of(config)`` (by default computed,
    :func:`complexity`); ``progress`` is called with each config first."""
    files = {}
    for config in indexed_configs(root):
        task, _, family = config.split('/')[:3]
        path = f'{task}/configs/{family}/metafile.yml'
        progress(config)
        metadata = complexity_of(config) if complexity_of else complexity(root, config)
        files.setdefault(path, dict(Collections=[collection(task, family)], Models=[]))
        files[path]['Models'].append(model_entry(config, metadata))
    return files


def model_index(paths) -> dict:
    return dict(Import=sorted(paths))


def dump_yaml(data: dict) -> str:
    import yaml
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def read_metafiles(root: str) -> Dict[str, dict]:
    """The metafiles that ``model-index.yml`` imports, read."""
    import yaml
    with open(osp.join(root, 'model-index.yml')) as f:
        index = yaml.safe_load(f)
    files = {}
    for path in index['Import']:
        with open(osp.join(root, path)) as f:
            files[path] = yaml.safe_load(f)
    return files


def zoo_table(files: Dict[str, dict], task: Optional[str] = None) -> str:
    """A Markdown table of the published models (those with results): name, parameters,
    FLOPs, published results, weights."""
    rows = ['| model | params (M) | FLOPs (G) | published results | weights |',
            '|---|---|---|---|---|']
    for path in sorted(files, key=lambda p: (TASKS.index(p.split('/')[0]), p)):
        if task and not path.startswith(task + '/'):
            continue
        for model in files[path]['Models']:
            if 'Results' not in model or '-deploy_' in model['Name']:
                continue
            results = ', '.join(f'{k} {v}' for r in model['Results']
                                for k, v in r['Metrics'].items())
            weights = f"[release]({model['Weights']})" if model.get('Weights') else 'Google Drive'
            meta = model['Metadata']
            rows.append(f"| [{model['Name']}]({model['Config']}) | "
                        f"{meta['Parameters'] / 1e6:.2f} | {meta['FLOPs'] / 1e9:.2f} | "
                        f'{results} | {weights} |')
    return '\n'.join(rows)


BEGIN, END = '<!-- model index table: begin -->', '<!-- model index table: end -->'
TABLES = {'docs/model_zoo.md': None, 'classification/README.md': 'classification',
          'detection/README.md': 'detection', 'segmentation/README.md': 'segmentation'}


def updated_tables(root: str, files: Dict[str, dict]) -> Dict[str, str]:
    """Document path -> its text with the table between the markers regenerated (links
    relative to the document)."""
    texts = {}
    for doc, task in TABLES.items():
        with open(osp.join(root, doc)) as f:
            text = f.read()
        if BEGIN not in text or END not in text:
            raise RepMobileError(f'{doc} has no {BEGIN} ... {END} markers')
        up = osp.relpath(root, osp.join(root, osp.dirname(doc)))
        table = re.sub(r'\]\(((?:classification|detection|segmentation)/[^)]*)\)',
                       lambda m: f']({osp.join(up, m.group(1))})', zoo_table(files, task))
        head, rest = text.split(BEGIN, 1)
        texts[doc] = f'{head}{BEGIN}\n{table}\n{END}{rest.split(END, 1)[1]}'
    return texts
