"""Atomic file writes (a temporary name in the same folder, fsync, rename) and file hashes: used by
every layer that writes a file, so it belongs to none of them."""

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_path(final_path: Path) -> Iterator[Path]:
    """Yield a temporary path beside final_path; on success it replaces final_path."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=".tmp", dir=final_path.parent)
    os.close(fd)
    tmp_path = Path(tmp_name)
    try:
        yield tmp_path
        with open(tmp_path, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp_path, final_path)
        _fsync_directory(final_path.parent)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _fsync_directory(folder: Path) -> None:
    """Make the rename itself durable (a power cut could otherwise undo it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return  # not supported on this platform (e.g. Windows): the rename is still atomic
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def stage_bytes(final_path: Path, data: bytes) -> Path:
    """The first half of an atomic write: data in a synced temporary file beside final_path
    (a full disk fails here). install_staged() renames it into place; discard_staged() drops it."""
    final_path = Path(final_path)
    final_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{final_path.name}.", suffix=".tmp", dir=final_path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Path(tmp_name)


def install_staged(staged: list[tuple[Path, Path]]) -> None:
    """Rename each (temporary, final) pair into place."""
    for tmp, final in staged:
        os.replace(tmp, final)
        _fsync_directory(final.parent)


def discard_staged(staged: list[tuple[Path, Path]]) -> None:
    for tmp, _ in staged:
        tmp.unlink(missing_ok=True)


def write_bytes_atomic(final_path: Path, data: bytes) -> None:
    with atomic_path(final_path) as tmp:
        tmp.write_bytes(data)


def write_text_atomic(final_path: Path, text: str) -> None:
    write_bytes_atomic(final_path, text.encode("utf-8"))


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
