"""User-facing errors: the CLI prints them as one line and exits non-zero, never a traceback."""


class LitePoseError(Exception):
    """A problem with the user's input (a file, an option); the message names the file and the fault."""
