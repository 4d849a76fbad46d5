"""Unicode normalisation and clean-up, and the key used for exact deduplication."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

__all__ = ["dedup_key", "normalize_text"]

# C0/C1 control characters except tab/newline/carriage return; plus zero-width and BOM marks
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff]")
_SPACES = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_BLANK_LINES = re.compile(r"\n\s*\n+")
_ALL_WS = re.compile(r"\s+")


def normalize_text(text: str, *, form: Literal["NFC", "NFKC"] = "NFKC", strip_control: bool = True,
                   collapse_whitespace: bool = True) -> str:
    """Normalise Unicode (NFC/NFKC), drop control characters, collapse runs of spaces.

    Newlines are kept (collapsed to at most one blank line) so line-level quality filters still see
    the document's structure.
    """
    text = unicodedata.normalize(form, text)
    if strip_control:
        text = _CONTROL.sub("", text)
    if collapse_whitespace:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        text = _SPACES.sub(" ", text)
        text = "\n".join(line.strip() for line in text.split("\n"))
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip()


def dedup_key(text: str) -> bytes:
    """Exact-duplicate key: case-folded, NFKC, whitespace-insensitive, 16-byte blake2b digest."""
    canon = _ALL_WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()
    return hashlib.blake2b(canon.encode("utf-8", "surrogatepass"), digest_size=16).digest()
