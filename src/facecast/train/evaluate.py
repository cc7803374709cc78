"""Evaluation of a trained network on the preprocessed shots.

Metrics (the spec's section 13 substitutes), computed against the PCA-reconstructed ground truth:

- ``mse``: mean squared error of the network result (all channels), the training MSE without augmentation;
- ``r2``: R² of the network result (all channels) against the targets, as NVIDIA's framework logs it;
- ``r2_skin``: R² of the skin PCA coefficients alone;
- ``mean_vertex_error``: mean Euclidean distance over skin vertices and frames;
- ``lip_vertex_error``: per frame, the largest squared distance over the lip vertices, averaged over frames
  (CodeTalker's lip vertex error);
- ``lip_closure_error``: mean |predicted - true| lip distance over frames where the true lips are closed (the
  true distance is below ``closure_threshold``).
"""

from __future__ import annotations

import numpy as np
import torch

from facecast.network.regression import RegressionNetwork
from facecast.train.preprocess import TrainingData
from facecast.train.sampling import TableShot, explicit_emotion, frame_windows


def r2(pred: np.ndarray, true: np.ndarray) -> float:
    """1 - MSE / mean squared deviation of ``true`` from its per-channel mean."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    denom = np.mean((true - true.mean(axis=0)) ** 2)
    return float(1.0 - np.mean((pred - true) ** 2) / max(denom, 1e-12))


def mean_vertex_error(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean Euclidean distance between corresponding vertices of [F, V, 3] arrays."""
    return float(np.linalg.norm(np.asarray(pred, np.float64) - true, axis=-1).mean())


def lip_vertex_error(pred: np.ndarray, true: np.ndarray, lip_vertices: np.ndarray) -> float:
    """Mean over frames of the maximum squared distance over the lip vertices."""
    diff = np.asarray(pred, np.float64)[:, lip_vertices] - np.asarray(true, np.float64)[:, lip_vertices]
    return float((diff**2).sum(axis=-1).max(axis=1).mean())


def lip_distances(vertices: np.ndarray, upper: list[int], lower: list[int]) -> np.ndarray:
    """Per frame, the mean vertical distance of the (upper, lower) lip vertex pairs: [F, V, 3] -> [F]."""
    return (vertices[:, upper, 1] - vertices[:, lower, 1]).mean(axis=1)


def lip_closure_error(
    pred: np.ndarray, true: np.ndarray, upper: list[int], lower: list[int], threshold: float
) -> float:
    """Mean |predicted - true| lip distance over the frames whose true distance is below ``threshold``;
    NaN when no frame is closed."""
    d_true, d_pred = lip_distances(true, upper, lower), lip_distances(pred, upper, lower)
    closed = d_true < threshold
    return float(np.abs(d_pred[closed] - d_true[closed]).mean()) if closed.any() else float("nan")


def predict_shot(
    network: RegressionNetwork,
    data: TrainingData,
    shot: TableShot,
    implicit: np.ndarray,
    frame_offset: float = 0.0,
    batch_size: int = 64,
) -> np.ndarray:
    """Network results [F, D] for every frame of a (real) shot, with per-frame implicit emotion [F, 16]."""
    cfg = network.cfg
    windows = frame_windows(data, shot.name, cfg.buffer_len, cfg.buffer_ofs, frame_offset)
    explicit = np.repeat(explicit_emotion(shot.emotion)[None], len(windows), axis=0)
    emotion = np.concatenate([implicit.astype(np.float32), explicit], axis=1)
    out = []
    network.eval()
    with torch.no_grad():
        for lo in range(0, len(windows), batch_size):
            x = torch.from_numpy(windows[lo : lo + batch_size])[:, None]
            e = torch.from_numpy(emotion[lo : lo + batch_size])[:, None]
            out.append(network(x, e)[:, 0].numpy())
    return np.concatenate(out)


def evaluate(
    network: RegressionNetwork,
    data: TrainingData,
    layout: list[TableShot],
    emotion_table: np.ndarray | None,
    shots: list[str] | None = None,
    closure_threshold: float | None = None,
    frame_offset: float = 0.0,
) -> dict:
    """Metrics per shot and over all evaluated frames; ``emotion_table`` None means zero implicit emotion."""
    by_name = {s.name: s for s in layout if not s.muted}
    names = shots or list(by_name)
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise ValueError(f"cannot evaluate unknown shots {unknown}; the training data has {sorted(by_name)}")
    lips = data.lip_dist_verts
    upper, lower = (lips["upper"], lips["lower"]) if lips else ([], [])
    lip_vertices = np.array(sorted(set(upper) | set(lower)), np.int64)
    ks = data.num_shapes_skin
    preds, trues = {}, {}
    for name in names:
        shot = by_name[name]
        implicit = (
            emotion_table[shot.row : shot.row + shot.frames]
            if emotion_table is not None
            else np.zeros((shot.frames, network.cfg.implicit_emotion_len), np.float32)
        )
        preds[name] = predict_shot(network, data, shot, implicit, frame_offset)
        trues[name] = data.shot_targets(data.shot(name))
    if closure_threshold is None and lips:
        neutral = float(lip_distances(data.skin.mean[None], upper, lower)[0])
        widest = max(float(lip_distances(data.skin.reconstruct(t[:, :ks]), upper, lower).max()) for t in trues.values())
        closure_threshold = neutral + 0.1 * max(widest - neutral, 0.0)

    def metrics(pred: np.ndarray, true: np.ndarray) -> dict:
        pv, tv = data.skin.reconstruct(pred[:, :ks]), data.skin.reconstruct(true[:, :ks])
        out = {
            "frames": int(len(true)),
            "mse": float(np.mean((pred.astype(np.float64) - true) ** 2)),
            "r2": r2(pred, true),
            "r2_skin": r2(pred[:, :ks], true[:, :ks]),
            "mean_vertex_error": mean_vertex_error(pv, tv),
        }
        if lips:
            out["lip_vertex_error"] = lip_vertex_error(pv, tv, lip_vertices)
            out["lip_closure_error"] = lip_closure_error(pv, tv, upper, lower, closure_threshold)
        return out

    report = {"shots": {n: metrics(preds[n], trues[n]) for n in names}}
    report["overall"] = metrics(np.concatenate(list(preds.values())), np.concatenate(list(trues.values())))
    report["closure_threshold"] = closure_threshold
    return report
