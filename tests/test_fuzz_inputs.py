"""Hostile inputs: audio files, model packs, config files and CLI arguments end in a clear error or a correct result.

Property-based (hypothesis). Each test counts its cases in ``FUZZ_COUNTS``; ``tests/conftest.py`` prints the
totals at the end of the run.
"""

from __future__ import annotations

import io
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from facecast.audio import AudioError, load_audio, stream_audio
from facecast.pack import PackError, load_pack

FUZZ_COUNTS: dict[str, int] = {}
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _count(name: str) -> None:
    FUZZ_COUNTS[name] = FUZZ_COUNTS.get(name, 0) + 1


def _wav_bytes(samples: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, samples, rate, format="WAV", subtype=subtype)
    return buf.getvalue()


def _check_audio(path: Path) -> None:
    try:
        out = load_audio(path)
    except AudioError as exc:
        assert path.name in str(exc)
        return
    assert out.dtype == np.float32 and out.ndim == 1 and np.isfinite(out).all()


@FAST
@given(
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000, 96000, 192000]),
    channels=st.integers(1, 8),
    frames=st.integers(1, 3000),
    cut=st.one_of(st.none(), st.integers(0, 200)),
    subtype=st.sampled_from(["PCM_16", "PCM_24", "FLOAT", "PCM_U8"]),
    special=st.sampled_from(["none", "nan", "inf", "clip", "silence"]),
)
def test_fuzz_wav_files(tmp_path_factory, rate, channels, frames, cut, subtype, special):
    _count("audio_wav")
    rng = np.random.default_rng(frames)
    x = rng.uniform(-1, 1, (frames, channels)).astype(np.float32)
    if special == "silence":
        x[:] = 0
    elif special == "clip":
        x *= 10
    elif special in ("nan", "inf") and subtype == "FLOAT":
        x[frames // 2, 0] = np.nan if special == "nan" else np.inf
    data = _wav_bytes(x, rate, subtype)
    if cut is not None:
        data = data[: min(len(data), 44 + cut)]  # truncated: header and a few bytes of samples
    path = tmp_path_factory.mktemp("wav") / "in.wav"
    path.write_bytes(data)
    _check_audio(path)
    if special in ("nan", "inf") and subtype == "FLOAT" and cut is None:
        with pytest.raises(AudioError):
            load_audio(path)


@FAST
@given(blob=st.binary(max_size=600), header=st.sampled_from([b"", b"RIFF", b"fLaC", b"OggS", b"ID3", b"\xff\xfb"]))
def test_fuzz_random_bytes(tmp_path_factory, blob, header):
    _count("audio_random_bytes")
    path = tmp_path_factory.mktemp("bytes") / "in.wav"
    path.write_bytes(header + blob)
    _check_audio(path)
    try:
        for block in stream_audio(path, block_seconds=0.1):
            assert np.isfinite(block).all()
    except AudioError as exc:
        assert "in.wav" in str(exc)


@FAST
@given(declared=st.integers(0, 2**32 - 1), data_size=st.integers(0, 2**32 - 1), channels=st.integers(0, 70000),
       rate=st.integers(0, 2**32 - 1), bits=st.sampled_from([0, 8, 16, 24, 32, 64, 7]))  # fmt: skip
def test_fuzz_wav_headers(tmp_path_factory, declared, data_size, channels, rate, bits):
    """Lying headers (huge declared sizes, zero channels or rate) never crash or hang."""
    _count("audio_wav_headers")
    block = max(1, channels * max(bits, 8) // 8)
    fmt = struct.pack("<HHIIHH", 1, channels % 65536, rate, (rate * block) % 2**32, block % 65536, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt + b"data" + struct.pack("<I", data_size) + bytes(64)
    path = tmp_path_factory.mktemp("hdr") / "in.wav"
    path.write_bytes(b"RIFF" + struct.pack("<I", declared) + body)
    _check_audio(path)


# ------------------------------------------------------------------------------------------------------------
# model packs

MUTATIONS = ["delete", "json_garbage", "json_type", "traversal", "absolute", "npz_pickle", "npz_shape", "npz_huge",
             "npz_garbage", "npz_nan", "bs_names"]  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutation=st.sampled_from(MUTATIONS), pick=st.integers(0, 1000), value=st.one_of(
    st.none(), st.booleans(), st.integers(-5, 10**12), st.floats(allow_nan=True), st.text(max_size=20),
    st.lists(st.integers(), max_size=3)))  # fmt: skip
def test_fuzz_packs(small_pack, tmp_path_factory, mutation, pick, value):
    _count("packs")
    root = tmp_path_factory.mktemp("pack")
    from hostile import link_or_copy  # a symbolic link out of the pack would be refused

    shutil.copytree(small_pack, root, dirs_exist_ok=True, copy_function=link_or_copy)
    files = sorted(p.name for p in root.iterdir() if p.name != "network.onnx")
    jsons = [f for f in files if f.endswith(".json")]
    npzs = [f for f in files if f.endswith(".npz")]
    target = root / (jsons[pick % len(jsons)] if "json" in mutation or mutation in ("traversal", "absolute")
                     else npzs[pick % len(npzs)])  # fmt: skip
    if mutation == "delete":
        (root / files[pick % len(files)]).unlink()
    elif mutation == "json_garbage":
        target.write_bytes(target.read_bytes()[: pick % 50])
    elif mutation == "json_type":
        doc = json.loads(target.read_text())
        key = sorted(doc)[pick % len(doc)]
        doc[key] = value
        target.write_text(json.dumps(doc))
    elif mutation in ("traversal", "absolute"):
        doc = json.loads((root / "model.json").read_text())
        key = ["networkInfoPath", "modelConfigPath", "modelDataPath", "emotionDatabasePath"][pick % 4]
        doc[key] = "../../../etc/passwd" if mutation == "traversal" else "/etc/passwd"
        (root / "model.json").write_text(json.dumps(doc))
    else:
        with np.load(target, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        key = sorted(arrays)[pick % len(arrays)]
        if mutation == "npz_pickle":
            arrays[key] = np.array([{"x": 1}], dtype=object)
            np.savez(target, **arrays)
        elif mutation == "npz_shape":
            arrays[key] = np.zeros((pick % 7,) * (1 + pick % 3), np.float32)
            np.savez(target, **arrays)
        elif mutation == "npz_nan" and arrays[key].dtype.kind == "f" and arrays[key].size:
            arrays[key] = arrays[key].copy()
            arrays[key].flat[0] = np.nan
            np.savez(target, **arrays)
        elif mutation == "npz_huge":
            # an .npy header declaring a vast array over a few bytes of data
            buf = io.BytesIO()
            np.lib.format.write_array_header_1_0(buf, {"descr": "<f4", "fortran_order": False,
                                                       "shape": (10**6, 10**6, 3)})  # fmt: skip
            import zipfile

            with zipfile.ZipFile(target, "w") as zf:
                zf.writestr(f"{key}.npy", buf.getvalue() + bytes(16))
        elif mutation == "npz_garbage":
            target.write_bytes(target.read_bytes()[: pick % 300])
        elif mutation == "bs_names":
            arrays["poseNames"] = np.array([b"neutral", b"../../x", b"jawOpen"][: 1 + pick % 3], dtype="S")
            np.savez(target, **arrays)
    try:
        pack = load_pack(root)
    except PackError as exc:
        assert str(exc)
        return
    # a pack that loads must be usable: its implicit emotion resolves or raises a PackError
    try:
        assert pack.implicit_emotion.shape == (pack.network_info.implicit_emotion_len,)
    except PackError:
        pass


# ------------------------------------------------------------------------------------------------------------
# CLI arguments

WORDS = ["animate", "info", "batch", "bench", "-m", "-o", "--fps", "--emotion", "--face-param", "--formats",
         "--device", "--precision", "joy=2", "anger=1@-3", "skinStrength=x", "0", "-1", "nan", "1e9", "json,xyz",
         "/nonexistent", "--help-me", "", "=", "@", "--batch-size", "--no-blinks"]  # fmt: skip


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(argv=st.lists(st.sampled_from(WORDS), max_size=8))
def test_fuzz_cli_arguments(small_pack, tmp_path_factory, capsys, argv):
    """Random argument lists exit 0/1/2 with a one-line message, never a traceback."""
    _count("cli_args")
    from facecast.cli import main

    out = tmp_path_factory.mktemp("cli")
    wav = out / "a.wav"
    sf.write(wav, np.zeros(3200, np.float32), 16000)
    argv = [str(small_pack) if a == "-m" else a for a in argv]
    if argv and argv[0] in ("animate", "batch"):
        argv = [argv[0], str(wav), "-o", str(out / "o"), "-m", str(small_pack), *argv[1:]]
    if argv and argv[0] == "bench":
        argv = ["info"]  # the benchmark is too slow for a fuzz loop
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse usage errors and --help
        code = exc.code
    captured = capsys.readouterr()
    assert code in (0, 1, 2, None)
    assert "Traceback" not in captured.err


# ------------------------------------------------------------------------------------------------------------
# Config files (server TOML, training TOML)

SERVER_KEYS = ["host", "port", "model", "device", "backend", "threads", "precision", "fps", "max_streams",
               "max_batch", "batch_wait_ms", "max_pending_frames", "max_message_bytes", "max_clip_seconds",
               "idle_timeout_seconds", "tls_cert", "tls_key", "tls_client_ca", "token", "token_file",
               "bogus"]  # fmt: skip
TRAIN_KEYS = {"dataset": ["root", "actor", "fps", "frame_tolerance", "bogus"],
              "preprocess": ["cache_dir", "skin_components", "prune_stride"],
              "network": ["encoder", "num_layers", "buffer_len", "buffer_ofs", "freeze_encoder"],
              "train": ["batch_size", "max_steps", "lr", "device", "time_shift", "seed"],
              "deploy": ["out_dir", "source_shot", "source_frame"], "bogus": ["x"]}  # fmt: skip
TOML_VALUES = st.one_of(
    st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True), st.booleans(),
    st.sampled_from(['"cpu"', '"int8"', '"whisper"', '"0.0.0.0"', '""', '"../../etc/passwd"', '"auto"', "[]",
                     "[1, 2]", '{a = 1}', "nan", "inf", "-inf", '"\\u0000"']),
)  # fmt: skip


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return (
            "nan" if value != value else ("inf" if value > 0 else "-inf") if abs(value) == float("inf") else repr(value)
        )
    return str(value)


@FAST
@given(
    pairs=st.lists(st.tuples(st.sampled_from(SERVER_KEYS), TOML_VALUES), max_size=6),
    table=st.booleans(),
    garbage=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_fuzz_server_config_files(tmp_path_factory, pairs, table, garbage):
    """Random server TOML: a validated ServerConfig or a ConfigError naming the problem, nothing else."""
    _count("config_server")
    from facecast.server import ConfigError, ServerConfig

    path = tmp_path_factory.mktemp("cfg") / "server.toml"
    lines = ["[server]"] if table else []
    lines += [f"{key} = {_toml_value(value)}" for key, value in dict(pairs).items()]
    data = "\n".join(lines).encode()
    path.write_bytes(data if garbage is None else data + b"\n" + garbage)
    try:
        cfg = ServerConfig.from_toml(path)
    except ConfigError as exc:
        assert str(exc) and "Traceback" not in str(exc)
        return
    assert cfg.validate() is cfg and 0 <= cfg.port <= 65535 and cfg.max_streams >= 1


@FAST
@given(
    entries=st.lists(st.tuples(st.sampled_from(sorted(TRAIN_KEYS)), st.integers(0, 5), TOML_VALUES), max_size=8),
    garbage=st.one_of(st.none(), st.binary(max_size=40)),
)
def test_fuzz_training_config_files(tmp_path_factory, entries, garbage):
    """Random training TOML: a TrainConfig or a ConfigError with the file name, nothing else."""
    _count("config_train")
    from facecast.train.config import ConfigError, load_config

    path = tmp_path_factory.mktemp("cfg") / "train.toml"
    tables: dict[str, dict[str, str]] = {}
    for section, pick, value in entries:
        keys = TRAIN_KEYS[section]
        tables.setdefault(section, {})[keys[pick % len(keys)]] = _toml_value(value)
    text = "\n".join(f"[{name}]\n" + "\n".join(f"{k} = {v}" for k, v in body.items()) for name, body in tables.items())
    path.write_bytes(text.encode() if garbage is None else text.encode() + b"\n" + garbage)
    try:
        cfg = load_config(path)
    except ConfigError as exc:
        assert str(exc)
        return
    assert cfg.train.batch_size >= 1 and cfg.network.buffer_ofs <= cfg.network.buffer_len


# ------------------------------------------------------------------------------------------------------------
# glTF heads (facecast retarget --head): mutated small heads read or end in one GltfError, never hang


def _gltf_kinds() -> list[str]:
    """The valid heads the glTF fuzzers start from (a meshopt-compressed one when meshopt is installed)."""
    import importlib.util

    return ["facecast", "interleaved"] + (["meshopt"] if importlib.util.find_spec("meshopt") else [])


def _gltf_base(kind: str) -> tuple[dict, bytes]:
    from gltfheads import head_parts, interleaved_parts, meshopt_parts

    return {"facecast": head_parts, "meshopt": meshopt_parts}.get(kind, lambda: interleaved_parts()[:2])()


def _gltf_paths(value, prefix: tuple = ()) -> list[tuple]:
    """Every member and array item of a document, as key paths (iterative)."""
    out, stack = [], [(prefix, value)]
    while stack:
        path, item = stack.pop()
        children = item.items() if isinstance(item, dict) else enumerate(item) if isinstance(item, list) else ()
        for key, child in children:
            out.append((*path, key))
            stack.append(((*path, key), child))
    return sorted(out, key=repr)


GLTF_PATHS = {kind: _gltf_paths(_gltf_base(kind)[0]) for kind in _gltf_kinds()}
JSON_VALUES = st.one_of(
    st.integers(-(2**63), 2**64), st.integers(-3, 40), st.sampled_from([-1, -4, -(10**6), 2**31, 10**12, 252, 256]),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(), st.text(max_size=8),
    st.sampled_from(["data:", "data:;base64", "data:;base64,@@", "../outside.bin", "/etc/passwd", "VEC3", "MAT2"]),
    st.lists(st.integers(-2, 12), max_size=5), st.dictionaries(st.sampled_from(["bufferView", "count", "x"]),
                                                               st.integers(-2, 10**12), max_size=2),
)  # fmt: skip


def _check_gltf_outcome(path: Path) -> str:
    """Read a head: a GltfError naming the file, or a scene whose arrays are sane and which retargets and reads
    back. Each step is time-bounded; anything else (another exception, a hang, garbage) fails the test."""
    from gltfheads import time_bound

    from facecast.export.gltf_read import GltfError, read_gltf
    from facecast.export.retarget import check_node_graph, retarget

    try:
        with time_bound(10):
            scene = read_gltf(path)
    except GltfError as exc:
        message = str(exc)
        assert message.startswith(f"{path}: ") and "\n" not in message and "malformed glTF" not in message
        return "refused"
    check_node_graph(scene)
    assert all(0 <= r < len(scene.nodes) for r in scene.roots)
    for mesh in scene.meshes:
        v = len(mesh.vertices)
        assert mesh.vertices.shape == (v, 3) and mesh.vertices.dtype == np.float32 and np.isfinite(mesh.vertices).all()
        assert mesh.faces.ndim == 2 and mesh.faces.shape[1] == 3 and 0 <= mesh.faces.min() and mesh.faces.max() < v
        for extra in (mesh.normals, mesh.joint_weights):
            assert extra is None or (len(extra) == v and np.isfinite(extra).all())
        if mesh.targets is not None:
            assert mesh.targets.shape == (len(mesh.target_names), v, 3) and np.isfinite(mesh.targets).all()
            assert all(isinstance(name, str) for name in mesh.target_names)
    for node in scene.nodes:
        assert node.mesh is None or 0 <= node.mesh < len(scene.meshes)
        assert all(np.isfinite(x).all() for x in (node.translation, node.rotation, node.scale))
    for skin in scene.skins:
        assert all(0 <= j < len(scene.nodes) for j in skin.joints)
        assert skin.inverse_bind is None or np.isfinite(skin.inverse_bind).all()
    out = path.with_name("out.glb")
    from exporthelpers import make_animation

    with time_bound(10):
        retarget(make_animation(3), scene, out)  # anything that reads must retarget (eye/jaw walks, encoding)
        back = read_gltf(out)
    assert [len(m.vertices) for m in back.meshes] == [len(m.vertices) for m in scene.meshes]
    return "read"


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1), steps=st.integers(1, 4), base=st.sampled_from(_gltf_kinds()),
       form=st.sampled_from(["glb", "gltf", "damaged"]))  # fmt: skip
def test_fuzz_gltf_heads(tmp_path_factory, seed, steps, base, form):
    """Random structural mutations (wrong types, edge and out-of-range integers, graph damage, stride and size
    lies, odd URIs, random bytes in the binary chunk or the meshopt stream, container damage) of small valid heads."""
    import random

    from gltfheads import damage_container, glb_bytes, mutate

    _count("gltf_heads")
    rng = random.Random(seed)
    doc, binary = mutate(rng, *_gltf_base(base), steps)
    folder = tmp_path_factory.mktemp("gltf") / "head"
    folder.mkdir()
    (folder.parent / "outside.bin").write_bytes(bytes(1024))
    if form == "gltf":
        buffers = doc.get("buffers")
        if isinstance(buffers, list) and buffers and isinstance(buffers[0], dict) and "uri" not in buffers[0]:
            import base64

            buffers[0]["uri"] = "data:application/octet-stream;base64," + base64.b64encode(binary).decode()
        path = folder / "head.gltf"
        path.write_text(json.dumps(doc))
    else:
        data = glb_bytes(doc, binary)
        path = folder / "head.glb"
        path.write_bytes(damage_container(rng, data) if form == "damaged" else data)
    _count(f"gltf_heads_{_check_gltf_outcome(path)}")


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(base=st.sampled_from(_gltf_kinds()), pick=st.integers(0, 10**6), value=JSON_VALUES,
       delete=st.booleans())  # fmt: skip
def test_fuzz_gltf_fields(tmp_path_factory, base, pick, value, delete):
    """Every member of a valid head, one at a time, set to a hostile JSON value or deleted."""
    _count("gltf_fields")
    doc, binary = _gltf_base(base)
    path_keys = GLTF_PATHS[base][pick % len(GLTF_PATHS[base])]
    parent = doc
    for key in path_keys[:-1]:
        parent = parent[key]
    if delete and isinstance(parent, dict):
        del parent[path_keys[-1]]
    else:
        parent[path_keys[-1]] = value
    folder = tmp_path_factory.mktemp("gltf") / "head"
    folder.mkdir()
    (folder.parent / "outside.bin").write_bytes(bytes(1024))
    path = folder / "head.glb"
    from gltfheads import glb_bytes

    path.write_bytes(glb_bytes(doc, binary))
    _count(f"gltf_fields_{_check_gltf_outcome(path)}")


def test_report_fuzz_counts():
    """Runs last in this module: the counts must show every fuzzer ran."""
    print("fuzz cases:", json.dumps(FUZZ_COUNTS))
    assert all(
        FUZZ_COUNTS.get(k, 0) > 0
        for k in ("audio_wav", "audio_random_bytes", "packs", "cli_args", "config_server", "config_train")
    )
    assert FUZZ_COUNTS.get("gltf_heads", 0) > 0 and FUZZ_COUNTS.get("gltf_fields", 0) > 0


# ------------------------------------------------------------------------------------------------------------
# Devices, FIFOs, symbolic links and zip bombs: in place of every file of a pack, and of the files a user names

from hostile import PACK_FILES, PACK_NPZ  # noqa: E402 - this section's own helpers (tests/hostile.py)

DEVICE_KINDS = ("device_node", "link_dev_zero", "link_dev_urandom", "link_dev_null", "socket", "directory")
FIFO_KINDS = ("fifo", "link_to_fifo_inside")
SYMLINK_KINDS = ("link_outside_copy", "link_dangling_outside", "link_loop", "link_to_pack_folder",
                 "link_inside_copy", "link_absolute_inside")  # fmt: skip
LOADS_FINE = ("link_inside_copy", "link_absolute_inside")
"""Links that stay inside the pack are fine."""
BOMB_KINDS = ("extra_3gib", "named_3gib", "lying_header", "many_small", "not_npy")
HOSTILE_CLASS = {**{k: "devices" for k in DEVICE_KINDS}, **{k: "fifos" for k in FIFO_KINDS},
                 **{k: "symlinks" for k in SYMLINK_KINDS}}  # fmt: skip


def _hostile_pack(small_pack: Path, folder: Path) -> Path:
    from hostile import copy_pack

    assert tuple(sorted(p.name for p in small_pack.iterdir())) == PACK_FILES  # the parametrisation covers all
    return copy_pack(small_pack, folder / "pack")


def _plant(root: Path, name: str, kind: str, outside: Path) -> tuple[Path, ...]:
    """Put a ``kind`` in place of ``root / name``; returns FIFOs a hung reader could be released through."""
    import os

    from hostile import make_char_device, make_fifo, make_socket, replace_with_link

    path = root / name
    (root / "real").mkdir(exist_ok=True)
    if kind == "device_node":
        make_char_device(path)
    elif kind.startswith("link_dev_"):
        replace_with_link(path, "/dev/" + kind.removeprefix("link_dev_"))
    elif kind == "socket":
        make_socket(root / "s")  # AF_UNIX names are short: bind beside, then move into place
        path.unlink()
        os.replace(root / "s", path)
    elif kind == "directory":
        path.unlink()
        path.mkdir()
    elif kind == "fifo":
        return (make_fifo(path),)
    elif kind == "link_to_fifo_inside":
        replace_with_link(path, Path("real") / name)
        return (make_fifo(root / "real" / name),)
    elif kind == "link_outside_copy":
        shutil.copy2(path, outside / name)
        replace_with_link(path, outside / name)
    elif kind == "link_dangling_outside":
        replace_with_link(path, outside / "nothing" / name)
    elif kind == "link_loop":
        replace_with_link(path, Path("real") / name)
        replace_with_link(root / "real" / name, Path("..") / name)
    elif kind == "link_to_pack_folder":
        replace_with_link(path, ".")
    elif kind in ("link_inside_copy", "link_absolute_inside"):
        os.replace(path, root / "real" / name)
        replace_with_link(path, (root / "real" / name) if kind == "link_absolute_inside" else Path("real") / name)
    return ()


@pytest.mark.parametrize("kind", DEVICE_KINDS + FIFO_KINDS + SYMLINK_KINDS)
@pytest.mark.parametrize("name", PACK_FILES)
def test_fuzz_pack_file_kinds(small_pack, tmp_path, name, kind):
    """Every file of a pack replaced by a device, a FIFO, a socket, a folder or a symbolic link: refused fast, by
    name, in bounded memory (a device node is loaded in a child with capped memory); links inside still load."""
    from hostile import fails_fast, load_pack_in_child, peak_rss_bytes

    _count(HOSTILE_CLASS[kind])
    root = _hostile_pack(small_pack, tmp_path)
    fifos = _plant(root, name, kind, tmp_path)
    if kind == "device_node":  # reads like /dev/zero if ever opened
        said, grown_kib, _ = load_pack_in_child(root)
        assert said.startswith("REFUSED") and name in said and "character device" in said, said
        assert grown_kib < 200 * 1024
        return
    before = peak_rss_bytes()
    if kind in LOADS_FINE:
        pack = fails_fast(lambda: load_pack(root), timeout=60)
        assert pack.network_info.actor
        return
    with pytest.raises(PackError) as err:
        fails_fast(lambda: load_pack(root), timeout=60, fifos=fifos)
    text = str(err.value)
    words = {"link_to_fifo_inside": "FIFO", "link_to_pack_folder": "directory"}
    assert (words[kind] if kind in words else name) in text, text
    assert len(text) < 4000 and peak_rss_bytes() - before < 200 * 2**20


def _bomb(path: Path, kind: str) -> str:
    """Make the ``.npz`` at ``path`` a bomb of ``kind``; returns a word the refusal must hold."""
    import zlib

    from hostile import GiB, MiB, npy_header, npz_with, zeros_member

    if kind == "extra_3gib":
        npz_with(path, zeros_member("bomb", (3 * GiB // 4,)))
        return "'bomb'"
    if kind == "named_3gib":
        name = {"model_data.npz": "shapes_mean_skin", "implicit_emo_db.npz": "emo_db"}.get(path.name, "neutral")
        shape = (3 * GiB // 64, 16) if name == "emo_db" else (3 * GiB // 12, 3)
        npz_with(path, zeros_member(name, shape), drop=(name,))
        return name
    if kind == "lying_header":
        data = npy_header((10**6, 10**6, 3)) + bytes(16)
        npz_with(path, ("lie.npy", data, zlib.crc32(data), len(data), 0))
        return "'lie'"
    if kind == "many_small":
        npz_with(path, *[zeros_member(f"small{i}", (MiB // 4,)) for i in range(5)])
        return "arrays the format does not name"
    data = path.read_bytes()[:2000]  # a zip's start, not an .npy array
    npz_with(path, ("nested.npy", data, zlib.crc32(data), len(data), 0))
    return "'nested' is not an .npy array"


@pytest.mark.parametrize("kind", BOMB_KINDS)
@pytest.mark.parametrize("name", PACK_NPZ)
def test_fuzz_pack_zip_bombs(small_pack, tmp_path, name, kind):
    """Every ``.npz`` of a pack as a zip bomb (a few MB inflating to 3 GiB, a lying header, many small members, a
    member that is no array): refused from the headers, naming file and member, without the memory."""
    from hostile import fails_fast, peak_rss_bytes

    _count("zip_bombs")
    root = _hostile_pack(small_pack, tmp_path)
    word = _bomb(root / name, kind)
    assert (root / name).stat().st_size < 8_000_000
    before = peak_rss_bytes()
    with pytest.raises(PackError) as err:
        fails_fast(lambda: load_pack(root), timeout=60)
    assert name in str(err.value) and word in str(err.value), str(err.value)
    assert peak_rss_bytes() - before < 200 * 2**20


@pytest.mark.parametrize("kind", ["fifo", "device_node", "link_dev_zero", "link_dev_urandom", "socket", "directory"])
def test_fuzz_user_file_kinds(tmp_path, kind):
    """The files a user names (audio, animation JSON or NPZ) as a FIFO, a device, a socket or a folder: every
    reader says what it is (asked in a child with capped memory and a timeout)."""
    from hostile import readers_on

    _count(HOSTILE_CLASS.get(kind, "devices"))
    (tmp_path / "x").touch()
    _plant(tmp_path, "x", kind, tmp_path)
    words = {"fifo": "FIFO", "socket": "socket", "directory": "directory"}.get(kind, "character device")
    for reader, said in readers_on(tmp_path / "x").items():
        assert words in said and "empty" not in said, (reader, said)


def test_report_hostile_file_counts():
    """Runs after the hostile-file fuzzers: every class ran."""
    counts = {k: FUZZ_COUNTS.get(k, 0) for k in ("devices", "fifos", "symlinks", "zip_bombs")}
    print("hostile file cases:", json.dumps(counts))
    assert all(counts.values()), counts
