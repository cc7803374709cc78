"""Fixtures made by code: complete official-layout packs with random weights, for tests and demos.

Needs torch (the network is exported by facecast's own exporter).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import numpy as np

from facecast.constants import ARKIT_NAMES, EMOTION_NAMES, TONGUE_NAMES
from facecast.pack import BlendshapeSet, NetworkInfo, write_pack


def make_face_mesh(num_verts: int, rng: np.random.Generator) -> np.ndarray:
    """A rough head-like point set: a half ellipsoid ~20 units tall, y up, z towards the viewer."""
    u = rng.uniform(-1.3, 1.3, num_verts)
    v = rng.uniform(-1.0, 1.0, num_verts)
    x = 8.0 * np.sin(u)
    y = 12.0 * v
    z = 9.0 * np.cos(u) * np.sqrt(np.clip(1.0 - 0.5 * v**2, 0.0, None))
    return np.stack((x, y, z), axis=1).astype(np.float32)


def make_model_data(
    rng: np.random.Generator, num_shapes_skin: int, num_verts_skin: int, num_shapes_tongue: int, num_verts_tongue: int
) -> dict[str, np.ndarray]:
    """Random but well-formed ``model_data.npz`` arrays (orthonormal PCA bases, small deltas)."""

    def basis(k: int, v: int) -> np.ndarray:
        q, _ = np.linalg.qr(rng.standard_normal((3 * v, k)))
        return q.T.reshape(k, v, 3).astype(np.float32)

    skin = make_face_mesh(num_verts_skin, rng)
    tongue = (rng.standard_normal((num_verts_tongue, 3)) * [1.5, 0.5, 2.0] + [0, -4, 5]).astype(np.float32)
    jaw = np.array([[0, -8, 6], [-3, -7, 5], [3, -7, 5], [-5, -5, 2], [5, -5, 2]], np.float32)
    return {
        "shapes_matrix_skin": basis(num_shapes_skin, num_verts_skin),
        "shapes_mean_skin": skin,
        "lip_open_pose_delta": (rng.standard_normal((num_verts_skin, 3)) * 0.05).astype(np.float32),
        "eye_close_pose_delta": (rng.standard_normal((num_verts_skin, 3)) * 0.05).astype(np.float32),
        "shapes_matrix_tongue": basis(num_shapes_tongue, num_verts_tongue),
        "shapes_mean_tongue": tongue,
        "neutral_jaw": jaw,
        "saccade_rot_matrix": (rng.standard_normal((5000, 2)) * 0.5).astype(np.float32),
    }


def make_emotion_db(rng: np.random.Generator, shots: dict[str, int], length: int = 16) -> dict[str, np.ndarray]:
    """An ``implicit_emo_db.npz`` layout with one smooth random track per shot."""
    starts, rows = [], []
    total = 0
    for frames in shots.values():
        starts.append(total)
        walk = np.cumsum(rng.standard_normal((frames, length)) * 0.01, axis=0)
        rows.append(walk.astype(np.float32))
        total += frames
    return {
        "emo_db": np.concatenate(rows) if rows else np.zeros((0, length), np.float32),
        "emo_spec_names": np.array(list(shots), dtype="S"),
        "emo_spec_start": np.array(starts, np.int32),
        "emo_spec_size": np.array(list(shots.values()), np.int32),
    }


def make_blendshapes(
    rng: np.random.Generator, neutral: np.ndarray, names: tuple[str, ...], mask_fraction: float | None
) -> BlendshapeSet:
    """Sparse random deltas, one per pose, with a frontal mask when ``mask_fraction`` is given."""
    v = neutral.shape[0]
    deltas = np.zeros((len(names), v, 3), np.float32)
    for i in range(len(names)):
        idx = rng.choice(v, size=max(3, v // 6), replace=False)
        deltas[i, idx] = rng.standard_normal((len(idx), 3)) * 0.5
    mask = None
    if mask_fraction is not None:
        mask = np.sort(rng.choice(v, size=max(3, int(v * mask_fraction)), replace=False)).astype(np.int32)
    config = {
        "strengthL1regularization": 0.5,
        "strengthL2regularization": 0.5,
        "strengthTemporalSmoothing": 0.3,
        "strengthSymmetry": 100.0,
        "bsSolveActivePoses": [1] * len(names),
        "bsSolveCancelPoses": [-1] * len(names),
        "bsSolveSymmetryPoses": [-1] * len(names),
        "bsWeightMultipliers": [1.0] * len(names),
        "bsWeightOffsets": [0.0] * len(names),
        "templateBBSize": float(np.linalg.norm(neutral.max(0) - neutral.min(0))),
    }
    return BlendshapeSet(list(names), neutral, deltas, config, mask, "facecast-test")


def default_model_config(source_shot: str, source_frame: int = 0) -> dict:
    """``model_config.json`` values: the SDK's Mark defaults (spec 4.4)."""
    from facecast.face.params import FaceParams

    return FaceParams().model_config(source_shot, source_frame)


def make_pack(
    path: str | os.PathLike,
    *,
    num_layers: int = 1,
    num_shapes_skin: int = 12,
    num_shapes_tongue: int = 4,
    num_verts_skin: int = 300,
    num_verts_tongue: int = 40,
    actor: str = "testactor",
    seed: int = 0,
    blendshapes: bool = True,
    network=None,
) -> Path:
    """Write a complete official-layout pack with random weights into ``path`` and return it.

    ``network`` may be a ready :class:`~facecast.network.regression.RegressionNetwork` to export instead.
    """
    import torch

    from facecast.network.onnx_io import export_chunk_onnx, export_onnx
    from facecast.network.regression import NetworkConfig, RegressionNetwork

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    if network is None:
        torch.manual_seed(seed)
        cfg = NetworkConfig(num_layers=num_layers, num_shapes_skin=num_shapes_skin, num_shapes_tongue=num_shapes_tongue)
        network = RegressionNetwork(cfg)
    cfg = network.cfg
    info = NetworkInfo(
        actor=actor,
        num_shapes_skin=cfg.num_shapes_skin,
        num_verts_skin=num_verts_skin,
        num_shapes_tongue=cfg.num_shapes_tongue,
        num_verts_tongue=num_verts_tongue,
        explicit_emotions=list(EMOTION_NAMES),
        buffer_len=cfg.buffer_len,
        buffer_ofs=cfg.buffer_ofs,
    )
    data = make_model_data(rng, cfg.num_shapes_skin, num_verts_skin, cfg.num_shapes_tongue, num_verts_tongue)
    shots = {f"{actor}_neutral": 40, f"{actor}_joy": 30, f"{actor}_anger": 20}
    with tempfile.TemporaryDirectory(dir=path) as tmp:
        onnx_path = export_onnx(network, Path(tmp) / "network.onnx")
        chunk_path = export_chunk_onnx(network, Path(tmp) / "network_chunk.onnx") if cfg.chunk_frames else None
        write_pack(
            path,
            chunk_onnx=chunk_path,
            chunk_frames=cfg.chunk_frames,
            network_info=info,
            network_onnx=onnx_path,
            model_config=default_model_config(f"{actor}_neutral", 5),
            model_data=data,
            emotion_db=make_emotion_db(rng, shots),
            skin_blendshapes=make_blendshapes(rng, data["shapes_mean_skin"], ARKIT_NAMES, 0.8) if blendshapes else None,
            tongue_blendshapes=make_blendshapes(rng, data["shapes_mean_tongue"], TONGUE_NAMES, None)
            if blendshapes
            else None,
        )
    return path
