"""The one latency timer behind every figure the package and the tools print.

Method: the models take turns in rounds; in each round each model runs ``calls``
times back to back, timed together (``time.perf_counter`` on CPU, CUDA events on
GPU), which gives that round's time per call; a figure is the median over rounds,
after ``warmup`` calls of each model. Why:

- taking turns spreads the machine's drifts (clock, other load) over all models
  alike, rather than on whichever ran last;
- timing a run of calls, not single calls, leaves each runtime its caches and
  thread pools warm from call to call, as a deployed model has them: switching
  models on every call read onnxruntime's int8 RepMobile-S (digits) at 0.75-0.81x
  of fp32, where rounds of 10 calls read 0.55-0.71x (measured 2026-12-02);
- the median ignores the rounds a stray process disturbed.
"""
import statistics
import time
from typing import Callable, Dict, List

import torch


def time_calls(run: Callable[[], object], calls: int, device: str = 'cpu') -> float:
    """Seconds for ``calls`` calls of ``run``: CUDA events on GPU, perf_counter on CPU."""
    if device == 'cuda':
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(calls):
            run()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1000
    begin = time.perf_counter()
    for _ in range(calls):
        run()
    return time.perf_counter() - begin


def interleaved_times(runners: Dict[str, Callable[[], object]], rounds: int, calls: int = 10,
                      warmup: int = 3, device: str = 'cpu') -> Dict[str, List[float]]:
    """Seconds per call of each runner (a no-argument callable) in each round."""
    for run in runners.values():
        time_calls(run, warmup, device)
    times = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            times[name].append(time_calls(run, calls, device) / calls)
    return times


@torch.inference_mode()
def interleaved_latency(models: Dict[str, Callable], inputs, rounds: int = 20, calls: int = 10,
                        warmup: int = 3) -> Dict[str, float]:
    """Median milliseconds per call of each model on ``inputs``, on CPU."""
    times = interleaved_times({name: (lambda model=model: model(inputs))
                               for name, model in models.items()}, rounds, calls, warmup)
    return {name: 1000 * statistics.median(t) for name, t in times.items()}
