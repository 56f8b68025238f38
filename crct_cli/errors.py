"""One exception type for bad input, so the CLI can print one line and exit 2; and how a
command over many inputs tells one that failed and goes on with the others."""

from __future__ import annotations

import logging
import operator
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any


class CrctError(Exception):
    """A user-facing error: the message is printed as is, with exit code 2."""


#: The module each of crct's required packages is imported as, and the package pip installs
#: (pyproject.toml's ``dependencies``; tests/test_user_setup_errors.py checks that they agree).
DEPENDENCY_MODULES = {
    "typer": "typer",
    "click": "typer",  # typer's own
    "rich": "rich",
    "torch": "torch",
    "torchvision": "torchvision",
    "facenet_pytorch": "facenet-pytorch",
    "onnxruntime": "onnxruntime",
    "onnx": "onnx",
    "av": "av",
    "numpy": "numpy",
    "cv2": "opencv-python",
    "PIL": "pillow",
    "tqdm": "tqdm",
    "matplotlib": "matplotlib",
}


def missing_dependency(exc: ModuleNotFoundError) -> str | None:
    """The one line for a required package that is not installed (``pip install --no-deps``,
    a package removed since), or None for any other module: its traceback says more."""
    module = (exc.name or "").partition(".")[0]
    package = DEPENDENCY_MODULES.get(module)
    if package is None:
        return None
    return (
        f"the Python package {package} (module {module}) is not installed, and crct needs it: "
        "install crct with its dependencies (pip install without --no-deps)"
    )


class _WarningLine(logging.Handler):
    """A log record of crct's as one line, ``crct: warning: ...``, like the command's own;
    written to stderr, or handed to ``say``."""

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        super().__init__(logging.WARNING)
        self.say = say

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = " ".join(record.getMessage().split())
            line = f"crct: {record.levelname.lower()}: {text}"
            if self.say is not None:
                self.say(line)
            else:
                sys.stderr.write(line + "\n")
                sys.stderr.flush()
        except Exception:  # a closed stderr: nothing to say it on
            self.handleError(record)


def warnings_as_lines(say: Callable[[str], None] | None = None) -> None:
    """Say crct's logged warnings (a corrupt packet skipped, a file cut short) as the command
    line says its others: ``crct: warning: ...`` on stderr. For the command line and its
    worker processes; the Python API leaves logging to its caller, as libraries do.

    ``say``: where each line goes instead. A worker process hands its lines to the process
    that draws the progress bars, which prints them above the bars: written to the terminal
    from another process, they would land inside a bar being redrawn."""
    logger = logging.getLogger("crct_cli")
    for handler in logger.handlers:
        if isinstance(handler, _WarningLine):
            handler.say = say
            return
    logger.addHandler(_WarningLine(say))
    logger.propagate = False


#: Python keywords whose ``crct`` flag is not ``--`` + the keyword with ``_`` as ``-``: none
#: today (every checked keyword of :class:`~crct_cli.api.Tracker`, ``Tracker.track`` and
#: :func:`~crct_cli.api.track_videos` is spelled as its flag); a keyword renamed on one side
#: goes here, and tests/test_option_errors.py checks every flag against the commands.
CLI_FLAGS: dict[str, str] = {}


def cli_flag(option: str) -> str:
    """The command line's flag for the Python keyword ``option`` (``seq_bt`` -> ``--seq-bt``)."""
    return CLI_FLAGS.get(option, "--" + option.replace("_", "-"))


class OptionError(CrctError):
    """A bad value of an option that Python takes as a keyword and ``crct`` as a flag.

    The same check serves both, but a Python caller typed ``faces=0``, not ``--faces 0``:
    ``str()`` names the keyword (``faces must be ...``), :meth:`for_cli` the flag
    (``--faces must be ...``), which is what the command line prints. ``message`` follows the
    name; ``cli`` replaces it on the command line where the two differ in more than the name
    (a value written otherwise, another option named in it, a unit); ``where``, the file the
    value failed on, goes first (``a.mp4: skip_frames ...``)."""

    def __init__(
        self, option: str, message: str, cli: str | None = None, where: str | None = None
    ) -> None:
        self.option = option
        self.message = message
        self.cli = message if cli is None else cli
        self.where = where
        super().__init__(self._line(option, message))

    def __reduce__(self) -> tuple[type[OptionError], tuple[str, str, str, str | None]]:
        # raised in a worker process or a Ray actor, it must cross back whole
        return type(self), (self.option, self.message, self.cli, self.where)

    def _line(self, name: str, message: str) -> str:
        return f"{name} {message}" if self.where is None else f"{self.where}: {name} {message}"

    @property
    def flag(self) -> str:
        return cli_flag(self.option)

    def for_cli(self) -> str:
        """The message as the command line words it, naming the flag."""
        return self._line(self.flag, self.cli)


class WordedError(CrctError):
    """A message that names options in the middle of a sentence: ``str()`` in a Python
    caller's words (``overwrite=True``), :meth:`for_cli` in the command line's (``--overwrite``)."""

    def __init__(self, python: str, cli: str) -> None:
        super().__init__(python)
        self.cli = cli

    def __reduce__(self) -> tuple[type[WordedError], tuple[str, str]]:
        return type(self), (str(self), self.cli)

    def for_cli(self) -> str:
        return self.cli


def option_error(
    error: type[Exception], option: str, message: str, cli: str | None = None
) -> Exception:
    """An :class:`OptionError`, or, for a check whose caller asked for another type
    (``ValueError`` from the classes below the facade, which only Python builds), that type
    worded with the keyword."""
    if issubclass(error, CrctError):
        return OptionError(option, message, cli)
    return error(f"{option} {message}")


def whole_number(value: Any, floats: bool = False) -> int | None:
    """``value`` as an int when it is a whole number (numpy's too), else None: a bool is not
    one, nor a fraction; ``floats``: a float with nothing after the point is (5.0, which
    Python keywords took before they were checked)."""
    if isinstance(value, bool):
        return None
    try:
        return operator.index(value)
    except TypeError:  # a float (numpy's too) is a whole number only when asked for
        if floats and hasattr(value, "is_integer") and value.is_integer():
            return int(value)
        return None


def error_text(exc: CrctError, flags: bool = False) -> str:
    """An error's message for its reader: ``flags``, the command line's (an
    :class:`OptionError` names the flag), else Python's."""
    if flags and isinstance(exc, (OptionError, WordedError)):
        return exc.for_cli()
    return str(exc)


#: Told one line about an input that failed (``path: why``); the run goes on without it.
OnFailure = Callable[[str], None]


def failure_line(path: Path, exc: Exception) -> str:
    """``path: why`` for an input that failed: a :class:`CrctError` names its file already, an
    ``OSError`` (a permission, a vanished file) is worded here without its Python type."""
    if isinstance(exc, CrctError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename or path}: cannot read ({os_reason(exc)})"
    return f"{path}: {exc}"


def os_reason(exc: OSError) -> str:
    """An OS error's reason in crct's words (as the video reader says a permission)."""
    if isinstance(exc, PermissionError):
        return "permission denied"
    return str(exc.strerror or exc)


def report_failure(on_failure: OnFailure | None, path: Path, exc: Exception) -> str:
    """Raise ``exc`` (no ``on_failure``: one bad input stops the call), or tell its line there
    and return it, so the caller goes on with the other inputs (``crct align``, ``denoise``
    and ``degrade`` behave as ``crct track`` over several videos)."""
    if on_failure is None:
        raise exc
    line = failure_line(path, exc)
    on_failure(line)
    return line
