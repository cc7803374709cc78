"""int8 inference: each pack's int8 graph is measured against ONNX Runtime fp32 on held-out speech, the layers that
blow up stay fp32, the error is stored and shown, and above the limit fp32 runs instead.

Packs from several initialisations (tests/quantpacks.py), exported with anonymous names as NVIDIA's graphs are.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from quantpacks import anonymize, independent_pack, old_recipe_error

from facecast.infer import quantize as q
from facecast.infer import quantize_graph as g
from facecast.pack import load_pack


@pytest.fixture(scope="module", autouse=True)
def fewer_windows():
    """Half the speech of a real build (the tests' packs have one transformer layer, and 2 cores)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(q, "FEEDS", {"calibration": 24, "validation": 8, "held_out": 24})
        yield


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One int8 cache for the module: each pack is built once."""
    path = tmp_path_factory.mktemp("int8-cache")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FACECAST_CACHE", str(path))
        yield path


@pytest.fixture(scope="module")
def scaled_pack(tmp_path_factory):
    """Weights twice facecast's scale, anonymous names: every feature-extractor conv alone in int8 ruins the pose."""
    return independent_pack(tmp_path_factory.mktemp("scaled"), "scaled", seed=6)


def _fresh_error(pack, int8_path, seed: int = 42) -> float:
    """int8 against ORT fp32 on speech from a seed no build uses."""
    audio, emotion = q.calibration_data(pack.network_info, pack.implicit_emotion, count=24, seed=seed)
    return q.accuracy(pack.network_path, int8_path, audio, emotion)["error"]


def test_blow_ups_stay_fp32_and_the_rest_is_int8(scaled_pack, cache, tmp_path):
    assert old_recipe_error(scaled_pack, tmp_path) > 0.05  # what every-layer int8 gave: silently wrong
    pack = load_pack(scaled_pack)
    path = q.int8_network(pack)
    assert path is not None and path.parent == cache / "int8"
    report = json.loads(path.with_suffix(".json").read_text())
    assert report["status"] == "built" and report["recipe"] == q.RECIPE and report["graph"] == "windows"
    assert report["network"] == q._file_key(pack.network_path) and path.name.startswith(report["network"])
    assert 0 < report["error"] <= q.LIMIT and report["frames"] == 24
    assert 0 < report["int8_work_fraction"] < 1 and report["int8_layers"] > 0
    alone = report["layers_alone"]
    kept = [alone[name] for name in report["kept_fp32"]]
    assert kept and max(kept) > 0.05  # measured to blow up
    assert max(v for name, v in alone.items() if name not in report["kept_fp32"]) < 0.05
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    assert _fresh_error(pack, path) < 0.03  # independent of the build's own audio


def test_outlier_channels_are_smoothed_and_within_the_limit(cache, tmp_path):
    """Layer norms with outlier channels (as trained transformers have): SmoothQuant, then the same measurement."""
    pack = load_pack(independent_pack(tmp_path / "outlier", "outlier", seed=7))
    path = q.int8_network(pack)
    report = q.int8_report(pack)
    assert report is not None
    if path is None:  # refused is acceptable; silently wrong is not
        assert report["status"] == "refused" and (report["error"] is None or report["error"] > q.LIMIT)
    else:
        assert report["error"] <= q.LIMIT and _fresh_error(pack, path) < 0.03
    assert report["smoothed_inputs"] > 0


def test_info_shows_the_measured_error(scaled_pack, cache, capsys):
    from facecast.cli import main

    pack = load_pack(scaled_pack)
    report = q.int8_report(pack)
    if report is None:
        q.int8_network(pack)
        report = q.int8_report(pack)
    assert main(["info", str(scaled_pack)]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.strip().startswith("int8"))
    assert f"{report['error']:.1%} error (built" in line
    assert main(["info", str(scaled_pack), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)["int8"]["network"]
    assert summary["status"] == "built" and summary["error"] == report["error"]


def test_not_built_is_said_and_nothing_is_built(small_pack, tmp_path, monkeypatch, capsys):
    from facecast.cli import main

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path))
    assert main(["info", str(small_pack)]) == 0
    assert "int8         not built" in capsys.readouterr().out
    assert not (tmp_path / "int8").exists()


