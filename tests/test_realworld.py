"""ANIMAL-10N, Clothing1M and mini-WebVision in their native layouts, on generated trees (tens of
JPEGs per class): loading, the one-line layout errors, the per-epoch Clothing1M subsample, the
streamed image path, one epoch of SSR and CE through it, and WebVision's two test sets.

Networks are tiny (small_cnn at width 0.25) so a CPU trains an epoch in seconds."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from nlbench.cli import main
from nlbench.data.datasets import load_dataset
from nlbench.data.image_files import class_balanced_subsample
from nlbench.data.noise import NoiseFacts, apply_noise
from nlbench.engine import Engine, EngineOptions
from nlbench.engine.images import Streamed, in_order
from nlbench.engine.loop import RunFailed
from nlbench.errors import ConfigError, DataError
from nlbench.methods.api import get as get_method

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location(
    "realworld_tree", ROOT / "scripts" / "realworld_tree.py"
)
trees = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(trees)

TINY = {"network": "small_cnn", "network_options": {"width": 0.25}, "batch_size": 8, "epochs": 1}


@pytest.fixture(scope="module")
def animal(tmp_path_factory) -> Path:
    return trees.animal10n_tree(tmp_path_factory.mktemp("animal"))


@pytest.fixture(scope="module")
def clothing(tmp_path_factory) -> Path:
    return trees.clothing1m_tree(tmp_path_factory.mktemp("clothing"))


@pytest.fixture(scope="module")
def webvision(tmp_path_factory) -> Path:
    return trees.webvision_tree(tmp_path_factory.mktemp("webvision"))


def engine_on(dataset, seed: int = 0, workers: int = 0) -> Engine:
    noisy = apply_noise("given", dataset, None, 0)
    options = EngineOptions(progress=False, data_workers=workers)
    return Engine(dataset, noisy, seed, torch.device("cpu"), options, NoiseFacts())


# ------------------------------------------------------------------------------------ loading


def test_animal10n_reads_labels_from_file_names_in_memory_and_streamed(animal):
    held = load_dataset("animal10n", str(animal))
    streamed = load_dataset("animal10n", str(animal), stream=True)
    assert (held.num_classes, held.image_shape, held.clean_train) == (10, (3, 64, 64), False)
    assert np.bincount(held.y_train).tolist() == [6] * 10
    assert np.bincount(held.y_test).tolist() == [2] * 10
    assert not held.streamed and streamed.streamed
    rows = np.array([0, 17, 59])
    assert torch.equal(streamed.x_train.read(rows), torch.from_numpy(held.x_train[rows]))
    first = streamed.x_train.path(0).name
    assert int(first.split("_")[0]) == held.y_train[0]


def test_clothing1m_reads_its_lists_and_its_clean_sets(clothing):
    data = load_dataset("clothing1m", str(clothing), epoch_samples=28, val=True)
    counts = [6 + (c % 4) * 3 for c in range(14)]
    assert np.bincount(data.y_train, minlength=14).tolist() == counts
    assert np.bincount(data.y_test, minlength=14).tolist() == [1] * 14
    assert data.more_tests == () and np.bincount(data.val.labels).tolist() == [1] * 14
    assert data.image_shape == (3, 224, 224) and data.x_train.size == 256
    assert data.epoch_samples == 28
    image = data.x_train.read(np.array([0]))  # 30x40 on disk: Resize(256) + central square
    assert image.shape == (1, 3, 256, 256)


def test_webvision_keeps_the_first_50_classes_and_the_imagenet_validation_folders(webvision):
    data = load_dataset("webvision", str(webvision))
    assert data.num_classes == 50 and data.image_shape == (3, 299, 299)
    assert np.bincount(data.y_train).tolist() == [8] * 50  # labels 50, 51 are dropped
    assert np.bincount(data.y_test).tolist() == [1] * 50
    (imagenet,) = data.more_tests
    assert imagenet.name == "imagenet" and np.bincount(imagenet.labels).tolist() == [2] * 50
    assert imagenet.images.path(0).parent.name == "n00000000"  # sorted WordNet ids, first 50
    assert data.x_test.path(0).parent.name == "val_images_256"
    none = load_dataset("webvision", str(webvision), imagenet_val=None)
    assert none.more_tests == ()


# ------------------------------------------------------------------------------------ bad layouts


@pytest.mark.parametrize(
    ("name", "remove", "needle"),
    [
        ("animal10n", "testing", "testing is missing"),
        ("clothing1m", "noisy_train_key_list.txt", "noisy_train_key_list.txt is missing"),
        ("clothing1m", "clean_label_kv.txt", "clean_label_kv.txt is missing"),
        ("webvision", "info/val_filelist.txt", "val_filelist.txt is missing"),
        ("webvision", "imagenet_val", "imagenet_val does not exist"),
    ],
)  # fmt: skip
def test_a_missing_list_file_or_folder_is_named(name, remove, needle, tmp_path, animal, clothing,
                                               webvision):  # fmt: skip
    tree = tmp_path / name
    shutil.copytree(
        {"animal10n": animal, "clothing1m": clothing, "webvision": webvision}[name], tree
    )
    target = tree / remove
    shutil.rmtree(target) if target.is_dir() else target.unlink()
    with pytest.raises(DataError, match=needle) as err:
        load_dataset(name, str(tree))
    assert "\n" not in str(err.value)


def test_labels_out_of_range_are_named(tmp_path, clothing, webvision, animal):
    tree = tmp_path / "c"
    shutil.copytree(clothing, tree)
    kv = tree / "noisy_label_kv.txt"
    kv.write_text(kv.read_text().replace(" 13\n", " 14\n", 1))
    with pytest.raises(DataError, match=r"noisy_label_kv.txt .*label 14, outside 0..13"):
        load_dataset("clothing1m", str(tree))
    web = tmp_path / "w"
    shutil.copytree(webvision, web)
    listing = web / "info" / "train_filelist_google.txt"
    listing.write_text(listing.read_text() + "google/x.jpg 1000\n")
    with pytest.raises(DataError, match=r"train_filelist_google.txt line \d+ has label 1000"):
        load_dataset("webvision", str(web))
    zoo = tmp_path / "a"
    shutil.copytree(animal, zoo)
    shutil.copy(next((zoo / "training").iterdir()), zoo / "training" / "10_1.jpg")
    with pytest.raises(DataError, match=r"10_1.jpg has label 10, outside 0..9"):
        load_dataset("animal10n", str(zoo))


def test_a_train_key_without_a_label_is_named(tmp_path, clothing):
    tree = tmp_path / "c"
    shutil.copytree(clothing, tree)
    keys = tree / "noisy_train_key_list.txt"
    keys.write_text(keys.read_text() + "images/9/99/ghost.jpg\n")
    with pytest.raises(DataError, match="ghost.jpg of noisy_train_key_list.txt has no label"):
        load_dataset("clothing1m", str(tree))


def test_the_cli_gives_one_line_for_a_bad_tree_and_writes_nothing(tmp_path, capsys, write_suite):
    suite = write_suite(
        f"name: rw\ndatasets: [{{name: clothing1m, root: {tmp_path / 'none'}}}]\n"
        "noise: [{model: given}]\nmethods: [ce]\n"
    )
    assert main(["run", str(suite)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "clothing1m folder" in err and "Traceback" not in err
    assert not (tmp_path / "results").exists()


def test_synthetic_noise_on_collected_labels_is_refused(animal):
    data = load_dataset("animal10n", str(animal))
    with pytest.raises(DataError, match="use noise model 'given'"):
        apply_noise("sym", data, 0.2, 0)
    given = apply_noise("given", data, None, 0)
    assert given.realised_rate is None and np.array_equal(given.labels, data.y_train)


# ------------------------------------------------------------------------------------ subsample


def official_rule(labels: np.ndarray, num_samples: int, classes: int, rng) -> np.ndarray:
    """The official loaders' loop written out one key at a time: shuffle, accept while the key's
    class has < num_samples / classes and the total < num_samples, shuffle again."""
    kept, per_class = [], np.zeros(classes)
    for index in rng.permutation(len(labels)):
        if per_class[labels[index]] < num_samples / classes and len(kept) < num_samples:
            kept.append(index)
            per_class[labels[index]] += 1
    return rng.permutation(np.array(kept, dtype=np.int64))


def test_the_subsample_equals_the_official_loop_written_out():
    rng = np.random.default_rng(7)
    for _ in range(50):
        labels = rng.integers(0, 14, rng.integers(1, 400))
        size = int(rng.integers(1, 300))
        seed = int(rng.integers(1 << 30))
        ours = class_balanced_subsample(labels, size, 14, np.random.default_rng(seed))
        assert np.array_equal(ours, official_rule(labels, size, 14, np.random.default_rng(seed)))


def test_the_clothing1m_subsample_caps_each_class_and_is_redrawn_every_epoch():
    labels = np.repeat(np.arange(14), [1, 2, 50, 3, 40, 40, 40, 40, 40, 40, 40, 40, 40, 40])
    draws = [class_balanced_subsample(labels, 140, 14, np.random.default_rng([0, e]))
             for e in range(3)]  # fmt: skip
    for pool in draws:
        counts = np.bincount(labels[pool], minlength=14)
        assert counts.max() <= 10 and len(pool) == len(set(pool.tolist()))
        assert counts[:4].tolist() == [1, 2, 10, 3]  # short classes are not refilled
        assert len(pool) == 1 + 2 + 10 + 3 + 10 * 10
    assert not np.array_equal(np.sort(draws[0]), np.sort(draws[1]))
    again = class_balanced_subsample(labels, 140, 14, np.random.default_rng([0, 0]))
    assert np.array_equal(again, draws[0])
    capped = class_balanced_subsample(labels, 28, 14, np.random.default_rng(1))
    assert np.bincount(labels[capped]).tolist() == [1, 2, 2, 2] + [2] * 10  # 27: class 0 short


# ------------------------------------------------------------------------------------ training


def test_streamed_and_in_memory_animal10n_train_to_identical_numbers(animal):
    ssr, hparams = get_method("ssr"), {**TINY, "epochs": 2, "k": 5}
    # An engine seeds the process when it is built, so each is built right before its fit.
    held = engine_on(load_dataset("animal10n", str(animal))).fit(ssr, ssr.HParams(**hparams)).epochs
    streamed = engine_on(load_dataset("animal10n", str(animal), stream=True), workers=1)
    again = streamed.fit(ssr, ssr.HParams(**hparams)).epochs
    for one, two in zip(held, again, strict=True):
        assert one.losses == two.losses and one.test_acc == two.test_acc
    assert held[-1].diagnostics == {}  # no clean training labels to score against


@pytest.mark.parametrize(
    ("method", "dataset"),
    [
        ("ssr", "animal10n"),  # SSR's quick one: clothing1m and webvision take 3-4 s each
        pytest.param("ssr", "clothing1m", marks=pytest.mark.slow),
        pytest.param("ssr", "webvision", marks=pytest.mark.slow),
        ("ce", "animal10n"),
        ("ce", "clothing1m"),
        ("ce", "webvision"),
    ],
)
def test_one_epoch_of_ssr_and_ce_through_the_streamed_path(dataset, method, animal, clothing,
                                                           webvision):  # fmt: skip
    root = {"animal10n": animal, "clothing1m": clothing, "webvision": webvision}[dataset]
    options = {"animal10n": {"stream": True}, "clothing1m": {"epoch_samples": 56},
               "webvision": {"num_classes": 4}}[dataset]  # fmt: skip
    data = load_dataset(dataset, str(root), **options)
    engine = engine_on(data, workers=1)
    hparams = {**TINY, **({"k": 5} if method == "ssr" else {})}
    fit = engine.fit(get_method(method), get_method(method).HParams(**hparams))
    (epoch,) = fit.epochs
    assert np.isfinite(epoch.losses["loss"]) and 0 <= epoch.test_acc <= 100
    assert fit.images_seen > 0
    if dataset == "webvision":
        assert set(epoch.more_test_acc) == {"imagenet"}


def test_ssr_selects_and_trains_only_inside_the_epochs_clothing1m_pool(clothing):
    data = load_dataset("clothing1m", str(clothing), epoch_samples=28)
    engine = engine_on(data)
    ssr = engine.build(get_method("ssr"), get_method("ssr").HParams(**TINY, k=3))
    pool = engine.epoch_pool(0)
    assert len(pool) == 28 and np.bincount(engine.noisy[pool].numpy(), minlength=14).max() == 2
    engine.ctx.pool = pool
    plan = ssr.begin_epoch(0)
    outside = torch.ones(len(engine.noisy), dtype=torch.bool)
    outside[pool] = False
    assert not ssr.selected[outside].any()
    assert torch.equal(ssr.labels[outside], engine.noisy[outside])  # noisy where not pooled
    assert set(plan.streams["all"].indices.tolist()) == set(pool.tolist())
    assert set(plan.streams["labelled"].indices.tolist()) <= set(pool.tolist())
    assert plan.steps == 28 // TINY["batch_size"]
    assert not torch.equal(engine.epoch_pool(1), pool)


def test_a_method_that_needs_the_whole_set_is_refused_on_a_subsampled_dataset(clothing):
    engine = engine_on(load_dataset("clothing1m", str(clothing), epoch_samples=28))
    dividemix = get_method("dividemix")
    with pytest.raises(ConfigError, match="fresh subsample of 28 per epoch") as err:
        engine.build(dividemix, dividemix.HParams(**TINY))
    assert "\n" not in str(err.value)


@pytest.mark.slow
def test_a_webvision_sweep_records_and_reports_both_test_sets(webvision, write_suite, tmp_path):
    suite = write_suite(
        f"name: web\ndatasets: [{{name: webvision, root: {webvision}, options: {{num_classes: 4}}}}]\n"
        "noise: [{model: given}]\nmethods: [{name: ce, hparams: {epochs: 2, network: small_cnn, "
        "network_options: {width: 0.25}, batch_size: 16}}]\nengine: {progress: false, data_workers: 1}\n"
    )
    assert main(["run", str(suite)]) == 0
    (record,) = (tmp_path / "results" / "web").glob("*.json")
    epochs = json.loads(record.read_text())["epochs"]
    assert [set(e["more_test_acc"]) for e in epochs] == [{"imagenet"}, {"imagenet"}]
    board = (tmp_path / "reports" / "web" / "leaderboard.md").read_text()
    assert (
        "further test set 'imagenet'" in board and "realised noise (nominal→realised): –→?" in board
    )


@pytest.mark.slow
def test_clothing1m_selects_on_its_clean_validation_list(clothing, write_suite, tmp_path, capsys):
    body = (
        "noise: [{model: given}]\nmethods: [{name: ce, hparams: {epochs: 2, network: small_cnn, "
        "network_options: {width: 0.25}, batch_size: 8}}]\nengine: {progress: false}\n"
        "selection: {split: dataset_val}\n"
    )
    missing = write_suite(
        f"name: noval\ndatasets: [{{name: clothing1m, root: {clothing}}}]\n{body}"
    )
    assert main(["run", str(missing)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "dataset.options.val=true" in err
    suite = write_suite(
        f"name: val\ndatasets: [{{name: clothing1m, root: {clothing}, options: {{val: true, "
        f"epoch_samples: 56}}}}]\n{body}"
    )
    assert main(["run", str(suite)]) == 0
    (record,) = (tmp_path / "results" / "val").glob("*.json")
    stored = json.loads(record.read_text())
    assert all(e["noisy_val_acc"] is not None for e in stored["epochs"])
    chosen = {k: v for k, v in stored["spec"]["selection"].items() if v is not None}
    assert stored["final"]["val_epoch"] in (0, 1) and chosen == {
        "split": "dataset_val",
        "headline": "noisy_val",
    }
    board = (tmp_path / "reports" / "val" / "leaderboard.md").read_text()
    assert "clothing1m (epoch_samples=56, val=True) · given · dataset's val" in board
    assert "epoch selected by validation accuracy" in board


def test_a_streamed_pass_leaves_the_global_torch_generator_alone(animal):
    files = load_dataset("animal10n", str(animal), stream=True).x_train
    before = torch.get_rng_state()
    for workers in (0, 1):
        for _ in Streamed(files, torch.device("cpu"), workers).batches(in_order(len(files), 16)):
            pass
    assert torch.equal(before, torch.get_rng_state())  # dropout reads it: runs would differ


def test_an_undecodable_image_fails_the_run_with_one_line(tmp_path, animal):
    tree = tmp_path / "a"
    shutil.copytree(animal, tree)
    broken = sorted((tree / "training").iterdir())[3]
    broken.write_bytes(b"not a jpeg")
    engine = engine_on(load_dataset("animal10n", str(tree), stream=True), workers=1)
    with pytest.raises(RunFailed) as err:
        engine.fit(get_method("ce"), get_method("ce").HParams(**TINY))
    assert "\n" not in err.value.reason and broken.name in err.value.reason


@pytest.mark.slow
def test_the_local_executor_runs_a_streamed_dataset(animal, write_suite, tmp_path):
    suite = write_suite(
        f"name: loc\ndatasets: [{{name: animal10n, root: {animal}, options: {{stream: true}}}}]\n"
        "noise: [{model: given}]\nmethods: [{name: ce, hparams: {epochs: 1, network: small_cnn, "
        "network_options: {width: 0.25}, batch_size: 8}}]\n"
        "engine: {progress: false, data_workers: 1}\nexecutor: {kind: local, workers: 1}\n"
    )
    assert main(["run", str(suite)]) == 0
    (record,) = (tmp_path / "results" / "loc").glob("*.json")
    assert json.loads(record.read_text())["status"] == "ok"


def test_perf_s_batched_decoding_gives_the_streamed_path_s_pixels(clothing):
    from nlbench.perf import gpu_decode

    files = load_dataset("clothing1m", str(clothing)).x_train
    rows = torch.arange(6)  # on CUDA this is decode_jpeg(device="cuda"); the same call on the CPU
    assert torch.equal(gpu_decode(files, rows, torch.device("cpu")), files.read(rows.numpy()))


# ------------------------------------------------------------------- files checked before training


def _clothing_suite(write_suite, root: Path) -> Path:
    return write_suite(
        f"name: cl\ndatasets: [{{name: clothing1m, root: {root}, options: {{epoch_samples: 40}}}}]\n"
        "noise: [{model: given}]\nmethods: [{name: ce, hparams: {epochs: 1, network: small_cnn, "
        "network_options: {width: 0.25}, batch_size: 8}}]\nengine: {progress: false}\n"
    )


def test_a_missing_listed_image_stops_the_sweep_before_any_epoch(tmp_path, clothing, capsys,
                                                                 write_suite, monkeypatch):  # fmt: skip
    tree = tmp_path / "c"
    shutil.copytree(clothing, tree)
    listed = (tree / "noisy_train_key_list.txt").read_text().split()
    (tree / listed[5]).unlink()
    (tree / listed[7]).write_bytes(b"")
    fitted = []
    monkeypatch.setattr(Engine, "fit", lambda *a, **k: fitted.append(a))
    assert main(["run", str(_clothing_suite(write_suite, tree))]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    assert "2 of the" in err and "train images" in err and "missing or empty" in err
    assert Path(listed[5]).name in err or Path(listed[7]).name in err
    assert fitted == [] and not (tmp_path / "results" / "cl").exists()


def test_check_data_decodes_every_listed_image_and_names_the_bad_ones(tmp_path, clothing, capsys,
                                                                     write_suite):  # fmt: skip
    suite = _clothing_suite(write_suite, clothing)
    assert main(["check-data", str(suite), "--workers", "1"]) == 0
    out = capsys.readouterr().out
    train = len((clothing / "noisy_train_key_list.txt").read_text().split())
    assert f"train: {train:,} decoded, 0 bad" in out and "test:" in out

    tree = tmp_path / "c"
    shutil.copytree(clothing, tree)
    listed = (tree / "clean_test_key_list.txt").read_text().split()
    (tree / listed[2]).write_bytes(b"not a jpeg")  # exists, not empty: only decoding finds it
    assert main(["check-data", str(_clothing_suite(write_suite, tree)), "--workers", "0"]) == 2
    captured = capsys.readouterr()
    assert "test: " in captured.out and ", 1 bad" in captured.out
    assert Path(listed[2]).name in captured.out
    last = captured.err.strip().splitlines()[-1]  # the lines before it are the progress bars
    assert (
        last.startswith("error: 1 of")
        and "do not decode" in last
        and "Traceback" not in captured.err
    )


# ------------------------------------------------------------------------- folder datasets' identity


def _ids(write_suite, root: Path) -> set[str]:
    from nlbench.expansion import expand
    from nlbench.suite_loading import load_suite

    suite = write_suite(
        f"name: id\ndatasets: [{{name: animal10n, root: {root}}}]\nnoise: [{{model: given}}]\n"
        "methods: [ce, gce]\nseeds: [0, 1]\n"
    )
    return {spec.run_id for spec in expand(load_suite(suite))}


def test_another_copy_of_a_folder_dataset_gets_new_run_ids_and_a_moved_one_keeps_them(
    tmp_path, animal, write_suite
):
    original = _ids(write_suite, animal)
    copy = tmp_path / "copy"
    shutil.copytree(animal, copy)
    assert _ids(write_suite, copy) == original  # the same images elsewhere: the same runs
    moved = tmp_path / "moved"
    copy.rename(moved)
    assert _ids(write_suite, moved) == original
    assert (moved / ".nlbench" / "manifest.json").is_file()  # cached beside the data

    other = tmp_path / "other"
    shutil.copytree(animal, other)
    image = sorted((other / "training").iterdir())[0]
    image.write_bytes(image.read_bytes() + b"\0")  # another image, same name and layout
    (other / "training" / "extra.jpg").write_bytes(image.read_bytes())  # the listing changed
    assert _ids(write_suite, other).isdisjoint(original)
    (other / "training" / "extra.jpg").unlink()
    image.write_bytes(image.read_bytes()[:-1])
    assert _ids(write_suite, other) == original  # back to the first copy's listing


def test_a_read_only_folder_dataset_is_identified_without_a_cache(tmp_path, animal, write_suite):
    tree = tmp_path / "ro"
    shutil.copytree(animal, tree, ignore=shutil.ignore_patterns(".nlbench"))
    tree.chmod(0o555)
    try:
        assert _ids(write_suite, tree) == _ids(write_suite, animal)
        if os.geteuid() != 0:  # root writes through the mode bits
            assert not (tree / ".nlbench").exists()
    finally:
        tree.chmod(0o755)


def test_a_corrupt_streamed_image_fails_the_sweep_seen_and_check_data_names_it(
    tmp_path, animal, write_suite, capsys
):
    """A file that exists but does not decode passes the stat check; the run that meets it is
    stored as failed, the sweep exits 3 and says so, and check-data names the file beforehand."""
    tree = tmp_path / "a"
    shutil.copytree(animal, tree, ignore=shutil.ignore_patterns(".nlbench"))
    broken = sorted((tree / "training").iterdir())[3]
    broken.write_bytes(b"not a jpeg")
    suite = write_suite(
        f"name: bad\ndatasets: [{{name: animal10n, root: {tree}, options: {{stream: true}}}}]\n"
        "noise: [{model: given}]\nmethods: [{name: ce, hparams: {epochs: 1, network: small_cnn, "
        "network_options: {width: 0.25}, batch_size: 8}}]\nengine: {progress: false}\n"
    )
    assert main(["check-data", str(suite), "--workers", "0"]) == 2
    assert broken.name in capsys.readouterr().out
    assert main(["run", str(suite)]) == 3
    assert "1 of 1 runs did not succeed" in capsys.readouterr().err.strip().splitlines()[-1]
