"""Seeded text perturbations and a robustness report (accuracy drop and prediction flips per kind).

Every perturbation is a pure function ``(text, rng) -> str``: the same text and generator state give
the same output. :func:`perturb` gives each text a generator of its own, seeded from the run seed,
the perturbation kind and the text itself, so a text is perturbed the same way whatever batch it
is in and wherever it sits in that batch.

Redaction placeholders and pseudonyms (``<PERSON>``, ``<EMAIL_ADDRESS_1a2b3c4d5e6f>``,
``[PERSON_1a2b]``) are left untouched by the surface perturbations (typos, casing, whitespace,
punctuation): they are pipeline markers, not words. ``names`` replaces the person and place ones,
and names from a small English/Spanish gazetteer, with other gazetteer names; the labels of the
pipeline's tasks do not depend on names, so a robust model's predictions should not change.
"""

from __future__ import annotations

import hashlib
import random
import re
import unicodedata
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from llmops.evaluation.pii_probe import REDACTION_MARK
from llmops.evaluation.slices import accuracy

__all__ = [
    "CITIES",
    "FIRST_NAMES",
    "LAST_NAMES",
    "PERTURBATIONS",
    "Perturbation",
    "perturb",
    "perturb_casing",
    "perturb_names",
    "perturb_punctuation",
    "perturb_typos",
    "perturb_whitespace",
    "robustness_report",
]

Perturbation = Callable[[str, random.Random], str]

TYPO_RATE = 0.1  # share of eligible words (more than 3 letters) that get a typo; at least one

# --------------------------------------------------------------------------- gazetteer
# Common names and cities (English + Spanish) that are not also ordinary capitalised words.
FIRST_NAMES = (
    "John", "Mary", "James", "Linda", "Robert", "Patricia", "Michael", "Jennifer", "David", "Susan",
    "William", "Emily", "Sarah", "Thomas", "Jessica", "Daniel", "Olivia", "Peter",
    "María", "José", "Carmen", "Antonio", "Lucía", "Javier", "Elena", "Carlos", "Sofía", "Miguel",
    "Laura", "Pablo", "Juan", "Ana", "Isabel", "Diego", "Alejandro", "Marta",
)
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Jones", "Miller", "Davis", "Wilson", "Taylor", "Anderson", "Thompson",
    "García", "Martínez", "López", "Sánchez", "Pérez", "Gómez", "Fernández", "Ruiz", "Díaz", "Moreno",
    "Romero", "Navarro",
)
CITIES = (
    "London", "Manchester", "Dublin", "New York", "Chicago", "Boston", "Seattle", "Denver", "Atlanta",
    "Houston", "Dallas", "Toronto", "Sydney", "San Francisco", "Los Angeles",
    "Madrid", "Barcelona", "Sevilla", "Valencia", "Bilbao", "Zaragoza", "Málaga", "Granada", "Buenos Aires",
    "Bogotá", "Lima", "Montevideo", "Quito", "Ciudad de México",
)

# placeholder / pseudonym entity types that stand for a person or a place
_PERSON_TYPES = {"PERSON", "PER", "NAME"}
_PLACE_TYPES = {"LOCATION", "LOC", "GPE", "CITY", "PLACE"}


def _fold(value: str) -> str:
    """Case- and accent-insensitive form (María == Maria)."""
    decomposed = unicodedata.normalize("NFKD", value)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def _variants(names: Iterable[str]) -> dict[str, str]:
    """Spellings found in text -> gazetteer entry: as written, without accents, all upper case."""
    out: dict[str, str] = {}
    for name in names:
        plain = "".join(c for c in unicodedata.normalize("NFKD", name) if not unicodedata.combining(c))
        for spelling in (name, plain, name.upper(), plain.upper()):
            out.setdefault(spelling, name)
    return out


