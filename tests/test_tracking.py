"""Long runs you can watch: a per-epoch log that grows while the run trains, TensorBoard event
files, W&B in offline mode (when installed), and the running runs' epochs on the sweep's bar."""

from __future__ import annotations

import importlib.util

import pytest

from nlbench.cli import main
from nlbench.errors import StorageError
from nlbench.expansion import expand
from nlbench.methods.ce import CrossEntropy
from nlbench.specs import EpochLog
from nlbench.suite_loading import load_suite
from nlbench.tracking import RunTracker, TrackingOptions, last_epoch, log_path

SUITE = """
name: watch
datasets: [{name: synthetic, options: {n_train: 128, n_test: 64, num_classes: 4, size: 8}}]
noise: [{model: sym, ratios: [0.2]}]
methods: [{name: ce, hparams: {network: mlp, epochs: 4, batch_size: 32}}]
engine: {progress: false}
device: cpu
"""


def test_the_log_gains_a_line_per_epoch_while_the_run_trains(write_suite, tmp_path, monkeypatch):
    path = write_suite(SUITE)
    (spec,) = expand(load_suite(path))
    log = log_path(tmp_path / "results" / "watch", spec.run_id)
    seen = []
    begin = CrossEntropy.begin_epoch

    def watching(self, epoch):
        lines = log.read_text().splitlines() if log.exists() else []
        seen.append(sum(line.startswith("epoch ") for line in lines))
        return begin(self, epoch)

    monkeypatch.setattr(CrossEntropy, "begin_epoch", watching)
    assert main(["run", str(path)]) == 0
    assert seen == [0, 1, 2, 3]  # written and flushed after each epoch, before the next began
    lines = log.read_text().splitlines()
    assert lines[0].startswith("# ce | synthetic | sym 0.2 | seed 0") and lines[-1].startswith(
        "# ok"
    )
    assert lines[1].startswith("epoch 1/4  test_acc ") and "loss " in lines[1]
    assert last_epoch(log) == "4/4"


def test_tensorboard_writes_event_files(write_suite, tmp_path):
    pytest.importorskip("tensorboard")
    assert main(["run", str(write_suite(SUITE)), "--tensorboard"]) == 0
    (spec,) = expand(load_suite(write_suite(SUITE)))
    events = list((tmp_path / "results" / "watch" / "tensorboard" / spec.run_id).glob("events.*"))
    assert events and events[0].stat().st_size > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulated = EventAccumulator(str(events[0].parent))
    accumulated.Reload()
    assert [e.step for e in accumulated.Scalars("test_acc")] == [0, 1, 2, 3]


@pytest.mark.skipif(importlib.util.find_spec("wandb") is None, reason="wandb is not installed")
def test_wandb_offline_writes_a_local_run(write_suite, tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    assert main(["run", str(write_suite(SUITE)), "--wandb"]) == 0
    runs = list((tmp_path / "results" / "watch" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and any(runs[0].rglob("*.wandb"))


def test_a_missing_tracking_package_stops_before_training(write_suite, monkeypatch, capsys):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "tensorboard" else real(name, *a))  # fmt: skip
    assert main(["run", str(write_suite(SUITE)), "--tensorboard"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pip install -e '.[tracking]'" in err[0]


def test_ssr_entity_turns_on_wandb(tmp_path, capsys):
    from nlbench.methods._ssr_command import parse_ssr_command

    suite = parse_ssr_command(["--entity", "mylab", "--dataset_path", str(tmp_path)])
    assert suite["tracking"] == {"wandb": True, "wandb_entity": "mylab"}


def test_running_runs_show_their_epoch_on_the_sweep_bar(tmp_path):
    from nlbench.runner import _show_running
    from nlbench.store import Store

    class Bar:
        text = ""
        disable = False

        def set_postfix_str(self, text):
            Bar.text = text

    store = Store(tmp_path)
    log = log_path(tmp_path, "abc")
    log.parent.mkdir(parents=True)
    log.write_text("# start\nepoch 1/30  test_acc 10.00\nepoch 2/30  test_acc 20.00\n")
    _show_running(
        Bar(), store, {"abc", "other"}, {"abc": "ce | d | sym 0.2 | seed 0", "other": "x"}
    )
    assert Bar.text == "ce | d | sym 0.2 | seed 0: epoch 2/30"


def test_a_real_runs_log_lies_beside_its_record_where_log_path_says(write_suite, tmp_path):
    """Found by listing the results folder, not by log_path: the one log a 2-epoch run writes is
    logs/<run id>.log beside its record, where the sweep bar (log_path) reads it, one line an epoch."""
    from nlbench.store import Store

    assert main(["run", str(write_suite(SUITE)), "--set", "methods.ce.hparams.epochs=2"]) == 0
    results = tmp_path / "results" / "watch"
    ((record,), problems) = Store(results).load()
    assert problems == [] and (results / f"{record.run_id}.json").is_file()
    (log,) = (results / "logs").iterdir()
    assert log.name == f"{record.run_id}.log" and log_path(results, record.run_id) == log
    epochs = [line for line in log.read_text().splitlines() if line.startswith("epoch ")]
    assert len(epochs) == len(record.epochs) == 2 and last_epoch(log) == "2/2"


class _FullFile:
    """A log file on a disk that just filled up."""

    def write(self, text: str) -> int:
        raise OSError(28, "No space left on device")

    def flush(self) -> None:
        pass

    def close(self) -> None:
        raise OSError(28, "No space left on device")


def test_a_log_that_cannot_grow_is_a_storage_error_and_closing_it_never_raises(tmp_path):
    tracker = RunTracker(tmp_path, "abc", "ce | x", "watch", {}, TrackingOptions())
    assert log_path(tmp_path, "abc").read_text().startswith("# ce | x (abc), started ")
    tracker.file.close()
    tracker.file = _FullFile()
    entry = EpochLog(epoch=0, test_acc=50.0, losses={}, seconds={"train": 1.0},
                     images_per_second=1.0)  # fmt: skip
    with pytest.raises(StorageError, match=r"could not write the log .*abc.log \(No space left"):
        tracker(entry, 4)
    tracker.close("stopped")  # the error on its way up matters more than this line
