"""The 7-class emotion vocabulary of DFME and AU-string parsing (spec §2.1, §2.2)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: label ids 0..6 (spec §2.1, fixed order)
EMOTIONS = ("happiness", "anger", "contempt", "disgust", "fear", "sadness", "surprise")
NUM_CLASSES = len(EMOTIONS)
SYNONYMS = {
    "happy": "happiness", "happiness": "happiness", "joy": "happiness",
    "anger": "anger", "angry": "anger",
    "contempt": "contempt", "contemptuous": "contempt",
    "disgust": "disgust", "disgusted": "disgust", "disgusting": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear",
    "sadness": "sadness", "sad": "sadness",
    "surprise": "surprise", "surprised": "surprise",
}  # fmt: skip


def emotion_id(
    name: str, vocabulary: tuple[str, ...] = EMOTIONS, synonyms: dict[str, str] | None = None
) -> int:
    """Label id of ``name`` (case-insensitive; synonyms such as ``happy``/``sad`` map onto the vocabulary);
    ``ValueError`` for names outside it."""
    key = str(name).strip().lower()
    mapped = (synonyms if synonyms is not None else SYNONYMS).get(key, key)
    if mapped not in vocabulary:
        raise ValueError(f"unknown emotion {name!r} (expected one of {', '.join(vocabulary)})")
    return vocabulary.index(mapped)


_AU_TOKEN = re.compile(r"^(?P<side>[LRB])?(?:AU)?(?P<number>\d+)(?P<intensity>[A-E])?$", re.IGNORECASE)


@dataclass(frozen=True)
class AUCode:
    """Parsed AU string: AU numbers (sorted, unique) and, per AU, laterality (``L``/``R``) and intensity (A–E)."""

    aus: tuple[int, ...] = ()
    laterality: dict[int, str] = field(default_factory=dict)
    intensity: dict[int, str] = field(default_factory=dict)


def parse_aus(text: str | float | int | None) -> AUCode:
    """``"1+2+4"``, ``"L12+R14"``, ``"AU4, 7"``, ``"12B"`` → :class:`AUCode`; empty/None → no AU.

    ``ValueError`` on a token that is not an AU (the message names the token)."""
    if text is None or (isinstance(text, float) and text != text):
        return AUCode()
    if isinstance(text, (int, float)):
        text = str(int(text))
    aus: set[int] = set()
    side: dict[int, str] = {}
    level: dict[int, str] = {}
    for token in re.split(r"[+,;/\s]+", str(text).strip()):
        if not token:
            continue
        match = _AU_TOKEN.match(token)
        if match is None:
            raise ValueError(f"AU token {token!r} is not an action unit (expected e.g. 4, AU4, L12, 12B)")
        number = int(match["number"])
        aus.add(number)
        if match["side"] and match["side"].upper() in "LR":
            side[number] = match["side"].upper()
        if match["intensity"]:
            level[number] = match["intensity"].upper()
    return AUCode(tuple(sorted(aus)), side, level)


def format_aus(aus: tuple[int, ...] | list[int]) -> str:
    """``(1, 2, 4)`` → ``"1+2+4"``."""
    return "+".join(str(a) for a in sorted(aus))
