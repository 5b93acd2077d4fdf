"""User-facing errors.

Everything the user can fix (a bad path, a wrong flag, a checkpoint of the wrong kind) is raised as an
:class:`AttnGANError` with a message that names the file, the field or the value and what was expected.
The CLI prints these without a traceback; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AttnGANError(Exception):
    """An error the user can act on. ``str(err)`` is the whole message shown to them."""

    exit_code = 1


class InputError(AttnGANError):
    """Bad input data: a missing file, a malformed line, an unknown word."""


class ConfigMismatchError(AttnGANError):
    """A checkpoint, vocabulary or dataset does not match what was asked for."""


class FieldError(AttnGANError):
    """A field of a config or options dataclass holds a value outside its range or choices.

    ``field`` is the field's dotted path (``generator.ngf``), ``problem`` what is wrong with its value
    (``must be >= 1, got 0``); ``str(err)`` is both: ``generator.ngf must be >= 1, got 0``. The Python API
    names fields; the CLI, which knows which flag sets which field, names the flag as well.
    """

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field} {problem}")
        self.field = field
        self.problem = problem

    def __reduce__(self) -> tuple[type[FieldError], tuple[str, str]]:  # pickles (torchrun, worker processes)
        return type(self), (self.field, self.problem)


class CheckpointError(AttnGANError):
    """A checkpoint file cannot be read or is of the wrong kind or format version."""


class DeviceError(AttnGANError):
    """The requested device is not available."""


class TrainingAborted(AttnGANError):
    """Training stopped on a non-finite loss or a user abort; the last good checkpoint is intact."""


class OutputError(AttnGANError, OSError):
    """An output file cannot be written where it was asked for (a read-only folder, a file in the way).
    Also an ``OSError``, so code that tolerates a failed optional write (``except OSError``) still does."""


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where it arrives (see :func:`attngan_cli.core.fileio.sigterm_as_interrupt`), or after the
    step in a training loop. A :class:`KeyboardInterrupt`, so every cleanup and Ctrl-C path handles it; the
    CLI exits with 143 instead of 130."""

    def __init__(self) -> None:
        super().__init__("terminated (SIGTERM)")
