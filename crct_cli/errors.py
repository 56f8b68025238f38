"""One exception type for bad input, so the CLI can print one line and exit 2; and how a
command over many inputs tells one that failed and goes on with the others."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path


class CrctError(Exception):
    """A user-facing error: the message is printed as is, with exit code 2."""


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
