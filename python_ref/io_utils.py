"""Atomic file output: a reader never sees a partial file, and a failure leaves nothing behind."""
from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import sys
import tempfile
from pathlib import Path

from .errors import LitePoseError


_STD_PATHS = {"/dev/stdin": 0, "/dev/stdout": 1, "/dev/stderr": 2}
_FD_PATH = re.compile(r"^/(?:dev/fd|proc/(?:self|thread-self|(\d+))/fd)/(\d+)$")
# Standard descriptors the process was started without (`>&-`), which the `litepose` command pointed at
# /dev/null so that status lines cannot fail (converter.cli): data asked for there would vanish.
CLOSED_AT_START: set[int] = set()


def check_stdout(what: str = "standard output") -> None:
    """Before the slow work: data for standard output (`-`) needs one; started with `>&-` it has none."""
    if 1 in CLOSED_AT_START:
        raise LitePoseError(f"{what}: standard output was closed when litepose started (>&-); give a file name")


def refuse_folder_name(path: str | os.PathLike) -> None:
    """A file output given as `out/` names a folder; Path() would drop the slash and write a file `out`."""
    if str(path).endswith(("/", os.sep)):
        raise LitePoseError(f"{path}: names a folder (it ends with {str(path)[-1]}); give a file name")


def output_kind(path: str | os.PathLike) -> tuple[str, object]:
    """Where an output path really goes: ("fd", n) for a descriptor of this process (/dev/stdout, /dev/fd/N,
    /proc/self/fd/N, or a link to one: written where the descriptor stands, as the shell set it up, never
    renamed over); ("special", path) for a device or FIFO (/dev/null: written into); ("file", target) for a
    regular or new file, symlinks resolved (the target is replaced, the link stays)."""
    here = os.path.abspath(path)
    for _ in range(40):
        if here in _STD_PATHS:
            return "fd", _STD_PATHS[here]
        m = _FD_PATH.match(here)
        if m and (m.group(1) is None or int(m.group(1)) == os.getpid()):
            return "fd", int(m.group(2))
        try:
            link = os.readlink(here)
        except OSError:          # not a link (or not ours to read)
            break
        here = os.path.normpath(os.path.join(os.path.dirname(here), link))
    else:
        raise LitePoseError(f"{path}: a loop of symbolic links")
    try:
        mode = os.stat(here).st_mode
    except OSError:      # a new file (or a dangling link: its target is created)
        mode = stat.S_IFREG
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        refuse_folder_name(path)
        return "file", Path(here) if os.path.islink(path) else Path(path)
    return "special", Path(path)


def check_output_location(path: str | os.PathLike, what: str) -> None:
    """Before the slow work: the folder of a file output exists and takes new files (a descriptor or
    device needs no folder: /dev/stdout works for any user)."""
    kind, where = output_kind(path)
    if kind == "fd":
        try:
            os.fstat(where)
        except OSError:
            raise LitePoseError(f"{path}: descriptor {where} is closed") from None
        if where in CLOSED_AT_START:
            raise LitePoseError(f"{path}: descriptor {where} was closed when litepose started")
        return
    if kind == "special":
        return
    check_name_length(path)
    if where.is_dir():
        raise LitePoseError(f"{path}: is a folder; give a file name")
    parent = where.parent if str(where.parent) else Path(".")
    if not parent.is_dir():
        raise LitePoseError(f"{path}: the folder {parent} does not exist")
    probe_writable(parent, what)


