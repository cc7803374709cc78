"""Server settings: validation, TOML files and CLI flags (facecast.server.config, facecast.cli.serve)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("grpc")
pytest.importorskip("nvidia_audio2face_3d")

from facecast.server import ConfigError, ServerConfig  # noqa: E402


def test_server_config_validation_and_toml(tmp_path):
    path = tmp_path / "server.toml"
    path.write_text('[server]\nport = 0\nmax_streams = 3\nhost = "0.0.0.0"\n')
    cfg = ServerConfig.from_toml(path)
    assert (cfg.port, cfg.max_streams, cfg.host) == (0, 3, "0.0.0.0")
    path.write_text("max_stream = 3\n")
    with pytest.raises(ConfigError, match="unknown setting.*max_stream"):
        ServerConfig.from_toml(path)
    path.write_text("port = 'x'\n")
    with pytest.raises(ConfigError, match="port must be an integer"):
        ServerConfig.from_toml(path)
    with pytest.raises(ConfigError, match="together"):
        ServerConfig(tls_cert=str(path)).validate()
    with pytest.raises(ConfigError, match="max_batch"):
        ServerConfig(max_batch=0).validate()
    with pytest.raises(ConfigError, match="not a readable file"):
        ServerConfig(tls_cert="/nonexistent.pem", tls_key="/nonexistent.key").validate()
    assert ServerConfig().host == "127.0.0.1"


def test_cli_flags_override_the_config_file(tmp_path):
    import argparse

    from facecast.cli.serve import config_from_args, register

    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    path = tmp_path / "server.toml"
    path.write_text("max_streams = 3\nidle_timeout_seconds = 9.0\nport = 1234\n")
    token = tmp_path / "token"
    token.write_text("abc\n")
    args = parser.parse_args(["serve", "--grpc", "0", "--config", str(path), "--max-streams", "7",
                              "--token-file", str(token), "--precision", "int8"])  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.port, cfg.max_streams, cfg.idle_timeout_seconds, cfg.precision) == (0, 7, 9.0, "int8")
    assert cfg.resolved_token() == "abc" and "abc" not in json.dumps(cfg.public_dict())
    with pytest.raises(ConfigError, match="max_streams"):
        config_from_args(parser.parse_args(["serve", "--max-streams", "0"]))


def test_hostile_client_limits_are_settings(tmp_path):
    import argparse

    from facecast.cli.serve import config_from_args, register

    cfg = ServerConfig()
    assert (cfg.max_emotion_keys_per_message, cfg.max_emotion_keys_per_stream) == (1000, 10_000)
    assert (cfg.max_stream_seconds, cfg.min_audio_rate, cfg.audio_rate_window_seconds) == (600.0, 0.5, 20.0)
    path = tmp_path / "server.toml"
    path.write_text("[server]\nmin_audio_rate = 0.25\nmax_emotion_keys_per_stream = 500\n")
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["serve", "--config", str(path), "--max-stream-seconds", "90", "--audio-rate-window",
                              "5", "--max-emotion-keys-per-message", "10"])  # fmt: skip
    cfg = config_from_args(args)
    assert (cfg.min_audio_rate, cfg.max_emotion_keys_per_stream, cfg.max_stream_seconds) == (0.25, 500, 90.0)
    assert (cfg.audio_rate_window_seconds, cfg.max_emotion_keys_per_message) == (5.0, 10)
    for bad, match in ((dict(min_audio_rate=-1.0), "min_audio_rate"), (dict(max_stream_seconds=0.0), "max_stream"),
                       (dict(audio_rate_window_seconds=float("nan")), "audio_rate_window"),
                       (dict(max_emotion_keys_per_message=-1), "max_emotion_keys_per_message"),
                       (dict(max_emotion_keys_per_stream=1.5), "max_emotion_keys_per_stream")):  # fmt: skip
        with pytest.raises(ConfigError, match=match):
            ServerConfig(**bad).validate()
