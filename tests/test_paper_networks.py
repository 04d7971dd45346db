"""The Co-teaching family's networks against their official code, run on fixed tensors.

Outside this repository, the official models (bhanML/Co-teaching `model.py` l.11-68 with
`F.dropout2d` a no-op as under PyTorch 0.3; xingruiyu/coteaching_plus `model.py` l.9-84;
hongxin001/JoCoR `model/cnn.py` l.11-64) were given deterministic weights, the i-th parameter in
`named_parameters()` order set to sin(0.37 j + i) / 10 (j its flat index), BN buffers at their
defaults, and fed x = sin(0.11 j) shaped (4, C, H, W). The numbers below are the logits they
produced: row 0's first four, row 3's last, and each row's sum.
"""

from __future__ import annotations

import pytest
import torch

from nlbench.methods.toolkit.networks import build_network

OFFICIAL = {
    # name, classes, channels, size: (parameters, {mode: (row0[:4], row3[-1], row sums)})
    ("cnn9", 10, 3, 32): (4_434_570, {
        "train": ([0.3502466381, -0.2914816141, 0.4059590399, -0.2018040866], 0.09762632847,
                  [0.750224333, 0.754781805, 0.745550752, 0.757567737]),
        "eval": ([0.3690833449, -0.3055071235, 0.4143950939, -0.2041824907], 0.1132569313,
                 [0.773858797, 0.773858801, 0.773858797, 0.773858797]),
    }),
    ("cnn_small", 10, 3, 32): (62_006, {
        "train": ([-0.1441301405, -0.1395897418, -0.1195736378, -0.08546020836], 0.1708334684,
                  [-0.020683169, -0.026882585, -0.02533333, -0.026154164]),
    }),
    ("cnn6", 100, 3, 32): (541_280, {
        "train": ([0.03100501187, 0.05519733578, 0.07332157344, 0.08310040832], -0.127091527,
                  [-0.054398905, -0.256542214, -0.393545679, -0.044491449]),
        "eval": ([0.06362706423, 0.1083924845, 0.135446474, 0.1405572295], -0.06568803638,
                 [0.194178809, 0.194178737, 0.194178832, 0.194178783]),
    }),
    ("cnn6", 10, 3, 32): (518_150, {
        "train": ([0.03100501187, 0.05519733578, 0.07332157344, 0.08310040832], -0.06199566647,
                  [0.429619905, 0.566753808, 0.209929679, 0.284277506]),
    }),
    ("mlpnet", 10, 1, 28): (203_530, {
        "train": ([0.3545953035, 0.03319790959, -0.2973572016, -0.5675327182], 0.3213590682,
                  [-2.452006914, -2.555748235, -2.492805883, -2.437942574]),
    }),
}  # fmt: skip


def deterministic(net: torch.nn.Module) -> torch.nn.Module:
    with torch.no_grad():
        for i, (_, p) in enumerate(net.named_parameters()):
            j = torch.arange(p.numel(), dtype=torch.float64)
            p.copy_((torch.sin(j * 0.37 + i) * 0.1).float().reshape(p.shape))
    return net


@pytest.mark.parametrize("case", sorted(OFFICIAL), ids=lambda c: f"{c[0]}-{c[1]}")
def test_paper_network_matches_the_official_model(case):
    name, classes, channels, size = case
    parameters, modes = OFFICIAL[case]
    j = torch.arange(4 * channels * size * size, dtype=torch.float64)
    x = torch.sin(j * 0.11).float().reshape(4, channels, size, size)
    for mode, (head, last, sums) in modes.items():
        # A fresh net per mode, as the official one: a train-mode forward moves BN's statistics.
        net = deterministic(build_network(name, classes, channels, size))
        assert sum(p.numel() for p in net.parameters()) == parameters
        net.train(mode == "train")
        with torch.no_grad():
            logits = net(x)
        torch.testing.assert_close(logits[0, :4], torch.tensor(head), rtol=1e-5, atol=1e-6)
        assert logits[3, -1].item() == pytest.approx(last, rel=1e-5, abs=1e-6)
        torch.testing.assert_close(logits.sum(1), torch.tensor(sums), rtol=1e-5, atol=2e-6)


def test_the_cnn9_dropout_option_is_not_the_official_forward():
    """With the paper's Table 3 dropout switched on, training forwards leave the official values."""
    net = deterministic(build_network("cnn9", 10, 3, 32, dropout=0.25)).train()
    x = torch.sin(torch.arange(4 * 3 * 32 * 32, dtype=torch.float64) * 0.11).float()
    with torch.no_grad():
        logits = net(x.reshape(4, 3, 32, 32))
    assert abs(logits[3, -1].item() - 0.09762632847) > 1e-3
