"""``facecast evaluate-lipsync``: facecast beside the peers on recorded and held-out TTS speech; Markdown + JSON.

In Python: ``report = evaluate_lipsync(model)`` (a model folder, a loaded ``Model``, or ``None`` for the built-in
one) runs every corpus and peer available here; ``report_markdown(report)`` and ``report_json(report)`` format it.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

from facecast.constants import DEFAULT_FPS
from facecast.evaluation.align import Aligner, AlignmentError
from facecast.evaluation.compare import format_cell
from facecast.evaluation.conditions import (
    Condition,
    ConditionUnavailable,
    degrade_utterances,
    describe,
    parse_conditions,
)
from facecast.evaluation.corpus import (
    HELD_OUT_VOICE,
    POCKETSPHINX_TESTDATA,
    Utterance,
    alsa_sounds,
    espeak_available,
    label_agreement,
    pocketsphinx_testdata,
    tts_corpus,
    with_noise,
)
from facecast.evaluation.espeak import libespeak_available
from facecast.evaluation.languages import (
    LANGUAGE_NAMES,
    TRAINED_LANGUAGES,
    language_corpus,
    language_voice,
    unmapped_share,
)
from facecast.evaluation.metrics import METRICS, MetricConfig, curves_from_weights, evaluate_curves, lip_geometry
from facecast.evaluation.peers import PEER_NAMES, FacecastSystem, LipSyncSystem, make_peer

CORPORA = ("recorded", "tts", "alsa")
_DESCRIPTIONS = {
    "recorded": "pocketsphinx-testdata cards + librivox (recorded, shipped transcripts, pocketsphinx-aligned)",
    "tts": "espeak-ng {voice} (held-out voice), phone timings from the synthesizer",
    "alsa": "alsa-utils voice clips (no transcript: silence/speech by loudness, stillness metrics only; n counts "
    "speech segments)",
}
_STILLNESS = {"speech_gap_sd_mm", "silence_motion_ratio", "silence_offset_ratio", "silence_motion_mm_s"}


def load_corpora(names: Sequence[str] = CORPORA, voice: str = HELD_OUT_VOICE) -> tuple[dict, list[str]]:
    """{corpus: [Utterance]} for the corpora available here, and notes on the ones that are not."""
    notes, out = [], {}
    aligner = None
    if {"recorded", "tts"} & set(names):
        try:
            aligner = Aligner()
        except AlignmentError as exc:
            notes.append(f"no forced alignment: {exc}")
    for name in names:
        utts: list[Utterance] = []
        if name == "recorded":
            if not (POCKETSPHINX_TESTDATA / "cards").is_dir():
                notes.append("recorded: pocketsphinx-testdata is not installed (apt-get install pocketsphinx-testdata)")
            elif aligner is not None:
                utts = pocketsphinx_testdata(aligner=aligner)
                notes += [f"recorded: {u.name} skipped, no alignment found" for u in utts if u.alignment is None]
                utts = [u for u in utts if u.alignment is not None]
        elif name == "tts":
            if libespeak_available():
                utts = tts_corpus(voice)
                notes.append(_tts_alignment_note(utts, aligner))
            elif espeak_available() and aligner is not None:
                utts = tts_corpus(voice, timing="pocketsphinx", aligner=aligner)
                notes.append("tts: libespeak-ng not loadable; phone timings forced-aligned by pocketsphinx")
            else:
                notes.append("tts: espeak-ng is not installed (apt-get install espeak-ng)")
                continue
        elif name == "alsa":
            utts = alsa_sounds()
            if not utts:
                notes.append("alsa: alsa-utils sounds are not installed (apt-get install alsa-utils)")
        else:
            raise ValueError(f"unknown corpus {name!r}; choose from {', '.join(CORPORA)}")
        if utts:
            out[name] = utts
    return out, notes


def _tts_alignment_note(utts: list[Utterance], aligner: Aligner | None) -> str:
    """How well pocketsphinx recovers the exact espeak timings: a yardstick for the recorded corpus's labels."""
    agree = []
    for utt in utts if aligner is not None else []:
        try:
            agree.append(label_agreement(utt.alignment, aligner.align(utt.audio, utt.transcript or "")))
        except AlignmentError:
            continue
    if not agree:
        return "tts: phone timings from libespeak-ng events (exact)"
    return (
        "tts: phone timings from libespeak-ng events (exact); pocketsphinx forced alignment of the same "
        f"sentences puts {100 * sum(agree) / len(agree):.0f}% of 10 ms frames in the same mouth class "
        "(SIL/bilabial/open/other), a yardstick for the label noise of the pocketsphinx-aligned recordings"
    )


def _progress(items: list, desc: str):
    if sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="clip")
    return items


