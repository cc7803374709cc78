"""Blendshape name spellings at the edges: any usual spelling of an ARKit (or A2F tongue) pose -> Apple camelCase.

Understood: Apple camelCase (``jawOpen``), PascalCase as NIM and Live Link Face write it (``JawOpen``), side
suffixes ``_L``/``_R``, ``L``/``R``, ``Left``/``Right``, ``_left``/``_right`` (and side prefixes ``L_``), snake
and kebab case (``jaw_open``, ``eye-blink-left``), all lower or upper case, and prefixes such as
``blendShape1.jawOpen``, ``Head|jawOpen``, ``ns:jawOpen``, ``ARKit_jawOpen``. A side-suffixed spelling of an
unsided pose (``browInnerUp_L``, ``cheekPuff_R``) maps to the unsided pose.
"""

from __future__ import annotations

import re

from facecast.constants import ARKIT_NAMES, TONGUE_NAMES

_CANONICAL = {name.lower(): name for name in (*ARKIT_NAMES, *TONGUE_NAMES)}
_LEFT = {"l", "left", "lft", "lf"}
_RIGHT = {"r", "right", "rgt", "rt"}
_PREFIX = re.compile(r"^(arkit|apple|blendshapes?|bs|morph|shape)(?=[^a-z]|$)[_\-\s]*", re.IGNORECASE)
_TOKENS = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|[0-9]+")


def name_tokens(name: str) -> list[str]:
    """Lower-case words of a name split at separators and case changes ("grp_eyeLeft" -> grp, eye, left)."""
    return [t.lower() for part in re.split(r"[^A-Za-z0-9]+", name) for t in _TOKENS.findall(part)]


def normalize_arkit_name(name: str) -> str | None:
    """The Apple camelCase ARKit (or A2F tongue) name that ``name`` spells, or None when it spells none."""
    if not isinstance(name, str) or not name.strip():
        return None
    last = re.split(r"[.|:/\\]", name.strip())[-1]
    for candidate in (last, _PREFIX.sub("", last)):
        if not candidate:
            continue
        flat = re.sub(r"[^a-z0-9]", "", candidate.lower())
        if flat in _CANONICAL:
            return _CANONICAL[flat]
        tokens = name_tokens(candidate)
        sides = [i for i, t in enumerate(tokens) if t in _LEFT or t in _RIGHT]
        if not sides:
            continue
        i = sides[-1]
        side = "left" if tokens[i] in _LEFT else "right"
        base = "".join(tokens[:i] + tokens[i + 1 :])
        if base + side in _CANONICAL:
            return _CANONICAL[base + side]
        if base in _CANONICAL and not base.endswith(("left", "right")):
            return _CANONICAL[base]
    return None


def map_names(names: list[str] | tuple[str, ...]) -> dict[str, str]:
    """{name: Apple camelCase name} for the names that normalize (others are left out)."""
    out = {}
    for name in names:
        canonical = normalize_arkit_name(name)
        if canonical is not None:
            out[name] = canonical
    return out
