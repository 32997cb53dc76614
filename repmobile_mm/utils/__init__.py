from .compare import relative_difference
from .complexity import count_macs, count_params
from .testing import randomize_batchnorm
from .timing import interleaved_latency

__all__ = ['count_macs', 'count_params', 'interleaved_latency', 'randomize_batchnorm',
           'relative_difference']
