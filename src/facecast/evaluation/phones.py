"""CMU (ARPAbet) phone classes used by the lip-sync metrics, and the phone -> target mouth openness table.

The classes follow ``reference/encoder-probe.md`` (SIL / BIL / OPEN / OTHER) and add the rounded and spread
vowels of the lip-rounding metric. Phones are the 39 stress-less CMU phones plus ``SIL``.
"""

from __future__ import annotations

SILENCE = "SIL"
"""Silence (pocketsphinx ``<s>``, ``</s>`` and ``<sil>``)."""

NOISE = "NSN"
"""A filler that is neither speech nor silence (pocketsphinx noise fillers); ignored by every metric."""

SPEECH = "SPN"
"""Speech of unknown phones (energy segmentation of clips without a transcript)."""

VOWELS = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "IH", "IY", "OW", "OY", "UH", "UW"})
CONSONANTS = frozenset(
    {"B", "CH", "D", "DH", "F", "G", "HH", "JH", "K", "L", "M", "N", "NG", "P", "R", "S", "SH", "T", "TH", "V",
     "W", "Y", "Z", "ZH"}
)  # fmt: skip
CMU_PHONES = VOWELS | CONSONANTS

BILABIAL = frozenset({"P", "B", "M"})
"""Lips closed: the closure and contrast metrics."""

OPEN = frozenset({"AA", "AE", "AH", "AO", "AW", "AY", "EH", "ER", "EY", "OW"})
"""Open vowels (the encoder probe's OPEN class)."""

ROUNDED = frozenset({"UW", "OW", "AO", "UH"})
"""Rounded vowels: lips funnel / pucker."""

SPREAD = frozenset({"IY", "EH", "AE"})
"""Spread vowels: lips not rounded."""

CLOSE_VOWELS = frozenset({"IY", "IH", "UW", "UH"})
LABIODENTAL = frozenset({"F", "V"})

OPENNESS_LEVELS: dict[str, float] = {
    "silence, bilabial": 0.0,
    "labiodental F V": 0.2,
    "other consonant": 0.35,
    "close vowel IY IH UW UH": 0.5,
    "mid vowel EH EY ER AH OW OY": 0.75,
    "open vowel AA AE AO AW AY": 1.0,
}
"""The target openness of each phone group (documentation of :func:`target_openness`)."""


def target_openness(phone: str) -> float:
    """How open the mouth should be for a phone, 0 (closed or at rest) to 1 (open vowel); see OPENNESS_LEVELS."""
    if phone in BILABIAL or phone not in CMU_PHONES:
        return 0.0
    if phone in LABIODENTAL:
        return 0.2
    if phone in CONSONANTS:
        return 0.35
    if phone in CLOSE_VOWELS:
        return 0.5
    if phone in {"AA", "AE", "AO", "AW", "AY"}:
        return 1.0
    return 0.75


def phone_class(phone: str) -> str:
    """The encoder probe's mouth class of a phone: ``SIL``, ``BIL``, ``OPEN`` or ``OTHER``."""
    if phone in BILABIAL:
        return "BIL"
    if phone in OPEN:
        return "OPEN"
    if phone in CMU_PHONES:
        return "OTHER"
    return "SIL"


def normalize_phone(name: str) -> str:
    """An aligner's phone name as a stress-less CMU phone, ``SIL``, or ``NSN`` for any other filler."""
    base = name.strip().upper().rstrip("012")
    if base in CMU_PHONES or base == SILENCE:
        return base
    return NOISE