_GAZETTEER: dict[str, tuple[str, tuple[str, ...]]] = {}
for _kind, _pool in (("first", FIRST_NAMES), ("last", LAST_NAMES), ("city", CITIES)):
    for _spelling in _variants(_pool):
        _GAZETTEER[_spelling] = (_kind, _pool)

_NAMES_RE = re.compile(
    rf"(?P<mark>{REDACTION_MARK.pattern})"
    r"|(?<!\w)(?P<name>" + "|".join(re.escape(n) for n in sorted(_GAZETTEER, key=len, reverse=True)) + r")(?!\w)"
)


# --------------------------------------------------------------------------- helpers
def _protect(text: str) -> tuple[str, dict[str, str]]:
    """Replace redaction marks by single private-use characters (not letters, digits, spaces or
    punctuation), so surface perturbations leave them intact; :func:`_restore` puts them back."""
    marks = list(REDACTION_MARK.finditer(text))
    if not marks:
        return text, {}
    present = set(text)
    free = (chr(c) for c in range(0xE000, 0xF900) if chr(c) not in present)
    table: dict[str, str] = {}
    parts: list[str] = []
    last = 0
    for m in marks:
        sentinel = next(free)
        table[sentinel] = m.group(0)
        parts.append(text[last : m.start()])
        parts.append(sentinel)
        last = m.end()
    parts.append(text[last:])
    return "".join(parts), table


def _restore(text: str, table: dict[str, str]) -> str:
    for sentinel, mark in table.items():
        text = text.replace(sentinel, mark)
    return text


def _protected(fn: Callable[[str, random.Random], str]) -> Callable[[str, random.Random], str]:
    def wrapper(text: str, rng: random.Random) -> str:
        masked, table = _protect(text)
        return _restore(fn(masked, rng), table)

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


def _splice(text: str, edits: list[tuple[int, int, str]]) -> str:
    """Apply non-overlapping ``(start, end, replacement)`` edits."""
    parts: list[str] = []
    last = 0
    for start, end, new in sorted(edits):
        parts.append(text[last:start])
        parts.append(new)
        last = end
    parts.append(text[last:])
    return "".join(parts)


# --------------------------------------------------------------------------- perturbations
_LONG_WORD = re.compile(r"[^\W\d_]{4,}")


def _typo(word: str, rng: random.Random) -> str:
    """One keyboard slip (the first letter is kept): swap two adjacent letters, drop or double one."""
    op = rng.choice(("swap", "drop", "duplicate"))
    if op == "swap":
        spots = [i for i in range(1, len(word) - 1) if word[i] != word[i + 1]]
        if spots:
            i = rng.choice(spots)
            return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
        op = "drop"
    i = rng.randrange(1, len(word))
    if op == "drop":
        return word[:i] + word[i + 1 :]
    return word[:i] + word[i] + word[i:]


@_protected
def perturb_typos(text: str, rng: random.Random) -> str:
    """Typos (adjacent swap, dropped or doubled letter) in ~10% of the words longer than 3 letters."""
    words = list(_LONG_WORD.finditer(text))
    if not words:
        return text
    k = max(1, round(len(words) * TYPO_RATE))
    chosen = rng.sample(words, k)
    return _splice(text, [(m.start(), m.end(), _typo(m.group(0), rng)) for m in chosen])


def _title(word: str) -> str:
    for i, ch in enumerate(word):
        if ch.isalpha():
            return word[:i] + word[i:].lower()[:1].upper() + word[i + 1 :].lower()
    return word


_CASINGS: dict[str, Callable[[str], str]] = {"upper": str.upper, "lower": str.lower, "title": _title}


@_protected
def perturb_casing(text: str, rng: random.Random) -> str:
    """Random upper/lower/title case per word, or (one time in five) the whole text upper case."""
    if text.lower() == text.upper():  # nothing cased
        return text
    if rng.random() < 0.2:
        out = text.upper()
    else:
        out = re.sub(r"\S+", lambda m: _CASINGS[rng.choice(("upper", "lower", "title"))](m.group(0)), text)
    if out == text:
        out = text.upper() if text != text.upper() else text.lower()
    return out


