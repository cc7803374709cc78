"""Raw network pose writers: NPZ (arrays) and JSON (documented schema ``facecast.raw_pose/1``).

JSON schema: ``{"format": "facecast.raw_pose/1", "fps", "sample_rate", "num_frames", "num_shapes_skin",
"num_shapes_tongue", "frame_index": [N], "time": [N] seconds, "skin": [N][Ks] PCA coefficients,
"tongue": [N][Kt], "jaw": [N][15] keypoint deltas, "eyes": [N][4] (right x, right y, left x, left y),
"explicit_emotion": [N][10], "emotion_names": [10]}``.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from facecast.constants import EMOTION_NAMES
from facecast.fileio import atomic_write, write_npz
from facecast.infer.engine import NetworkOutput

FORMAT = "facecast.raw_pose/1"


def raw_pose_dict(out: NetworkOutput) -> dict:
    """The JSON document for a :class:`NetworkOutput`."""
    return {
        "format": FORMAT,
        "fps": out.fps,
        "sample_rate": out.sample_rate,
        "num_frames": len(out),
        "num_shapes_skin": out.num_shapes_skin,
        "num_shapes_tongue": out.num_shapes_tongue,
        "frame_index": out.frame_index.tolist(),
        "time": np.round(out.times, 6).tolist(),
        "skin": out.skin.tolist(),
        "tongue": out.tongue.tolist(),
        "jaw": out.jaw.tolist(),
        "eyes": out.eyes.tolist(),
        "explicit_emotion": out.explicit_emotion.tolist(),
        "emotion_names": list(EMOTION_NAMES),
    }


def write_raw_json(path: Path, out: NetworkOutput) -> Path:
    atomic_write(Path(path), lambda fh: fh.write(json.dumps(raw_pose_dict(out)).encode()))
    return Path(path)


def write_raw_npz(path: Path, out: NetworkOutput) -> Path:
    write_npz(
        Path(path),
        {
            "frame_index": out.frame_index,
            "time": out.times,
            "result": out.result,
            "skin": out.skin,
            "tongue": out.tongue,
            "jaw": out.jaw,
            "eyes": out.eyes,
            "emotion": out.emotion,
            "fps": np.float64(out.fps),
        },
    )
    return Path(path)