def evaluate_systems(
    corpora: dict[str, list[Utterance]],
    systems: Sequence[LipSyncSystem],
    geometry,
    fps: float = DEFAULT_FPS,
    config: MetricConfig | None = None,
    n_boot: int = 200,
) -> dict:
    """Run every system on every utterance and score it: {corpus: {...,"metrics": {key: {system: cell}}}}."""
    config = config or MetricConfig()
    result = {}
    for cname, utts in corpora.items():
        per_system: dict[str, list] = {s.name: [] for s in systems}
        errors: dict[str, str] = {}
        for utt in _progress(utts, cname):
            for system in systems:
                if system.needs_transcript and not utt.transcript:
                    continue
                try:
                    out = system.animate(utt, fps)
                except Exception as exc:  # noqa: BLE001 - a peer failing on one clip is reported, not fatal
                    errors.setdefault(system.name, f"{utt.name}: {exc.__class__.__name__}: {exc}")
                    continue
                per_system[system.name].append(
                    curves_from_weights(geometry, out.weights, out.times, utt.alignment.phones, utt.name)
                )
        metrics: dict[str, dict] = {m.key: {} for m in METRICS}
        for sname, curves in per_system.items():
            if not curves:
                continue
            for key, cell in evaluate_curves(curves, config, n_boot).items():
                if cname == "alsa" and key not in _STILLNESS:
                    continue
                metrics[key][sname] = {**cell, "utterances": len(curves)}
        result[cname] = {
            "utterances": len(utts),
            "seconds": round(sum(u.duration for u in utts), 2),
            "phones": sum(1 for u in utts for p in u.alignment.phones if p.name not in ("SIL", "NSN", "SPN")),
            "clips": [u.name for u in utts],
            "metrics": {k: v for k, v in metrics.items() if v},
            "errors": errors,
        }
    return result


def evaluate_lipsync(
    model=None,
    corpora: Sequence[str] = CORPORA,
    peers: Sequence[str] = PEER_NAMES,
    voice: str = HELD_OUT_VOICE,
    fps: float = DEFAULT_FPS,
    n_boot: int = 200,
    config: MetricConfig | None = None,
    noise_snr_db: float | None = None,
    conditions: str | Sequence[str] | None = None,
    languages: Sequence[str] = (),
) -> dict:
    """The whole evaluation: facecast (``model``: a folder, a loaded ``Model``, ``None`` = built-in) and ``peers``
    on ``corpora``; returns the report as a dict (see :func:`report_markdown`, :func:`report_json`).
    ``noise_snr_db`` adds white noise at that SNR to every clip (:func:`facecast.evaluation.corpus.with_noise`);
    ``conditions`` (e.g. ``"telephone,opus:6,reverb"`` or ``"all"``, :mod:`.conditions`) measures every corpus
    again in each listening condition; ``languages`` adds a held-out TTS corpus per language (:mod:`.languages`)."""
    from facecast.characters import AnnyNotFoundError, build_default_character
    from facecast.model import load_model

    try:
        char = build_default_character()
    except AnnyNotFoundError as exc:
        raise RuntimeError(f"the lip metrics need the default character: {exc}") from None
    geometry = lip_geometry(char)
    loaded = model if hasattr(model, "animate") else load_model(model)
    systems: list[LipSyncSystem] = [FacecastSystem(loaded)]
    notes, skipped = [], {}
    for name in peers:
        try:
            systems.append(make_peer(name))
        except ImportError as exc:
            skipped[name] = f"not installed ({exc})"
    data, corpus_notes = load_corpora(corpora, voice)
    notes += corpus_notes
    descriptions = {name: _DESCRIPTIONS[name].format(voice=voice) for name in data}
    for lang in languages:
        utts = language_corpus(lang)
        data[f"lang:{lang}"] = utts
        seen = "language in training" if lang in TRAINED_LANGUAGES else "unseen language"
        unmapped = f"{100 * unmapped_share(utts):.1f}% of speech unmapped"
        descriptions[f"lang:{lang}"] = (
            f"{LANGUAGE_NAMES[lang]}, espeak-ng {language_voice(lang)} (held out; {seen}), exact timings, {unmapped}"
        )
    if noise_snr_db is not None:
        data = {name: with_noise(utts, noise_snr_db) for name, utts in data.items()}
        notes.append(f"white noise added to every clip at {noise_snr_db:g} dB below its mean power; phone "
                     "timings from the clean clips")  # fmt: skip
    if not data:
        raise RuntimeError("no evaluation speech is installed here; " + "; ".join(corpus_notes))
    per_condition: dict[str, dict] = {}
    for cond in parse_conditions(conditions) if conditions else [Condition("clean")]:
        try:
            degraded = {name: degrade_utterances(utts, cond) for name, utts in data.items()}
        except ConditionUnavailable as exc:
            notes.append(f"condition {cond.name} skipped: {exc}")
            continue
        measured = evaluate_systems(degraded, systems, geometry, fps, config, n_boot)
        for cname in measured:
            measured[cname]["description"] = descriptions[cname]
        per_condition[cond.name] = {"description": describe(cond), "corpora": measured}
    result = per_condition["clean"]["corpora"]
    return {
        "model": "built-in" if model is None else str(getattr(getattr(model, "pack", None), "root", model)),
        "random_weights": bool(getattr(loaded, "random_weights", False)),
        "fps": fps,
        "bootstrap": n_boot,
        "noise_snr_db": noise_snr_db,
        "neutral_gap_mm": round(10.0 * geometry.neutral_gap, 3),
        "systems": [s.name for s in systems],
        "skipped_systems": skipped,
        "metrics": [{"key": m.key, "label": m.label, "better": m.better, "n": m.count} for m in METRICS],
        "corpora": result,
        "conditions": {k: v for k, v in per_condition.items() if k != "clean"} if conditions else {},
        "condition_descriptions": {k: v["description"] for k, v in per_condition.items()},
        "notes": notes,
    }


