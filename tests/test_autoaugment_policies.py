"""SSR's ImageNet AutoAugment and ANIMAL-10N RandAugment, checked against the official code.

tests/golden/ssr_autoaugment.json holds what MrChenFeng/SSR_BMVC2022@849530d utils/autoaugment.py
(`ImageNetPolicy` l.69-122, `SubPolicy` l.357-460, `RandAugment` l.463-499, `Cutout` l.14-66;
`np.int` patched to `np.int64`, nothing else) produced when run outside this repository on the
integer-only images of `_images`, with Python's `random` draws fixed or recorded: the official
tables, and sha256 digests of its outputs. Each digest test feeds the same images and the same
draws to the batched code here and demands the same bytes, so every op, magnitude and sign, at
64x64, 224x224 and a non-square 40x64, is held to pixel-exact agreement with PIL as SSR ran it.
The official code itself is not in this repository; each golden entry says how it was run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from nlbench.methods.toolkit.autoaugment import (
    CIFAR10_POLICY,
    IMAGENET_POLICY,
    MAGNITUDES,
    RANDAUGMENT_MAGNITUDES,
    RANDAUGMENT_OPS,
    RANDAUGMENT_POLICY,
    PolicyDraw,
    apply_policy,
    cifar10_autoaugment,
    cutout,
    draw_policy,
    imagenet_autoaugment,
    ssr_randaugment,
)

GOLDEN = json.loads((Path(__file__).parent / "golden" / "ssr_autoaugment.json").read_text())
SIZES = {"64x64": (64, 64), "224x224": (224, 224), "40x64": (40, 64)}
N_STEPS = len(RANDAUGMENT_OPS) * len(RANDAUGMENT_MAGNITUDES)  # 135 (op, magnitude) steps


@pytest.fixture(autouse=True, scope="module")
def _single_thread() -> Iterator[None]:
    """As in test_augment.py: OpenMP barriers on a shared CPU cost more than they save here."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _images(n: int, h: int, w: int, seed: int) -> torch.Tensor:
    """uint8 [n, 3, h, w] from integers only (the same bytes on any machine): a triangle wave
    whose slope and phase vary by image and channel, plus hashed noise, in a per-image grey range
    (every third image spans 0-255, so solarize and autocontrast meet both ends)."""
    k = np.arange(n, dtype=np.int64)[:, None, None, None] + 1009 * seed
    c = np.arange(3, dtype=np.int64)[None, :, None, None]
    i = np.arange(h, dtype=np.int64)[None, None, :, None]
    j = np.arange(w, dtype=np.int64)[None, None, None, :]
    period = 24
    t = (i * (1 + (k + c) % 3) + j * (1 + (2 * k + c) % 4) + 7 * c + 5 * k) % (2 * period)
    tri = np.abs(t - period) * 255 // period
    noise = (((k * 1000003 + c * 10007 + i * w + j) * 2654435761) % (1 << 32)) >> 27
    lo = np.where(k % 3 == 0, 0, (k * 37) % 71)
    span = np.where(k % 3 == 0, 255, 80 + (k * 53) % 106)
    return torch.from_numpy((lo + (tri * 3 + noise * 8) * span // 1020).astype(np.uint8))


def _digest(images: torch.Tensor) -> str:
    return hashlib.sha256(images.contiguous().numpy().tobytes()).hexdigest()[:16]


def _golden_images(key: str) -> torch.Tensor:
    entry = GOLDEN["images"][key]
    h, w = SIZES[key.removeprefix("policy ")]
    return _images(entry["n"], h, w, entry["seed"])


def _fractions(centres: list[list[int]], h: int, w: int) -> torch.Tensor:
    """Pixel centres (column, row) as the [0, 1) fractions a PolicyDraw holds, mid-pixel."""
    return (torch.tensor(centres, dtype=torch.float64) + 0.5) / torch.tensor([w, h])


def _official_key(name: str) -> str:
    """RandAugment's spelling of an op (`get_trans_list`): ours with a capital, two exceptions."""
    return {"autocontrast": "AutoContrast"}.get(name, name[0].upper() + name[1:])


# ---------------------------------------------------------------- tables


@pytest.mark.parametrize("key", list(GOLDEN["images"]))
def test_images_are_those_the_official_code_ran_on(key: str) -> None:
    assert _digest(_golden_images(key)) == GOLDEN["images"][key]["sha"]


def test_magnitude_tables_equal_the_official_ranges() -> None:
    ranges = {k: v for k, v in GOLDEN["ranges"].items() if k != "source"}
    assert set(ranges) == set(MAGNITUDES)
    for name, values in ranges.items():
        assert [float(v) for v in MAGNITUDES[name]] == values, name


def test_imagenet_table_equals_the_official_one() -> None:
    # GOLDEN["imagenet_policy"]["table"]: ImageNetPolicy.__init__, utils/autoaugment.py l.90-114
    ours = [[p1, op1, m1, p2, op2, m2] for (p1, op1, m1), (p2, op2, m2) in IMAGENET_POLICY]
    assert ours == GOLDEN["imagenet_policy"]["table"]


def test_randaugment_ops_magnitudes_and_table_equal_the_official_ones() -> None:
    official = GOLDEN["randaugment"]  # RandAugment l.471-487
    assert [_official_key(name) for name in RANDAUGMENT_OPS] == official["trans_list"]
    assert list(RANDAUGMENT_MAGNITUDES) == official["magnitudes"] == list(range(1, 10))
    assert {s[0] for sub in RANDAUGMENT_POLICY for s in sub} == set(official["probs"]) == {0.5}
    assert len(RANDAUGMENT_POLICY) == official["n_policies"] == N_STEPS**2
    rows = [
        [p1, a.lower(), m1, p2, b.lower(), m2] for (p1, a, m1), (p2, b, m2) in RANDAUGMENT_POLICY
    ]
    assert hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:16] == official["policies_sha"]


# ---------------------------------------------------------------- every op against the official


@pytest.mark.parametrize("name", RANDAUGMENT_OPS)
def test_randaugment_steps_match_official(name: str) -> None:
    """Every (op, magnitude 1-9, sign) of RandAugment, as its first step alone, at every size."""
    cases = GOLDEN["randaugment_ops"]["cases"]
    op = RANDAUGMENT_OPS.index(name)
    wrong = []
    for m in RANDAUGMENT_MAGNITUDES:
        step = op * len(RANDAUGMENT_MAGNITUDES) + m - 1
        keys = [k for k in cases if k.startswith(f"{_official_key(name)}/{m}/")]
        assert keys, f"no golden case for {name} {m}"
        for key in keys:
            sign = float(key.rsplit("/", 1)[1])
            for size, (h, w) in SIZES.items():
                x = _golden_images(size)
                n = len(x)
                centres = cases[key].get(f"centres {size}", [[0, 0]] * n)
                draw = PolicyDraw(
                    policy=torch.full((n,), step * N_STEPS + step),
                    applied=torch.tensor([[True, False]]).expand(n, 2),
                    sign=torch.full((n, 2), sign, dtype=torch.float64),
                    table=RANDAUGMENT_POLICY,
                    cutout=_fractions(centres, h, w)[:, None].expand(n, 2, 2),
                )
                out = apply_policy(x, draw)
                assert out.shape == x.shape and out.dtype == torch.uint8
                if _digest(out) != cases[key][size]:
                    wrong.append(f"{key} {size}")
    assert not wrong, f"differs from the official output: {wrong}"


@pytest.mark.parametrize("index", range(len(IMAGENET_POLICY)))
def test_imagenet_subpolicy_matches_official(index: int) -> None:
    """Each ImageNet sub-policy with both of its steps firing (a step with p = 0 never does)."""
    (p1, _, _), (p2, _, _) = IMAGENET_POLICY[index]
    for sign in (1, -1):
        expected = GOLDEN["imagenet_subpolicies"]["cases"][f"{index}/{sign:+d}"]
        for size in SIZES:
            x = _golden_images(size)
            n = len(x)
            draw = PolicyDraw(
                policy=torch.full((n,), index),
                applied=torch.tensor([[p1 > 0, p2 > 0]]).expand(n, 2),
                sign=torch.full((n, 2), float(sign), dtype=torch.float64),
                table=IMAGENET_POLICY,
            )
            out = apply_policy(x, draw)
            assert out.shape == x.shape and out.dtype == torch.uint8
            assert _digest(out) == expected[size], f"sub-policy {index}, sign {sign}, {size}"


@pytest.mark.parametrize(
    ("label", "table"), [("imagenet", IMAGENET_POLICY), ("randaugment", RANDAUGMENT_POLICY)]
)
def test_seeded_official_runs_are_reproduced_from_their_draws(label: str, table: tuple) -> None:
    """Whole policies as the official classes ran them from a seeded `random`, draw for draw:
    both steps, their coins, signs and cutout centres as recorded, image by image."""
    used = set()
    for size, (h, w) in SIZES.items():
        run = GOLDEN["policies"][label][size]
        draws = torch.tensor(run["draws"])
        x = _golden_images(f"policy {size}")
        centres = draws[:, 5:].reshape(-1, 2, 2)
        draw = PolicyDraw(
            policy=draws[:, 0],
            applied=draws[:, 1:3].bool(),
            sign=draws[:, 3:5].double(),
            table=table,
            cutout=(centres.double() + 0.5) / torch.tensor([w, h]),
        )
        out = apply_policy(x, draw)
        used |= {table[k][s][1] for k, a1, a2, *_ in run["draws"] for s in (0, 1) if (a1, a2)[s]}
        wrong = [i for i, img in enumerate(out) if _digest(img) != run["sha"][i]]
        assert not wrong, f"{label} {size}: images {wrong} differ from the official output"
    assert len(used) >= (6 if label == "imagenet" else 12), f"few ops exercised: {used}"


# ---------------------------------------------------------------- behaviour of the batched draws

AUGMENTS = {"imagenet": imagenet_autoaugment, "randaugment": ssr_randaugment}


@pytest.mark.parametrize("augment", list(AUGMENTS))
@pytest.mark.parametrize("size", [64, 224])
def test_runs_on_uint8_batches_and_keeps_shape_dtype(augment: str, size: int) -> None:
    x = _images(48 if size == 64 else 8, size, size, 7)
    before = x.clone()
    out = AUGMENTS[augment](x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape and out.dtype == torch.uint8
    assert torch.equal(x, before), "the input batch must not be modified"
    grey = AUGMENTS[augment](x[:, :1].contiguous(), torch.Generator().manual_seed(0))
    assert grey.shape == (len(x), 1, size, size) and grey.dtype == torch.uint8


@pytest.mark.parametrize("augment", list(AUGMENTS))
def test_draws_are_per_sample_and_follow_the_generator(augment: str) -> None:
    """One image repeated: each copy gets its own draw, so the copies mostly differ; the same seed
    repeats every draw, another seed does not."""
    x = _images(1, 64, 64, 8).expand(64, -1, -1, -1).contiguous()
    fn = AUGMENTS[augment]
    out = fn(x, torch.Generator().manual_seed(11))
    assert len({_digest(img) for img in out}) > 10
    assert torch.equal(out, fn(x, torch.Generator().manual_seed(11)))
    assert not torch.equal(out, fn(x, torch.Generator().manual_seed(12)))


def test_randaugment_draw_frequencies() -> None:
    """Uniform over the 18225 sub-policies means each step's (op, magnitude) is uniform and the
    two are independent; each step fires with probability 0.5."""
    n = 200_000
    draw = draw_policy(n, torch.Generator().manual_seed(0), RANDAUGMENT_POLICY)
    first, second = draw.policy // N_STEPS, draw.policy % N_STEPS
    tolerance = 5 * (1 / N_STEPS / n) ** 0.5
    for step in (first, second):
        share = torch.bincount(step, minlength=N_STEPS).double() / n
        assert (share - 1 / N_STEPS).abs().max() < tolerance
    assert abs(torch.corrcoef(torch.stack([first, second]).double())[0, 1].item()) < 0.01
    assert (draw.applied.double().mean(0) - 0.5).abs().max() < 0.005
    assert draw.cutout is not None and draw.cutout.shape == (n, 2, 2)
    assert draw.cutout.min() >= 0 and draw.cutout.max() < 1


def test_imagenet_draws_follow_the_official_table() -> None:
    n = 100_000
    draw = draw_policy(n, torch.Generator().manual_seed(1), IMAGENET_POLICY)
    assert draw.cutout is None
    share = torch.bincount(draw.policy, minlength=25).double() / n
    assert (share - 1 / 25).abs().max() < 5 * (1 / 25 / n) ** 0.5
    for k, sub in enumerate(IMAGENET_POLICY):
        chosen = draw.policy == k
        for step, (p, _, _) in enumerate(sub):
            rate = draw.applied[chosen, step].double().mean().item()
            assert abs(rate - p) < 5 * (max(p * (1 - p), 1e-4) / chosen.sum().item()) ** 0.5


def test_cifar10_draws_and_outputs_are_unchanged() -> None:
    """Generalising the draw to any table must not change CIFAR-10's stream: these digests were
    computed with the module before IMAGENET_POLICY and RandAugment were added (nlbench cc16e4f)."""
    g = torch.Generator().manual_seed(5)
    assert torch.equal(
        draw_policy(32, g).policy, draw_policy(32, g.manual_seed(5), CIFAR10_POLICY).policy
    )
    x = _images(40, 32, 32, 5)
    g = torch.Generator().manual_seed(1234)
    rgb = cifar10_autoaugment(x, g)
    grey = cifar10_autoaugment(x[:, :1].contiguous(), g)
    assert (_digest(rgb), _digest(grey)) == ("6c5d06cda4906f86", "85e341542b5bb8ff")
    assert torch.randint(1 << 30, (1,), generator=g).item() == 185390099
    assert draw_policy(4, g).cutout is None


# ---------------------------------------------------------------- cutout


def test_cutout_square_is_half_open_clipped_and_filled_like_the_official() -> None:
    """Cutout l.39-65: size 7 cuts columns [cx - 3, cx + 3) and rows likewise, clipped."""
    x = torch.zeros(2, 3, 8, 12, dtype=torch.uint8)
    out = cutout(x, torch.tensor([7, 2]), torch.tensor([[11, 2], [0, 0]]))
    hole = out[0].sum(0) > 0
    expected = torch.zeros(8, 12, dtype=torch.bool)
    expected[0:5, 8:12] = True
    assert torch.equal(hole, expected)
    assert out[0, :, 0, 8].tolist() == [125, 122, 113]
    assert out[1].sum(0).nonzero().tolist() == [[0, 0]]
    grey = cutout(x[:, :1], torch.tensor([4, 4]), torch.tensor([[5, 5], [5, 5]]))
    assert grey[0, 0, 3:7, 3:7].unique().tolist() == [122] and grey.sum() == 122 * 32
    assert torch.equal(cutout(x, torch.tensor([0, 0]), torch.tensor([[5, 5], [5, 5]])), x)


def test_bad_tables_and_draws_are_refused() -> None:
    x = _images(2, 16, 16, 0)
    with pytest.raises(ValueError, match="unknown ops"):
        draw_policy(2, torch.Generator(), (((1.0, "blur", 3), (1.0, "invert", 0)),))
    draw = draw_policy(2, torch.Generator().manual_seed(0), RANDAUGMENT_POLICY)
    bare = PolicyDraw(
        torch.full((2,), RANDAUGMENT_OPS.index("cutout") * 9 * (N_STEPS + 1)),
        torch.ones(2, 2, dtype=torch.bool),
        draw.sign,
        RANDAUGMENT_POLICY,
    )
    with pytest.raises(ValueError, match="cutout centres"):
        apply_policy(x, bare)
