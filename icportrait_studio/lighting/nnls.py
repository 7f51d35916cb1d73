"""Non-negative least squares (Lawson–Hanson) on the normal equations, in numpy.

Why not ``scipy.optimize.nnls``: importing ``scipy.optimize`` costs ~0.4 s (it loads the whole optimize
package and most of ``scipy.linalg``), paid by every CLI run and every app start before the first
relight; the source-light fit is its only user here. The fit's problems are tall and narrow (thousands
of skin pixels, ~65 light lobes), so the active-set method works on the small Gram matrix: each
iteration is a solve of at most 65 unknowns. With a ridge on all but one column the problem is strictly
convex and its minimiser unique, so this and SciPy's solver agree to rounding (``tests/test_relight.py``).
"""

from __future__ import annotations

import numpy as np


def _solve(g: np.ndarray, h: np.ndarray) -> np.ndarray:
    try:
        return np.linalg.solve(g, h)
    except np.linalg.LinAlgError:  # a singular passive set (duplicate columns): the least-norm answer
        return np.linalg.lstsq(g, h, rcond=None)[0]


def nnls(a: np.ndarray, b: np.ndarray, max_iter: int | None = None) -> tuple[np.ndarray, float]:
    """``argmin ||a x − b||`` subject to ``x ≥ 0``: (x, the residual's norm), like SciPy's ``nnls``."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    m, n = a.shape
    g = a.T @ a
    h = a.T @ b
    x = np.zeros(n)
    passive = np.zeros(n, dtype=bool)
    tol = 10.0 * max(m, n) * np.finfo(np.float64).eps * max(float(np.abs(g).max()), 1e-300)
    max_iter = max_iter or 3 * n
    w = h.copy()
    for _ in range(max_iter):
        free = ~passive
        if not free.any() or float(w[free].max()) <= tol:
            break
        j = int(np.argmax(np.where(free, w, -np.inf)))
        passive[j] = True
        for _inner in range(max_iter):
            idx = np.flatnonzero(passive)
            z = np.zeros(n)
            z[idx] = _solve(g[np.ix_(idx, idx)], h[idx])
            if (z[idx] > 0).all():
                x = z
                break
            # step from x towards z until the first passive variable reaches zero; drop it (and any others there)
            neg = passive & (z <= 0)
            alpha = float(np.min(x[neg] / (x[neg] - z[neg])))
            x = x + alpha * (z - x)
            passive &= x > tol
            x[~passive] = 0.0
        w = h - g @ x
    residual = float(np.linalg.norm(a @ x - b))
    return x, residual