_SPACES = ("  ", "   ", "\t", " \t")
_EDGES = (" ", "  ", "\t")


@_protected
def perturb_whitespace(text: str, rng: random.Random) -> str:
    """Doubled spaces and tabs between words, leading and trailing blanks (words are unchanged)."""
    if not text.strip():
        return text
    out = re.sub(r"(?<=\S) (?=\S)", lambda m: rng.choice(_SPACES) if rng.random() < 0.3 else " ", text)
    if rng.random() < 0.5:
        out = rng.choice(_EDGES) + out
    if rng.random() < 0.5:
        out = out + rng.choice(_EDGES)
    if out == text:
        out = out + rng.choice(_EDGES)
    return out


_TRAILING_PUNCT = re.compile(r"(?<=\S)[.,!?;:]+(?=\s|$)")
_LEADING_PUNCT = re.compile(r"(?<!\S)[¿¡]+(?=\S)")
_WORD_END = re.compile(r"(?<=\w)(?=\s|$)")


@_protected
def perturb_punctuation(text: str, rng: random.Random) -> str:
    """Remove punctuation at word boundaries (half of it) and add ``.,!?`` after some words."""
    removable = [*_TRAILING_PUNCT.finditer(text), *_LEADING_PUNCT.finditer(text)]
    addable = [m.start() for m in _WORD_END.finditer(text)]
    edits = [(m.start(), m.end(), "") for m in removable if rng.random() < 0.5]
    edits += [(pos, pos, rng.choice(".,!?")) for pos in addable if rng.random() < 0.15]
    if not edits:
        if removable:
            m = rng.choice(removable)
            edits = [(m.start(), m.end(), "")]
        elif addable:
            pos = rng.choice(addable)
            edits = [(pos, pos, rng.choice(".,!?"))]
    return _splice(text, edits)


def _pick(pool: Sequence[str], used: set[str], rng: random.Random, current: str = "") -> str:
    """A gazetteer entry that is neither ``current`` nor already in the text (as an original or
    a replacement), ignoring case and accents, so a swap never merges two different people."""
    fresh = [name for name in pool if _fold(name) not in used and _fold(name) != _fold(current)]
    if not fresh:
        fresh = [name for name in pool if _fold(name) != _fold(current)]
    choice = rng.choice(fresh)
    used.add(_fold(choice))
    return choice


def perturb_names(text: str, rng: random.Random) -> str:
    """Swap person names and places for others: gazetteer names (first names, surnames, cities)
    and person/place redaction marks (``<PERSON>``, ``<LOCATION_1a2b3c4d5e6f>``, ``[PERSON_1a2b]``).

    A name or pseudonym that occurs several times gets the same replacement each time; different
    ones get different replacements, none of them a name already in the text."""
    mapping: dict[str, str] = {}
    used = {_fold(m.group("name")) for m in _NAMES_RE.finditer(text) if m.group("name") is not None}

    def swap(m: re.Match[str]) -> str:
        token = m.group(0)
        if m.group("name") is not None:
            kind, pool = _GAZETTEER[token]
            key = f"{kind}:{_fold(token)}"
            if key not in mapping:
                mapping[key] = _pick(pool, used, rng, current=token)
            return mapping[key].upper() if token.isupper() and len(token) > 1 else mapping[key]
        etype = m.group("etype") or m.group("etype2")
        if etype not in _PERSON_TYPES | _PLACE_TYPES:
            etype = etype.rsplit("_", 1)[0]  # an upper-case tag: <PERSON_1A2B>
        if etype in _PERSON_TYPES:
            def pick() -> str:
                first = _pick(FIRST_NAMES, used, rng)
                return f"{first} {_pick(LAST_NAMES, used, rng)}" if rng.random() < 0.5 else first
        elif etype in _PLACE_TYPES:
            def pick() -> str:
                return _pick(CITIES, used, rng)
        else:
            return token
        if m.group("tag") is None and m.group("tag2") is None:
            return pick()  # a bare placeholder may stand for a different person each time
        if token not in mapping:
            mapping[token] = pick()
        return mapping[token]

    return _NAMES_RE.sub(swap, text)


