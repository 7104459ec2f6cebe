"""The archive format shared by backups and bundles: streamed members, a sha256 manifest,
a reader that names the damaged member before anything is written."""

import json
import zipfile

import pytest

from app.core.store.archive import MANIFEST, ArchiveError, ArchiveReader, write_archive


def _archive(tmp_path, members: dict[str, bytes], kind="backup"):
    path = tmp_path / "out.keel"
    with write_archive(path, kind, {"note": "test"}) as writer:
        for name, data in members.items():
            writer.add_bytes(name, data)
    return path


def test_round_trip_keeps_every_member_and_its_hash(tmp_path):
    big = bytes(range(256)) * 20_000  # several read blocks
    source = tmp_path / "big.bin"
    source.write_bytes(big)
    path = tmp_path / "out.keel"
    with write_archive(path, "bundle", {"project": "p"}) as writer:
        writer.add_file("data/big.bin", source)
        writer.add_json("rows/projects.json", [{"name": "p"}])
    with ArchiveReader(path, expected_kind="bundle") as reader:
        reader.verify()
        assert reader.meta == {"project": "p"}
        assert reader.read_json("rows/projects.json") == [{"name": "p"}]
        reader.extract("data/big.bin", tmp_path / "copy.bin")
    assert (tmp_path / "copy.bin").read_bytes() == big
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


def test_a_failed_write_leaves_no_file(tmp_path):
    path = tmp_path / "out.keel"
    with pytest.raises(RuntimeError), write_archive(path, "backup") as writer:
        writer.add_bytes("a", b"1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def _rewrite(path, change):
    """Copy the zip member by member, letting change(name, data) alter one."""
    with zipfile.ZipFile(path) as source:
        items = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(path, "w") as target:
        for name, data in items:
            new = change(name, data)
            if new is not None:
                target.writestr(name, new)


def test_a_tampered_member_is_named(tmp_path):
    path = _archive(tmp_path, {"datasets/p/v1.parquet": b"original", "other": b"x"})
    _rewrite(path, lambda name, data: b"evil!!!!" if name == "datasets/p/v1.parquet" else data)
    with ArchiveReader(path) as reader, pytest.raises(ArchiveError, match="member datasets/p/v1.parquet is damaged"):
        reader.verify()


def test_a_missing_or_extra_member_is_named(tmp_path):
    path = _archive(tmp_path, {"a": b"1", "b": b"2"})
    _rewrite(path, lambda name, data: None if name == "b" else data)
    with ArchiveReader(path) as reader, pytest.raises(ArchiveError, match="member b is missing"):
        reader.verify()
    path = _archive(tmp_path, {"a": b"1"})
    with zipfile.ZipFile(path, "a") as zip_file:
        zip_file.writestr("smuggled.py", b"import os")
    with ArchiveReader(path) as reader, pytest.raises(ArchiveError, match="member smuggled.py is not in the manifest"):
        reader.verify()


def test_flipped_bytes_on_disk_are_caught(tmp_path):
    payload = b"A" * 50_000
    path = tmp_path / "out.keel"
    with write_archive(path, "backup") as writer:
        writer.add_bytes("payload", payload)
    raw = bytearray(path.read_bytes())
    offset = raw.find(b"payload") + 40  # inside the compressed data of the member
    raw[offset] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ArchiveError, match="payload"):
        with ArchiveReader(path) as reader:
            reader.verify()


def test_not_an_archive_and_path_escapes_are_refused(tmp_path):
    junk = tmp_path / "junk.keel"
    junk.write_text("hello")
    with pytest.raises(ArchiveError, match="not a Keel archive"):
        ArchiveReader(junk)
    path = _archive(tmp_path, {"a": b"1"})
    with zipfile.ZipFile(path) as source:
        manifest = json.loads(source.read(MANIFEST))
    manifest["members"][0]["name"] = "../../etc/passwd"
    _rewrite(path, lambda name, data: json.dumps(manifest).encode() if name == MANIFEST else data)
    with pytest.raises(ArchiveError, match="invalid archive member name"):
        ArchiveReader(path)
    with pytest.raises(ArchiveError, match="is a Keel backup, not a bundle"):
        ArchiveReader(_archive(tmp_path, {"a": b"1"}), expected_kind="bundle")
