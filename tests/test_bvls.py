"""The exact box-constrained QP solver behind the blendshape solve (facecast.face.bvls), against scipy's BVLS and the
KKT conditions."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.linalg import solve_triangular
from scipy.optimize import lsq_linear

from facecast.face.bvls import FREE, LOWER, UPPER, BoxQP


def random_qp(rng: np.random.Generator, n: int, cond: float = 1e3) -> tuple[np.ndarray, np.ndarray]:
    q, _ = np.linalg.qr(rng.normal(size=(n, n)))
    eig = np.geomspace(1.0, cond, n)
    a = (q * eig) @ q.T
    b = rng.normal(size=n) * rng.uniform(1, 300)
    return 0.5 * (a + a.T), b


def scipy_box(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    r = np.linalg.cholesky(a).T
    return lsq_linear(r, solve_triangular(r, b, trans="T"), bounds=(lo, hi), method="bvls", tol=1e-14).x


def objective(a: np.ndarray, b: np.ndarray, x: np.ndarray) -> float:
    return float(0.5 * x @ a @ x - b @ x)


def kkt_violation(a: np.ndarray, b: np.ndarray, lo: np.ndarray, hi: np.ndarray, x: np.ndarray) -> float:
    g = a @ x - b
    bad = np.where(x <= lo + 1e-12, np.minimum(g, 0), np.where(x >= hi - 1e-12, np.maximum(g, 0), g))
    outside = max(np.maximum(lo - x, 0).max(), np.maximum(x - hi, 0).max())
    return float(max(np.abs(bad).max() / (1 + np.abs(b).max()), outside))


@pytest.mark.parametrize("seed", range(6))
def test_box_qp_exact_against_scipy_and_kkt(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    for _ in range(20):
        n = int(rng.integers(1, 40))
        a, b = random_qp(rng, n)
        lo = np.zeros(n)
        hi = np.ones(n)
        hi[rng.random(n) < 0.2] = 1e-10  # cancel-style caps
        qp = BoxQP(a)
        x, part = qp.solve(b, lo, hi)
        assert kkt_violation(a, b, lo, hi, x) < 1e-9
        ref = np.clip(scipy_box(a, b, lo, hi), lo, hi)
        if kkt_violation(a, b, lo, hi, ref) < 1e-9:
            np.testing.assert_allclose(x, ref, atol=1e-8)
        else:  # scipy's BVLS occasionally stops early (seen with 1e-10 caps); ours must then be better
            assert objective(a, b, x) < objective(a, b, ref)
        assert set(np.unique(part).tolist()) <= {FREE, LOWER, UPPER}
        # Any warm start, the primal fallback and a forced fallback give the same point.
        start = rng.integers(0, 3, n).astype(np.int8)
        np.testing.assert_allclose(qp.solve(b, lo, hi, start)[0], x, atol=1e-9)
        np.testing.assert_allclose(qp.solve_primal(b, lo, hi)[0], x, atol=1e-9)
        np.testing.assert_allclose(qp.solve(b, lo, hi, start, max_iter=0)[0], x, atol=1e-9)


def test_box_qp_general_bounds_and_fixed_variables() -> None:
    rng = np.random.default_rng(7)
    a, b = random_qp(rng, 15, cond=50.0)
    lo = rng.uniform(-2, 0, 15)
    hi = lo + rng.uniform(0, 2, 15)
    hi[3] = lo[3]  # a fixed variable (scipy needs lower < upper, so it gets a 1e-12 gap)
    qp = BoxQP(a)
    x, _ = qp.solve(b, lo, hi)
    assert x[3] == lo[3]
    assert kkt_violation(a, b, lo, hi, x) < 1e-9
    np.testing.assert_allclose(x, qp.solve_primal(b, lo, hi)[0], atol=1e-10)
    hi_gap = hi.copy()
    hi_gap[3] += 1e-12
    np.testing.assert_allclose(x, scipy_box(a, b, lo, hi_gap), atol=1e-8)


def test_box_qp_interior_solution_is_unconstrained_minimiser() -> None:
    a = np.array([[4.0, 1.0], [1.0, 3.0]])
    b = np.array([1.0, 2.0])  # A⁻¹b = (1/11)·(3 − 2, −1 + 8) = (1/11, 7/11), inside [0, 1]²
    x, part = BoxQP(a).solve(b, np.zeros(2), np.ones(2))
    np.testing.assert_allclose(x, [1 / 11, 7 / 11], atol=1e-15)
    assert part.tolist() == [FREE, FREE]


def test_box_qp_rejects_bad_matrices() -> None:
    with pytest.raises(ValueError, match="positive definite"):
        BoxQP(np.array([[1.0, 2.0], [2.0, 1.0]]))
    with pytest.raises(ValueError, match="symmetric"):
        BoxQP(np.array([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="square"):
        BoxQP(np.ones((2, 3)))
    with pytest.raises(ValueError, match="tolerance"):
        BoxQP(np.eye(2), tol=0.0)