PERTURBATIONS: dict[str, Perturbation] = {
    "typos": perturb_typos,
    "casing": perturb_casing,
    "whitespace": perturb_whitespace,
    "punctuation": perturb_punctuation,
    "names": perturb_names,
}


# --------------------------------------------------------------------------- batch + report
def _check_kind(kind: str) -> Perturbation:
    try:
        return PERTURBATIONS[kind]
    except KeyError:
        raise ValueError(f"unknown perturbation {kind!r}; valid: {', '.join(PERTURBATIONS)}") from None


def _text_seed(seed: int, kind: str, text: str) -> int:
    digest = hashlib.sha256(f"{seed}\x1f{kind}\x1f{text}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big")


def perturb(texts: Sequence[str], kind: str, seed: int = 0) -> list[str]:
    """Perturb every text with ``kind`` (one of :data:`PERTURBATIONS`). Each text gets a generator
    seeded from ``seed``, ``kind`` and the text, so results do not depend on batch order or size."""
    fn = _check_kind(kind)
    return [fn(text, random.Random(_text_seed(seed, kind, text))) for text in texts]


def robustness_report(
    predict: Callable[[list[str]], list[str]],
    texts: Sequence[str],
    references: Sequence[str],
    kinds: Iterable[str] = tuple(PERTURBATIONS),
    seed: int = 0,
    clean_predictions: Sequence[str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Per perturbation kind: ``clean_accuracy``, ``perturbed_accuracy``, ``drop`` (clean minus
    perturbed), ``flip_rate`` (share of predictions that changed), ``changed`` (share of texts the
    perturbation altered) and ``n``.

    ``predict`` runs on the clean texts (unless their ``clean_predictions`` are given, e.g. the
    evaluation's own) and, per kind, only on the texts that kind altered: a text a perturbation left
    as it was keeps its clean prediction (inference is deterministic), so a kind that changes few
    texts (``names``) costs few predictions."""
    kinds = list(kinds)
    for kind in kinds:
        _check_kind(kind)
    texts = list(texts)
    references = [str(r) for r in references]
    if len(texts) != len(references):
        raise ValueError(f"{len(texts)} texts but {len(references)} references")
    if not texts:
        raise ValueError("robustness_report needs at least one text")
    clean = [str(p) for p in (predict(texts) if clean_predictions is None else clean_predictions)]
    if len(clean) != len(texts):
        raise ValueError(f"{len(clean)} clean predictions for {len(texts)} texts")
    clean_acc = accuracy(clean, references)
    report: dict[str, dict[str, Any]] = {}
    for kind in kinds:
        perturbed = perturb(texts, kind, seed=seed)
        altered = [i for i, (a, b) in enumerate(zip(texts, perturbed, strict=True)) if a != b]
        preds = list(clean)
        if altered:
            got = [str(p) for p in predict([perturbed[i] for i in altered])]
            if len(got) != len(altered):
                raise ValueError(f"predict returned {len(got)} predictions for {len(altered)} texts")
            for i, p in zip(altered, got, strict=True):
                preds[i] = p
        acc = accuracy(preds, references)
        n = len(texts)
        report[kind] = {
            "clean_accuracy": clean_acc,
            "perturbed_accuracy": acc,
            "drop": clean_acc - acc,
            "flip_rate": sum(a != b for a, b in zip(clean, preds, strict=True)) / n,
            "changed": len(altered) / n,
            "n": n,
        }
    return report
