"""Suite validation, overrides and expansion: every bad input is one clear ConfigError."""

from __future__ import annotations

import pytest

from nlbench.errors import ConfigError
from nlbench.expansion import expand
from nlbench.suite_loading import load_suite

BASE = """
name: t
datasets: [{name: synthetic, options: {n_train: 64, n_test: 32}}]
noise:
  - {model: sym, ratios: [0.2, 0.5]}
methods:
  - {name: ce, hparams: {network: mlp, epochs: 2}}
seeds: [0, 1]
"""


def test_expansion_counts_and_stable_ids(write_suite):
    suite = load_suite(write_suite(BASE))
    specs = expand(suite)
    assert len(specs) == 4
    assert len({s.run_id for s in specs}) == 4
    assert [s.run_id for s in expand(load_suite(write_suite(BASE)))] == [s.run_id for s in specs]
    assert specs[0].method.hparams["lr"] == 0.02  # the published default is resolved in


def test_noise_seed_defaults_to_run_seed_and_can_be_pinned(write_suite):
    specs = expand(load_suite(write_suite(BASE)))
    assert [s.noise.seed for s in specs] == [s.seed for s in specs]
    pinned = BASE.replace("ratios: [0.2, 0.5]}", "ratios: [0.2, 0.5], seed: 7}")
    assert {s.noise.seed for s in expand(load_suite(write_suite(pinned)))} == {7}


def test_unknown_top_level_key_names_nearest(write_suite):
    with pytest.raises(ConfigError, match=r"unknown key 'sedes'.*did you mean 'seeds'"):
        load_suite(write_suite(BASE + "sedes: [1]\n"))


def test_unknown_nested_key(write_suite):
    bad = BASE.replace("{model: sym,", "{modle: sym, model: sym,")
    with pytest.raises(ConfigError, match=r"noise\[0\]\.modle.*did you mean 'model'"):
        load_suite(write_suite(bad))


def test_ratio_out_of_range(write_suite):
    with pytest.raises(ConfigError, match=r"noise ratio 1.7 is outside \[0, 1\]"):
        load_suite(write_suite(BASE.replace("0.5]", "1.7]")))


def test_unknown_noise_model(write_suite):
    with pytest.raises(ConfigError, match=r"unknown noise model 'symm'.*did you mean 'sym'"):
        load_suite(write_suite(BASE.replace("model: sym", "model: symm")))


def test_unknown_method(write_suite):
    with pytest.raises(ConfigError, match=r"unknown method 'cee'.*did you mean 'ce'"):
        expand(load_suite(write_suite(BASE.replace("name: ce", "name: cee"))))


def test_unknown_hparam(write_suite):
    with pytest.raises(ConfigError, match=r"\(ce\) hparams: unknown key 'lrr'.*did you mean 'lr'"):
        expand(load_suite(write_suite(BASE.replace("epochs: 2", "epochs: 2, lrr: 0.1"))))


def test_yaml_syntax_error_has_line(write_suite):
    with pytest.raises(ConfigError, match=r"YAML syntax error at line \d+"):
        load_suite(write_suite(BASE + "methods: [ce\n"))


def test_missing_suite_file(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_suite(tmp_path / "nope.yaml")


def test_set_overrides_by_name_index_and_broadcast(write_suite):
    path = write_suite(BASE)
    suite = load_suite(
        path,
        ["methods.ce.hparams.epochs=5", "dataset.root=/x", "seeds=[3]", "noise.0.ratios=[0.1]"],
    )
    specs = expand(suite)
    assert {s.method.hparams["epochs"] for s in specs} == {5}
    assert {s.dataset.root for s in specs} == {"/x"}
    assert {s.seed for s in specs} == {3}
    assert {s.noise.ratio for s in specs} == {0.1}


def test_set_unknown_key_is_rejected(write_suite):
    with pytest.raises(ConfigError, match="unknown key 'sedes'"):
        load_suite(write_suite(BASE), ["sedes=[1]"])


def test_dataset_root_does_not_change_run_id(write_suite):
    path = write_suite(BASE)
    a = expand(load_suite(path, ["dataset.root=/a"]))
    b = expand(load_suite(path, ["dataset.root=/b"]))
    assert [s.run_id for s in a] == [s.run_id for s in b]


def test_common_applies_to_methods_that_have_the_key(write_suite):
    suite = load_suite(write_suite(BASE + "common: {epochs: 9}\n"))
    assert {s.method.hparams["epochs"] for s in expand(suite)} == {2}  # method's own wins
    suite = load_suite(write_suite(BASE.replace(", epochs: 2", "") + "common: {epochs: 9}\n"))
    assert {s.method.hparams["epochs"] for s in expand(suite)} == {9}
    with pytest.raises(ConfigError, match="common: key 'nope'"):
        expand(load_suite(write_suite(BASE + "common: {nope: 1}\n")))


def test_dataset_and_noise_entries_override_method_hparams(write_suite):
    text = BASE.replace(
        "{model: sym, ratios: [0.2, 0.5]}",
        "{model: sym, ratios: [0.2]}\n  - {model: sym, ratios: [0.5], hparams: {ce: {lr: 0.3}}}",
    )
    text = text.replace(
        "options: {n_train: 64, n_test: 32}}",
        "options: {n_train: 64, n_test: 32}, hparams: {ce: {lr: 0.1, epochs: 4}}}",
    )
    specs = expand(load_suite(write_suite(text)))
    by_ratio = {s.noise.ratio: s.method.hparams for s in specs}
    assert by_ratio[0.2]["lr"] == 0.1 and by_ratio[0.5]["lr"] == 0.3  # noise entry wins
    assert {h["epochs"] for h in by_ratio.values()} == {4}
    assert "hparams" not in specs[0].dataset


def test_override_for_a_method_not_in_the_suite(write_suite):
    text = BASE.replace("ratios: [0.2, 0.5]}", "ratios: [0.2, 0.5], hparams: {ssr: {k: 5}}}")
    with pytest.raises(ConfigError, match=r"noise\[0\]\.hparams: 'ssr' is not a method"):
        expand(load_suite(write_suite(text)))


def test_fp32_runs_are_not_the_default_runs(write_suite):
    """amp changes the numbers on CUDA: an fp32 rerun must not reuse bf16 records."""
    path = write_suite(BASE)
    default = expand(load_suite(path))
    fp32 = expand(load_suite(path, ["engine.amp=false"]))
    assert {s.run_id for s in default}.isdisjoint(s.run_id for s in fp32)
    assert default[0].engine is None and fp32[0].engine.model_dump(exclude_none=True) == {
        "amp": False
    }
    same = expand(load_suite(path, ["engine.channels_last=false"]))
    assert [s.run_id for s in same] == [s.run_id for s in default]
