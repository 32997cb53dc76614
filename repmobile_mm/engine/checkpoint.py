"""Safe loading of mmengine's own checkpoints under torch's ``weights_only=True``.

torch >= 2.6 refuses to unpickle what mmengine 0.10.7 stores in the message hub of
every training checkpoint: ``HistoryBuffer`` objects, numpy arrays and scalars, and
(through ``HistoryBuffer.__getstate__``) its statistics functions, which pickle as
``getattr(HistoryBuffer, 'min')``. That breaks ``--resume``. Allow-listing exactly
those globals keeps loading safe: torch's restricted unpickler still calls only
allow-listed callables, so ``getattr`` can fetch attributes but nothing it fetches
can be called.
"""
import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer


def allow_mmengine_checkpoint_globals() -> None:
    """Allow the globals an mmengine training checkpoint contains, and nothing else."""
    multiarray = (np._core if hasattr(np, '_core') else np.core).multiarray
    numpy_globals = [np.ndarray, np.dtype, multiarray._reconstruct, multiarray.scalar]
    numpy_globals += [type(np.dtype(t)) for t in ('float64', 'float32', 'int64', 'int32', 'bool')]
    torch.serialization.add_safe_globals([HistoryBuffer, getattr] + numpy_globals)
