"""The store: atomic typed records, resume, unreadable records reported, old schemas refused."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from factories import make_record, record_dict

from nlbench.errors import ConfigError
from nlbench.store import RECORD_BYTES_GUESS, ROOM_MARGIN, Store, write_atomic


def test_write_and_load_round_trips_the_typed_record(tmp_path):
    store = Store(tmp_path)
    written = make_record("abc", method="gce", hparams={"epochs": 2, "q": 0.7})
    store.write(written)
    records, problems = store.load()
    assert records == [written] and problems == []
    assert records[0].spec.method.hparams["q"] == 0.7
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
    store.write(make_record("good"))
    text = json.dumps(record_dict("bad"))
    (tmp_path / "bad.json").write_text(text[: len(text) // 2])
    records, problems = store.load()
    assert [r.run_id for r in records] == ["good"]
    assert problems[0][0].name == "bad.json" and "truncated" in problems[0][1]
    moved = store.quarantine(problems[0][0])
    assert moved.exists() and moved.read_text() == text[: len(text) // 2]
    assert store.load()[1] == []


def test_unknown_schema_missing_field_and_mismatched_id_are_problems(tmp_path):
    store = Store(tmp_path)
    (tmp_path / "a.json").write_text(json.dumps({**record_dict("a"), "schema_version": "two"}))
    (tmp_path / "b.json").write_text(json.dumps(record_dict("not-b")))
    no_env = record_dict("c")
    del no_env["env"]
    (tmp_path / "c.json").write_text(json.dumps(no_env))
    problems = dict((p.name, m) for p, m in store.load()[1])
    assert "schema version 'two'" in problems["a.json"]
    assert "does not match" in problems["b.json"]
    assert "field 'env'" in problems["c.json"]


def test_a_newer_schema_is_refused_with_one_line_and_left_in_place(tmp_path):
    """A record a newer nlbench wrote is not damaged: it is neither a problem nor moved aside."""
    store = Store(tmp_path)
    store.write(make_record("new"))
    (tmp_path / "a.json").write_text(json.dumps({**record_dict("a"), "schema_version": 99}))
    with pytest.raises(ConfigError, match="were written by a newer nlbench"):
        store.load()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "new.json"]


def test_an_older_schema_is_refused_with_one_line_and_left_in_place(tmp_path):
    """Records of nlbench 0.1 (schema 1: other seeding, untyped) are never mixed with new ones."""
    store = Store(tmp_path)
    store.write(make_record("new"))
    old = {"schema": 1, "run_id": "old", "spec": {}, "status": "ok"}
    (tmp_path / "old.json").write_text(json.dumps(old))
    with pytest.raises(ConfigError) as caught:
        store.load()
    message = str(caught.value)
    assert "1 record(s) of schema version 1" in message and f"mv {tmp_path}" in message
    assert "\n" not in message
    assert json.loads((tmp_path / "old.json").read_text()) == old


def test_records_are_readable_by_others(tmp_path):
    """Cluster users share results folders: a record must not stay private like mkstemp's file."""
    path = Store(tmp_path).write(make_record("abc"))
    assert path.stat().st_mode & 0o777 == 0o644


def test_room_for_a_run_is_measured_against_the_last_record_and_the_checkpoints(
    tmp_path, monkeypatch
):
    store = Store(tmp_path)
    free = {"bytes": 10**9}
    monkeypatch.setattr(
        shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(0, 0, free["bytes"])
    )
    assert store.storage_problem() is None
    free["bytes"] = int(ROOM_MARGIN * RECORD_BYTES_GUESS) - 1  # no record yet: a generous guess
    assert "a run needs about 384 KB (a record of 256 KB, with a margin)" in store.storage_problem()
    store.write(make_record("abc"))
    size = store.path("abc").stat().st_size
    free["bytes"] = int(ROOM_MARGIN * (size + 2 * 1000))
    assert store.storage_problem(checkpoint_bytes=1000) is None
    free["bytes"] -= 1
    assert "and checkpoints of 1000 B" in store.storage_problem(checkpoint_bytes=1000)
