"""Keel's one archive format, for workspace backups and project bundles.

One zip file: the members, then `manifest.json` naming every member with its size and
sha256. Members are streamed in and out in blocks (a dataset is never held in memory
whole); the archive is written under a temporary name beside its destination and
renamed when complete. A reader checks every member against the manifest before a
caller writes anything anywhere, and names the first damaged member.
"""

import hashlib
import json
import shutil
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

from app.core.domain.clock import SYSTEM_CLOCK, Clock
from app.core.domain.errors import KeelError
from app.core.domain.upkeep import ArchiveMember
from app.core.fileio import atomic_path

FORMAT = "keel-archive"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
BLOCK = 1 << 20


class ArchiveError(KeelError):
    """A file that is not a Keel archive, or one whose members do not match its manifest."""


def _check_member_name(name: str) -> str:
    path = PurePosixPath(name)
    if not name or path.is_absolute() or ".." in path.parts or "\\" in name or name == MANIFEST:
        raise ArchiveError(f"invalid archive member name {name!r}")
    return name


class ArchiveWriter:
    """Build an archive at `destination`; nothing appears there unless close() succeeds."""

    def __init__(self, zip_file: zipfile.ZipFile, kind: str, meta: dict | None = None, clock: Clock = SYSTEM_CLOCK):
        self._zip = zip_file
        self._clock = clock  # the manifest's created_at
        self.kind = kind
        self.meta = dict(meta or {})
        self.members: list[ArchiveMember] = []

    def add_file(self, name: str, source: Path) -> ArchiveMember:
        """Stream a file in; returns its manifest entry (name, size, sha256)."""
        with open(source, "rb") as handle:
            return self.add_stream(name, handle)

    def add_stream(self, name: str, handle: IO[bytes]) -> ArchiveMember:
        _check_member_name(name)
        digest, size = hashlib.sha256(), 0
        with self._zip.open(name, "w", force_zip64=True) as out:
            for block in iter(lambda: handle.read(BLOCK), b""):
                digest.update(block)
                out.write(block)
                size += len(block)
        entry = ArchiveMember(name=name, size=size, sha256=digest.hexdigest())
        self.members.append(entry)
        return entry

    def add_bytes(self, name: str, data: bytes) -> ArchiveMember:
        import io

        return self.add_stream(name, io.BytesIO(data))

    def add_json(self, name: str, value: Any) -> ArchiveMember:
        return self.add_bytes(name, json.dumps(value, default=str, allow_nan=True).encode("utf-8"))

    def _write_manifest(self) -> None:
        manifest = {"format": FORMAT, "format_version": FORMAT_VERSION, "kind": self.kind,
                    "created_at": self._clock(), "meta": self.meta, "members": [member.to_json() for member in self.members]}
        self._zip.writestr(MANIFEST, json.dumps(manifest, indent=1, default=str))


@contextmanager
def write_archive(destination: Path, kind: str, meta: dict | None = None,
                  before_manifest: Callable[[ArchiveWriter], None] | None = None,
                  clock: Clock = SYSTEM_CLOCK) -> Iterator[ArchiveWriter]:
    """Yield a writer; on a clean exit the manifest (created at clock's now) is added and the file
    renamed into place. before_manifest(writer), if given, runs just before the manifest is written."""
    destination = Path(destination)
    with atomic_path(destination) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1,
                             allowZip64=True) as zip_file:
            writer = ArchiveWriter(zip_file, kind, meta, clock)
            yield writer
            if before_manifest is not None:
                before_manifest(writer)
            writer._write_manifest()


