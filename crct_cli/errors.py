"""One exception type for bad input, so the CLI can print one line and exit 2."""


class CrctError(Exception):
    """A user-facing error: the message is printed as is, with exit code 2."""
