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
import os
import pickle
import re
import shutil
import tempfile
from typing import Callable

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer

from ..errors import CheckpointError, CheckpointNotFoundError, OutputExistsError


def mmengine_checkpoint_globals() -> list:
    """The globals an mmengine training checkpoint contains, and nothing else."""
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    numpy_globals = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    numpy_globals += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    return [HistoryBuffer, getattr] + numpy_globals


def allow_mmengine_checkpoint_globals() -> None:
    """Allow those globals process-wide, for mmengine's own loading (``resume``,
    ``load_from``, the mm inferencers): for the tools and tests, never at import."""
    torch.serialization.add_safe_globals(mmengine_checkpoint_globals())


def read_checkpoint(path: str):
    """``torch.load`` of ``path`` under ``weights_only=True`` (mmengine's globals
    allowed for this call only), every failure a one-line :class:`CheckpointError` that
    names the file and the problem:
    missing, not a file, truncated or corrupted, or unsafe (with the global it carries)."""
    if not os.path.exists(path):
        raise CheckpointNotFoundError(f'checkpoint not found: {path}')
    if not os.path.isfile(path):
        raise CheckpointError(f'checkpoint is not a file: {path}')
    # only the globals not allowed yet: leaving the context removes what it added,
    # which must not take away what a tool allowed for the whole process
    allowed = set(torch.serialization.get_safe_globals())
    missing = [g for g in mmengine_checkpoint_globals() if g not in allowed]
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


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


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
