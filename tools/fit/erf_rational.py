"""Fits the rational approximation behind `q8_kernels::math::erf`.

erf(a) ~= a P(a^2) / Q(a^2) on [0, 3.925] (above 3.919206 the exact erf rounds to 1 in f32),
P of degree 6 and Q of degree 5 with Q(0) = 1, minimizing the relative error: a linearized
least-squares start, then L^p refinements (p = 2 .. 16) toward the minimax fit. Prints the
coefficients rounded to f32 (from t^0) and the fit's relative error before rounding.

Usage: python erf_rational.py   (numpy and scipy; e.g. the peers' venv)
"""
import numpy as np
from scipy.optimize import least_squares
from scipy.special import erf

X, NP, NQ, NODES = 3.925, 6, 5, 6000

x = (np.cos(np.pi * (np.arange(NODES) + 0.5) / NODES)[::-1] + 1) * X / 2
f = erf(x)
s = (x / X) ** 2  # scaled variable: keeps the normal equations well conditioned


def relative_error(c):
    p, q = c[: NP + 1], np.concatenate([[1.0], c[NP + 1 :]])
    return x * np.polyval(p[::-1], s) / np.polyval(q[::-1], s) / f - 1


linear = np.hstack(
    [
        np.stack([x * s**k for k in range(NP + 1)], 1),
        np.stack([-f * s**k for k in range(1, NQ + 1)], 1),
    ]
) / f[:, None]
c, *_ = np.linalg.lstsq(linear, np.ones_like(x), rcond=None)
for power in [2, 4, 8, 16]:
    c = least_squares(
        lambda c: np.abs(relative_error(c)) ** (power / 2) * np.sign(relative_error(c)),
        c, xtol=1e-15, ftol=1e-15, gtol=1e-15, max_nfev=20000,
    ).x
print("max relative error before rounding:", np.abs(relative_error(c)).max())
# Undo the scaling: coefficients of t = a^2.
p = [c[k] / X ** (2 * k) for k in range(NP + 1)]
q = [1.0] + [c[NP + k] / X ** (2 * k) for k in range(1, NQ + 1)]
print("ERF_P", [float(np.float32(v)) for v in p])
print("ERF_Q", [float(np.float32(v)) for v in q])
