"""Latency measurement of several models side by side in one process."""
import statistics
import time
from typing import Callable, Dict

import torch


@torch.inference_mode()
def interleaved_latency(models: Dict[str, Callable], inputs: torch.Tensor, warmup: int = 5,
                        repeats: int = 30) -> Dict[str, float]:
    """Median wall-clock milliseconds per call for each model.

    The models take turns call by call, so drifts of the machine (clock, other
    load) touch all of them alike rather than whichever ran last.
    """
    for _ in range(warmup):
        for model in models.values():
            model(inputs)
    times = {name: [] for name in models}
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            model(inputs)
            times[name].append(time.perf_counter() - start)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}
