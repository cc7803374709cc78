"""Phones to viseme-relevant classes: one shared table for every TTS backend.

Every backend reports IPA phones (festival and flite ARPAbet is converted by :func:`arpabet_to_ipa`) and
``"_"`` for silence. :func:`phone_units` splits a phone into articulatory units (a diphthong ``aɪ`` gives two,
an affricate ``tʃ`` one) and gives each its class and, for vowels, an openness in [0, 1] (0 = close ``i``/``u``,
1 = fully open ``a``) that the teacher turns into jaw opening.

Classes (what the mouth does):

========== ==================================================== ===================================
class      phones                                               mouth
========== ==================================================== ===================================
sil        pauses                                               near rest, lips slightly parted
bilabial   p b m ɓ ɸ β ʙ                                       lips closed
labiodental f v ʋ ɱ                                              lower lip to the upper teeth
dental     θ ð                                                  tongue tip between the teeth
alveolar   t d n l s z ɾ r ɬ ts dz ...                          tongue tip up, jaw nearly closed
postalveolar ʃ ʒ tʃ dʒ ɕ ʑ ʂ ʐ ...                              lips funnelled, tongue blade up
velar      k ɡ ŋ x ɣ χ ʁ ç c ɟ ɲ ...                            tongue back up
glottal    h ɦ ʔ ħ ʕ                                            no own target: takes its neighbours
open       a ɑ æ ɐ ʌ                                            jaw open
mid        ə ɜ ɛ ɘ ɤ                                            jaw half open, lips neutral
spread     i ɪ e ɨ ɯ j ᵻ                                       lips spread
rounded    u ʊ o ɔ ɒ y ʏ ø œ ɵ ʉ ɶ                              lips rounded / funnelled
rw         ɹ ɻ ʀ w ɥ ʍ ɰ                                       lips rounded, tongue bunched
========== ==================================================== ===================================
"""

from __future__ import annotations

import unicodedata

SILENCE = "_"
CLASSES: tuple[str, ...] = (
    "sil", "bilabial", "labiodental", "dental", "alveolar", "postalveolar", "velar", "glottal",
    "open", "mid", "spread", "rounded", "rw",
)  # fmt: skip
VOWEL_CLASSES = frozenset({"open", "mid", "spread", "rounded"})

# IPA symbol -> (class, openness). Openness only matters for vowels (and sets a little jaw for the rest).
_CONSONANTS: dict[str, str] = {}
for _cls, _symbols in (
    ("bilabial", "p b m ɓ ɸ β ʙ"),
    ("labiodental", "f v ʋ ɱ ⱱ"),
    ("dental", "θ ð"),
    ("alveolar", "t d n l s z ɾ r ɬ ɮ ɫ ɺ ts dz ʦ ʣ ʈ ɖ ɳ ɭ ɽ ɗ"),
    ("postalveolar", "ʃ ʒ tʃ dʒ ʧ ʤ ɕ ʑ tɕ dʑ ʂ ʐ tʂ dʐ ɧ"),
    ("velar", "k g ɡ ŋ x ɣ χ ʁ q ɢ ɴ ç ʝ c ɟ ɲ ʎ ʟ ɠ ʛ"),
    ("glottal", "h ɦ ʔ ħ ʕ ʜ ʢ ʡ"),
    ("rw", "ɹ ɻ ʀ w ɥ ʍ ɰ"),
):
    for _s in _symbols.split():
        _CONSONANTS[_s] = _cls

_VOWELS: dict[str, tuple[str, float]] = {
    "i": ("spread", 0.05), "y": ("rounded", 0.05), "ɨ": ("spread", 0.1), "ʉ": ("rounded", 0.1),
    "ɯ": ("spread", 0.1), "u": ("rounded", 0.1), "ɪ": ("spread", 0.2), "ʏ": ("rounded", 0.2),
    "ᵻ": ("spread", 0.2), "ʊ": ("rounded", 0.25), "e": ("spread", 0.35), "ø": ("rounded", 0.35),
    "ɘ": ("mid", 0.35), "ɵ": ("rounded", 0.35), "ɤ": ("mid", 0.35), "o": ("rounded", 0.4),
    "ə": ("mid", 0.4), "ɛ": ("mid", 0.6), "ε": ("mid", 0.6), "œ": ("rounded", 0.6), "ɜ": ("mid", 0.55),
    "ɞ": ("rounded", 0.55), "ʌ": ("open", 0.65), "ɔ": ("rounded", 0.65), "æ": ("open", 0.85),
    "ɐ": ("open", 0.7), "a": ("open", 1.0), "ɶ": ("rounded", 0.9), "ɑ": ("open", 1.0),
    "ɒ": ("rounded", 0.85), "j": ("spread", 0.0),
}  # fmt: skip

_EXPAND = {"ɚ": "əɹ", "ɝ": "ɜɹ", "ʤ": "dʒ", "ʧ": "tʃ", "ʦ": "ts", "ʣ": "dz"}
_DROP = set("ˈˌːˑ.-‿;|'0123456789˥˦˧˨˩↓↑ʲʷˠˤʰ̃̚˞") | {" "}
_CONSONANT_OPENNESS = 0.15
_MAX_SYMBOL = max(len(s) for s in (*_CONSONANTS, *_VOWELS))

