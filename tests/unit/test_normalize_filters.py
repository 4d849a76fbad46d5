from __future__ import annotations

import unicodedata

import pytest

from llmops.config import FilterConfig
from llmops.curate.filters import LanguageIdentifier, quality_reason
from llmops.curate.normalize import dedup_key, normalize_text


def test_normalize_unicode_controls_and_whitespace():
    raw = "Ｈｅｌｌｏ\u00a0 wor\x00ld\x07\u200b!\r\n\r\n\r\n  next\tline  "
    assert normalize_text(raw) == "Hello world!\n\nnext line"
    assert normalize_text(raw, form="NFC").startswith("Ｈｅｌｌｏ")
    assert normalize_text("a\x00b", strip_control=False) == "a\x00b"


def test_dedup_key_ignores_case_whitespace_and_composition():
    nfd = unicodedata.normalize("NFD", "Quiero una devolución")
    assert dedup_key(nfd) == dedup_key("quiero  una DEVOLUCIÓN ")
    assert dedup_key("refund please") != dedup_key("refund, please")
    assert len(dedup_key("x")) == 16


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("ok", "too_short"),
        ("hi there", "too_short"),
        ("$$$ ### !!! @@@ %%% ^^^ &&& ***", "too_few_words"),
        ("12345 67890 11111 22222 33333 ab", "low_alpha_ratio"),
        ("this is a real sentence with many words # # # #", "high_symbol_ratio"),
        ("same line again\n" * 5, "repeated_lines"),
        ("buy " * 20 + "now please", "repeated_words"),
        ("My parcel has not arrived and I would like to know where it is.", None),
    ],
)
def test_quality_reasons(text, reason):
    assert quality_reason(text, FilterConfig()) == reason


def test_length_bounds_and_config_validation():
    cfg = FilterConfig(max_chars=20)
    assert quality_reason("a perfectly normal sentence here", cfg) == "too_long"
    with pytest.raises(ValueError):
        FilterConfig(min_chars=10, max_chars=5)


def test_language_identification_offline():
    li = LanguageIdentifier()
    assert li.detect("Hello, my order has not arrived yet and I need help with it.")[0] == "en"
    assert li.detect("Hola, mi pedido no ha llegado todavía y necesito ayuda, por favor.")[0] == "es"
    assert li.detect("Bonjour, ma commande n'est pas encore arrivée, pouvez-vous m'aider ?")[0] == "fr"
    lang, prob = li.detect("Guten Tag, meine Bestellung ist noch nicht angekommen.")
    assert lang == "de" and 0.5 < prob <= 1.0
