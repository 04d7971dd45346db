"""The fixed tensors the official codes were run on for tests/golden/official_losses.json.

Closed-form (no random draws), so the same numbers come out on any machine and any library
version; float64 throughout.
"""

from __future__ import annotations

import numpy as np

N, C, N_TRAIN = 8, 10, 16
_i = np.arange(N)[:, None]
_j = np.arange(C)[None, :]
LOGITS = 3.0 * np.sin(1.3 * _i + 0.7 * _j + 0.1 * _i * _j)
LOGITS2 = 0.5 * LOGITS + np.cos(0.4 * _i - 0.9 * _j)
LABELS = (3 * np.arange(N) + 1) % C
INDICES = np.array([5, 0, 11, 3, 7, 14, 2, 9])
PERM = np.array([3, 0, 6, 1, 7, 2, 5, 4])
LAM = 0.3
X = np.cos(0.37 * np.arange(N * 6)).reshape(N, 6)
U0 = 0.1 * np.sin(np.arange(N_TRAIN) + 1.0)[:, None]
V0 = 0.05 * np.cos(np.arange(N_TRAIN)[:, None] + 0.3 * _j)
_m = np.arange(200)[:, None]
_z = 2.0 * np.sin(0.9 * _m + 1.7 * _j + 0.05 * _m * _j)
PROBS = np.exp(_z) / np.exp(_z).sum(1, keepdims=True)

# DivideMix: a labelled and an unlabelled batch (two views each) and two linear "networks"
B, D = 8, 6
_b = np.arange(B)[:, None]
_d = np.arange(D)[None, :]
X1 = np.cos(0.37 * (_b * D + _d))
X2 = 0.9 * X1 + 0.05 * np.sin(_b + _d)
U1 = np.sin(0.53 * (_b * D + _d) + 0.2)
U2 = 0.8 * U1 - 0.1 * np.cos(_b - _d)
W1 = 0.9 * np.sin(0.7 * np.arange(D)[:, None] + 1.1 * _j)
W2 = 0.8 * np.cos(0.5 * np.arange(D)[:, None] - 0.9 * _j + 0.3)
DM_LABELS = (3 * np.arange(B) + 1) % C
W_X = np.array([0.95, 0.62, 0.81, 0.99, 0.55, 0.73, 0.88, 0.67])
LAM_RAW = 0.3
DM_PERM = (7 * np.arange(4 * B) + 3) % (4 * B)
_k = np.arange(300)
LOSSES = np.where(
    _k < 210, 0.3 + 0.25 * np.abs(np.sin(1.7 * _k)), 2.2 + 0.8 * np.abs(np.cos(0.9 * _k))
)
