"""The exceptions the package raises. Each message is the one line a user reads; the
tools' edge (``repmobile_mm.apis.cli.run``) prints it and exits with status 1.

Each also refines the built-in it is a case of, so a caller's ``except ValueError``
(or ``FileNotFoundError``, ``RuntimeError``) keeps catching what it caught before.
"""


class RepMobileError(Exception):
    """Anything the package refuses, with the reason in one line."""


class ConfigError(RepMobileError, ValueError):
    """A config, or a command-line override of one, that cannot work as written."""


class CheckpointError(RepMobileError, ValueError):
    """A checkpoint that cannot be read, or holds no weights for the model."""


class CheckpointNotFoundError(CheckpointError, FileNotFoundError):
    """A checkpoint path that names no file."""


class CheckpointFormError(CheckpointError, RuntimeError):
    """A state dict of the model's other form (fused or training) or another release.

    A ``RuntimeError`` as well: it is raised inside ``load_state_dict``, whose own
    mismatch errors are ``RuntimeError``."""


class OutputExistsError(RepMobileError, FileExistsError):
    """An output path that exists, without ``--force``."""


class ExportError(RepMobileError, RuntimeError):
    """An export or conversion that could not be made or failed its check."""


class DeviceError(RepMobileError, RuntimeError):
    """A run that needs a device (CUDA) this machine does not have."""


class NonFiniteLossError(RepMobileError, FloatingPointError):
    """Training stopped at a loss that is not finite, before its weights were saved."""


class PreemptedError(RepMobileError, RuntimeError):
    """Training stopped on SIGTERM or SIGINT after saving a checkpoint to resume from."""


class BadSampleError(RepMobileError, RuntimeError):
    """A sample whose image or annotation cannot be loaded, named with its file.

    Raised in a DataLoader worker, it reaches the main process re-made by torch with the
    worker's traceback as its message; the message is then our line again."""

    def __init__(self, message: str):
        if 'Original Traceback' in message:  # torch's ExceptionWrapper.reraise
            last = message.strip().splitlines()[-1]
            message = last.split(f'{type(self).__name__}: ', 1)[-1]
        super().__init__(message)


class DemoFloorError(RepMobileError, RuntimeError):
    """A demo result below the floor a user can trust it at (``make demo``)."""
