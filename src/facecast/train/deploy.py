"""Deploy a trained network as the official Audio2Face-3D file set (spec 4 and 10.7).

The result holds ``model.json``, ``network.onnx``, ``network_info.json``, ``model_config.json``,
``model_data.npz`` (the 8 official arrays), ``implicit_emo_db.npz``, ``trt_info.json`` and, when the dataset has
``bs_data/``, ``bs_skin.npz`` / ``bs_tongue.npz`` with their configs; it loads with :func:`facecast.load_model`.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from facecast.constants import EMOTION_NAMES
from facecast.fileio import FileFormatError
from facecast.network.onnx_io import export_chunk_onnx, export_onnx
from facecast.pack import BlendshapeSet, NetworkInfo, write_pack
from facecast.train import rest
from facecast.train.preprocess import TrainingData
from facecast.train.trainer import Checkpoint, load_checkpoint

INTEGER_KEYS = ("eye_saccade_seed", "source_frame")


FACECAST_KEYS = frozenset({"quiet_hold"})
"""facecast's own ``model_config.json`` values (written only when set): see :mod:`facecast.face.quiet`."""


def neutral_model_config(source_shot: str, source_frame: int = 0) -> dict:
    """``model_config.json`` values that pass the network's pose through unchanged (strengths 1, offsets 0)."""
    from facecast.face.params import FaceParams

    return FaceParams.neutral().model_config(source_shot, source_frame)


def trt_info(buffer_len: int, emotion_len: int, max_batch: int = 128, opt_batch: int = 10) -> dict:
    """``trt_info.json`` with trtexec shape profiles for this network's input sizes."""
    shapes = f"input:{{B}}x1x{buffer_len},emotion:{{B}}x1x{emotion_len}"
    return {
        "trt_build_param": {
            "cuda_in_graphics": ["--memPoolSize=tacticSharedMem:0.046875"],
            "batch": [
                "--minShapes=" + shapes.replace("{B}", "1"),
                "--optShapes=" + shapes.replace("{B}", "{OPT_BATCH_SIZE}"),
                "--maxShapes=" + shapes.replace("{B}", "{MAX_BATCH_SIZE}"),
            ],
        },
        "defaults": {"MAX_BATCH_SIZE": max_batch, "OPT_BATCH_SIZE": opt_batch},
    }


def model_data(data: TrainingData) -> dict[str, np.ndarray]:
    """The 8 official ``model_data.npz`` arrays."""
    return {
        "shapes_matrix_skin": data.skin.components.astype(np.float32),
        "shapes_mean_skin": data.skin.mean.astype(np.float32),
        "lip_open_pose_delta": data.lip_open_pose_delta.astype(np.float32),
        "eye_close_pose_delta": data.eye_close_pose_delta.astype(np.float32),
        "shapes_matrix_tongue": data.tongue.components.astype(np.float32),
        "shapes_mean_tongue": data.tongue.mean.astype(np.float32),
        "neutral_jaw": data.jaw_neutral.astype(np.float32),
        "saccade_rot_matrix": data.saccade.astype(np.float32),
    }


def emotion_db(checkpoint: Checkpoint) -> dict[str, np.ndarray]:
    """``implicit_emo_db.npz`` arrays: one learned row per frame of every shot (muted shots included)."""
    table = checkpoint.emotion_table.astype(np.float32)
    rows = [table[s.row : s.row + s.frames] for s in checkpoint.layout]
    sizes = np.array([s.frames for s in checkpoint.layout], np.int32)
    return {
        "emo_db": np.concatenate(rows),
        "emo_spec_names": np.array([s.name.encode() for s in checkpoint.layout], dtype="S"),
        "emo_spec_start": np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int32),
        "emo_spec_size": sizes,
    }


