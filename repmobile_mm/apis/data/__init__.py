"""The generated data sets the demo, the small configs and the tests share."""
from .digits import export_digits
from .scenes import make_scenes
from .shapes import make_shapes

__all__ = ['export_digits', 'make_scenes', 'make_shapes']
