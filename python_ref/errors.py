"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class LitePoseError(Exception):
    """A problem with the user's input (a file, an option); the message names the file and the fault."""


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (an OSError's strerror), for one-line errors."""
    text = str(getattr(exc, "strerror", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