def read_blendshapes(folder: Path | None, data: TrainingData) -> tuple[BlendshapeSet | None, BlendshapeSet | None]:
    """``bs_data/bs_{skin,tongue}.npz`` (+ configs) of the dataset, checked against the PCA meshes."""
    if folder is None:
        return None, None
    out: list[BlendshapeSet | None] = []
    for part, verts in (("skin", data.skin.mean.shape[0]), ("tongue", data.tongue.mean.shape[0])):
        npz, config = folder / f"bs_{part}.npz", folder / f"bs_{part}_config.json"
        if not npz.is_file():
            out.append(None)
            continue
        bs = BlendshapeSet.read(npz, config if config.is_file() else None)
        if bs.neutral.shape[0] != verts:
            raise FileFormatError([f"{npz}: neutral has {bs.neutral.shape[0]} vertices, the {part} mesh has {verts}"])
        out.append(bs)
    return out[0], out[1]


def deploy(
    checkpoint: Checkpoint | str | os.PathLike,
    data: TrainingData,
    out_dir: str | os.PathLike,
    *,
    actor: str | None = None,
    source_shot: str | None = None,
    source_frame: int = 0,
    model_config: Mapping[str, float] | None = None,
    blendshapes_dir: str | os.PathLike | None = None,
    centre_rest: bool = False,
) -> Path:
    """Write the official file set for a checkpoint into ``out_dir`` and return it; ``centre_rest`` shifts the
    network's output biases so that silence with the deployed emotion gives the neutral face."""
    ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint)
    net = ckpt.network
    cfg = net.cfg
    if cfg.num_shapes_skin != data.num_shapes_skin or cfg.num_shapes_tongue != data.num_shapes_tongue:
        raise ValueError(
            f"{ckpt.path}: the network has {cfg.num_shapes_skin} skin / {cfg.num_shapes_tongue} tongue shapes, the "
            f"training data {data.num_shapes_skin} / {data.num_shapes_tongue}; preprocessing changed since training"
        )
    names = [s.name for s in ckpt.layout]
    shot = source_shot or names[0]
    if shot not in names:
        raise ValueError(f"deploy.source_shot {shot!r} is not a training shot (known: {', '.join(names[:8])}...)")
    source = next(s for s in ckpt.layout if s.name == shot)
    if not 0 <= source_frame < source.frames:
        raise ValueError(f"deploy.source_frame {source_frame} is outside shot {shot!r} (0..{source.frames - 1})")
    if centre_rest:
        net = copy.deepcopy(net)
        row = source.row + source_frame
        rest.centre_rest(net, rest.deployed_emotion(ckpt.emotion_table, row, cfg.num_explicit_emotions))
    config = neutral_model_config(shot, source_frame)
    for key, value in (model_config or {}).items():
        if key not in config and key not in FACECAST_KEYS:
            raise ValueError(f"deploy.model_config.{key} is not a model_config.json value")
        config[key] = int(value) if key in INTEGER_KEYS else float(value)
    info = NetworkInfo(
        actor=actor or data.actor,
        num_shapes_skin=cfg.num_shapes_skin,
        num_verts_skin=int(data.skin.mean.shape[0]),
        num_shapes_tongue=cfg.num_shapes_tongue,
        num_verts_tongue=int(data.tongue.mean.shape[0]),
        version="2.3",
        implicit_emotion_len=cfg.implicit_emotion_len,
        explicit_emotions=list(EMOTION_NAMES),
        buffer_len=cfg.buffer_len,
        buffer_ofs=cfg.buffer_ofs,
    )
    bs_dir = Path(blendshapes_dir) if blendshapes_dir is not None else None
    bs_skin, bs_tongue = read_blendshapes(bs_dir if bs_dir is not None and bs_dir.is_dir() else None, data)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out) as tmp:
        onnx_path = export_onnx(net, Path(tmp) / "network.onnx")
        chunk_path = export_chunk_onnx(net, Path(tmp) / "network_chunk.onnx") if net.cfg.chunk_frames else None
        write_pack(
            out,
            network_info=info,
            network_onnx=onnx_path,
            model_config=config,
            model_data=model_data(data),
            emotion_db=emotion_db(ckpt),
            skin_blendshapes=bs_skin,
            tongue_blendshapes=bs_tongue,
            trt_info=trt_info(cfg.buffer_len, cfg.emotion_len),
            chunk_onnx=chunk_path,
            chunk_frames=net.cfg.chunk_frames,
        )
    return out
