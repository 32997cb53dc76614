"""A model's predictions on a few images, drawn into one picture by its library's own
inferencer and visualizer (tools/analysis_tools/draw_predictions.py is its command line)."""
import glob
import io
from typing import List, Optional, Sequence

import numpy as np

from ..engine.checkpoint import check_output_path, read_checkpoint, write_atomically
from ..errors import ConfigError
from .runner import load_config
from .tasks import task_of


def pick_images(patterns: Sequence[str], count: int) -> List[str]:
    """``count`` images spread evenly over the sorted files the glob ``patterns`` match."""
    images = sorted({path for pattern in patterns for path in glob.glob(pattern)})
    if not images:
        raise ConfigError(f'--images: no image matches {list(patterns)}')
    return images[::max(1, len(images) // count)][:count]


def draw_predictions(config: str, checkpoint: str, images: Sequence[str], out: str,
                     count: int = 6, title: Optional[str] = None, score_thr: float = 0.5,
                     force: bool = False, cfg_options: Optional[dict] = None) -> int:
    """Write one PNG with the predictions on ``count`` of the ``images`` (files or glob
    patterns); returns how many were drawn.

    Classifiers: each image with its predicted class and score; detectors: boxes and
    masks above ``score_thr``; segmentors: the segmentation overlay. ``out`` is never
    written over without ``force``, nor left half written.
    """
    check_output_path(out, force)  # before any work
    cfg = load_config(config, cfg_options)
    read_checkpoint(checkpoint)  # a missing, broken or unsafe file: one line, now
    panels, captions = task_of(cfg).draw(cfg, checkpoint, pick_images(images, count),
                                         score_thr)

    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    figure, axes = plt.subplots(1, len(panels), figsize=(2.2 * len(panels), 2.6))
    for ax, panel, caption in zip(np.atleast_1d(axes), panels, captions):
        ax.imshow(panel, interpolation='nearest')
        ax.set_title(caption, fontsize=9)
        ax.axis('off')
    if title:
        figure.suptitle(title, fontsize=9)
    figure.tight_layout()
    png = io.BytesIO()
    figure.savefig(png, format='png', dpi=110)
    plt.close(figure)

    def write(partial):
        with open(partial, 'wb') as f:
            f.write(png.getvalue())
    write_atomically(out, write, force)
    return len(panels)
