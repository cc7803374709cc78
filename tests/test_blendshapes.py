"""Tests for the blendshape solve (facecast.face.blendshapes); its box-QP solver is tested in test_bvls.py.

The solver is checked against an independent re-derivation of the SDK's problem (spec §6) that builds
the normal matrix from scratch and hands each frame to scipy's BVLS in least-squares form
(min ‖Rw − c‖², A = RᵀR, Rᵀc = b), with the cancel-pair second pass and temporal state done by hand.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from scipy.linalg import solve_triangular
from scipy.optimize import lsq_linear

from facecast.constants import ARKIT_NAMES, TONGUE_NAMES
from facecast.face.blendshapes import CANCEL_UPPER_BOUND, BlendshapeConfig, BlendshapeSolver, SolverState

# --------------------------------------------------------------------------------------------------
# Independent reference
# --------------------------------------------------------------------------------------------------


def reference_weights(
    neutral: np.ndarray, deltas: np.ndarray, mask: np.ndarray | None, p: dict[str, Any], targets: np.ndarray
) -> np.ndarray:
    """Spec §6 solved frame by frame with scipy.optimize.lsq_linear(method="bvls")."""
    num_poses, num_vertices = deltas.shape[:2]
    active = [k for k in range(num_poses) if p["active"][k]]
    n = len(active)
    rows = np.arange(num_vertices) if mask is None else mask
    d = np.stack([deltas[k][rows].ravel() for k in active], axis=1)
    n0 = neutral[rows].ravel()
    diag = np.linalg.norm(neutral.max(axis=0) - neutral.min(axis=0))
    s = (diag / p["bb"]) ** 2

    def pairs(ids: list[int]) -> list[tuple[int, int]]:
        groups: dict[int, list[int]] = {}
        for pos, k in enumerate(active):
            if ids[k] >= 0:
                groups.setdefault(ids[k], []).append(pos)
        return [(g[0], g[1]) for g in groups.values() if len(g) == 2]

    sym = np.zeros((0, n))
    for i, j in pairs(p["sym"]):
        row = np.zeros(n)
        row[i], row[j] = 1.0, -1.0
        sym = np.vstack([sym, row])
    a = (
        d.T @ d
        + p["l1"] ** 2 * 0.25 * s * np.ones((n, n))
        + p["l2"] * 10 * s * np.eye(n)
        + p["t"] * 100 * s * np.eye(n)
        + p["s"] * 10 * s * sym.T @ sym
    )
    r = np.linalg.cholesky(a).T  # upper triangular, A = RᵀR
    cancel = pairs(p["cancel"])
    prev = np.zeros(n)
    out = np.zeros((len(targets), num_poses))
    for f, target in enumerate(targets):
        b = d.T @ (target[rows].ravel() - n0) + p["t"] * s * prev
        c = solve_triangular(r, b, trans="T")
        w = lsq_linear(r, c, bounds=(np.zeros(n), np.ones(n)), method="bvls", tol=1e-13).x
        if cancel:
            upper = np.ones(n)
            for i, j in cancel:
                upper[j if w[i] >= w[j] else i] = 1e-10
            w = lsq_linear(r, c, bounds=(np.zeros(n), upper), method="bvls", tol=1e-13).x
        prev = w
        out[f, active] = w
    out = out * np.asarray(p["mult"]) + np.asarray(p["off"])
    return np.clip(out, 0, 1) if p["clamp"] else out


def make_problem(
    seed: int, num_poses: int = 12, num_vertices: int = 300, mask_size: int | None = 200, frames: int = 12
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, np.ndarray]:
    """Localised random deltas, targets from known weights (some beyond [0, 1]) plus noise."""
    rng = np.random.default_rng(seed)
    neutral = rng.uniform(-10, 10, (num_vertices, 3))
    deltas = np.empty((num_poses, num_vertices, 3))
    for k in range(num_poses):
        centre = neutral[rng.integers(num_vertices)]
        falloff = np.exp(-((neutral - centre) ** 2).sum(axis=1) / (2 * 6.0**2))
        deltas[k] = falloff[:, None] * rng.normal(size=3) + 0.05 * rng.normal(size=(num_vertices, 3))
    mask = None if mask_size is None else np.sort(rng.choice(num_vertices, mask_size, replace=False))
    true_w = rng.uniform(-0.4, 1.4, (frames, num_poses))
    true_w[rng.random(true_w.shape) < 0.25] = 0.0
    targets = neutral + np.einsum("fk,kvc->fvc", true_w, deltas)
    targets += 0.02 * rng.normal(size=targets.shape)
    return neutral, deltas, mask, targets, true_w


def params(num_poses: int, **kw: Any) -> dict[str, Any]:
    """Plain-dict settings for the reference, SDK defaults unless overridden."""
    p: dict[str, Any] = dict(
        l1=1.0,
        l2=3.5,
        t=0.0,
        s=100.0,
        bb=54.7,
        clamp=False,
        active=[1] * num_poses,
        cancel=[-1] * num_poses,
        sym=[-1] * num_poses,
        mult=[1.0] * num_poses,
        off=[0.0] * num_poses,
    )
    p.update(kw)
    return p


def config_from(p: dict[str, Any]) -> BlendshapeConfig:
    return BlendshapeConfig(
        strength_l1=p["l1"],
        strength_l2=p["l2"],
        strength_temporal=p["t"],
        strength_symmetry=p["s"],
        active=[bool(v) for v in p["active"]],
        cancel_pairs=p["cancel"],
        symmetry_pairs=p["sym"],
        multipliers=p["mult"],
        offsets=p["off"],
        template_bb_size=p["bb"],
        clamp=p["clamp"],
    )


P12 = 12
NAMES12 = [f"p{k}" for k in range(P12)]
SYM = [0, 0, 1, 1, -1, 2, 2, -1, -1, -1, -1, -1]
CANCEL = [-1, -1, -1, -1, 0, -1, -1, 0, 1, 1, -1, -1]
INACTIVE = [1, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 1]  # pose 3 breaks symmetry pair 1, pose 8 cancel pair 1
MULT = [1.0, 0.5, 2.0, 1.0, 1.0, 1.2, 0.8, 1.0, 1.0, 1.0, 0.0, 1.5]
OFF = [0.0, 0.1, -0.2, 0.3, 0.0, 0.0, 0.05, 0.0, 0.0, 0.0, 0.4, -0.1]

CASES = {
    "defaults": params(P12),
    "no_regularisation": params(P12, l1=0.0, l2=0.0, s=0.0),
    "l1_only": params(P12, l1=3.0, l2=0.0, s=0.0),
    "l2_only": params(P12, l1=0.0, l2=1.0, s=0.0),
    "temporal": params(P12, t=0.8),
    "temporal_no_l2": params(P12, l1=0.0, l2=0.0, t=0.3, s=0.0),
    "symmetry": params(P12, sym=SYM),
    "cancel": params(P12, l1=0.5, l2=0.5, cancel=CANCEL),
    "inactive": params(P12, active=INACTIVE, sym=SYM, cancel=CANCEL),
    "mult_offset_clamp": params(P12, mult=MULT, off=OFF, clamp=True),
    "mult_offset_noclamp": params(P12, mult=MULT, off=OFF),
    "mark_like_all": params(
        P12,
        l1=0.5,
        l2=0.5,
        t=0.3,
        s=100.0,
        bb=30.0,
        active=INACTIVE,
        sym=SYM,
        cancel=CANCEL,
        mult=MULT,
        off=OFF,
        clamp=True,
    ),
}


# --------------------------------------------------------------------------------------------------
# Agreement with scipy BVLS
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(CASES))
@pytest.mark.parametrize("seed", [0, 1])
def test_matches_scipy_bvls(name: str, seed: int) -> None:
    neutral, deltas, mask, targets, _ = make_problem(seed)
    p = CASES[name]
    solver = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p))
    got = solver.solve(targets)
    want = reference_weights(neutral, deltas, mask, p, targets)
    assert got.shape == (len(targets), P12)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=0)
    # The problems must exercise the bounds (heavy temporal smoothing keeps weights below 1).
    raw = solver.solve_raw(targets, solver.new_state())
    assert raw.shape == (len(targets), sum(p["active"]))
    assert (raw == 0.0).mean() > 0.1
    if name not in ("temporal", "mark_like_all"):
        assert (raw == 1.0).any()


def test_cancel_pass_is_exercised_and_caps_the_smaller_weight() -> None:
    neutral, deltas, mask, targets, _ = make_problem(3, frames=20)
    p = CASES["cancel"]
    solver = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p))
    got = solver.solve(targets)
    for i, j in ((4, 7), (8, 9)):
        assert np.all(np.minimum(got[:, i], got[:, j]) <= CANCEL_UPPER_BOUND * (1 + 1e-6))
    # Without the cancel pairs both weights of a pair are positive in some frame.
    plain = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(params(P12, l1=0.5, l2=0.5)))
    free = plain.solve(targets)
    both_on = np.minimum(free[:, [4, 8]], free[:, [7, 9]])
    assert (both_on > 1e-3).any()
    np.testing.assert_allclose(got, reference_weights(neutral, deltas, mask, p, targets), atol=1e-5)


def test_inactive_poses_output_offset_only() -> None:
    neutral, deltas, mask, targets, _ = make_problem(4)
    p = params(P12, active=INACTIVE, mult=MULT, off=OFF)
    got = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p)).solve(targets)
    assert np.all(got[:, 3] == OFF[3]) and np.all(got[:, 8] == OFF[8])
    assert np.any(got[:, 0] != OFF[0])


def test_clamp_limits_output_to_unit_interval() -> None:
    neutral, deltas, mask, targets, _ = make_problem(5)
    p = params(P12, mult=[2.0] * P12, off=[-0.5] + [0.6] * (P12 - 1))
    loose = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p))
    tight = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from({**p, "clamp": True}))
    a, b = loose.solve(targets), tight.solve(targets)
    assert a.max() > 1.0 and a.min() < 0.0
    assert b.max() <= 1.0 and b.min() >= 0.0
    np.testing.assert_allclose(b, np.clip(a, 0, 1))


def test_geometry_scale_invariance() -> None:
    # s ∝ ‖bbox‖², so scaling all geometry by k scales A and b by k² and leaves the weights alone.
    neutral, deltas, mask, targets, _ = make_problem(6)
    cfg = config_from(params(P12, t=0.4, sym=SYM, cancel=CANCEL))
    names = NAMES12
    w1 = BlendshapeSolver(neutral, deltas, names, mask, cfg).solve(targets)
    w2 = BlendshapeSolver(7.0 * neutral, 7.0 * deltas, names, mask, cfg).solve(7.0 * targets)
    np.testing.assert_allclose(w1, w2, atol=1e-8)


def test_no_mask_equals_full_mask_and_float32_input() -> None:
    neutral, deltas, _, targets, _ = make_problem(7, mask_size=None)
    names = NAMES12
    a = BlendshapeSolver(neutral, deltas, names).solve(targets)
    b = BlendshapeSolver(neutral, deltas, names, np.arange(len(neutral), dtype=np.int32)).solve(targets)
    np.testing.assert_allclose(a, b, atol=1e-12)
    np.testing.assert_allclose(a, reference_weights(neutral, deltas, None, params(P12), targets), atol=1e-5)
    c = BlendshapeSolver(neutral, deltas, names).solve(targets.astype(np.float32))
    np.testing.assert_allclose(a, c, atol=1e-3)


# --------------------------------------------------------------------------------------------------
# Hand-worked examples
# --------------------------------------------------------------------------------------------------


def tiny_solver(**cfg: Any) -> BlendshapeSolver:
    """Two poses, two vertices, s = 1 and DᵀD = I.

    neutral: v0 = (0, 0, 0), v1 = (3, 4, 0) → bbox diagonal ‖(3, 4, 0)‖ = 5 = templateBBSize → s = 1.
    pose a moves v0 by (1, 0, 0); pose b moves v1 by (0, 1, 0): orthonormal columns, DᵀD = I.
    """
    neutral = np.array([[0.0, 0.0, 0.0], [3.0, 4.0, 0.0]])
    deltas = np.zeros((2, 2, 3))
    deltas[0, 0, 0] = 1.0
    deltas[1, 1, 1] = 1.0
    base = dict(strength_l1=0.0, strength_l2=0.0, strength_temporal=0.0, strength_symmetry=0.0)
    base["template_bb_size"] = 5.0
    base.update(cfg)
    return BlendshapeSolver(neutral, deltas, ["a", "b"], config=BlendshapeConfig(**base))


def tiny_target(ba: float, bb: float) -> np.ndarray:
    """Target whose data term is b = (ba, bb): v0 moved by ba along x, v1 by bb along y."""
    return np.array([[ba, 0.0, 0.0], [3.0, 4.0 + bb, 0.0]])


def test_hand_example_box_and_l1() -> None:
    # L2 = 0.1 → 0.1·10·s = 1 on the diagonal: A = I + I = 2I. b = (0.8, 3.0).
    # Unconstrained w = b/2 = (0.4, 1.5); A is diagonal so the box just clips: w = (0.4, 1.0).
    solver = tiny_solver(strength_l2=0.1)
    np.testing.assert_allclose(solver.normal_matrix, [[2.0, 0.0], [0.0, 2.0]])
    np.testing.assert_allclose(solver.solve(tiny_target(0.8, 3.0)), [0.4, 1.0], atol=1e-12)
    # Adding L1 = 2 → 2²·0.25·s = 1 on every entry: A = [[3, 1], [1, 3]]. b = (2.0, 3.6).
    # Unconstrained: A⁻¹b = (1/8)·(3·2 − 3.6, −2 + 3·3.6) = (0.3, 1.1) → w_b exceeds 1.
    # Fix w_b = 1: w_a = (2 − 1·1)/3 = 1/3; gradient on b: 1/3 + 3 − 3.6 = −0.267 ≤ 0, so w_b stays at 1.
    solver = tiny_solver(strength_l2=0.1, strength_l1=2.0)
    np.testing.assert_allclose(solver.normal_matrix, [[3.0, 1.0], [1.0, 3.0]])
    np.testing.assert_allclose(solver.solve(tiny_target(2.0, 3.6)), [1.0 / 3.0, 1.0], atol=1e-12)
    # Multipliers (1.5, 0.5) and offsets (0.1, 0): (1/3·1.5 + 0.1, 1·0.5) = (0.6, 0.5).
    solver = tiny_solver(strength_l2=0.1, strength_l1=2.0, multipliers=[1.5, 0.5], offsets=[0.1, 0.0])
    np.testing.assert_allclose(solver.solve(tiny_target(2.0, 3.6)), [0.6, 0.5], atol=1e-12)


def test_hand_example_symmetry() -> None:
    # L2 = 0.1 → 2I as above; symmetry pair (a, b) with S = 0.1 → 0.1·10·s·MᵀM = [[1, −1], [−1, 1]].
    # A = [[3, −1], [−1, 3]], b = (0.8, 0.0): w = A⁻¹b = (1/8)·(3·0.8, 0.8) = (0.3, 0.1).
    solver = tiny_solver(strength_l2=0.1, strength_symmetry=0.1, symmetry_pairs=[5, 5])
    np.testing.assert_allclose(solver.normal_matrix, [[3.0, -1.0], [-1.0, 3.0]])
    np.testing.assert_allclose(solver.solve(tiny_target(0.8, 0.0)), [0.3, 0.1], atol=1e-12)


def test_hand_example_temporal() -> None:
    # L2 = 0.1 → 2I; T = 0.01 → T·100·s = 1 more on the diagonal: A = 3I; b gains T·s·w_prev = 0.01·w_prev.
    # Frame 1 (w_prev = 0), b = (0.9, 0.3): w = (0.3, 0.1).
    # Frame 2, same target: b = (0.9 + 0.003, 0.3 + 0.001) → w = (0.301, 0.100333…).
    solver = tiny_solver(strength_l2=0.1, strength_temporal=0.01)
    target = tiny_target(0.9, 0.3)
    np.testing.assert_allclose(solver.solve(target), [0.3, 0.1], atol=1e-12)
    np.testing.assert_allclose(solver.solve(target), [0.301, 0.301 / 3.0], atol=1e-12)
    solver.reset()
    np.testing.assert_allclose(solver.solve(target), [0.3, 0.1], atol=1e-12)


def test_hand_example_cancel() -> None:
    # L1 = 2, L2 = 0.1 → A = [[3, 1], [1, 3]]; b = (2.0, 1.4).
    # First solve: A⁻¹b = (1/8)·(6 − 1.4, −2 + 4.2) = (0.575, 0.275), inside the box.
    # Cancel pair (a, b): b is smaller → its upper bound becomes 1e-10 ≈ 0, and the re-solve gives
    # w_a = (2.0 − 1·w_b)/3 ≈ 2/3 (not 0.575: the second pass really re-solves).
    solver = tiny_solver(strength_l2=0.1, strength_l1=2.0, cancel_pairs=[0, 0])
    w = solver.solve(tiny_target(2.0, 1.4))
    np.testing.assert_allclose(w, [2.0 / 3.0, 0.0], atol=1e-9)
    assert 0.0 <= w[1] <= CANCEL_UPPER_BOUND
    # Tie (equal weights): the SDK caps the second pose of the pair.
    w = tiny_solver(strength_l2=0.1, cancel_pairs=[0, 0]).solve(tiny_target(1.0, 1.0))
    np.testing.assert_allclose(w, [0.5, 0.0], atol=1e-9)


# --------------------------------------------------------------------------------------------------
# Temporal state and streams
# --------------------------------------------------------------------------------------------------


def temporal_solver(seed: int = 8) -> tuple[BlendshapeSolver, np.ndarray]:
    neutral, deltas, mask, targets, _ = make_problem(seed, frames=10)
    p = params(P12, t=0.6, sym=SYM, cancel=CANCEL)
    return BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p)), targets


def test_sequence_equals_frame_by_frame_and_state_carries() -> None:
    solver, targets = temporal_solver()
    batch = solver.solve(targets)
    solver.reset()
    one_by_one = np.stack([solver.solve(t) for t in targets])
    np.testing.assert_allclose(batch, one_by_one, atol=1e-12)
    # Split calls carry the state: frames 5.. solved after 0..4 equal the batch tail.
    solver.reset()
    solver.solve(targets[:5])
    np.testing.assert_allclose(solver.solve(targets[5:]), batch[5:], atol=1e-12)
    # Without carrying the state the tail differs (the temporal term matters).
    solver.reset()
    assert np.abs(solver.solve(targets[5:]) - batch[5:]).max() > 1e-4


def test_reset_and_independent_streams() -> None:
    solver, targets = temporal_solver()
    first = solver.solve(targets)
    second = solver.solve(targets)  # state carried from the end of the first pass
    assert np.abs(first - second).max() > 1e-4
    solver.reset()
    np.testing.assert_allclose(solver.solve(targets), first, atol=1e-12)
    # Two interleaved streams with their own states match two separate runs.
    s1, s2 = solver.new_state(), solver.new_state()
    rev = targets[::-1].copy()
    out1, out2 = [], []
    for t_a, t_b in zip(targets, rev, strict=True):
        out1.append(solver.solve(t_a, s1))
        out2.append(solver.solve(t_b, s2))
    np.testing.assert_allclose(np.stack(out1), first, atol=1e-12)
    s3 = solver.new_state()
    np.testing.assert_allclose(np.stack(out2), solver.solve(rev, s3), atol=1e-12)
    s1.reset()
    assert not s1.w_prev.any() and s1.partition is None and s1.partition_cancel is None


def test_state_holds_raw_weights_before_multipliers() -> None:
    neutral, deltas, mask, targets, _ = make_problem(9)
    p = params(P12, t=0.5, active=INACTIVE, mult=MULT, off=OFF)
    solver = BlendshapeSolver(neutral, deltas, NAMES12, mask, config_from(p))
    state = solver.new_state()
    out = solver.solve(targets[0], state)
    active = solver.active_index
    np.testing.assert_allclose(state.w_prev * np.asarray(MULT)[active] + np.asarray(OFF)[active], out[active])
    assert state.w_prev.shape == (sum(INACTIVE),)
    assert state.w_prev.min() >= 0.0 and state.w_prev.max() <= 1.0


def test_warm_start_does_not_change_results() -> None:
    solver, targets = temporal_solver(10)
    state = solver.new_state()
    warm = solver.solve(targets, state)
    cold_state = solver.new_state()
    cold = []
    for t in targets:
        cold.append(solver.solve(t, cold_state))
        cold_state.partition = None
        cold_state.partition_cancel = None
    np.testing.assert_allclose(warm, np.stack(cold), atol=1e-10)


def test_wrong_state_and_target_shapes_raise() -> None:
    solver, targets = temporal_solver()
    with pytest.raises(ValueError, match="state"):
        solver.solve(targets[0], SolverState(solver.num_active + 1))
    with pytest.raises(ValueError, match="target must have shape"):
        solver.solve(targets[0][:-1])
    with pytest.raises(ValueError, match="target must have shape"):
        solver.solve(targets[0].reshape(-1))
    bad = targets[:3].copy()
    bad[1, :, 1] = np.nan
    state = solver.new_state()
    with pytest.raises(ValueError, match="non-finite"):
        solver.solve(bad, state)


# --------------------------------------------------------------------------------------------------
# Construction errors
# --------------------------------------------------------------------------------------------------


def test_constructor_validation() -> None:
    neutral, deltas, mask, _, _ = make_problem(11)
    names = NAMES12
    with pytest.raises(ValueError, match="neutral"):
        BlendshapeSolver(neutral[:, :2], deltas, names)
    with pytest.raises(ValueError, match="deltas"):
        BlendshapeSolver(neutral, deltas[:, :-1], names)
    with pytest.raises(ValueError, match="names"):
        BlendshapeSolver(neutral, deltas, names[:-1])
    with pytest.raises(ValueError, match="mask"):
        BlendshapeSolver(neutral, deltas, names, np.array([0, len(neutral)]))
    with pytest.raises(ValueError, match="mask"):
        BlendshapeSolver(neutral, deltas, names, np.ones(len(neutral), dtype=bool))
    with pytest.raises(ValueError, match="one per pose"):
        BlendshapeSolver(neutral, deltas, names, config=BlendshapeConfig(multipliers=[1.0] * 3))
    with pytest.raises(ValueError, match="at least one pose"):
        BlendshapeSolver(neutral, deltas, names, config=BlendshapeConfig(active=[False] * P12))
    # A duplicated pose with no regularisation makes A singular.
    dup = deltas.copy()
    dup[1] = dup[0]
    with pytest.raises(ValueError, match="positive definite"):
        BlendshapeSolver(neutral, dup, names, config=config_from(params(P12, l1=0.0, l2=0.0, s=0.0)))
    # With the default L2 the same data is fine.
    assert BlendshapeSolver(neutral, dup, names).num_active == P12


def test_solver_properties() -> None:
    neutral, deltas, mask, _, _ = make_problem(12)
    cfg = config_from(params(P12, active=INACTIVE, bb=20.0))
    solver = BlendshapeSolver(neutral, deltas, NAMES12, mask, cfg)
    assert solver.num_poses == P12 and solver.num_active == sum(INACTIVE)
    expected_s = (np.linalg.norm(neutral.max(0) - neutral.min(0)) / 20.0) ** 2
    assert solver.scale == pytest.approx(expected_s, rel=1e-12)
    a = solver.normal_matrix
    assert a.shape == (sum(INACTIVE), sum(INACTIVE))
    np.testing.assert_allclose(a, a.T)


# --------------------------------------------------------------------------------------------------
# Config parsing
# --------------------------------------------------------------------------------------------------


def nvidia_like_config() -> dict[str, Any]:
    """A bs_skin_config.json document shaped like NVIDIA's (Mark's values from the SDK test)."""
    n = len(ARKIT_NAMES)
    active = [0 if name.startswith("eyeLook") or name == "tongueOut" else 1 for name in ARKIT_NAMES]
    symmetry = [-1] * n
    pair = 0
    for k, name in enumerate(ARKIT_NAMES):
        if name.endswith("Left") and not name.startswith("eyeLook"):
            symmetry[k] = symmetry[ARKIT_NAMES.index(name[:-4] + "Right")] = pair
            pair += 1
    return {
        "blendshape_params": {
            "strengthL2regularization": 0.5,
            "strengthTemporalSmoothing": 0.3,
            "strengthL1regularization": 0.5,
            "strengthSymmetry": 100.0,
            "numPoses": n,
            "bsSolveActivePoses": active,
            "bsSolveCancelPoses": [-1] * n,
            "bsSolveSymmetryPoses": symmetry,
            "bsWeightMultipliers": [1.0] * n,
            "bsWeightOffsets": [0.0] * n,
            "templateBBSize": 53.4505,
        }
    }


def test_from_json_reads_nvidia_config() -> None:
    doc = nvidia_like_config()
    cfg = BlendshapeConfig.from_json(doc, len(ARKIT_NAMES))
    strengths = (cfg.strength_l1, cfg.strength_l2, cfg.strength_temporal, cfg.strength_symmetry)
    assert strengths == (0.5, 0.5, 0.3, 100.0)
    assert cfg.template_bb_size == 53.4505 and cfg.clamp is False and cfg.tolerance == 1e-10
    assert cfg.active is not None and cfg.active[ARKIT_NAMES.index("eyeBlinkLeft")] is True
    assert cfg.active[ARKIT_NAMES.index("tongueOut")] is False
    assert cfg.symmetry_pairs is not None
    left, right = ARKIT_NAMES.index("eyeBlinkLeft"), ARKIT_NAMES.index("eyeBlinkRight")
    assert cfg.symmetry_pairs[left] == cfg.symmetry_pairs[right] == 0
    # The inner object works too, and clamping can be switched on.
    inner = BlendshapeConfig.from_json(doc["blendshape_params"], len(ARKIT_NAMES), clamp=True)
    assert inner.clamp is True and inner.active == cfg.active
    # Round trip.
    again = BlendshapeConfig.from_json(cfg.to_json(), len(ARKIT_NAMES))
    assert again == cfg
    assert cfg.to_json() == {"blendshape_params": {**doc["blendshape_params"]}}


def test_from_json_defaults_when_keys_absent() -> None:
    n = len(TONGUE_NAMES)
    cfg = BlendshapeConfig.from_json({"blendshape_params": {"numPoses": n}}, n)
    assert cfg == BlendshapeConfig()
    assert cfg.template_bb_size == 54.7 and cfg.strength_l2 == 3.5 and cfg.strength_symmetry == 100.0
    doc = cfg.to_json(len(TONGUE_NAMES))["blendshape_params"]
    assert doc["bsSolveActivePoses"] == [1] * 16 and doc["bsSolveCancelPoses"] == [-1] * 16
    with pytest.raises(ValueError, match="num_poses"):
        BlendshapeConfig().to_json()


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("bsSolveActivePoses", [1] * 51, "bsSolveActivePoses has 51 entries"),
        ("bsSolveCancelPoses", [-1] * 53, "bsSolveCancelPoses has 53 entries"),
        ("bsSolveSymmetryPoses", [-1] * 10, "bsSolveSymmetryPoses has 10 entries"),
        ("bsWeightMultipliers", [1.0] * 50, "bsWeightMultipliers has 50 entries"),
        ("bsWeightOffsets", [], "bsWeightOffsets has 0 entries"),
        ("bsWeightOffsets", "0.0", "bsWeightOffsets must be a list"),
        ("numPoses", 16, "numPoses is 16"),
        ("bsSolveCancelPoses", [0] + [-1] * 51, "pair id 0 occurs 1 time"),
        ("bsSolveSymmetryPoses", [3, 3, 3] + [-1] * 49, "pair id 3 occurs 3 time"),
        ("bsSolveSymmetryPoses", [-2] + [-1] * 51, "pair id -2 is invalid"),
        ("bsSolveActivePoses", [0] * 52, "at least one pose"),
        ("strengthL2regularization", -1.0, "strength_l2"),
        ("templateBBSize", 0.0, "template_bb_size"),
    ],
)
def test_from_json_errors(key: str, value: Any, message: str) -> None:
    doc = copy.deepcopy(nvidia_like_config())
    doc["blendshape_params"][key] = value
    with pytest.raises(ValueError, match=message):
        BlendshapeConfig.from_json(doc, len(ARKIT_NAMES))


def test_from_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        BlendshapeConfig.from_json([1, 2], 2)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="blendshape_params"):
        BlendshapeConfig.from_json({"blendshape_params": [1]}, 2)


def test_config_normalises_sequences() -> None:
    cfg = BlendshapeConfig(active=np.array([1, 0, 1]), multipliers=np.array([1, 2, 3]))
    assert cfg.active == (True, False, True) and cfg.multipliers == (1.0, 2.0, 3.0)
    assert cfg.num_poses == 3
    with pytest.raises(ValueError, match="one-dimensional"):
        BlendshapeConfig(offsets=np.zeros((2, 2)))


def test_full_arkit_sized_problem_matches_scipy() -> None:
    # 52 poses with Mark's settings, read through from_json.
    rng = np.random.default_rng(13)
    n = len(ARKIT_NAMES)
    neutral, deltas, mask, targets, _ = make_problem(13, n, num_vertices=600, mask_size=450, frames=6)
    doc = nvidia_like_config()["blendshape_params"]
    p = params(
        n,
        l1=0.5,
        l2=0.5,
        t=0.3,
        s=100.0,
        bb=53.4505,
        active=doc["bsSolveActivePoses"],
        sym=doc["bsSolveSymmetryPoses"],
        mult=list(rng.uniform(0.5, 1.5, n)),
    )
    cfg = BlendshapeConfig.from_json({**doc, "bsWeightMultipliers": p["mult"]}, n)
    got = BlendshapeSolver(neutral, deltas, ARKIT_NAMES, mask, cfg).solve(targets)
    np.testing.assert_allclose(got, reference_weights(neutral, deltas, mask, p, targets), atol=1e-5)