def check_name_length(path: str | os.PathLike) -> None:
    """An output file name longer than its folder's file system allows fails now, in one line (not as an
    OSError from the first stat, or at the final rename after the work)."""
    name = Path(path).name
    parent = Path(path).parent if str(Path(path).parent) else Path(".")
    try:
        limit = os.pathconf(parent, "PC_NAME_MAX")
    except (OSError, ValueError, AttributeError):   # no pathconf (Windows), no such folder: said elsewhere
        return
    size = len(name.encode("utf-8", "surrogateescape"))
    if size > limit:
        raise LitePoseError(f"{path}: the file name is {size} bytes long, the file system allows {limit}")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path; put its content at `path` only if the block succeeds (`output_kind`).

    A file is replaced by a rename, so a reader never sees it half written. A descriptor (/dev/stdout) or a
    device / FIFO cannot be renamed onto: the finished content is written into it (a FIFO waits for its
    reader, as `cat > fifo` does, and says once that it waits)."""
    kind, target = output_kind(path)
    tmp = _staging_file(path, kind, target)
    try:
        yield tmp
        if kind == "file":
            os.chmod(tmp, final_mode(target))
            os.replace(tmp, target)
        else:
            for stream in (sys.stdout, sys.stderr):   # Python's own buffered lines come first
                with contextlib.suppress(AttributeError, OSError, ValueError):
                    stream.flush()
            # a descriptor: written where it stands (no truncation: `>> log` keeps what it had)
            with open(tmp, "rb") as src, (os.fdopen(os.dup(target), "wb") if kind == "fd"
                                          else _open_special(target)) as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
            os.unlink(tmp)
    except OSError as exc:  # a full disk, a quota, a vanished folder: the user's problem, said in one line
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise LitePoseError(f"{path}: cannot write ({exc.strerror or exc})") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise




@contextlib.contextmanager
def staged_outputs():
    """Yield `stage(path, data)`. Nothing appears in its place while the block runs: a file is written at once
    to a hidden temporary next to its place (so memory stays flat over thousands of overlays), a device, FIFO or
    descriptor's bytes are kept. When the block ends without an error, the devices, FIFOs and descriptors are
    written first (they cannot be taken back, and a failure there leaves nothing else behind), then the files
    are renamed into place in the order staged, so the last one staged (the main output) appears only after
    the others. A failure before that (a full disk at the third overlay, Ctrl-C) leaves none of them."""
    files: list[tuple[str | os.PathLike, Path, Path]] = []       # (as given, temporary, place)
    special: list[tuple[str | os.PathLike, bytes]] = []

    def stage(path, data: bytes) -> None:
        kind, target = output_kind(path)
        if kind != "file":
            special.append((path, data))
            return
        tmp = _staging_file(path, kind, target)
        files.append((path, tmp, target))
        try:
            tmp.write_bytes(data)
        except OSError as exc:
            raise LitePoseError(f"{path}: cannot write ({exc.strerror or exc})") from None

    try:
        yield stage
        for path, data in special:
            with atomic_path(path) as tmp:
                tmp.write_bytes(data)
        while files:
            path, tmp, target = files[0]
            try:
                os.chmod(tmp, final_mode(target))
                os.replace(tmp, target)
            except OSError as exc:
                raise LitePoseError(f"{path}: cannot write ({exc.strerror or exc})") from None
            files.pop(0)
    finally:
        for _, tmp, _ in files:
            with contextlib.suppress(OSError):
                os.unlink(tmp)


def _staging_file(path, kind: str, target) -> Path:
    """An empty hidden temporary file: next to `target` for a file output (renamed onto it later), in the
    temporary folder for a device, FIFO or descriptor (copied into it later)."""
    if kind == "file":
        parent = target.parent if str(target.parent) else Path(".")
        if not parent.is_dir():
            raise LitePoseError(f"{path}: the folder {parent} does not exist")
    else:
        parent = Path(tempfile.gettempdir())
    name = Path(path).name
    if len(name.encode("utf-8", "surrogateescape")) > 120:   # a legal 250-byte name must not give an illegal temp name
        name = name[:30]
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot write {'here' if kind == 'file' else 'the staging file in ' + str(parent)}"
                            f" ({exc.strerror})") from None
    os.close(fd)
    return Path(tmp)


def make_folders(folder: str | os.PathLike, what: str) -> list[Path]:
    """mkdir -p that returns the folders it made, deepest first, for the caller to remove again after a
    failure (`--draw a/b/c` where only `a` existed leaves nothing behind)."""
    folder = Path(folder)
    missing = []
    here = folder
    while not here.exists() and not here.is_symlink() and here != here.parent:
        missing.append(here)
        here = here.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        for made in missing:
            with contextlib.suppress(OSError):
                made.rmdir()
        raise LitePoseError(f"{folder}: cannot create the {what} ({exc.strerror})") from None
    return missing

def _open_special(target: Path):
    """A device or FIFO opened for writing. A FIFO nobody reads yet would block without a word: say that it
    waits (one line on stderr), then wait for the reader as `cat > fifo` does."""
    try:
        fd = os.open(target, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno != errno.ENXIO or not stat.S_ISFIFO(os.stat(target).st_mode):   # ENXIO: no reader yet
            raise
        if sys.stderr is not None:   # under `2>&-` print() would fall back to stdout
            with contextlib.suppress(OSError, ValueError):
                print(f"[litepose] {target}: waiting for a reader of this FIFO (Ctrl-C to stop)", file=sys.stderr,
                      flush=True)
        fd = os.open(target, os.O_WRONLY)
    else:
        os.set_blocking(fd, True)   # a full pipe must wait for its reader, not fail
    return os.fdopen(fd, "wb")


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def images_in_folder(folder: str | os.PathLike, skip: str | os.PathLike | None = None) -> list[Path]:
    """The image files below `folder` (sub-folders too, symlinked ones included, each real folder once),
    sorted by relative path. `skip`: an output folder inside it (overlays of an earlier run are no inputs)."""
    folder = Path(folder)
    found = []
    seen_dirs = set()
    if skip is not None and os.path.realpath(skip) != os.path.realpath(folder):  # the folder itself: its images stay
        seen_dirs.add(os.path.realpath(skip))
    for root, dirs, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(root)
        if real in seen_dirs:  # a link back up the tree, or two links to one folder
            dirs[:] = []
            continue
        seen_dirs.add(real)
        dirs.sort()
        for name in files:
            p = Path(root) / name
            if p.suffix.lower() in IMAGE_SUFFIXES and not name.startswith("._") and p.is_file():
                found.append(p)  # macOS `._` resource forks are not images
    return sorted(found, key=lambda p: p.relative_to(folder).as_posix())


def numbered_stems(stems) -> list[str]:
    """Each stem as is, or with `-2`, `-3`... when it came before: one output file per input, none replaced
    (x.jpg and x.png both give overlays, golden cases, ...)."""
    used: dict[str, int] = {}
    out = []
    for stem in stems:
        used[stem] = used.get(stem, 0) + 1
        out.append(stem if used[stem] == 1 else f"{stem}-{used[stem]}")
    return out


def final_mode(path: Path) -> int:
    """mkstemp makes 0600 files; the result gets the mode of the file it replaces, else 0666 minus the umask."""
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def probe_writable(folder: str | os.PathLike, what: str) -> None:
    """Fail now, with one line, when no file can be created in `folder` (permissions, a read-only file
    system: os.access says yes to root on both), rather than after the slow work."""
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".litepose-write-test-")
    except OSError as exc:
        raise LitePoseError(f"{what}: cannot write in {folder} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(tmp)


def check_distinct(outputs: dict[str, object], inputs: dict[str, object]) -> None:
    """Refuse an output path that is one of the inputs (or another output): writing it would destroy it.

    Both maps are {what: path}; None values are ignored.
    """
    seen: dict[Path, str] = {}
    for what, path in inputs.items():
        if path is not None:
            seen[Path(path).resolve()] = what
    for what, path in outputs.items():
        if path is None:
            continue
        key = Path(path).resolve()
        if key in seen:
            raise LitePoseError(f"{path}: the {what} would overwrite the {seen[key]}; choose another path")
        seen[key] = what


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
        raise LitePoseError(f"{path}: is a folder, not {'an' if what[:1] in 'aeiou' else 'a'} {what} file") from None
    except OSError as exc:
        raise LitePoseError(f"{path}: cannot read the {what} file ({exc.strerror})") from None


# Start-up chatter of native libraries, printed on fd 2 whatever TF_CPP_MIN_LOG_LEVEL says: absl INFO
# lines (oneDNN, "Could not find cuda drivers", CPU features), LiteRT's "Created ... XNNPACK delegate" and
# the TFLite quantiser's settings line.
NATIVE_NOISE = re.compile(r"^(I\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before "
                          r"absl::InitializeLog|To enable the following instructions:|INFO: Created TensorFlow Lite "
                          r"XNNPACK delegate|fully_quantize: \d+, inference_type: |libpng (?:error|warning): )")

# The filter process: standard input = what this process writes to fd 2; every line that is not noise goes to
# its own stderr (the terminal) as soon as it is complete. It ignores Ctrl-C (the command reports that) and
# ends at end of input, also when the command dies, so a native crash still shows its last words.
_FILTER_CODE = """
import os, re, signal, sys
signal.signal(signal.SIGINT, signal.SIG_IGN)
noise = re.compile(sys.argv[1])
pending = b""
while True:
    chunk = os.read(0, 65536)
    if not chunk:
        break
    *lines, pending = (pending + chunk).split(b"\\n")
    for line in lines:
        if not noise.search(line.decode("utf-8", "replace")):
            os.write(2, line + b"\\n")
