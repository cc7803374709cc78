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
    shutil.copytree(small_pack, root, dirs_exist_ok=True, ignore=shutil.ignore_patterns("network.onnx"))
    (root / "network.onnx").symlink_to(small_pack / "network.onnx")
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


def test_report_fuzz_counts():
    """Runs last in this module: the counts must show every fuzzer ran."""
    print("fuzz cases:", json.dumps(FUZZ_COUNTS))
    assert all(
        FUZZ_COUNTS.get(k, 0) > 0
        for k in ("audio_wav", "audio_random_bytes", "packs", "cli_args", "config_server", "config_train")
    )