def test_refused_int8_runs_fp32_with_one_warning_line(chunk_pack, tmp_path, monkeypatch, capsys):
    from facecast import load_model

    monkeypatch.setenv("FACECAST_CACHE", str(tmp_path))
    monkeypatch.setattr(q, "LIMIT", 1e-7)  # no int8 graph is that close
    model = load_model(chunk_pack, device="cpu", precision="int8")
    pack = load_pack(chunk_pack)
    assert model.backend.path == pack.network_path and model.backend.chunk_path == pack.chunk_network_path
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("facecast: warning: int8 network.onnx refused: ")
    assert "network_chunk.onnx refused" in lines[0] and "fp32 is used" in lines[0]
    for chunks in (False, True):
        report = q.int8_report(pack, chunks)
        assert report["status"] == "refused" and report["error"] > 1e-7 and report["limit"] == 1e-7
    assert not list((tmp_path / "int8").glob("*.onnx"))  # no refused graph is left to be picked up
    fp32 = load_model(chunk_pack, device="cpu")
    clip = (np.random.default_rng(0).standard_normal(12000) * 0.2).astype(np.float32)
    np.testing.assert_array_equal(model.infer(clip).result, fp32.infer(clip).result)


def test_int8_is_cached_and_runs_through_the_engine(small_pack, cache):
    """facecast's own initialisation: everything worth it in int8, within the limit, reused, run by the engine."""
    from facecast import load_model

    pack = load_pack(small_pack)
    path = q.int8_network(pack)
    assert path is not None and q.int8_report(pack)["error"] <= q.LIMIT
    mtime = path.stat().st_mtime_ns
    assert q.int8_network(pack) == path and path.stat().st_mtime_ns == mtime  # reused, not rebuilt
    clip = (np.random.default_rng(0).standard_normal(12000) * 0.2).astype(np.float32)
    fp32 = load_model(small_pack, device="cpu").infer(clip)
    int8 = load_model(small_pack, device="cpu", precision="int8")
    assert int8.backend.path == path
    rel = np.sqrt(((int8.infer(clip).result - fp32.result) ** 2).mean()) / fp32.result.std()
    assert 0 < rel < 0.05


def test_gated_graph_is_fp32_with_gates_off_and_nodes_get_names(small_pack, tmp_path):
    """The sensitivity graph computes the fp32 network exactly when no gate is on; unnamed nodes get names."""
    src = tmp_path / "anon.onnx"
    src.write_bytes(load_pack(small_pack).network_path.read_bytes())
    anonymize(src)
    assert not any(n.name for n in onnx.load(str(src)).graph.node)
    pack = load_pack(small_pack)
    feeds = q.window_feeds(*q.calibration_data(pack.network_info, pack.implicit_emotion, count=8, seed=5))
    pre = q._prepare(src, tmp_path / "pre.onnx", dynamic=False)
    model = onnx.load(str(pre))
    names = [n.name for n in model.graph.node]
    assert all(names) and len(set(names)) == len(names)
    layers, _ = g.candidate_layers(model, g.constants(model))
    ranges, total = g.measure(model, layers, feeds)
    assert total > 0 and all(layer["macs"] > 0 for layer in layers)
    session = g.open_session(g.gated(model, layers, ranges))
    ref = g.run_feeds(g.open_session(src), feeds)
    off = g.run_feeds(session, feeds, {g.GATES: np.zeros(len(layers), np.float32)})
    on = g.run_feeds(session, feeds, {g.GATES: np.ones(len(layers), np.float32)})
    assert g.pose_error(ref, off) < 1e-4 < g.pose_error(ref, on)


def test_bench_reports_the_stored_error_beside_the_speed(small_pack, cache):
    from facecast.evaluation.bench import bench_network

    result = bench_network(small_pack, seconds=1.0, naive_frames=4, repeats=1, int8=True)
    stored = q.int8_report(load_pack(small_pack))
    assert result["int8"]["network"]["status"] == "built" and result["int8"]["network"]["error"] == stored["error"]
    assert result["int8"]["network"]["line"].startswith(f"{stored['error']:.1%} error (built")
    assert 0 < result["int8_accuracy_bench_audio"]["error"] < 0.05  # re-measured on the benchmark's own speech
    assert result["engine_int8_speedup_vs_fp32"] > 0 and result["engine_int8_frames_per_s"] > 0
