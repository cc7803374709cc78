"""Geometry compression for training: PCA around the neutral, KD-tree pose pruning, rigid stabilisation."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.spatial import cKDTree

from facecast.characters.geometry import kabsch  # noqa: F401  (stabilize's rigid fit; re-exported)


@dataclass
class PCABasis:
    """Orthonormal deltas from a mean (the neutral): ``pose = mean + coeffs @ components``."""

    mean: np.ndarray
    """[V, 3] the custom mean (the neutral pose)."""
    components: np.ndarray
    """[K, V, 3] orthonormal rows (zero rows pad a forced count beyond the data's rank)."""
    variances: np.ndarray
    """[K] variance along each component (s^2 / (m - 1))."""
    explained: float
    """Fraction of the (around-the-mean) variance the kept components hold."""

    @property
    def num_components(self) -> int:
        return int(self.components.shape[0])

    def project(self, frames: np.ndarray) -> np.ndarray:
        """[F, V, 3] vertices -> [F, K] coefficients."""
        flat = np.asarray(frames, np.float32).reshape(len(frames), -1) - self.mean.reshape(1, -1)
        return (flat @ self.components.reshape(self.num_components, -1).T).astype(np.float32)

    def reconstruct(self, coeffs: np.ndarray) -> np.ndarray:
        """[F, K] coefficients -> [F, V, 3] vertices."""
        coeffs = np.asarray(coeffs, np.float32)
        flat = coeffs @ self.components.reshape(self.num_components, -1)
        return (flat.reshape(len(coeffs), -1, 3) + self.mean).astype(np.float32)


def _principal_axes(delta: np.ndarray, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Singular values and right singular vectors of ``delta`` [m, D], largest first.

    With fewer poses than coordinates (the usual case) this diagonalises the m x m Gram matrix, accumulated in
    column blocks, instead of running an SVD over all D coordinates.
    """
    m, d = delta.shape
    if m >= d:
        _, s, vt = np.linalg.svd(delta, full_matrices=False)
        return s, vt
    gram = np.zeros((m, m))
    for lo in range(0, d, chunk):
        block = delta[:, lo : lo + chunk].astype(np.float64)
        gram += block @ block.T
    evals, u = np.linalg.eigh(gram)
    order = np.argsort(evals)[::-1]
    evals, u = np.clip(evals[order], 0.0, None), u[:, order]
    s = np.sqrt(evals)
    rank = int(np.sum(s > s[0] * 1e-7)) if s[0] > 0 else 0
    vt = np.zeros((m, d), np.float32)
    for lo in range(0, d, chunk):
        block = delta[:, lo : lo + chunk].astype(np.float64)
        vt[:rank, lo : lo + chunk] = (u[:, :rank].T @ block) / s[:rank, None]
    s[rank:] = 0.0
    return s, vt


def _randomized_axes(delta: np.ndarray, k: int, oversample: int = 16, power: int = 3, seed: int = 0):
    """Top ``k`` singular values/vectors of ``delta`` [m, D] by a randomized range finder (Halko et al.).

    Used when a component count is forced and the matrix is large: O(m D k) instead of a full SVD.
    """
    rng = np.random.default_rng(seed)
    delta = np.asarray(delta, np.float32)
    omega = rng.standard_normal((delta.shape[1], k + oversample)).astype(np.float32)
    q, _ = np.linalg.qr(delta @ omega)
    for _ in range(power):
        q, _ = np.linalg.qr(delta.T @ q)
        q, _ = np.linalg.qr(delta @ q)
    small = q.T.astype(np.float64) @ delta.astype(np.float64)
    _, s, vt = np.linalg.svd(small, full_matrices=False)
    # the total variance is needed for the explained ratio: add the energy outside the found subspace as one value
    total = float(np.einsum("ij,ij->", delta, delta, dtype=np.float64))
    rest = max(total - float((s**2).sum()), 0.0)
    return np.append(s, np.sqrt(rest)), np.vstack([vt.astype(np.float32), np.zeros((1, delta.shape[1]), np.float32)])


def fit_pca(poses: np.ndarray, mean: np.ndarray, variance: float = 0.9995, components: int | None = None) -> PCABasis:
    """PCA of ``poses`` [N, V, 3] around ``mean`` [V, 3] (not the data mean).

    Keeps the fewest components whose cumulative variance exceeds ``variance``, or exactly ``components``
    when given (padded with zero rows beyond the data's rank).
    """
    poses = np.asarray(poses, np.float32)
    mean = np.asarray(mean, np.float32)
    if poses.ndim != 3 or poses.shape[1:] != mean.shape:
        raise ValueError(f"poses {poses.shape} do not match the mean {mean.shape}")
    if not 0.0 < variance <= 1.0:
        raise ValueError(f"variance must be in (0, 1], got {variance}")
    m = len(poses)
    delta = poses.reshape(m, -1) - mean.reshape(1, -1)
    if components is not None and min(delta.shape) > 4 * int(components) and min(delta.shape) > 2000:
        s, vt = _randomized_axes(delta, int(components))
    else:
        s, vt = _principal_axes(delta)
    evals = s * s / max(m - 1, 1)
    total = float(evals.sum())
    if total <= 0.0:
        keep = 1
        ratio = np.ones_like(evals)
    else:
        ratio = np.cumsum(evals) / total
        keep = int(np.searchsorted(ratio, variance, side="right")) + 1
        keep = min(keep, len(evals))
    if components is not None:
        keep = int(components)
        if keep < 1:
            raise ValueError(f"components must be at least 1, got {components}")
    rows = min(keep, len(evals))
    basis = np.zeros((keep, delta.shape[1]), np.float32)
    variances = np.zeros(keep, np.float32)
    if total > 0.0:
        basis[:rows] = vt[:rows]
        variances[:rows] = evals[:rows]
    explained = float(ratio[rows - 1]) if total > 0.0 else 1.0
    return PCABasis(mean.copy(), basis.reshape(keep, *mean.shape), variances, explained)


def prune_poses(flat: np.ndarray, radius: float, stride: int = 10) -> np.ndarray:
    """Indices of the frames to keep: every ``stride``-th frame, plus every frame farther than ``radius``
    (Euclidean, over all coordinates) from those; repeated on the survivors until nothing changes."""
    flat = np.asarray(flat, np.float32).reshape(len(flat), -1)
    keep = np.arange(len(flat))
    while len(keep) > stride:
        anchors = keep[::stride]
        dist, _ = cKDTree(flat[anchors]).query(flat[keep], k=1)
        survivors = np.union1d(anchors, keep[dist > radius])
        if len(survivors) == len(keep):
            break
        keep = survivors
    return keep


def stabilize(frames: np.ndarray, neutral: np.ndarray, rigid: list[int] | np.ndarray) -> np.ndarray:
    """Move every frame [F, V, 3] rigidly so that its ``rigid`` vertices best match the neutral's."""
    frames = np.asarray(frames, np.float64)
    idx = np.asarray(rigid, np.int64)
    rot, t = kabsch(frames[:, idx], np.asarray(neutral, np.float64)[idx])
    return (frames @ np.swapaxes(rot, -1, -2) + t[:, None, :]).astype(np.float32)
