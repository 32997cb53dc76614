"""Reading and writing checkpoints: safely (torch's ``weights_only=True``), with
one-line errors, and never leaving half a file under the final name.

torch >= 2.6 refuses to unpickle what mmengine 0.10.7 stores in the message hub of
every training checkpoint: ``HistoryBuffer`` objects, numpy arrays and scalars, and
(through ``HistoryBuffer.__getstate__``) its statistics functions, which pickle as
``getattr(HistoryBuffer, 'min')``. That breaks ``--resume``. Allow-listing exactly
those globals keeps loading safe: torch's restricted unpickler still calls only
allow-listed callables, so ``getattr`` can fetch attributes but nothing it fetches
can be called.
"""
import argparse
import glob
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from typing import Callable, Optional, Tuple
from urllib.parse import urlparse

import numpy as np
import torch
from mmengine.fileio import LocalBackend
from mmengine.logging.history_buffer import HistoryBuffer

from ..errors import CheckpointError, CheckpointNotFoundError, OutputExistsError
from .published import as_ours


def mmengine_checkpoint_globals() -> list:
    """The globals an mmengine training checkpoint contains, and nothing else."""
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    numpy_globals = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    numpy_globals += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, getattr] + numpy_globals


def is_url(path: str) -> bool:
    return path.startswith(('http://', 'https://'))


def read_checkpoint(path: str):
    """The checkpoint at ``path`` (a file, ``.safetensors`` and TorchScript archives
    included, or an http(s) URL, downloaded once by :func:`download`), in this package's
    layout where it is a published one (:func:`published.as_ours`).

    Read by ``torch.load`` under ``weights_only=True`` (mmengine's globals, and the
    ``argparse.Namespace`` of training scripts' ``args``, allowed for this call only);
    every failure is a one-line :class:`CheckpointError` that names the file and the
    problem: missing, not a file, truncated or corrupted, or unsafe (with the global it
    carries)."""
    return as_ours(load_file(local_copy(path)), path)


def local_copy(path: str) -> str:
    """``path`` itself, or the downloaded copy of an http(s) URL."""
    return download(path) if is_url(path) else os.path.expanduser(path)


def load_file(path: str):
    """:func:`read_checkpoint` of a local file, as stored."""
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f'checkpoint not found: {path}')
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint is not a file: {path}')
    if is_torchscript(path):  # RepNeXt's *_fused.pt: its weights (none of its code runs)
        try:
            return dict(torch.jit.load(path, map_location='cpu').state_dict())
        except RuntimeError as err:
            raise CheckpointError(f'{path} is a corrupted TorchScript archive: '
                                  f'{first_line(err)}') from None
    if path.endswith('.safetensors'):
        from safetensors import SafetensorError
        from safetensors.torch import load_file as load_safetensors
        try:
            return load_safetensors(path)
        except SafetensorError as err:
            raise CheckpointError(f'{path} is truncated or corrupted (not a complete '
                                  f'safetensors file): {first_line(err)}') from None
    # only the globals not allowed yet: leaving the context removes what it added,
    # which must not take away what a tool allowed for the whole process
    allowed = set(torch.serialization.get_safe_globals())
    missing = [g for g in mmengine_checkpoint_globals() + [argparse.Namespace]
               if g not in allowed]
    try:
        with torch.serialization.safe_globals(missing):
            return torch.load(path, map_location='cpu', weights_only=True)
    except pickle.UnpicklingError as err:
        unsafe = re.search(r'Unsupported global: GLOBAL ([\w.]+)', str(err))
        if 'Weights only load failed' in str(err) and unsafe:
            raise CheckpointError(f'{path} is unsafe to load: it carries the global '
                                  f'{unsafe.group(1)}, which could run code; nothing was executed. '
                                  'Load only checkpoints you trust, re-saved as plain tensors '
                                  '(torch.save of a state dict)') from None
        raise CheckpointError(f'{path} is corrupted (not a PyTorch checkpoint): '
                              f'{first_line(err)}') from None
    except Exception as err:  # garbage fails anywhere in the unpickler (EOFError,
        # RuntimeError, IndexError from its stack, KeyError from its memo, ...)
        raise CheckpointError(f'{path} is truncated or corrupted (not a complete PyTorch '
                              f'checkpoint): {first_line(err)}') from None


