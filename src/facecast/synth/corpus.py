"""``build_corpus``: a synthetic training corpus in NVIDIA's Audio2Face-3D dataset layout (spec 10.2).

Each shot: random sentences -> a TTS voice with random rate / pitch (:mod:`facecast.synth.tts`) -> 16 kHz audio
with silent padding -> the procedural teacher's ARKit + tongue curves (:mod:`facecast.synth.teacher`) -> the
default character posed by them (:func:`facecast.characters.apply_weights`) -> augmented audio
(:mod:`facecast.synth.augment`). Written files (what :func:`facecast.train.dataset.load_dataset` reads)::

    audio/<shot>.wav                         16 kHz, augmented
    cache/skin/<shot>.npy                    [F, Vs, 3] float32, 30 fps (frame k at k / 30 s)
    cache/tongue/<shot>.npy                  [F, Vt, 3], in the jaw-stabilised frame (jaw shapes left out)
    geom/skin/neutral_pose.npy, lip_open_pose_delta.npy, eye_close_pose_delta.npy,
              lip_dist_vertex_list.json, eye_dist_vertex_list.json
    geom/tongue/neutral_pose.npy, rigid_vertex_list.json
    xform/jaw_keypoints_neutral.npy, jaw_keypoints_cache_all.npz {shot: [F, 5, 3] deltas},
          eye_rotations_all.npz {shot: [F, 2, 2] degrees}, eye_saccade_rotations.npy [5000, 2],
          eye_blink_keys.npy [N]
    bs_data/bs_skin.npz, bs_skin_config.json, bs_tongue.npz, bs_tongue_config.json
    corpus.json                              settings + per shot: voice, text, exact phones, augmentation,
                                             teacher ARKit [F, 52] and tongue [F, 16] curves
    meta/<shot>.json, meta/<shot>.npz        per-shot records (resume state; corpus.json is built from them)
    meta/_settings.json                      seed, settings and voice list; resuming with others is refused

Shot names carry voice, emotion and index (``espeak_enus_f3_joy_00012``), so the emotion label is inferred from
the name. Shot ``i`` is a pure function of ``(seed, i)`` and the voices available; the corpus is the shortest
prefix of shots reaching the requested minutes, so a run is deterministic whatever the number of workers, and
an interrupted run resumes where it stopped (shots whose ``meta/<shot>.json`` exists are kept).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import asdict, dataclass, field, replace
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from facecast.audio import resample, save_wav
from facecast.constants import ARKIT_NAMES, DEFAULT_FPS, EMOTION_NAMES, SAMPLE_RATE, TONGUE_NAMES
from facecast.fileio import atomic_write, read_json, write_json, write_npz
from facecast.synth import augment as aug
from facecast.synth import conversation as conv
from facecast.synth.phonemes import SILENCE, tidy_phones
from facecast.synth.teacher import TeacherParams, fixations, look_degrees, teach
from facecast.synth.text import LANGUAGES, make_text
from facecast.synth.tts import (
    BACKENDS,
    BackendUnavailable,
    Voice,
    available_voices,
    backend_status,
    parse_voice,
    synthesize,
)
from facecast.timing import num_frames

ALL_EMOTIONS: tuple[str, ...] = ("neutral", *EMOTION_NAMES)
BACKEND_WEIGHTS = {"espeak": 0.35, "piper": 0.25, "festival": 0.2, "flite": 0.2}
SACCADE_ROWS = 5000
CORPUS_VERSION = 1
SETTINGS_FILE = "_settings.json"
MAX_FAILURES = 20


@dataclass(frozen=True)
class CorpusConfig:
    """What to build; :func:`build_corpus` takes the same settings as keywords."""

    minutes: float = 10.0
    seed: int = 0
    voices: tuple[str, ...] | None = None  # backend names and/or BACKEND:NAME voices; None = everything here
    languages: tuple[str, ...] | None = None
    emotions: tuple[str, ...] = ALL_EMOTIONS
    neutral_share: float = 0.25
    shot_seconds: tuple[float, float] = (3.0, 9.0)
    padding: tuple[float, float] = (0.1, 0.4)
    augment: bool = True
    fps: float = DEFAULT_FPS
    channel_share: float = 0.0  # of augmented shots, the share also passed through a phone line or speech codec
    lip_press: tuple[float, float] = (TeacherParams.closure_press, TeacherParams.closure_roll)  # at bilabial contact
    conversation_share: float = 0.0  # the share of shots spoken conversationally (:mod:`facecast.synth.conversation`)
    consonant_jaw: float | None = None  # the teacher's jaw dominance of s, t, n, l, f ... (TeacherParams.consonant_jaw)

    def validate(self) -> CorpusConfig:
        if not self.minutes > 0:
            raise ValueError(f"minutes must be > 0, got {self.minutes}")
        if not 0.0 <= self.channel_share <= 1.0:
            raise ValueError(f"channel_share must be within 0 to 1, got {self.channel_share}")
        if not 0.0 <= self.conversation_share <= 1.0:
            raise ValueError(f"conversation_share must be within 0 to 1, got {self.conversation_share}")
        if self.consonant_jaw is not None and not 0.1 <= self.consonant_jaw <= 5.0:
            raise ValueError(f"consonant_jaw must be within 0.1 to 5, got {self.consonant_jaw}")
        if len(self.lip_press) != 2 or not all(0.0 <= v <= 1.0 for v in self.lip_press):
            raise ValueError(f"lip_press must be two weights within 0 to 1 (press, roll), got {self.lip_press}")
        bad = [e for e in self.emotions if e not in ALL_EMOTIONS]
        if bad or not self.emotions:
            raise ValueError(f"unknown emotions {bad}; choose from {', '.join(ALL_EMOTIONS)}")
        bad = [lang for lang in self.languages or () if lang not in LANGUAGES]
        if bad:
            raise ValueError(f"unknown languages {bad}; choose from {', '.join(LANGUAGES)}")
        return self


@dataclass
class ShotPlan:
    """Everything random about one shot, drawn from ``(seed, index)``."""

    index: int
    name: str
    voice: Voice
    emotion: str
    intensity: float
    text: str
    pad: tuple[float, float]
    augment: aug.AugmentParams | None
    seeds: dict[str, int] = field(default_factory=dict)
    conversation: conv.Conversation | None = None


def resolve_voices(
    voices: tuple[str, ...] | list[str] | None, languages: tuple[str, ...] | list[str] | None
) -> list[Voice]:
    """The voices to use: backends expand to their installed voices, ``BACKEND:NAME`` is taken as given."""
    if voices is None:
        chosen = available_voices(languages=languages)
    else:
        chosen = []
        backends = [v for v in voices if v in BACKENDS]
        if backends:
            chosen += available_voices(backends=backends, languages=languages)
        for spec in voices:
            if spec not in BACKENDS:
                voice = parse_voice(spec)
                if languages is None or voice.language in languages:
                    chosen.append(voice)
    if not chosen:
        status = "; ".join(f"{b}: {r or 'ok'}" for b, r in backend_status().items())
        raise BackendUnavailable(f"no usable TTS voice for voices={voices} languages={languages} ({status})")
    return list(dict.fromkeys(chosen))


def _pick_voice(rng: np.random.Generator, voices: list[Voice]) -> Voice:
    backends = sorted({v.backend for v in voices}, key=BACKENDS.index)
    weights = np.array([BACKEND_WEIGHTS[b] for b in backends])
    backend = backends[int(rng.choice(len(backends), p=weights / weights.sum()))]
    pool = [v for v in voices if v.backend == backend]
    langs = sorted({v.language for v in pool}, key=lambda lang: (lang != "en", lang))
    if len(langs) > 1:
        lw = np.array([len(langs) - 1.0 if lang == "en" else 1.0 for lang in langs])  # English about half
        lang = langs[int(rng.choice(len(langs), p=lw / lw.sum()))]
        pool = [v for v in pool if v.language == lang]
    return pool[int(rng.integers(len(pool)))]


def plan_shot(index: int, config: CorpusConfig, voices: list[Voice]) -> ShotPlan:
    """Shot ``index`` of the corpus (deterministic from the seed, the index and the voice list)."""
    rng = np.random.default_rng([config.seed, index])
    voice = _pick_voice(rng, voices)
    prosody = dict(
        rate=float(rng.uniform(0.8, 1.25)), pitch=float(rng.uniform(0.7, 1.4)), pitch_range=float(rng.uniform(0.6, 1.5))
    )
    if voice.backend != "espeak":  # only espeak-ng takes pitch settings; record what was really used
        prosody.update(pitch=1.0, pitch_range=1.0)
    voice = voice.with_prosody(**prosody)
    emotions = list(config.emotions)
    others = [e for e in emotions if e != "neutral"]
    if "neutral" in emotions and (not others or rng.uniform() < config.neutral_share):
        emotion = "neutral"
    else:
        emotion = others[int(rng.integers(len(others)))]
    intensity = 0.0 if emotion == "neutral" else float(rng.uniform(0.5, 1.0))
    seconds = float(rng.uniform(*config.shot_seconds))
    text = make_text(rng, voice.language, seconds, voice.rate)
    pad = (float(rng.uniform(*config.padding)), float(rng.uniform(*config.padding)))
    params = aug.random_params(rng, channel_share=config.channel_share) if config.augment else None
    seeds = {k: int(rng.integers(2**31)) for k in ("tts", "teacher", "augment", "babble")}
    conversation = None
    if config.conversation_share > 0 and rng.uniform() < config.conversation_share:  # no draw when off
        conversation = conv.plan_conversation(rng, voice, seconds, voices)
        voice, text = replace(voice, rate=conversation.rate), conversation.text
    name = f"{voice.tag}_{emotion}_{index:05d}"
    return ShotPlan(index, name, voice, emotion, intensity, text, pad, params, seeds, conversation)


# ----------------------------------------------------------------------------------------------------
# one shot (runs in a worker)

_CHARACTER = None


def _character():
    global _CHARACTER
    if _CHARACTER is None:
        from facecast.characters import build_default_character

        _CHARACTER = build_default_character()
    return _CHARACTER


def _babble_sources(plan: ShotPlan, voices: list[Voice], seconds: float) -> list[np.ndarray]:
    rng = np.random.default_rng(plan.seeds["babble"])
    espeak_voices = [v for v in voices if v.backend == "espeak"] or [plan.voice]
    out = []
    for _ in range(3):
        voice = espeak_voices[int(rng.integers(len(espeak_voices)))]
        sp = synthesize(make_text(rng, voice.language, seconds, 1.0), voice, seed=int(rng.integers(2**31)))
        out.append(resample(sp.audio, sp.sample_rate, SAMPLE_RATE))
    return out


def _pose(char, arkit: np.ndarray, tongue_w: np.ndarray) -> dict[str, np.ndarray]:
    from facecast.characters import JAW_SHAPE_INDICES, apply_weights

    posed = apply_weights(char, arkit, tongue_w)
    nojaw = arkit.copy()
    nojaw[:, JAW_SHAPE_INDICES] = 0.0
    tongue = char.parts["tongue"]
    nv = len(tongue.vertices)
    v = (nojaw @ char.arkit_deltas["tongue"].reshape(len(ARKIT_NAMES), nv * 3)).reshape(-1, nv, 3)
    v += (tongue_w @ char.tongue_deltas.reshape(len(TONGUE_NAMES), nv * 3)).reshape(-1, nv, 3)
    posed["tongue_stabilised"] = (v + tongue.vertices[None]).astype(np.float32)
    return posed


def _save_npy(path: Path, arr: np.ndarray) -> None:
    atomic_write(path, lambda fh: np.save(fh, np.ascontiguousarray(arr), allow_pickle=False))


def render_shot(plan: ShotPlan, out_dir: Path, config: CorpusConfig, voices: list[Voice]) -> dict:
    """Synthesise, teach, pose, augment and write one shot; returns its manifest record."""
    char = _character()
    if plan.conversation is not None:
        speech = conv.speak(plan.conversation, plan.voice, plan.seeds["tts"])
    else:
        speech = synthesize(plan.text, plan.voice, seed=plan.seeds["tts"])
    clean = resample(speech.audio, speech.sample_rate, SAMPLE_RATE)
    lead, tail = (round(p * SAMPLE_RATE) for p in plan.pad)
    clean = np.concatenate([np.zeros(lead, np.float32), clean, np.zeros(tail, np.float32)])
    offset = lead / SAMPLE_RATE
    duration = len(clean) / SAMPLE_RATE
    phones = tidy_phones(
        [(SILENCE, 0.0, offset), *[(p, s + offset, e + offset) for p, s, e in speech.phones]], duration
    )
    frames = num_frames(len(clean), config.fps)
    press, roll = config.lip_press
    params = TeacherParams(fps=config.fps, emotion=plan.emotion, intensity=plan.intensity, seed=plan.seeds["teacher"],
                           closure_press=press, closure_roll=roll, consonant_jaw=config.consonant_jaw)  # fmt: skip
    curves = teach(phones, frames, params, clean, SAMPLE_RATE, look_degrees(char.eye_look_rotations))
    audio = clean
    if plan.conversation is not None and plan.conversation.talker:
        talker = conv.talker_track(plan.conversation, voices, len(clean), SAMPLE_RATE, plan.seeds["babble"] + 1)
        audio = conv.mix_talker(clean, talker, plan.conversation.talker_snr_db, SAMPLE_RATE)
    if plan.augment is not None:
        babble = _babble_sources(plan, voices, duration) if plan.augment.noise == "babble" else None
        audio = aug.augment(audio, SAMPLE_RATE, plan.augment, plan.seeds["augment"], babble)
    posed = _pose(char, curves.arkit, curves.tongue)
    jaw = posed["lower_teeth"][:, char.jaw_keypoints] - char.neutral_jaw[None]
    eyes = np.einsum("fk,kec->fec", curves.arkit, char.eye_look_rotations.astype(np.float32))
    save_wav(out_dir / "audio" / f"{plan.name}.wav", audio, SAMPLE_RATE)
    _save_npy(out_dir / "cache" / "skin" / f"{plan.name}.npy", posed["skin"])
    _save_npy(out_dir / "cache" / "tongue" / f"{plan.name}.npy", posed["tongue_stabilised"])
    write_npz(
        out_dir / "meta" / f"{plan.name}.npz",
        {
            "jaw": jaw.astype(np.float32),
            "eyes": eyes.astype(np.float32),
            "arkit": curves.arkit,
            "tongue": curves.tongue,
        },
    )
    record = {
        "name": plan.name,
        "index": plan.index,
        "emotion": plan.emotion,
        "intensity": round(plan.intensity, 4),
        "voice": {**asdict(plan.voice), "tag": plan.voice.tag},
        "language": plan.voice.language,
        "text": plan.text,
        "tts_sample_rate": int(speech.sample_rate),
        "padding": [round(p, 6) for p in plan.pad],
        "phones": [[p, round(s, 6), round(e, 6)] for p, s, e in phones],
        "augmentation": plan.augment.to_json() if plan.augment is not None else None,
        "seeds": plan.seeds,
        "seconds": duration,
        "num_frames": frames,
    }
    if plan.conversation is not None:
        record["conversation"] = plan.conversation.to_json()
    write_json(out_dir / "meta" / f"{plan.name}.json", record)
    return record


def _worker_init() -> None:
    warnings.simplefilter("ignore")


def _worker(plan: ShotPlan, out_dir: str, config: CorpusConfig, voices: list[Voice]) -> dict:
    return render_shot(plan, Path(out_dir), config, voices)


# ----------------------------------------------------------------------------------------------------
# static files and the manifest


def write_static(out_dir: Path, char, seed: int, fps: float = DEFAULT_FPS) -> None:
    """Geometry, keypoints, saccade table, blink keys and blendshape files of the default character."""
    from facecast.characters import character_blendshape_sets

    skin_dir, tongue_dir, xform = out_dir / "geom" / "skin", out_dir / "geom" / "tongue", out_dir / "xform"
    _save_npy(skin_dir / "neutral_pose.npy", char.skin.vertices.astype(np.float32))
    _save_npy(skin_dir / "lip_open_pose_delta.npy", char.lip_open_pose_delta.astype(np.float32))
    _save_npy(skin_dir / "eye_close_pose_delta.npy", char.eye_close_pose_delta.astype(np.float32))
    write_json(skin_dir / "lip_dist_vertex_list.json", char.lip_dist_vertex_list())
    write_json(skin_dir / "eye_dist_vertex_list.json", char.eye_dist_vertex_list())
    _save_npy(tongue_dir / "neutral_pose.npy", char.parts["tongue"].vertices.astype(np.float32))
    motion = np.linalg.norm(char.tongue_deltas, axis=2).sum(axis=0)
    motion += np.linalg.norm(char.arkit_deltas["tongue"][ARKIT_NAMES.index("tongueOut")], axis=1)
    write_json(tongue_dir / "rigid_vertex_list.json", sorted(int(i) for i in np.argsort(motion, kind="stable")[:8]))
    _save_npy(xform / "jaw_keypoints_neutral.npy", char.neutral_jaw.astype(np.float32))
    table = fixations(SACCADE_ROWS, 30.0, np.random.default_rng([seed, 7919]), amplitude_deg=1.5)
    _save_npy(xform / "eye_saccade_rotations.npy", table.astype(np.float32))
    t = np.arange(int(0.34 * fps) + 2) / fps  # one blink: 85 ms close, 20 ms hold, 235 ms open
    keys = np.where(t < 0.085, 0.5 - 0.5 * np.cos(np.pi * t / 0.085), 1.0)
    opening = t > 0.105
    keys[opening] = 0.5 + 0.5 * np.cos(np.pi * np.clip((t[opening] - 0.105) / 0.235, 0, 1))
    _save_npy(xform / "eye_blink_keys.npy", keys.astype(np.float32))
    skin_bs, tongue_bs = character_blendshape_sets(char)
    skin_bs.write(out_dir / "bs_data" / "bs_skin.npz", out_dir / "bs_data" / "bs_skin_config.json")
    tongue_bs.write(out_dir / "bs_data" / "bs_tongue.npz", out_dir / "bs_data" / "bs_tongue_config.json")


def _finalise(out_dir: Path, records: list[dict], config: CorpusConfig, voices: list[Voice]) -> dict:
    jaw, eyes, shots = {}, {}, []
    for rec in records:
        with np.load(out_dir / "meta" / f"{rec['name']}.npz", allow_pickle=False) as data:
            jaw[rec["name"]], eyes[rec["name"]] = data["jaw"], data["eyes"]
            shots.append(
                {**rec, "arkit": np.round(data["arkit"], 4).tolist(), "tongue": np.round(data["tongue"], 4).tolist()}
            )
    write_npz(out_dir / "xform" / "jaw_keypoints_cache_all.npz", jaw)
    write_npz(out_dir / "xform" / "eye_rotations_all.npz", eyes)
    manifest = {
        "version": CORPUS_VERSION,
        "generator": "facecast synth",
        "config": _config_json(config),
        "voices": [v.tag for v in voices],
        "backends": backend_status(),
        "fps": config.fps,
        "sample_rate": SAMPLE_RATE,
        "seconds": float(sum(r["seconds"] for r in records)),
        "arkit_names": list(ARKIT_NAMES),
        "tongue_names": list(TONGUE_NAMES),
        "shots": shots,
    }
    atomic_write(out_dir / "corpus.json", lambda fh: fh.write(json.dumps(manifest, separators=(",", ":")).encode()))
    return manifest


def _config_json(config: CorpusConfig) -> dict:
    out = asdict(config)
    out.pop("minutes")
    if not out["channel_share"]:
        out.pop("channel_share")  # corpora built before the setting existed still resume
    if tuple(out["lip_press"]) == CorpusConfig.lip_press:
        out.pop("lip_press")  # likewise
    if not out["conversation_share"]:
        out.pop("conversation_share")
    if out["consonant_jaw"] is None:
        out.pop("consonant_jaw")
    return json.loads(json.dumps(out))


def _check_state(out_dir: Path, config: CorpusConfig, voices: list[Voice]) -> None:
    state = {"config": _config_json(config), "voices": [f"{v.backend}:{v.name}" for v in voices]}
    path = out_dir / "meta" / SETTINGS_FILE
    if path.is_file():
        old = read_json(path)
        if old != state:
            raise ValueError(
                f"{out_dir} holds a corpus built with other settings or voices ({path}); "
                "use a new folder, or the same --seed/--voices/--languages/--emotions"
            )
    else:
        write_json(path, state)


def _progress(total: float):
    if not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=round(total), unit="s", desc="synth (audio seconds)")


def build_corpus(
    out_dir: str | os.PathLike,
    minutes: float = 10.0,
    seed: int = 0,
    voices: tuple[str, ...] | list[str] | None = None,
    languages: tuple[str, ...] | list[str] | None = None,
    emotions: tuple[str, ...] | list[str] | None = None,
    workers: int = 2,
    augment: bool = True,
    **settings,
) -> dict:
    """Build (or resume) a synthetic corpus of at least ``minutes`` of audio under ``out_dir``; returns the manifest.

    ``voices``: backend names (``espeak``, ``festival``, ``flite``, ``piper``) and/or ``BACKEND:NAME`` voices;
    None uses every installed one. Backends that are not installed are left out (see :func:`backend_status`).
    Extra ``settings`` are :class:`CorpusConfig` fields.
    """
    config = CorpusConfig(
        minutes=float(minutes),
        seed=int(seed),
        voices=tuple(voices) if voices is not None else None,
        languages=tuple(languages) if languages is not None else None,
        emotions=tuple(emotions) if emotions else ALL_EMOTIONS,
        augment=augment,
        **settings,
    ).validate()
    out = Path(out_dir)
    voice_list = resolve_voices(config.voices, config.languages)
    for sub in ("audio", "cache/skin", "cache/tongue", "meta"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    _check_state(out, config, voice_list)
    write_static(out, _character(), config.seed, config.fps)
    target = config.minutes * 60.0
    records: list[dict] = []
    total = 0.0
    bar = _progress(target)
    pool = None
    if workers > 1:
        pool = ProcessPoolExecutor(workers, mp_context=get_context("spawn"), initializer=_worker_init)
    pending: dict[int, tuple[ShotPlan, Future | None]] = {}
    next_index = failures = 0
    try:
        while total < target:
            while len(pending) < max(1, 2 * workers):
                plan = plan_shot(next_index, config, voice_list)
                done = out / "meta" / f"{plan.name}.json"
                future = None
                if not done.is_file() and pool is not None:
                    future = pool.submit(_worker, plan, str(out), config, voice_list)
                pending[next_index] = (plan, future)
                next_index += 1
            index = min(pending)
            plan, future = pending.pop(index)
            record, error = _collect(plan, future, out, config, voice_list)
            if record is None:
                failures += 1
                warnings.warn(f"shot {plan.name} skipped: {error}", stacklevel=2)
                if failures >= MAX_FAILURES:
                    raise RuntimeError(
                        f"{failures} shots in a row failed (the finished ones are kept; run again to resume); "
                        f"the last error: {error}"
                    )
                continue
            failures = 0
            records.append(record)
            total += record["seconds"]
            if bar is not None:
                bar.update(min(round(total), round(target)) - bar.n)
    finally:
        for _, future in pending.values():
            if future is not None:
                future.cancel()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        if bar is not None:
            bar.close()
    kept = {r["name"] for r in records}
    for path in (out / "meta").glob("*.json"):  # shots past the prefix (in flight, or from a longer run)
        if path.name != SETTINGS_FILE and path.stem not in kept:
            _remove_shot(out, path.stem)
    for plan, _ in pending.values():
        if plan.name not in kept:
            _remove_shot(out, plan.name)
    return _finalise(out, records, config, voice_list)


def _collect(
    plan: ShotPlan, future: Future | None, out: Path, config: CorpusConfig, voices: list[Voice]
) -> tuple[dict | None, str]:
    """(the shot's record, "") or (None, why it failed)."""
    done = out / "meta" / f"{plan.name}.json"
    try:
        if future is not None:
            return future.result(), ""
        if done.is_file():
            return read_json(done), ""
        return render_shot(plan, out, config, voices), ""
    except BackendUnavailable:
        raise
    except (RuntimeError, ValueError, OSError, subprocess.SubprocessError) as exc:
        return None, str(exc)


def _remove_shot(out: Path, name: str) -> None:
    for path in (
        out / "audio" / f"{name}.wav",
        out / "cache" / "skin" / f"{name}.npy",
        out / "cache" / "tongue" / f"{name}.npy",
        out / "meta" / f"{name}.npz",
        out / "meta" / f"{name}.json",
    ):
        path.unlink(missing_ok=True)


def load_manifest(path: str | os.PathLike) -> dict:
    """``corpus.json`` with every shot's ``arkit`` and ``tongue`` curves as float32 arrays."""
    with open(path, encoding="utf-8") as fh:
        manifest = json.load(fh)
    for shot in manifest.get("shots", []):
        shot["arkit"] = np.asarray(shot["arkit"], np.float32).reshape(-1, len(ARKIT_NAMES))
        shot["tongue"] = np.asarray(shot["tongue"], np.float32).reshape(-1, len(TONGUE_NAMES))
    return manifest
