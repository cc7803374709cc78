"""Exact solver for box-constrained, strictly convex quadratic programs.

Solves ``min ½ xᵀAx − bᵀx  subject to  lower ≤ x ≤ upper`` for a fixed symmetric positive definite ``A``
and many right-hand sides ``b``, as the blendshape solve needs once per frame. The answer is the exact
KKT point (up to rounding), not an iterate of a first-order method.

The main method is block principal pivoting (Júdice & Pires; Kim & Park's safeguarded form): every
variable is either free or fixed at one of its bounds; each iteration solves the equality-constrained
problem for that partition and moves every variable that breaks a KKT condition to the other side. A
backup rule (change only the last offending variable once the count of offenders stops falling) gives
finite termination, and a textbook primal active-set method takes over should an iteration cap ever be
reached. Warm starts come from the previous frame's partition, so a smooth sequence usually needs a
single linear solve per frame.

Each partition solve costs O(k³) with k = min(#free, #fixed): with few free variables it solves the
free block of ``A``; with few fixed ones it uses the precomputed inverse ``H = A⁻¹`` and the fixed
block of ``H`` (the multipliers of the fixed variables then come for free).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FREE = 0
"""Partition code: the variable is strictly between its bounds."""
LOWER = 1
"""Partition code: the variable is fixed at its lower bound."""
UPPER = 2
"""Partition code: the variable is fixed at its upper bound."""

_BACKUP = 3
_EPS = float(np.finfo(np.float64).eps)

FloatArray = NDArray[np.float64]
CodeArray = NDArray[np.int8]


def _solve_spd(m: FloatArray, r: FloatArray) -> FloatArray:
    """Solve a small SPD system (a division when it is 1x1)."""
    if r.size == 1:
        return r / m[0, 0]
    return np.linalg.solve(m, r)


class BoxQP:
    """Exact box-constrained QP solver for one fixed symmetric positive definite matrix.

    ``tol`` is the relative KKT tolerance: a bound is violated when it is exceeded by more than ``tol``,
    and a multiplier has the wrong sign when it is below ``-tol·min(diag A)`` (never below a rounding
    floor). Within those tolerances the returned point satisfies the KKT conditions exactly.
    """

    def __init__(self, a: NDArray[np.floating], tol: float = 1e-10) -> None:
        a = np.array(a, dtype=np.float64)
        if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
            raise ValueError(f"BoxQP needs a non-empty square matrix, got shape {a.shape}")
        if not np.all(np.isfinite(a)):
            raise ValueError("BoxQP matrix contains non-finite values")
        if not np.allclose(a, a.T, rtol=1e-10, atol=1e-12 * float(np.abs(a).max())):
            raise ValueError("BoxQP matrix must be symmetric")
        if tol <= 0:
            raise ValueError(f"tolerance must be positive, got {tol}")
        a = 0.5 * (a + a.T)
        n = a.shape[0]
        eig = np.linalg.eigvalsh(a)
        if eig[0] <= 100.0 * n * _EPS * eig[-1]:
            span = f"eigenvalues {eig[0]:.3g} .. {eig[-1]:.3g}"
            raise ValueError(f"BoxQP matrix is not positive definite ({span})")
        chol = np.linalg.cholesky(a)
        inv_chol = np.linalg.solve(chol, np.eye(n))
        h = inv_chol.T @ inv_chol
        self.a: FloatArray = a
        self.h: FloatArray = 0.5 * (h + h.T)
        self.n = n
        self.tol = float(tol)
        self._gtol_base = self.tol * float(np.diag(a).min())
        self._noise = 64.0 * _EPS * n * float(np.abs(a).max())

    def unconstrained(self, b: NDArray[np.floating]) -> FloatArray:
        """Unconstrained minimisers ``A⁻¹b`` for ``b`` of shape [n] or [N, n]."""
        return np.asarray(b, dtype=np.float64) @ self.h

    def initial_partition(self, hb: FloatArray, lower: FloatArray, upper: FloatArray) -> CodeArray:
        """Cold-start partition: the bounds the unconstrained minimiser ``hb`` breaks."""
        part = np.zeros(self.n, dtype=np.int8)
        part[hb < lower] = LOWER
        part[hb > upper] = UPPER
        return part

    def solve(
        self,
        b: FloatArray,
        lower: FloatArray,
        upper: FloatArray,
        partition: CodeArray | None = None,
        hb: FloatArray | None = None,
        max_iter: int | None = None,
    ) -> tuple[FloatArray, CodeArray]:
        """Minimise ``½xᵀAx − bᵀx`` on ``lower ≤ x ≤ upper`` (finite bounds, ``lower ≤ upper``).

        ``partition`` (codes FREE/LOWER/UPPER) warm-starts the search; ``hb`` may pass a precomputed
        ``A⁻¹b``. Returns the minimiser and its final partition (reuse it to warm-start the next call).
        """
        if hb is None:
            hb = self.h @ b
        part = self.initial_partition(hb, lower, upper) if partition is None else partition.copy()
        gtol = max(self._gtol_base, self._noise * (1.0 + float(np.abs(b).max())))
        xtol = self.tol
        if max_iter is None:
            max_iter = 4 * self.n + 20
        best = self.n + 1
        backup = _BACKUP
        x = hb
        for _ in range(max_iter):
            x, g = self._evaluate(part, b, hb, lower, upper)
            free = part == FREE
            to_lower = free & (x < lower - xtol)
            to_upper = free & (x > upper + xtol)
            to_free = ((part == LOWER) & (g < -gtol)) | ((part == UPPER) & (g > gtol))
            bad = to_lower | to_upper | to_free
            count = int(np.count_nonzero(bad))
            if count == 0:
                np.clip(x, lower, upper, out=x)
                return x, part
            if count < best:
                best, backup = count, _BACKUP
            elif backup > 0:
                backup -= 1
            else:
                last = int(np.flatnonzero(bad)[-1])
                only = np.zeros(self.n, dtype=bool)
                only[last] = True
                to_lower &= only
                to_upper &= only
                to_free &= only
            part[to_lower] = LOWER
            part[to_upper] = UPPER
            part[to_free] = FREE
        return self.solve_primal(b, lower, upper, x)

    def _evaluate(
        self, part: CodeArray, b: FloatArray, hb: FloatArray, lower: FloatArray, upper: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Minimiser with the fixed variables at their bounds, and the gradient ``Ax − b`` there.

        The gradient is exactly zero on free variables, so only its fixed entries are computed.
        """
        fixed = np.flatnonzero(part)
        n_fixed = fixed.size
        if n_fixed == 0:
            return hb.copy(), np.zeros(self.n)
        x_fixed = np.where(part[fixed] == LOWER, lower[fixed], upper[fixed])
        g = np.zeros(self.n)
        if n_fixed == self.n:
            g[:] = self.a @ x_fixed - b
            return x_fixed, g
        if 2 * n_fixed <= self.n:
            # Few fixed: A x = b + λ with λ zero on free variables, so x = H(b + λ) and the fixed rows
            # give H_CC λ_C = x_C − (Hb)_C.
            h_cols = self.h[fixed]  # rows of the symmetric H, i.e. its fixed columns transposed
            lam = _solve_spd(h_cols[:, fixed], x_fixed - hb[fixed])
            x = hb + lam @ h_cols
            x[fixed] = x_fixed
            g[fixed] = lam
            return x, g
        free = np.flatnonzero(part == FREE)
        a_free = self.a[free]
        x = np.empty(self.n)
        x[fixed] = x_fixed
        x[free] = _solve_spd(a_free[:, free], b[free] - a_free[:, fixed] @ x_fixed)
        g[fixed] = self.a[fixed] @ x - b[fixed]
        return x, g

    def solve_primal(
        self, b: FloatArray, lower: FloatArray, upper: FloatArray, x0: FloatArray | None = None
    ) -> tuple[FloatArray, CodeArray]:
        """Primal active-set method from ``x0`` (clipped into the box); finite for strictly convex QPs.

        One constraint enters or leaves per iteration, so it is slower than :meth:`solve` on cold starts;
        it is the fallback that guarantees an exact answer.
        """
        n = self.n
        x = np.clip(self.h @ b if x0 is None else x0, lower, upper)
        part = np.zeros(n, dtype=np.int8)
        part[x >= upper] = UPPER
        part[x <= lower] = LOWER
        gtol = max(self._gtol_base, self._noise * (1.0 + float(np.abs(b).max())))
        for _ in range(50 * n + 100):
            free = np.flatnonzero(part == FREE)
            if free.size:
                fixed = np.flatnonzero(part)
                rhs = b[free] - self.a[np.ix_(free, fixed)] @ x[fixed]
                step = np.linalg.solve(self.a[np.ix_(free, free)], rhs) - x[free]
                with np.errstate(divide="ignore", invalid="ignore"):
                    room = np.where(step < 0, (lower[free] - x[free]) / step, (upper[free] - x[free]) / step)
                room[step == 0] = np.inf
                k = int(np.argmin(room))
                if room[k] < 1.0:
                    x[free] += max(room[k], 0.0) * step
                    j = free[k]
                    if step[k] < 0:
                        x[j], part[j] = lower[j], LOWER
                    else:
                        x[j], part[j] = upper[j], UPPER
                    continue
                x[free] += step
            g = self.a @ x - b
            wrong = np.where(part == LOWER, -g, np.where(part == UPPER, g, -np.inf))
            j = int(np.argmax(wrong))
            if wrong[j] <= gtol:
                np.clip(x, lower, upper, out=x)
                return x, part
            part[j] = FREE
        raise RuntimeError("primal active-set method did not converge")  # pragma: no cover
