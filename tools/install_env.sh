#!/usr/bin/env bash
# Installs the pinned stack into .venv (idempotent). `make demo` and `make test` call it.
#
# mmcv 2.1.0 has no wheels for torch 2.14: it is built once from its sdist (with ops,
# C++20 since torch 2.14's headers need it) and the wheel is cached outside the clone
# under $REPMOBILE_MM_CACHE (default ~/.cache/repmobile_mm), so fresh clones reuse it.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
VENV=${VENV:-$ROOT/.venv}
CACHE=${REPMOBILE_MM_CACHE:-$HOME/.cache/repmobile_mm}
WHEELS=$CACHE/wheels
PY=${PYTHON:-python3}
MMCV_VERSION=2.1.0

stamp_inputs=("$ROOT"/requirements/*.txt "$ROOT/setup.py" "$ROOT/tools/install_env.sh")
STAMP=$(cat "${stamp_inputs[@]}" | sha256sum | cut -c1-16)
if [[ -f $VENV/.installed && $(cat "$VENV/.installed") == "$STAMP" ]]; then
    exit 0
fi

log() { echo "[install_env] $*"; }

if [[ ! -x $VENV/bin/python ]]; then
    log "creating $VENV"
    "$PY" -m venv "$VENV"
fi
# every install and download within the versions the suite passed with
export PIP_CONSTRAINT=$ROOT/requirements/constraints.txt
pip() { "$VENV/bin/python" -m pip --disable-pip-version-check "$@"; }

log "installing torch, torchvision and build tools"
pip install -q 'setuptools>=77.0.3,<80' wheel ninja
pip install -q -r "$ROOT/requirements/runtime.txt"

build_mmcv() {
    local work
    work=$(mktemp -d)
    trap 'rm -rf "$work"' RETURN
    log "building mmcv $MMCV_VERSION with ops from its sdist (about 20 minutes on 2 cores, once per machine)"
    # The sdist's metadata step imports torch, hence no build isolation.
    pip download -q --no-deps --no-binary :all: --no-build-isolation "mmcv==$MMCV_VERSION" -d "$work"
    tar -xzf "$work/mmcv-$MMCV_VERSION.tar.gz" -C "$work"
    local src=$work/mmcv-$MMCV_VERSION
    grep -q -- '-std=c++17' "$src/setup.py" || { log "mmcv setup.py has no -std=c++17 flag to raise"; return 1; }
    sed -i 's/-std=c++17/-std=c++20/g' "$src/setup.py"
    mkdir -p "$WHEELS"
    local buildlog=$CACHE/mmcv-build.log
    log "full build log: $buildlog; progress (compiled/total):"
    # ninja prints "[i/N] ..." per compiled file: show those lines as progress.
    (cd "$src" && MMCV_WITH_OPS=1 MAX_JOBS=${MAX_JOBS:-$(nproc)} \
        "$VENV/bin/python" setup.py bdist_wheel -d "$work/dist" >"$buildlog" 2>&1) &
    local pid=$!
    while kill -0 "$pid" 2>/dev/null; do
        sleep 30
        local line
        line=$(grep -oE '^\[[0-9]+/[0-9]+\]' "$buildlog" | tail -n 1 || true)
        log "mmcv build ${line:-preparing}"
    done
    if ! wait "$pid"; then
        tail -n 40 "$buildlog"
        log "mmcv build failed; see $buildlog"
        return 1
    fi
    cp "$work"/dist/mmcv-*.whl "$WHEELS/"
}

if ! ls "$WHEELS"/mmcv-$MMCV_VERSION-*.whl >/dev/null 2>&1; then
    build_mmcv
fi

log "installing the OpenMMLab packages, openmim, test and lint tools"
pip install -q --find-links "$WHEELS" -r "$ROOT/requirements/mminstall.txt" \
    -r "$ROOT/requirements/tests.txt" -r "$ROOT/requirements/mim.txt" \
    -r "$ROOT/requirements/deploy.txt"
# openmim's own opendatalab dependency would pin setuptools==60.2.0 (see requirements/mim.txt)
pip install -q --no-deps 'openmim==0.3.9'
# ExecuTorch declares tokenizers, hydra and more that exporting does not use (see the file)
pip install -q --no-deps -r "$ROOT/requirements/executorch.txt"
# `setup.py develop` style (an egg-link to this tree), not PEP 660: mim runs tools and finds
# configs under <the distribution's location>/repmobile_mm/.mim, which this gives it
pip install -q --no-deps --no-build-isolation --no-use-pep517 -e "$ROOT"
"$VENV/bin/python" -c "import mmcv.ops, mmdet, mmseg, mmpretrain, mim, repmobile_mm
from repmobile_mm.apis.executorch_export import import_executorch; import_executorch()" \
    || { log "import check failed"; exit 1; }
"$VENV/bin/python" - "$ROOT" <<'CHECK' || { log "mim cannot see the editable install"; exit 1; }
import os.path as osp, sys, warnings
warnings.simplefilter('ignore')
from mim.utils import get_installed_path
assert osp.samefile(get_installed_path('repmobile_mm'), osp.join(sys.argv[1], 'repmobile_mm'))
CHECK
echo "$STAMP" >"$VENV/.installed"
log "done"