class ArchiveReader:
    """Read an archive; verify() hashes every member against the manifest."""

    def __init__(self, path: Path, expected_kind: str | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise ArchiveError(f"{self.path}: no such file")
        try:
            self._zip = zipfile.ZipFile(self.path, "r")
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{self.path.name}: not a Keel archive, or damaged ({exc})") from None
        try:
            self.manifest = self._read_manifest()
        except BaseException:
            self._zip.close()
            raise
        self.kind = self.manifest.get("kind")
        if expected_kind is not None and self.kind != expected_kind:
            self.close()
            raise ArchiveError(f"{self.path.name} is a Keel {self.kind}, not a {expected_kind}")
        self.entries = {m["name"]: ArchiveMember.from_json(m) for m in self.manifest["members"]}

    def _read_manifest(self) -> dict:
        try:
            manifest = json.loads(self._zip.read(MANIFEST))
        except KeyError:
            raise ArchiveError(f"{self.path.name}: member {MANIFEST} is missing (an interrupted write, or "
                               "not a Keel archive)") from None
        except (zipfile.BadZipFile, ValueError, OSError) as exc:
            raise ArchiveError(f"{self.path.name}: member {MANIFEST} is damaged ({exc})") from None
        if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
            raise ArchiveError(f"{self.path.name}: not a Keel archive (member {MANIFEST} has no Keel format)")
        if manifest.get("format_version", 0) > FORMAT_VERSION:
            raise ArchiveError(f"{self.path.name}: archive format v{manifest['format_version']} was written by a "
                               f"newer Keel (this one reads up to v{FORMAT_VERSION}); upgrade Keel")
        members = manifest.get("members")
        if not isinstance(members, list) or not all(
                isinstance(m, dict) and {"name", "size", "sha256"} <= set(m) for m in members):
            raise ArchiveError(f"{self.path.name}: member {MANIFEST} is damaged (no member list)")
        for member in members:
            _check_member_name(member["name"])
        return manifest

    @property
    def meta(self) -> dict[str, Any]:
        """The manifest's `meta` document as the writer put it (its keys depend on the archive's kind)."""
        return self.manifest.get("meta", {})

    @property
    def schema_version(self) -> int:
        """The registry schema the archive's writer knew (0: not recorded)."""
        version = self.meta.get("schema_version", 0)
        return version if isinstance(version, int) else 0

    def names(self) -> list[str]:
        return list(self.entries)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> "ArchiveReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def verify(self) -> None:
        """Every member present, listed, and matching its size and sha256; else ArchiveError naming it."""
        stored = {info.filename for info in self._zip.infolist()} - {MANIFEST}
        for extra in sorted(stored - set(self.entries)):
            raise ArchiveError(f"{self.path.name}: member {extra} is not in the manifest (tampered)")
        for name in self.entries:
            if name not in stored:
                raise ArchiveError(f"{self.path.name}: member {name} is missing")
            with self.open(name) as handle:
                while handle.read(BLOCK):
                    pass

    @contextmanager
    def open(self, name: str) -> Iterator["_CheckedStream"]:
        """A stream of the member that raises ArchiveError at its end if the bytes do not match."""
        entry = self.entries.get(name)
        if entry is None:
            raise ArchiveError(f"{self.path.name}: member {name} is not in the manifest")
        try:
            raw = self._zip.open(name)
        except KeyError:
            raise ArchiveError(f"{self.path.name}: member {name} is missing") from None
        except (zipfile.BadZipFile, OSError) as exc:
            raise ArchiveError(f"{self.path.name}: member {name} is damaged ({exc})") from None
        checked = _CheckedStream(raw, entry, self.path.name)
        try:
            yield checked
        finally:
            raw.close()

    def read_bytes(self, name: str) -> bytes:
        with self.open(name) as handle:
            return handle.read()

    def read_json(self, name: str) -> Any:
        data = self.read_bytes(name)
        try:
            return json.loads(data)
        except ValueError:
            raise ArchiveError(f"{self.path.name}: member {name} is not valid JSON") from None

    def extract(self, name: str, destination: Path) -> None:
        """Stream a member to destination (temporary name, then rename), its hash checked on the way."""
        with self.open(name) as handle, atomic_path(Path(destination)) as tmp:
            with open(tmp, "wb") as out:
                shutil.copyfileobj(handle, out, BLOCK)


class _CheckedStream:
    """Wraps a zip member: hashes what is read; at the end, compares with the manifest."""

    def __init__(self, raw: IO[bytes], entry: ArchiveMember, archive_name: str):
        self._raw, self._entry, self._archive = raw, entry, archive_name
        self._digest, self._size, self._done = hashlib.sha256(), 0, False

    def read(self, size: int = -1) -> bytes:
        try:
            block = self._raw.read(size)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as exc:
            raise ArchiveError(f"{self._archive}: member {self._entry.name} is damaged ({exc})") from None
        self._digest.update(block)
        self._size += len(block)
        if self._size > self._entry.size:
            raise ArchiveError(f"{self._archive}: member {self._entry.name} is damaged (longer than its manifest)")
        if not block or size < 0:
            self._finish()
        return block

    def _finish(self) -> None:
        if self._done:
            return
        self._done = True
        if self._size != self._entry.size or self._digest.hexdigest() != self._entry.sha256:
            raise ArchiveError(f"{self._archive}: member {self._entry.name} is damaged (sha256 mismatch)")
