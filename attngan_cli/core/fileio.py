"""Files: atomic writes (nothing half-written is ever left under the final name), a clear error for an
output location that cannot be written, SIGTERM handled like Ctrl-C around a write, and the one restricted
unpickler through which every pickle the tool reads goes."""

from __future__ import annotations

import codecs
import contextlib
import errno
import io
import json
import os
import pickle
import shutil
import signal
import tempfile
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from attngan_cli.core.errors import InputError, OutputError, Terminated


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated` instead of killing the process at once,
    so the temporary files of :func:`atomic_path` are removed as on Ctrl-C. Only where SIGTERM still has
    its default action (a handler someone installed, or an ignored SIGTERM, is left alone) and only in
    the main thread (the only one that can install handlers); the previous handler is restored after."""
    if threading.current_thread() is not threading.main_thread() or signal.getsignal(signal.SIGTERM) != signal.SIG_DFL:
        yield
        return

    def handler(signum: int, frame: object) -> None:
        raise Terminated

    signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _blocking_ancestor(folder: Path) -> Path | None:
    """The first existing ancestor of ``folder`` (itself included) that is not a folder, if any."""
    for p in (folder, *folder.parents):
        if p.exists() or p.is_symlink():
            return None if p.is_dir() else p
    return None


def _nearest_folder(p: Path) -> Path:
    """``p`` if it is a folder, else its nearest ancestor that is one (the folder a file would go in)."""
    for q in (p, *p.parents):
        try:
            if q.is_dir():
                return q
        except OSError:
            continue
    return p.parent


def check_output_location(path: str | os.PathLike[str]) -> None:
    """Raise :class:`OutputError` when ``path`` cannot be created: a file stands where a folder of its
    path should be, or the nearest existing folder is not writable. Run before long work, so the error
    comes before it, not after."""
    path = Path(path)
    try:
        blocker = _blocking_ancestor(path.parent)
        existing = next((p for p in (path.parent, *path.parent.parents) if p.is_dir()), None)
    except PermissionError as e:
        raise _output_error(path, e) from None
    if blocker is not None:
        raise OutputError(f"cannot write {path}: {blocker} is a file, not a folder; choose another output path")
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {path}: no permission to create files in {existing}; choose another "
                          "output path or make that folder writable")


def check_output_folder(path: str | os.PathLike[str], flag: str) -> None:
    """Raise :class:`OutputError` naming ``flag`` when the folder ``path`` (given by that option) cannot be
    made because it, or a folder of its path, is a file. Run before any work."""
    path = Path(path)
    try:
        blocker = _blocking_ancestor(path)
    except PermissionError as e:
        raise _output_error(path / "x", e) from None
    if blocker == path:
        raise OutputError(f"{flag} {path} is a file, not a directory")
    if blocker is not None:
        raise OutputError(f"{flag} {path}: {blocker} is a file, not a directory")


def _output_error(path: Path, e: OSError) -> OutputError:
    """The :class:`OutputError` for an ``OSError`` raised while creating ``path``'s folder or temporary file."""
    try:
        blocker = _blocking_ancestor(path.parent)
    except PermissionError:
        blocker = None
    if blocker is not None or isinstance(e, (FileExistsError, NotADirectoryError)):
        where = blocker or Path(e.filename or path.parent)
        return OutputError(f"cannot write {path}: {where} is a file, not a folder; choose another output path")
    if isinstance(e, PermissionError):
        where = _nearest_folder(Path(e.filename)) if e.filename else path.parent
        return OutputError(f"cannot write {path}: no permission to create files in {where}; choose another "
                           "output path or make that folder writable")
    return OutputError(f"cannot write {path}: {e.strerror or e}")


NO_SPACE_ERRNOS = frozenset(n for n in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EFBIG) if n is not None)


def is_no_space(e: BaseException) -> bool:
    """Whether ``e`` is a write that failed for want of space (a full disk, a quota, a file-size limit)."""
    return isinstance(e, OSError) and not isinstance(e, OutputError) and e.errno in NO_SPACE_ERRNOS


def _size_text(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"  # pragma: no cover


def free_space_text(path: str | os.PathLike[str]) -> str:
    """``1.2 GB free on /data/runs``: the free space of the folder ``path`` is (or would be) written in."""
    folder = _nearest_folder(Path(path).parent)
    try:
        return f"{_size_text(shutil.disk_usage(folder).free)} free on {folder}"
    except OSError:
        return f"free space on {folder} unknown"


def write_failed(path: str | os.PathLike[str], e: BaseException) -> OutputError:
    """The :class:`OutputError` for a write of ``path`` that failed midway: the reason (no space left, an
    I/O error) and the free space where it was written."""
    if is_no_space(e):
        reason = "no space left on device"
    else:
        text = (getattr(e, "strerror", None) or str(e) or type(e).__name__).strip()
        reason = text.splitlines()[0] if text else type(e).__name__
    return OutputError(f"cannot write {path}: {reason} ({free_space_text(path)}); free some space or choose "
                       "another output path")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed over ``path``.

    On an exception (including KeyboardInterrupt) the temporary file is removed and ``path`` is untouched.
    A folder that cannot be created or written raises :class:`OutputError` naming it, and so does a
    write that runs out of space (:func:`write_failed`: the file and the free space).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    except (PermissionError, FileExistsError, NotADirectoryError) as e:
        raise _output_error(path, e) from None
    except OSError as e:
        if is_no_space(e):
            raise write_failed(path, e) from None
        raise
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp_path, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        if is_no_space(e):
            raise write_failed(path, e) from None
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def read_text(path: str | os.PathLike[str], what: str, hint: str = "save it as UTF-8 text") -> str:
    """The text of a UTF-8 file, newlines normalised to ``\\n`` (as ``open()`` does). A binary file (NUL
    bytes: an image, a UTF-16 file) or bytes that are not UTF-8 raise :class:`InputError` naming ``what``,
    the file, the line and the byte, then ``hint``; so does a missing or unreadable file."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{what} {path} does not exist") from None
    except OSError as e:
        raise InputError(f"cannot read {what} {path}: {e.strerror or e}") from None
    nul = raw.find(b"\x00")
    if nul >= 0:
        raise InputError(f"{what} {path} is not a text file: it holds NUL bytes (line {_line_at(raw, nul)}, "
                         f"byte {nul}): binary data or UTF-16 text; {hint}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError(f"{what} {path} is not UTF-8 text: byte 0x{raw[e.start]:02x} at line "
                         f"{_line_at(raw, e.start)} (byte {e.start}) is not valid UTF-8; {hint}") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _line_at(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


def append_jsonl(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    """Append one JSON line and flush it to disk (a crash loses at most the line being written)."""
    line = json.dumps(record, default=_json_default)
    with open(path, "a", encoding="utf-8") as f:
        f.write(line + "\n")
        f.flush()
        os.fsync(f.fileno())


def read_jsonl(path: str | os.PathLike[str], lenient: bool = False) -> list[dict[str, Any]]:
    """The JSON objects of a ``.jsonl`` file, one per non-blank line. ``lenient`` (reading the logs of runs
    that may have been killed while writing): a missing file is empty, and a line that is not a JSON
    object (a torn last line) is skipped."""
    path = Path(path)
    if lenient and not path.is_file():
        return []
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                if lenient:
                    continue
                raise
            if isinstance(record, dict) or not lenient:
                out.append(record)
    return out


def _json_default(o: Any) -> Any:
    if isinstance(o, Path):
        return str(o)
    if hasattr(o, "item"):  # numpy / torch scalars
        return o.item()
    if hasattr(o, "tolist"):
        return o.tolist()
    raise TypeError(f"cannot serialise {type(o).__name__} to JSON")


# ---------------------------------------------------------------------------------------------------------
# Pickles. The official files (captions.pickle, filenames.pickle, class_info.pickle) hold lists, dicts,
# strings and numbers; the birds' train/class_info.pickle holds numpy int64 scalars (numpy.core.multiarray
# .scalar + numpy.dtype; written by Python 3 at protocol 2 their bytes come through _codecs.encode, which
# looks codecs up only inside the encodings package). Everything else a pickle may name (a function to call, a class to build) is
# refused before it runs: pickle.load would call it.


_PLAIN = {"list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset, "int": int,
          "float": float, "bool": bool, "str": str}
_SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    **{("builtins", n): o for n, o in _PLAIN.items()},
    **{("__builtin__", n): o for n, o in _PLAIN.items()},  # Python 2 pickles
    ("__builtin__", "long"): int, ("__builtin__", "unicode"): str,
    ("collections", "OrderedDict"): OrderedDict, ("collections", "defaultdict"): defaultdict,
    # how Python 3 writes bytes at protocol 2 (numpy scalars' data): a pure text -> bytes function
    ("_codecs", "encode"): codecs.encode,
}
_NUMPY_GLOBALS = {("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
                  ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                  ("numpy", "dtype"), ("numpy", "ndarray")}


def _numpy_global(name: str) -> Any:
    """numpy's scalar / array rebuilders (imported only when a pickle names them)."""
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    return {"scalar": multiarray.scalar, "_reconstruct": multiarray._reconstruct,
            "ndarray": np.ndarray, "dtype": np.dtype}[name]


# What unpickling raises on corrupted bytes besides UnpicklingError (found by corrupting, truncating and
# extending a captions.pickle: bad opcodes and lengths, truncation, undecodable strings, huge sizes; numpy
# raises TypeError / ValueError on bad scalar or dtype arguments).
MALFORMED_PICKLE_ERRORS = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
                           KeyError, OverflowError, MemoryError)


class _ForbiddenGlobal(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds containers, strings and numbers only; any other global is refused before anything runs."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _SAFE_GLOBALS:
            return _SAFE_GLOBALS[module, name]
        if (module, name) in _NUMPY_GLOBALS:
            return _numpy_global(name)
        raise _ForbiddenGlobal(f"global {module}.{name} is not allowed")


def safe_unpickle(path: str | os.PathLike[str], what: str, *, label: str = "", data: bytes | None = None) -> Any:
    """The object pickled in ``path`` (Python 2 pickles included: ``encoding="latin1"``), read without
    running any code from the file. Raises :class:`InputError` naming the file (``label`` before it, e.g.
    an option name) and ``what`` was expected (e.g. ``"the official captions.pickle"``) when the file
    cannot be read, is not a pickle, or names anything but plain data. ``data``: the file's bytes, when
    the caller has read them already."""
    path = Path(path)
    name = f"{label} {path}" if label else str(path)
    try:
        raw = path.read_bytes() if data is None else data
    except OSError as e:
        raise InputError(f"cannot read {name}: {e.strerror or e}") from None
    try:
        return _RestrictedUnpickler(io.BytesIO(raw), encoding="latin1").load()
    except _ForbiddenGlobal as e:
        raise InputError(f"{name} cannot be read safely: {e} (only lists, dicts, strings and numbers are read "
                         f"from pickles; no code from a file is run); it is not {what}") from None
    except MALFORMED_PICKLE_ERRORS as e:
        raise InputError(f"{name} is not a readable pickle ({type(e).__name__}: {e}); expected {what}") from None
