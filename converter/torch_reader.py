"""Read `torch.save` files without PyTorch and without running code from them.

Both serialisations are supported: the zip format (torch >= 1.6) and the legacy stream format.
The unpickler rebuilds only tensors, numbers, strings and plain containers; any other global a
pickle asks for (a class, a function such as `os.system`) is refused before it is looked up, so a
crafted file cannot execute anything.
"""
from __future__ import annotations

import collections
import io
import math
import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np

from python_ref.errors import LitePoseError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class UnsafeCheckpoint(LitePoseError):
    """The file asks the unpickler for an object that is not data."""


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


def _rebuild_tensor(storage, storage_offset, size, stride, *_ignored):
    """torch._utils._rebuild_tensor(_v2): a strided view of a storage, copied out as a numpy array."""
    size, stride = tuple(size), tuple(stride)
    if not size:
        return np.array(storage[storage_offset], dtype=storage.dtype)
    needed = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride) if n > 0)
    if any(n == 0 for n in size):
        return np.zeros(size, dtype=storage.dtype)
    if needed > storage.size:
        raise LitePoseError("a tensor points outside its storage (truncated or corrupt file)")
    if math.prod(size) > storage.size:   # overlapping (stride-0) views: never weights, but a memory bomb
        raise LitePoseError(f"a tensor of shape {list(size)} reads its {storage.size}-element storage more than "
                            "once (a crafted or corrupt file)")
    item = storage.dtype.itemsize
    view = np.lib.stride_tricks.as_strided(
        storage[storage_offset:], shape=size, strides=[s * item for s in stride], writeable=False)
    return np.array(view)


def _rebuild_parameter(data, *_ignored):
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("__builtin__", "set"): set,
}


class _SafeUnpickler(pickle.Unpickler):
    def __init__(self, file, load_storage, source: str):
        super().__init__(file, encoding="utf-8")
        self._load_storage = load_storage
        self._source = source

    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafeCheckpoint(
                f"{self._source}: refused: the file asks to run or build '{module}.{name}', which is not "
                "tensor data (a crafted or non-weights file); nothing from it was executed") from None

    def persistent_load(self, pid):
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafeCheckpoint(f"{self._source}: refused: unknown persistent object {pid[:1]!r}")
        return self._load_storage(pid[1:])


def _read_zip(path: Path, source: str):
    with zipfile.ZipFile(path) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise LitePoseError(f"{source}: a zip file but not a torch.save checkpoint (no data.pkl)")
        prefix = pkl[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in names:
            byteorder = zf.read(prefix + "byteorder").decode().strip()
        cache: dict[str, np.ndarray] = {}

        def load_storage(info):
            storage_type, key, _location, numel = info[:4]
            if not isinstance(storage_type, _StorageType):
                raise UnsafeCheckpoint(f"{source}: refused: storage of unknown type {storage_type!r}")
            if key not in cache:
                try:
                    raw = zf.read(f"{prefix}data/{key}")
                except KeyError:
                    raise LitePoseError(f"{source}: storage {key} is missing (truncated file)") from None
                dtype = storage_type.dtype.newbyteorder("<" if byteorder == "little" else ">")
                if len(raw) < numel * dtype.itemsize:
                    raise LitePoseError(f"{source}: storage {key} is shorter than declared (truncated file)")
                cache[key] = np.frombuffer(raw, dtype=dtype, count=numel).astype(storage_type.dtype)
            return cache[key]

        return _SafeUnpickler(io.BytesIO(zf.read(pkl[0])), load_storage, source).load()


def _read_legacy(path: Path, source: str):
    """Legacy stream: magic, protocol, sys_info, the object pickle, the storage keys, then raw storages.

    The storages follow the object pickle, so it is read twice: once to learn the storage types and
    where the data starts, once more with the filled storages.
    """
    with open(path, "rb") as f:
        if _SafeUnpickler(f, None, source).load() != _LEGACY_MAGIC:
            raise LitePoseError(f"{source}: not a torch.save checkpoint (bad magic number)")
        _SafeUnpickler(f, None, source).load()  # protocol version
        _SafeUnpickler(f, None, source).load()  # sys info
        object_offset = f.tell()
        declared: dict[str, _StorageType] = {}

        file_bytes = path.stat().st_size

        def declare_storage(info):
            storage_type, key, _location, numel = info[:4]
            if not isinstance(storage_type, _StorageType):
                raise UnsafeCheckpoint(f"{source}: refused: storage of unknown type {storage_type!r}")
            if not 0 <= int(numel) * storage_type.dtype.itemsize <= file_bytes:
                raise LitePoseError(f"{source}: a storage of {numel} elements cannot be in a {file_bytes}-byte "
                                    "file (truncated, corrupt or crafted)")
            declared[key] = storage_type
            return np.zeros(int(numel), dtype=storage_type.dtype)

        _SafeUnpickler(f, declare_storage, source).load()
        arrays: dict[str, np.ndarray] = {}
        keys = _SafeUnpickler(f, None, source).load()
        for done, key in enumerate(keys):
            header = f.read(8)
            (numel,) = struct.unpack("<q", header) if len(header) == 8 else (-1,)
            dtype = declared[key].dtype
            raw = f.read(numel * dtype.itemsize) if numel >= 0 else b""
            if numel < 0 or len(raw) < numel * dtype.itemsize:
                raise LitePoseError(f"{source}: truncated file: the tensor data ends inside block {done + 1} of "
                                    f"{len(keys)} (an incomplete copy or download?)")
            arrays[key] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"), count=numel).astype(dtype)
        f.seek(object_offset)
        return _SafeUnpickler(f, lambda info: arrays[info[1]], source).load()


def read_torch_file(path: str | Path):
    """Load a torch.save file as plain Python containers of numpy arrays.

    Raises LitePoseError with the file name for anything that is not a readable, safe checkpoint.
    """
    path = Path(path)
    source = str(path)
    if not path.is_file():
        raise LitePoseError(f"{source}: no such checkpoint file")
    try:
        if zipfile.is_zipfile(path):
            return _read_zip(path, source)
        with open(path, "rb") as f:
            head = f.read(4)
        if head == b"PK\x03\x04":
            raise LitePoseError(f"{source}: a zip file whose end is missing: truncated (an incomplete copy or "
                                "download?)")
        if head[:1] != b"\x80":
            raise LitePoseError(f"{source}: not a PyTorch checkpoint (neither a torch zip file nor a pickle)")
        return _read_legacy(path, source)
    except LitePoseError as exc:
        if str(exc).startswith(source):
            raise
        raise LitePoseError(f"{source}: {exc}") from None      # raised where the file name is not known
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, ValueError,
            TypeError, IndexError, KeyError, AttributeError, UnicodeDecodeError, OverflowError) as exc:
        raise LitePoseError(f"{source}: unreadable or truncated checkpoint ({type(exc).__name__}: {exc})") from None
    except MemoryError:
        raise LitePoseError(f"{source}: asks for more memory than this computer has (a corrupt or crafted "
                            "checkpoint?)") from None
