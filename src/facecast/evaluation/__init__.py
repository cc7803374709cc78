"""Lip-sync evaluation on real speech with no 3D ground truth (issue 5, part 5).

Speech with phone timings (:mod:`.corpus`, :mod:`.align`: pocketsphinx forced alignment), the systems compared
(:mod:`.peers`), the metrics on the default head (:mod:`.metrics`) and the report (:mod:`.report`,
``facecast evaluate-lipsync``); listening conditions (:mod:`.conditions`: telephone, codecs, rooms, babble, music,
speed) and other languages (:mod:`.languages`), issue 24. Needs ``pocketsphinx==5.1.1`` and, for the peers,
``openfacefx`` and ``pylipsync``; the speech comes from Debian ``pocketsphinx-testdata``, ``alsa-utils`` and
``espeak-ng``; the codecs from PyAV and Debian ``sox``.
"""

from __future__ import annotations

from facecast.evaluation.align import Aligner, Alignment, AlignmentError, Phone, Word, align_speech, energy_alignment
from facecast.evaluation.conditions import ALL_CONDITIONS, Condition, degrade, degrade_utterances, parse_conditions
from facecast.evaluation.corpus import (
    HELD_OUT_SENTENCES,
    HELD_OUT_VOICE,
    Utterance,
    alsa_sounds,
    pocketsphinx_testdata,
    tts_corpus,
)
from facecast.evaluation.languages import ALL_LANGUAGES, ipa_to_cmu_multilingual, language_corpus
from facecast.evaluation.metrics import (
    METRICS,
    Curves,
    LipGeometry,
    MetricConfig,
    curves_from_weights,
    evaluate_curves,
    lip_geometry,
    openness_curve,
)
from facecast.evaluation.peers import PEER_NAMES, FacecastSystem, LoudnessBaseline, NeutralSystem, make_peer
from facecast.evaluation.report import evaluate_lipsync, report_json, report_markdown

__all__ = [
    "ALL_CONDITIONS",
    "ALL_LANGUAGES",
    "Condition",
    "degrade",
    "degrade_utterances",
    "ipa_to_cmu_multilingual",
    "language_corpus",
    "parse_conditions",
    "HELD_OUT_SENTENCES",
    "HELD_OUT_VOICE",
    "METRICS",
    "PEER_NAMES",
    "Aligner",
    "Alignment",
    "AlignmentError",
    "Curves",
    "FacecastSystem",
    "LipGeometry",
    "LoudnessBaseline",
    "MetricConfig",
    "NeutralSystem",
    "Phone",
    "Utterance",
    "Word",
    "align_speech",
    "alsa_sounds",
    "curves_from_weights",
    "energy_alignment",
    "evaluate_curves",
    "evaluate_lipsync",
    "lip_geometry",
    "make_peer",
    "openness_curve",
    "pocketsphinx_testdata",
    "report_json",
    "report_markdown",
    "tts_corpus",
]
