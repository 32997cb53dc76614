"""The command-line edge every tool shares."""
from typing import Callable, Optional

from ..errors import RepMobileError


def run(main: Callable[[], object]) -> Optional[str]:
    """Call a tool's ``main``; a :class:`RepMobileError` becomes its one-line message.

    Tools end with ``sys.exit(run(main))``: ``sys.exit`` prints a message on stderr
    and exits with status 1, and exits with 0 after ``None``. Other exceptions keep
    their traceback: they are bugs, not refusals.
    """
    try:
        main()
    except RepMobileError as err:
        return str(err)
    return None
