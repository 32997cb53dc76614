"""Write the model index: each config folder's metafile.yml, model-index.yml, and the
tables that docs/model_zoo.md and the task READMEs generate from them.

    python tools/misc/update_model_index.py [--tables-only] [--check]

Parameters and FLOPs are computed from every config's model (a few minutes on 2 cores);
--tables-only regenerates the tables from the metafiles as they are; --check writes
nothing and fails if a file would change.
"""
import argparse
import os.path as osp
import sys

from repmobile_mm.apis.cli import run
from repmobile_mm.apis.model_index import (dump_yaml, metafiles, model_index, read_metafiles,
                                           updated_tables)
from repmobile_mm.errors import RepMobileError

ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--tables-only', action='store_true',
                        help='regenerate the tables from the metafiles as they are')
    parser.add_argument('--check', action='store_true',
                        help='write nothing; fail if a file would change')
    args = parser.parse_args()
    if args.tables_only:
        files = read_metafiles(ROOT)
        texts = {}
    else:
        files = metafiles(ROOT, progress=lambda config: print(config, flush=True))
        texts = {path: dump_yaml(content) for path, content in files.items()}
        texts['model-index.yml'] = dump_yaml(model_index(files))
    texts.update(updated_tables(ROOT, files))
    stale = []
    for path, text in texts.items():
        full = osp.join(ROOT, path)
        old = open(full).read() if osp.isfile(full) else None
        if old != text:
            stale.append(path)
            if not args.check:
                with open(full, 'w') as f:
                    f.write(text)
    if args.check and stale:
        raise RepMobileError(f"out of date: {', '.join(stale)}; run "
                             'python tools/misc/update_model_index.py')
    print(f"{'stale' if args.check else 'wrote'}: {', '.join(stale) or 'nothing'}")


if __name__ == '__main__':
    sys.exit(run(main))