def report_markdown(report: dict) -> str:
    """The report as Markdown: one table per corpus, metrics x systems, cells ``value ± bootstrap SE``."""
    systems = report["systems"]
    lines = [f"# Lip-sync evaluation (facecast model: {report['model']}"
             + (", RANDOM weights" if report["random_weights"] else "") + ")", ""]  # fmt: skip
    lines.append(
        f"Cells: value ± bootstrap standard error over utterances ({report['bootstrap']} resamples); "
        f"n = phones (or silences) the metric used. Neutral lip gap {report['neutral_gap_mm']} mm."
    )
    for cname, corpus in report["corpora"].items():
        labels = f"{corpus['phones']} phones" if corpus["phones"] else "no phone labels"
        size = f"{corpus['utterances']} utterances, {corpus['seconds']} s, {labels}."
        lines += ["", f"## {cname}: {corpus['description']}", "", size, ""]
        lines.append("| metric | better | n | " + " | ".join(systems) + " |")
        lines.append("|---|---|---|" + "---|" * len(systems))
        specs = {m["key"]: m for m in report["metrics"]}
        for key, cells in corpus["metrics"].items():
            n = max(c["n"] for c in cells.values())
            row = [specs[key]["label"], specs[key]["better"], str(n)]
            for s in systems:
                c = cells.get(s)
                if c is None:
                    row.append("-")
                    continue
                text = format_cell(c["value"], c["se"])
                row.append(text if c["n"] == n else f"{text} (n={c['n']})")
            lines.append("| " + " | ".join(row) + " |")
        for sname, err in corpus.get("errors", {}).items():
            lines.append(f"\n{sname} failed on some clips, first: {err}")
    lines += summary_markdown(report)
    if report["skipped_systems"] or report["notes"]:
        lines += ["", "Notes:"]
        lines += [f"- {name}: {why}" for name, why in report["skipped_systems"].items()]
        lines += [f"- {note}" for note in report["notes"]]
    return "\n".join(lines) + "\n"


HEADLINE = ("openness_r0", "open_bilabial_d", "closure_rate", "bilabial_min_gap", "rounding_d", "silence_motion_mm_s")
"""The metrics of the condition and language summary tables."""


def _summary_table(rows: list[tuple[str, dict]], key: str, systems: Sequence[str], label: str) -> list[str]:
    """Rows (a name, a corpus result) x systems for one metric key."""
    out = [f"| {label} | " + " | ".join(systems) + " |", "|---|" + "---|" * len(systems)]
    for name, corpus in rows:
        cells = corpus["metrics"].get(key, {})
        out.append(f"| {name} | " + " | ".join(format_cell(cells[s]["value"], cells[s]["se"]) if s in cells else "-"
                                              for s in systems) + " |")  # fmt: skip
    return out


def summary_markdown(report: dict) -> list[str]:
    """Conditions x systems (per corpus) and languages x systems tables of the :data:`HEADLINE` metrics."""
    systems = [s for s in report["systems"] if s != "neutral"]
    labels = {m["key"]: f"{m['label']} ({m['better']})" for m in report["metrics"]}
    lines: list[str] = []
    conditions = report.get("conditions") or {}
    for cname in report["corpora"] if conditions else ():
        rows = [("clean", report["corpora"][cname])]
        rows += [(cond, res["corpora"][cname]) for cond, res in conditions.items() if cname in res["corpora"]]
        lines += ["", f"## {cname} in listening conditions", ""]
        lines += [f"- {cond}: {report['condition_descriptions'][cond]}" for cond, _ in rows]
        for key in HEADLINE:
            lines += ["", f"### {labels[key]}", ""] + _summary_table(rows, key, systems, "condition")
    langs = [(c, r) for c, r in report["corpora"].items() if c.startswith("lang:")]
    if langs:
        lines += ["", "## Languages (held-out espeak-ng voices, exact phone timings)"]
        english = [("en (tts)", report["corpora"]["tts"])] if "tts" in report["corpora"] else []
        for key in HEADLINE:
            rows = english + [(c.removeprefix("lang:"), r) for c, r in langs]
            lines += ["", f"### {labels[key]}", ""] + _summary_table(rows, key, systems, "language")
    return lines


def _json_safe(obj):
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_json_safe(v) for v in obj]
    return obj


def report_json(report: dict) -> str:
    """The report as JSON (NaN written as null)."""
    return json.dumps(_json_safe(report), indent=2)
