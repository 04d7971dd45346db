"""Differential tests: each loss (and ELR/SOP's state update) equals the value its official code
computed on the same fixed tensors (tests/official_tensors.py), to 1e-6.

The reference numbers and the official file:line they came from are in
tests/golden/official_losses.json; the official code itself is not in this repository.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import official_tensors as T
import pytest
import torch

from nlbench.methods.bootstrap import bootstrap_loss
from nlbench.methods.dividemix import (
    clean_probability,
    mixmatch_loss,
    refine_labels,
    warmup_loss,
)
from nlbench.methods.elr import elr_loss
from nlbench.methods.forward import estimate_transition, forward_loss
from nlbench.methods.mixup import mixup_loss
from nlbench.methods.sce import sce_loss
from nlbench.methods.sop import SampleNoise, sop_loss
from nlbench.methods.toolkit.mixing import co_guess, linear_rampup, mix

GOLDEN = json.loads((Path(__file__).parent / "golden" / "official_losses.json").read_text())
TOL = 1e-6


def _t(array, grad: bool = False) -> torch.Tensor:
    return torch.tensor(np.asarray(array), dtype=torch.float64, requires_grad=grad)


LABELS = torch.tensor(T.LABELS)
INDICES = torch.tensor(T.INDICES)


def _close(actual, expected, tol: float = TOL) -> None:
    actual = np.asarray(actual.detach() if torch.is_tensor(actual) else actual, dtype=np.float64)
    np.testing.assert_allclose(actual, np.asarray(expected, dtype=np.float64), rtol=0, atol=tol)


@pytest.mark.parametrize(("alpha", "beta"), [(0.1, 1.0), (6.0, 0.1)])
def test_sce_equals_official(alpha, beta):
    logits = _t(T.LOGITS, grad=True)
    loss = sce_loss(logits, LABELS, alpha, beta)
    case = GOLDEN["sce"][f"alpha{alpha}_beta{beta}"]
    _close(loss, case["loss"])
    if "grad_logits" in case:
        loss.backward()
        _close(logits.grad, case["grad_logits"])


def test_sce_clamps_as_official():
    _close(
        sce_loss(_t(12 * T.LOGITS), LABELS, 0.1, 1.0),
        GOLDEN["sce"]["sharp_12x_alpha0.1_beta1.0"]["loss"],
    )


@pytest.mark.parametrize(("beta", "lam"), [(0.7, 3.0), (0.9, 7.0)])
def test_elr_loss_and_targets_equal_official_over_two_steps(beta, lam):
    case = GOLDEN["elr"][f"beta{beta}_lambda{int(lam)}"]
    targets = torch.zeros(T.N_TRAIN, T.C, dtype=torch.float64)
    first = elr_loss(_t(T.LOGITS), LABELS, targets, INDICES, beta, lam)
    _close(first, case["call1"]["loss"])
    _close(targets, case["call1"]["targets"])
    logits = _t(T.LOGITS2, grad=True)
    second = elr_loss(logits, LABELS, targets, INDICES, beta, lam)
    _close(second, case["call2"]["loss"])
    _close(targets, case["call2"]["targets"])
    second.backward()
    _close(logits.grad, case["call2"]["grad_logits"])


def test_elr_clamps_as_official():
    case = GOLDEN["elr"]["sharp_12x_beta0.7_lambda3"]
    targets = torch.zeros(T.N_TRAIN, T.C, dtype=torch.float64)
    _close(elr_loss(_t(12 * T.LOGITS), LABELS, targets, INDICES, 0.7, 3.0), case["loss"])
    _close(targets, case["targets"])


def test_bootstrap_soft_equals_official_with_gradient_through_the_target():
    logits = _t(T.LOGITS, grad=True)
    loss = bootstrap_loss(logits.softmax(dim=1), LABELS, "soft", 0.95)
    _close(loss, GOLDEN["bootstrap"]["soft"]["mean"])
    loss.backward()
    _close(logits.grad, GOLDEN["bootstrap"]["soft"]["grad_logits"])


def test_bootstrap_hard_matches_a_hand_computation():
    """No official code has the hard variant; the paper's -sum_k (0.8 y_k + 0.2 z_k) log p_k, with
    z the one-hot of argmax p, worked by hand. Row 1: p = (0.7, 0.2, 0.1), label 2, argmax 0:
    -(0.2 ln 0.7 + 0.8 ln 0.1) = 1.913403; row 2: p = (0.25, 0.25, 0.5), label 0, argmax 2:
    -(0.8 ln 0.25 + 0.2 ln 0.5) = 1.247665; the batch loss is their mean."""
    p = torch.tensor([[0.7, 0.2, 0.1], [0.25, 0.25, 0.5]], dtype=torch.float64)
    loss = bootstrap_loss(p, torch.tensor([2, 0]), "hard", 0.8)
    assert loss.item() == pytest.approx((1.913403063 + 1.247664925) / 2, abs=1e-8)
    assert float(bootstrap_loss(p, torch.tensor([2, 0]), "soft", 0.8)) != pytest.approx(loss.item())
    # where the label is the argmax, the target is the one-hot label whatever beta: -ln p_y
    agree = bootstrap_loss(p[:1], torch.tensor([0]), "hard", 0.3)
    assert agree.item() == pytest.approx(0.356674944, abs=1e-8)


@pytest.mark.parametrize("filter_outlier", [True, False])
def test_transition_estimate_equals_official(filter_outlier):
    key = f"T_hat_filter_outlier_{str(filter_outlier).lower()}"
    _close(estimate_transition(T.PROBS, filter_outlier), GOLDEN["forward"][key])


def test_transition_estimate_zeroes_in_place_as_official():
    """The official filter edits the one prediction matrix, so row 6 reads a zero that a
    per-column copy would not: T_hat[6, 1] is exactly 0."""
    t_hat = estimate_transition(T.PROBS, True)
    assert t_hat[6, 1] == 0.0
    assert T.PROBS[65:68, 1].min() > 0  # the input itself is untouched


def test_forward_loss_equals_official():
    t_hat = _t(GOLDEN["forward"]["T_hat_filter_outlier_true"])
    logits = _t(T.LOGITS, grad=True)
    loss = forward_loss(logits.softmax(dim=1), LABELS, t_hat)
    _close(loss, GOLDEN["forward"]["loss_P_T_hat_filter_true"]["mean"])
    loss.backward()
    _close(logits.grad, GOLDEN["forward"]["loss_P_T_hat_filter_true"]["grad_logits"])
    sym = _t(0.6 * np.eye(T.C) + 0.4 / 9 * (1 - np.eye(T.C)))
    _close(
        forward_loss(_t(T.LOGITS).softmax(dim=1), LABELS, sym),
        GOLDEN["forward"]["loss_P_sym_0.6"]["mean"],
    )


def test_mixup_equals_official():
    perm = torch.tensor(T.PERM)
    _close(mix(_t(T.X), T.LAM, perm), GOLDEN["mixup"]["mixed_x"])
    logits = _t(T.LOGITS, grad=True)
    loss = mixup_loss(logits, LABELS, T.LAM, perm)
    _close(loss, GOLDEN["mixup"]["loss"])
    loss.backward()
    _close(logits.grad, GOLDEN["mixup"]["grad_logits"])


@pytest.mark.parametrize(
    ("case", "consistency", "balance"),
    [("two_views_consistency0.9_balance0.1", 0.9, 0.1), ("one_view_no_extra_terms", 0.0, 0.0)],
)
def test_sop_loss_and_uv_step_equal_official(case, consistency, balance):
    """SOP's loss, its logits' gradients, and u, v after one step of their own SGD (lr_u 1,
    lr_v 10, as the official CIFAR config)."""
    ref = GOLDEN["sop"][case]
    noise = SampleNoise(T.N_TRAIN, T.C, std=1e-8).double()
    with torch.no_grad():
        noise.u.copy_(_t(T.U0))
        noise.v.copy_(_t(T.V0))
    optimizer = torch.optim.SGD(
        [{"params": [noise.u], "lr": 1.0}, {"params": [noise.v], "lr": 10.0}], momentum=0.0
    )
    logits, logits2 = _t(T.LOGITS, grad=True), _t(T.LOGITS2, grad=True)
    onehot = torch.nn.functional.one_hot(LABELS, T.C).double()
    loss = sop_loss(
        logits,
        logits2 if consistency else None,
        onehot,
        noise.u[INDICES],
        noise.v[INDICES],
        consistency,
        balance,
    )
    _close(loss, ref["loss"])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    _close(logits.grad, ref["grad_logits_view1"])
    if consistency:
        _close(logits2.grad, ref["grad_logits_view2"])
    _close(noise.u[INDICES], ref["u_after_step_at_INDICES"])
    _close(noise.v[INDICES], ref["v_after_step_at_INDICES"])
    untouched = np.setdiff1d(np.arange(T.N_TRAIN), T.INDICES)
    _close(noise.u[untouched], T.U0[untouched], 0.0)


def test_dividemix_mixmatch_step_equals_official():
    """Co-refinement, co-guessing, mixing and the loss of one official `train()` iteration."""
    ref = GOLDEN["dividemix"]
    w1, w2 = _t(T.W1, grad=True), _t(T.W2)
    x1, x2, u1, u2 = (_t(a) for a in (T.X1, T.X2, T.U1, T.U2))
    labels = torch.tensor(T.DM_LABELS)
    onehot = torch.nn.functional.one_hot(labels, T.C).double()
    with torch.no_grad():
        targets_u = co_guess([u1 @ w1, u2 @ w1, u1 @ w2, u2 @ w2], 0.5)
        targets_x = refine_labels(x1 @ w1, x2 @ w1, onehot, _t(T.W_X), 0.5)
    _close(targets_x, ref["targets_x"])
    _close(targets_u, ref["targets_u"])
    lam = max(T.LAM_RAW, 1 - T.LAM_RAW)
    assert lam == ref["lam"]
    perm = torch.tensor(T.DM_PERM)
    inputs = torch.cat([x1, x2, u1, u2])
    targets = torch.cat([targets_x, targets_x, targets_u, targets_u])
    mixed_input = lam * inputs + (1 - lam) * inputs[perm]
    mixed_target = lam * targets + (1 - lam) * targets[perm]
    _close(mixed_input, ref["mixed_input"])
    _close(mixed_target, ref["mixed_target"])
    lamb = linear_rampup(15 + 3 / 10, 10, 25.0)
    _close(lamb, ref["lamb"], 1e-12)
    loss, lx, lu = mixmatch_loss(mixed_input @ w1, mixed_target, 2 * T.B, lamb)
    _close(lx, ref["Lx"])
    _close(lu, ref["Lu"])
    _close(loss, ref["loss"])
    loss.backward()
    _close(w1.grad, ref["grad_W1"])


@pytest.mark.parametrize("asym", [False, True])
def test_dividemix_warmup_equals_official(asym):
    w1 = _t(T.W1, grad=True)
    loss = warmup_loss(_t(T.X1) @ w1, torch.tensor(T.DM_LABELS), entropy_penalty=asym)
    _close(loss, GOLDEN["dividemix"]["warmup_asym" if asym else "warmup_sym"]["loss"])
    if asym:
        loss.backward()
        _close(w1.grad, GOLDEN["dividemix"]["warmup_asym"]["grad_W1"])


def test_dividemix_gmm_split_equals_official():
    prob = clean_probability(T.LOSSES, seed=0)
    _close(prob, GOLDEN["dividemix"]["gmm_prob"])
    assert (prob > 0.5).sum() == 210


def _official_eval_train_gmm(losses: np.ndarray, seed: int) -> np.ndarray:
    """DivideMix@d9d3058 Train_cifar.py l.167-189: float32 losses in a torch tensor, min-max
    normalised there, the tensor handed to `fit` and `predict_proba`. The scikit-learn of its day
    (0.2x) converted it in both with `_check_X`, i.e. `check_array(X, dtype=[float64, float32])`,
    which gives float64 (a tensor has no NumPy dtype to keep); today's `predict_proba` would keep
    it float32, so the conversion is spelled out."""
    from sklearn.mixture import GaussianMixture
    from sklearn.utils import check_array

    losses = torch.from_numpy(losses.astype(np.float32))
    losses = (losses - losses.min()) / (losses.max() - losses.min())
    input_loss = check_array(losses.reshape(-1, 1), dtype=[np.float64, np.float32])
    assert input_loss.dtype == np.float64
    gmm = GaussianMixture(n_components=2, max_iter=10, tol=1e-2, reg_covar=5e-4, random_state=seed)
    gmm.fit(input_loss)
    prob = gmm.predict_proba(input_loss)
    return prob[:, gmm.means_.argmin()]


def test_dividemix_gmm_fits_float32_losses_in_float64_as_the_official_path():
    """sklearn keeps a float32 NumPy array in float32 but converts the official torch tensor to
    float64; the split must see the official float64 posteriors, bit for bit."""
    rng = np.random.default_rng(0)
    clean, noisy = rng.gamma(2.0, 0.15, 30_000), rng.gamma(8.0, 0.35, 20_000)
    losses = np.concatenate([clean, noisy]).astype(np.float32)
    prob = clean_probability(losses, seed=0)
    expected = _official_eval_train_gmm(losses, seed=0)
    assert prob.dtype == np.float64
    np.testing.assert_array_equal(prob, expected)


def test_dividemix_splits_at_p_threshold_in_float64():
    """`prob > p_threshold` compares float64 posteriors with the float64 threshold
    (Train_cifar.py l.264-265): 0.6 + 1e-9 is labelled, though it rounds to 0.6 in float32."""
    from test_loss_methods import SMALL, engine

    from nlbench.methods.dividemix import DivideMix

    eng = engine(model="sym", ratio=0.5, n_train=64)
    method = DivideMix(eng.ctx, DivideMix.HParams(**SMALL, p_threshold=0.6))
    method.clean_prob[1] = torch.tensor(0.6 + 1e-9, dtype=torch.float64)
    method.clean_prob[1, :32] = 0.5
    labelled = method._mixmatch_pass(0).streams["labelled"].indices
    assert labelled.tolist() == list(range(32, 64))