if pending and not noise.search(pending.decode("utf-8", "replace")):
    os.write(2, pending)
"""


def filter_native_stderr(noise: re.Pattern = NATIVE_NOISE) -> None:
    """Route this process's file descriptor 2 through a small filter process that drops `noise` lines, for
    the rest of the process (the `litepose` command calls it first). Native libraries write to fd 2 directly,
    so only a filter outside the process catches their lines without holding back anything else. Nothing
    happens when the filter cannot start, or with LITEPOSE_RAW_STDERR=1."""
    import atexit
    import subprocess

    if os.environ.get("LITEPOSE_RAW_STDERR"):
        return
    try:
        sys.stderr.flush()
        proc = subprocess.Popen([sys.executable, "-I", "-S", "-c", _FILTER_CODE, noise.pattern],
                                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, start_new_session=True)
    except (OSError, ValueError, AttributeError):
        return
    saved = os.dup(2)
    os.dup2(proc.stdin.fileno(), 2)
    proc.stdin.close()  # fd 2 is now this process's only write end of the pipe

    def restore() -> None:  # at exit: end the pipe, let the filter pass on the last lines before the shell prompt
        with contextlib.suppress(OSError, ValueError, AttributeError):
            sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)  # longer only if a child of ours still holds the pipe

    atexit.register(restore)
