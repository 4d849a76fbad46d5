"""Quality heuristics in the spirit of Gopher / C4, and offline language identification.

Each check returns ``None`` (keep) or a short reason string used in the manifest's
``counts.by_reason.filtered``. Thresholds come from :class:`llmops.config.FilterConfig`.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import lru_cache
from typing import Any

__all__ = ["LanguageIdentifier", "quality_reason"]

_WORD = re.compile(r"\w+", re.UNICODE)
_SYMBOLS = re.compile(r"[#…]|\.\.\.")


def quality_reason(text: str, cfg: Any) -> str | None:
    n_chars = len(text)
    if n_chars < cfg.min_chars:
        return "too_short"
    if n_chars > cfg.max_chars:
        return "too_long"
    words = _WORD.findall(text)
    if len(words) < cfg.min_words:
        return "too_few_words"
    if len(words) > cfg.max_words:
        return "too_many_words"
    non_space = sum(1 for c in text if not c.isspace())
    alpha = sum(1 for c in text if c.isalpha())
    if non_space and alpha / non_space < cfg.min_alpha_ratio:
        return "low_alpha_ratio"
    if words and len(_SYMBOLS.findall(text)) / len(words) > cfg.max_symbol_ratio:
        return "high_symbol_ratio"
    lines = [ln for ln in text.split("\n") if ln.strip()]
    if len(lines) > 1:
        dup_lines = len(lines) - len(set(lines))
        if dup_lines / len(lines) > cfg.max_duplicate_line_fraction:
            return "repeated_lines"
    if len(words) >= 10:
        top = Counter(w.lower() for w in words).most_common(1)[0][1]
        if top / len(words) > cfg.max_top_word_fraction:
            return "repeated_words"
    return None


@lru_cache(maxsize=1)
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE
    from py3langid.langid import LanguageIdentifier as _LI

    return _LI.from_model_file(MODEL_FILE, norm_probs=True)


class LanguageIdentifier:
    """py3langid (a langid.py fork, model shipped in the wheel: no download)."""

    def __init__(self) -> None:
        self._id = _identifier()

    def detect(self, text: str) -> tuple[str, float]:
        lang, prob = self._id.classify(text)
        return str(lang), float(prob)