def is_torchscript(path: str) -> bool:
    """A TorchScript archive (``torch.jit.save``): a zip holding compiled code."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(name.split('/', 1)[-1].startswith('code/') for name in archive.namelist())


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def download(url: str) -> str:
    """The local copy of ``url`` in torch's hub cache (``<hub dir>/checkpoints/<file
    name>``), downloaded the first time with a progress bar and checked against the
    SHA-256 prefix in the file name where it has one (``name-<prefix>.pth``). torch's
    downloader writes a temporary file and renames it when complete and checked, so a
    failed or partial download never leaves a file that a later run trusts. In a
    distributed run, rank 0 downloads while the others wait."""
    from mmengine.dist import barrier, get_dist_info
    name = os.path.basename(urlparse(url).path)
    if not name:
        raise CheckpointError(f'{url} names no file to download')
    path = os.path.join(torch.hub.get_dir(), 'checkpoints', name)
    rank, world_size = get_dist_info()
    if rank == 0 and not os.path.isfile(path):
        fetch(url, path)
    if world_size > 1:
        barrier()
        if not os.path.isfile(path):  # a cache folder that rank 0 does not share
            fetch(url, path)
    return path


def fetch(url: str, path: str) -> None:
    from torch.hub import HASH_REGEX, download_url_to_file
    os.makedirs(os.path.dirname(path), exist_ok=True)
    match = HASH_REGEX.search(os.path.basename(path))
    try:
        download_url_to_file(url, path, match.group(1) if match else None, progress=True)
    except RuntimeError as err:  # torch's hash check
        raise CheckpointError(f'{url}: the download does not match the SHA-256 prefix in its '
                              f'name, not kept ({first_line(err)})') from None
    except OSError as err:  # URLError and HTTPError are OSErrors
        raise CheckpointError(f'could not download {url}: {first_line(err)}') from None


def load_from_repmobile_mm(filename: str, map_location=None):
    """mmengine's loader of paths and http(s) URLs: :func:`read_checkpoint` (the tensors
    on the CPU, where mmengine's ``load_state_dict`` copies them into the model)."""
    return read_checkpoint(filename)


def register_checkpoint_loaders() -> None:
    """Make mmengine read checkpoints by paths and URLs with :func:`read_checkpoint`
    (safe, one-line errors, published layouts converted): ``init_cfg``, ``load_from``,
    ``--resume`` and the mm libraries' ``init_detector``/``init_model`` and inferencers.
    A checkpoint in no published layout is returned as stored, as mmengine's own
    loaders return it."""
    from mmengine.runner.checkpoint import CheckpointLoader
    CheckpointLoader.register_scheme(('', 'http://', 'https://'), load_from_repmobile_mm,
                                     force=True)


def check_output_path(path: str, force: bool = False) -> None:
    """Refuse to replace an existing output unless ``force`` (the tools' ``--force``)."""
    if os.path.exists(path) and not force:
        raise OutputExistsError(f'{path} exists: choose another output path, or pass --force to '
                                'replace it')


def write_atomically(path: str, write: Callable[[str], None], force: bool = False) -> None:
    """Call ``write`` on a temporary path beside ``path`` (same name, in a hidden
    ``.part`` folder) and rename the result into place, so an interrupted or failed
    write (an exception in ``write``) never leaves a partial file or folder (a Core ML
    ``.mlpackage``) under the final name; an existing ``path`` is kept unless ``force``."""
    check_output_path(path, force)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    staging = tempfile.mkdtemp(prefix='.' + os.path.basename(path) + '.', suffix='.part',
                               dir=folder)
    try:
        partial = os.path.join(staging, os.path.basename(path))
        write(partial)
        if os.path.isdir(path) and not os.path.islink(path):  # a rename cannot replace
            os.replace(path, os.path.join(staging, 'replaced'))  # a folder: move it aside
        os.replace(partial, path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def save_atomically(obj, path: str, force: bool = False) -> None:
    """``torch.save`` through ``write_atomically``."""
    write_atomically(path, lambda partial: torch.save(obj, partial), force)


def write_checkpoints_atomically() -> None:
    """Make mmengine write local files (its checkpoints: ``Runner.save_checkpoint``) to a
    temporary file beside the target, renamed into place when complete
    (:class:`AtomicLocalBackend`). Called when a run trains, never at import."""
    from mmengine.fileio import register_backend
    register_backend('local', AtomicLocalBackend, force=True, prefixes='')


class AtomicLocalBackend(LocalBackend):
    """mmengine's local file backend whose ``put`` goes through :func:`write_atomically`:
    a save killed, or stopped by a full disk, leaves no partial file under a checkpoint's
    name, and CheckpointHook names a checkpoint in ``last_checkpoint`` only after its
    save returned."""

    def put(self, obj: bytes, filepath) -> None:
        def write(partial):
            with open(partial, 'wb') as f:
                f.write(obj)

        write_atomically(str(filepath), write, force=True)


def readable_latest_checkpoint(work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """``(checkpoint, warning)``: the checkpoint ``--resume`` continues from, the one
    ``last_checkpoint`` names, or, where that cannot be read (a save cut short by a kill or
    a full disk before this package's atomic writes), the newest readable
    ``epoch_*.pth``/``iter_*.pth`` beside it, with a one-line warning naming both for the
    run's log; ``(None, None)`` where the work dir has none."""
    named_file = os.path.join(work_dir, 'last_checkpoint')
    named = None
    if os.path.isfile(named_file):
        with open(named_file) as f:
            named = f.read().strip() or None
    saved = sorted((p for p in glob.glob(os.path.join(work_dir, '*.pth'))
                    if re.fullmatch(r'(epoch|iter)_\d+\.pth', os.path.basename(p))),
                   key=os.path.getmtime, reverse=True)
    candidates = ([named] if named else []) + [p for p in saved if p != named]
    problems = []
    for path in candidates:
        try:
            read_checkpoint(path)
        except CheckpointError as err:
            problems.append(str(err))
            continue
        warning = (f'--resume: {problems[0]}; resuming from {path}, the newest readable '
                   'checkpoint') if problems else None
        return path, warning
    if problems:
        raise CheckpointError(f'--resume: no readable checkpoint in {work_dir} '
                              f'({"; ".join(problems)})')
    return None, None
