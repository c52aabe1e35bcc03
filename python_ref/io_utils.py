"""Atomic file output: a reader never sees a partial file, and a failure leaves nothing behind."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from .errors import LitePoseError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise LitePoseError(f"{path}: the folder {parent} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot write here ({exc.strerror})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def read_user_file(path: str | os.PathLike, what: str) -> bytes:
    """The bytes of a file the user named; a missing, folder or unreadable path -> one-line LitePoseError."""
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except FileNotFoundError:
        raise LitePoseError(f"{path}: no such {what} file") from None
    except IsADirectoryError:
        raise LitePoseError(f"{path}: is a folder, not a {what} file") from None
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot read the {what} file ({exc.strerror})") from None
