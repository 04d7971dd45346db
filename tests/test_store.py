"""The store: atomic records, resume, and unreadable records reported and redone."""

from __future__ import annotations

import json
import os

import pytest

from harness.store import SCHEMA, Store, write_atomic


def _record(run_id: str) -> dict:
    return {"schema": SCHEMA, "run_id": run_id, "spec": {}, "status": "ok"}


def test_write_and_load(tmp_path):
    store = Store(tmp_path)
    store.write(_record("abc"))
    records, problems = store.load()
    assert [r["run_id"] for r in records] == ["abc"] and problems == []
    assert not list(tmp_path.glob(".*tmp"))  # no temporary left behind


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "x.json"
    write_atomic(path, "old")

    def fsync_fails(fd):
        raise OSError("disk on fire")

    monkeypatch.setattr(os, "fsync", fsync_fails)
    with pytest.raises(OSError, match="disk on fire"):
        write_atomic(path, "new, half written")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]


def test_truncated_record_is_reported_and_quarantined(tmp_path):
    store = Store(tmp_path)
    store.write(_record("good"))
    text = json.dumps(_record("bad"))
    (tmp_path / "bad.json").write_text(text[: len(text) // 2])
    records, problems = store.load()
    assert [r["run_id"] for r in records] == ["good"]
    assert problems[0][0].name == "bad.json" and "truncated" in problems[0][1]
    moved = store.quarantine(problems[0][0])
    assert moved.exists() and moved.read_text() == text[: len(text) // 2]
    assert store.load()[1] == []


def test_wrong_schema_and_mismatched_id_are_problems(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({**_record("a"), "schema": 99}))
    (tmp_path / "b.json").write_text(json.dumps(_record("not-b")))
    problems = dict((p.name, m) for p, m in store.load()[1])
    assert "schema 99" in problems["a.json"]
    assert "does not match" in problems["b.json"]


def test_records_are_readable_by_others(tmp_path):
    """Cluster users share results folders: a record must not stay private like mkstemp's file."""
    path = Store(tmp_path).write(_record("abc"))
    assert path.stat().st_mode & 0o777 == 0o644