ARPABET: dict[str, str] = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "eh": "ɛ",
    "er": "ɝ", "ey": "eɪ", "ih": "ɪ", "ix": "ᵻ", "iy": "i", "ow": "oʊ", "oy": "ɔɪ", "uh": "ʊ", "uw": "u",
    "ux": "ʉ", "b": "b", "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "el": "əl", "em": "əm", "en": "ən",
    "f": "f", "g": "ɡ", "hh": "h", "h": "h", "jh": "dʒ", "k": "k", "l": "l", "m": "m", "n": "n", "ng": "ŋ",
    "nx": "ɾ", "p": "p", "q": "ʔ", "r": "ɹ", "s": "s", "sh": "ʃ", "t": "t", "th": "θ", "v": "v", "w": "w",
    "wh": "ʍ", "y": "j", "z": "z", "zh": "ʒ",
    "pau": SILENCE, "h#": SILENCE, "sil": SILENCE, "brth": SILENCE, "#": SILENCE, "ssil": SILENCE,
}  # fmt: skip


def arpabet_to_ipa(phone: str) -> str:
    """An ARPAbet / festival radio phone (``hh``, ``ax``, ``pau``, stress digits allowed) as IPA; silence is ``_``."""
    key = phone.strip().lower().rstrip("012")
    if key not in ARPABET:
        raise KeyError(f"unknown ARPAbet phone {phone!r}")
    return ARPABET[key]


def _normalise(phone: str) -> str:
    text = unicodedata.normalize("NFD", phone)
    for src, dst in _EXPAND.items():
        text = text.replace(src, dst)
    kept = [c for c in text if c not in _DROP and not unicodedata.combining(c)]
    # espeak writes Mandarin aspiration as a plain trailing "h" ("th", "tɕh"): drop it after a consonant.
    if len(kept) >= 2 and kept[-1] == "h" and "".join(kept[:-1]) in _CONSONANTS:
        kept.pop()
    return "".join(kept)


def phone_units(phone: str) -> list[tuple[str, float]]:
    """(class, openness) units of an IPA phone, in order; ``_``, ``""`` and ``(en)``-style markers give
    ``[("sil", 0)]``. Unknown symbols are skipped, so a phone of modifiers only (``ʲ``) gives ``[]``: it belongs to
    the phone before it.
    """
    if phone in ("", SILENCE) or phone.startswith("("):
        return [("sil", 0.0)]
    text = _normalise(phone)
    units: list[tuple[str, float]] = []
    i = 0
    while i < len(text):
        for size in range(min(_MAX_SYMBOL, len(text) - i), 0, -1):
            sym = text[i : i + size]
            if sym in _CONSONANTS:
                units.append((_CONSONANTS[sym], _CONSONANT_OPENNESS))
                break
            if sym in _VOWELS:
                units.append(_VOWELS[sym])
                break
        else:
            size = 1
        i += size
    return units


def phone_class(phone: str) -> str:
    """The main class of a phone: its first vowel unit if it has one, else its first unit."""
    units = phone_units(phone) or [("sil", 0.0)]
    return next((c for c, _ in units if c in VOWEL_CLASSES), units[0][0])


def tidy_phones(
    segments: list[tuple[str, float, float]], duration: float, min_pause: float = 0.05
) -> list[tuple[str, float, float]]:
    """Contiguous phones covering ``[0, duration]`` from raw (phone, start, end) segments.

    Segments are sorted and clipped; gaps and the lead-in become silence ``_``; language-switch markers such as
    ``(en)`` and empty phones become silence; adjacent silences merge; an interior silence shorter than
    ``min_pause`` is absorbed by the phone before it (it is a word boundary, not a pause).
    """
    raw = sorted(((p, max(0.0, s), min(duration, e)) for p, s, e in segments), key=lambda x: x[1])
    out: list[list] = []
    cursor = 0.0
    for phone, start, end in raw:
        if end <= start or end <= cursor:
            continue
        start = max(start, cursor)
        if phone == "" or phone.startswith("("):
            phone = SILENCE
        if start > cursor + 1e-9:
            out.append([SILENCE, cursor, start])
        out.append([phone, start, end])
        cursor = end
    if out and out[-1][0] != SILENCE and duration - cursor < min_pause:
        out[-1][2] = duration
    elif duration > cursor + 1e-9 or not out:
        out.append([SILENCE, cursor, duration])
    merged: list[list] = []
    for seg in out:
        if merged and seg[0] == SILENCE and merged[-1][0] == SILENCE:
            merged[-1][2] = seg[2]
        else:
            merged.append(seg)
    tidy: list[list] = []
    for k, seg in enumerate(merged):
        interior = 0 < k < len(merged) - 1
        if seg[0] == SILENCE and interior and seg[2] - seg[1] < min_pause and tidy:
            tidy[-1][2] = seg[2]
        else:
            tidy.append(seg)
    return [(p, float(s), float(e)) for p, s, e in tidy]
