"""Robustness perturbations, slice metrics and the PII leak probe of the evaluation stage."""

from __future__ import annotations

import json
import random
import re

import pytest

from llmops.evaluation.pii_probe import pii_leak_probe
from llmops.evaluation.robustness import (
    CITIES,
    FIRST_NAMES,
    LAST_NAMES,
    PERTURBATIONS,
    perturb,
    robustness_report,
)
from llmops.evaluation.slices import accuracy, slice_metrics, slice_regressions

TEXTS = [
    "Hi, my name is Maria Garcia and I live in Madrid. I want a refund for order 1234, it arrived broken!",
    "Hello <PERSON>, John here: I cannot log in to my account since yesterday. Can you reset my password?",
    "Why was I charged twice on the last invoice? Please contact [PERSON_1a2b] in London.",
    "Escribe <PERSON_1a2b3c4d5e6f> desde <LOCATION>: ¿dónde está mi pedido? Lo envié a Sevilla.",
]
MARKS = ["<PERSON>", "[PERSON_1a2b]", "<PERSON_1a2b3c4d5e6f>", "<LOCATION>"]
GAZETTEER_WORDS = {w for name in (*FIRST_NAMES, *LAST_NAMES, *CITIES) for w in name.split()}


@pytest.mark.parametrize("kind", sorted(PERTURBATIONS))
def test_perturbations_are_seeded_and_change_the_text(kind):
    first = perturb(TEXTS, kind, seed=5)
    assert first == perturb(TEXTS, kind, seed=5)
    assert all(p != t for p, t in zip(first, TEXTS, strict=True))
    others = [perturb(TEXTS, kind, seed=s) for s in range(1, 5)]
    assert any(o != first for o in others)  # the seed matters
    # a text is perturbed the same way whatever batch it is in and wherever it sits
    assert perturb(TEXTS[::-1], kind, seed=5) == first[::-1]
    assert perturb(TEXTS[2:3], kind, seed=5) == first[2:3]
    # the functions themselves are pure: same text and generator state, same output
    fn = PERTURBATIONS[kind]
    assert fn(TEXTS[0], random.Random(3)) == fn(TEXTS[0], random.Random(3))


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(ValueError, match="typos, casing, whitespace, punctuation, names"):
        perturb(["x"], "shouting")


@pytest.mark.parametrize("kind", ["typos", "casing", "whitespace", "punctuation"])
def test_surface_perturbations_keep_redaction_marks(kind):
    for seed in range(5):
        out = " ".join(perturb(TEXTS, kind, seed=seed))
        for mark in MARKS:
            assert mark in out, (kind, seed, mark)


def test_typos_hit_about_ten_percent_of_long_words():
    words = [f"word{chr(97 + i % 26)}{chr(97 + i // 26)}xyz" for i in range(40)]
    text = " ".join(words)
    out = perturb([text], "typos", seed=1)[0]
    changed = [a for a, b in zip(text.split(), out.split(), strict=True) if a != b]
    assert len(changed) == 4
    # a single long word always gets one; short words never do
    assert perturb(["my refund pls"], "typos")[0] != "my refund pls"
    assert perturb(["ok, no way"], "typos") == ["ok, no way"]


def test_casing_whitespace_and_punctuation_keep_the_words():
    for seed in range(10):
        for text, cased, spaced, punct in zip(TEXTS, perturb(TEXTS, "casing", seed), perturb(TEXTS, "whitespace", seed),
                                              perturb(TEXTS, "punctuation", seed), strict=True):
            assert cased.lower() == text.lower()
            assert spaced.split() == text.split()
            assert "\t" in spaced or "  " in spaced or spaced != spaced.strip()
            assert re.findall(r"\w+", punct) == re.findall(r"\w+", text)
    assert perturb(["1234 5678"], "casing") == ["1234 5678"]  # nothing to case


def test_names_swap_planted_names_and_pseudonyms():
    text = ("My name is John Smith, I live in Madrid and my order 1234 was never delivered. "
            "Ask <PERSON_1a2b3c4d5e6f> or [PERSON_1a2b] in <LOCATION>; <PERSON_1a2b3c4d5e6f> knows. "
            "Mail <EMAIL_ADDRESS> about the refund.")
    for seed in range(10):
        out = perturb([text], "names", seed=seed)[0]
        assert not re.search(r"\bJohn\b|\bSmith\b|\bMadrid\b", out)
        assert "PERSON" not in out and "<LOCATION>" not in out
        assert "<EMAIL_ADDRESS>" in out  # not a name: untouched
        for word in ("order", "1234", "never", "delivered", "refund", "knows", "Ask"):
            assert word in out
        inserted = set(re.findall(r"\b[A-ZÁÉÍÓÚ][a-záéíóúñ]+\b", out)) - set(re.findall(r"\b[A-Z][a-z]+\b", text))
        assert inserted and inserted <= GAZETTEER_WORDS
    # the same pseudonym gets the same replacement within a text
    out = perturb(["<PERSON_abcdef12> wrote; <PERSON_abcdef12> again"], "names", seed=2)[0]
    first, second = out.split(" wrote; ")
    assert second == first + " again"
    # accent-insensitive: Maria and María are one name, never swapped for each other
    for seed in range(10):
        assert perturb(["Maria"], "names", seed=seed)[0] not in ("Maria", "María")
    assert perturb(["MARIA IN MADRID"], "names")[0].isupper()  # all-caps names are swapped in kind
    assert "MADRID" not in perturb(["MARIA IN MADRID"], "names")[0]
    assert perturb(["nothing to swap here"], "names") == ["nothing to swap here"]


def _keyword_predictor(texts: list[str]) -> list[str]:
    labels = []
    for text in texts:
        low = text.lower()
        if "refund" in low:
            labels.append("refund")
        elif "password" in low:
            labels.append("account")
        elif "invoice" in low:
            labels.append("billing")
        else:
            labels.append("other")
    return labels


def test_robustness_report_on_a_keyword_predictor():
    texts = ["my refund pls", "new password", "the invoice", "a refund now", "My name is Maria, my refund?",
             "the password for Madrid", "no idea", "bad invoice"]
    refs = ["refund", "account", "billing", "refund", "refund", "account", "other", "billing"]
    calls = []

    def predict(batch: list[str]) -> list[str]:
        calls.append(len(batch))
        return _keyword_predictor(batch)

    report = robustness_report(predict, texts, refs, seed=0)
    # the clean texts once, then per kind only the texts it altered
    altered = {kind: sum(a != b for a, b in zip(texts, perturb(texts, kind, seed=0), strict=True))
               for kind in PERTURBATIONS}
    assert calls == [len(texts)] + [altered[k] for k in PERTURBATIONS if altered[k]]
    assert set(report) == set(PERTURBATIONS) and 0 < altered["names"] < len(texts)
    for row in report.values():
        assert row["n"] == len(texts) and row["clean_accuracy"] == 1.0
        assert row["drop"] == pytest.approx(row["clean_accuracy"] - row["perturbed_accuracy"])
    assert report["casing"]["drop"] == pytest.approx(0.0) and report["casing"]["flip_rate"] == 0.0
    assert report["names"]["flip_rate"] == 0.0 and report["whitespace"]["drop"] == pytest.approx(0.0)
    assert report["typos"]["drop"] > 0 and report["typos"]["flip_rate"] > 0
    assert report["casing"]["changed"] == 1.0

    only = robustness_report(_keyword_predictor, texts, refs, kinds=["typos"])
    assert list(only) == ["typos"] and only["typos"] == report["typos"]
    # the evaluation's own clean predictions are reused, not computed again
    calls.clear()
    given = robustness_report(predict, texts, refs, kinds=["names"], clean_predictions=_keyword_predictor(texts))
    assert given == {"names": report["names"]} and calls == [altered["names"]]
    # a perturbed text that was left as it was keeps its clean prediction, even a wrong one
    wrong = ["other"] * len(texts)
    kept = robustness_report(predict, texts, refs, kinds=["names"], clean_predictions=wrong)
    perturbed = perturb(texts, "names", seed=0)
    expected = [kw if new != old else "other"
                for old, new, kw in zip(texts, perturbed, _keyword_predictor(perturbed), strict=True)]
    assert kept["names"]["perturbed_accuracy"] == pytest.approx(
        sum(e == r for e, r in zip(expected, refs, strict=True)) / len(texts))
    with pytest.raises(ValueError, match="clean predictions"):
        robustness_report(predict, texts, refs, clean_predictions=wrong[:-1])
    with pytest.raises(ValueError, match="unknown perturbation"):
        robustness_report(_keyword_predictor, texts, refs, kinds=["nope"])
    with pytest.raises(ValueError, match="references"):
        robustness_report(_keyword_predictor, texts, refs[:-1])


def _slice_data():
    """en: 10 items, 9 right; es: 6 items, 3 right; fr: 2 items (too small). meta.domain from a
    dict or a JSON string: shop 8/10 right, bank 4/8 right."""
    records, preds, refs = [], [], []

    def add(lang: str, domain: str, right: bool, as_json: bool) -> None:
        meta = {"domain": domain, "tier": "gold"}
        records.append({"lang": lang, "source": "email", "meta": json.dumps(meta) if as_json else meta})
        refs.append("a")
        preds.append("a" if right else "b")

    for i in range(10):
        add("en", "shop", i != 0, as_json=i % 2 == 0)
    for i in range(6):
        add("es", "bank", i < 3, as_json=True)
    add("fr", "bank", True, as_json=False)
    add("fr", "bank", False, as_json=False)
    records.append({"lang": "en", "source": "chat", "meta": {}})  # no domain
    preds.append("a")
    refs.append("a")
    return records, preds, refs


def test_slice_metrics_per_field_with_min_size_and_largest_gap():
    records, preds, refs = _slice_data()
    out = slice_metrics(records, preds, refs, by=["lang", "meta.domain", "source"], metric=accuracy, min_size=5)
    by = out["by"]
    assert by["lang"]["en"] == {"n": 11, "metric": pytest.approx(10 / 11)}
    assert by["lang"]["es"] == {"n": 6, "metric": 0.5}
    assert by["lang"]["fr"] == {"n": 2, "metric": None, "skipped": "too_small"}
    assert by["meta.domain"]["shop"]["metric"] == pytest.approx(0.9)
    assert by["meta.domain"]["bank"] == {"n": 8, "metric": 0.5}
    assert by["meta.domain"]["(missing)"]["skipped"] == "too_small"
    assert by["source"]["chat"]["skipped"] == "too_small" and by["source"]["email"]["n"] == 18
    gap = out["largest_gap"]
    assert gap["field"] == "lang" and gap["best"] == "en" and gap["worst"] == "es"
    assert gap["gap"] == pytest.approx(10 / 11 - 0.5)
    json.dumps(out)  # serialisable as is
    # with every slice too small there is no gap
    assert slice_metrics(records, preds, refs, by=["lang"], metric=accuracy, min_size=50)["largest_gap"] is None
    with pytest.raises(ValueError, match="length"):
        slice_metrics(records, preds[:-1], refs, by=["lang"], metric=accuracy)


def test_slice_regressions_flags_exactly_the_regressed_slice():
    records, preds, refs = _slice_data()
    champion = slice_metrics(records, preds, refs, by=["lang", "meta.domain"], metric=accuracy)
    worse = list(preds)
    for i in range(10, 16):  # every es item wrong: es 0.5 -> 0.0, bank 0.5 -> 0.125
        worse[i] = "b"
    candidate = slice_metrics(records, worse, refs, by=["lang", "meta.domain"], metric=accuracy)
    found = slice_regressions(candidate, champion, tolerance=0.4)
    assert found == [{"field": "lang", "value": "es", "candidate": 0.0, "champion": 0.5, "delta": -0.5, "n": 6}]
    both = slice_regressions(candidate, champion, tolerance=0.05)
    assert [(r["field"], r["value"]) for r in both] == [("lang", "es"), ("meta.domain", "bank")]
    assert slice_regressions(champion, champion, tolerance=0.0) == []
    assert slice_regressions(champion, candidate, tolerance=0.0) == []  # improvements are not flagged


@pytest.mark.slow
def test_pii_leak_probe_counts_leaks_by_type_and_reports_indices_only(redactor):
    outputs = [
        "Your refund has been processed.",
        "Please write to john.smith@example.com so we can check the order.",
        "Thanks, my name is John Smith and I placed the order.",
        "Hello <PERSON>, we sent the label to <EMAIL_ADDRESS> for <LOCATION>.",
        "Dear <PERSON_1a2b3c4d5e6f>, [PERSON_1a2b] will call you.",
    ]
    report = pii_leak_probe(outputs, redactor)
    assert report["outputs"] == 5 and report["with_pii"] == 2
    assert report["examples"] == [1, 2]
    # one e-mail (its domain is not a second, URL leak) and one person
    assert report["entities"] == {"EMAIL_ADDRESS": 1, "PERSON": 1}
    dumped = json.dumps(report)
    assert "john" not in dumped.lower() and "smith" not in dumped.lower()

    only_mail = pii_leak_probe(outputs, redactor, entities=["EMAIL_ADDRESS"])
    assert only_mail["entities"] == {"EMAIL_ADDRESS": 1} and only_mail["examples"] == [1]
    assert pii_leak_probe(outputs[3:], redactor)["with_pii"] == 0  # placeholders are not leaks
    assert pii_leak_probe([], redactor)["outputs"] == 0
    with pytest.raises(ValueError, match="does not detect"):
        pii_leak_probe(outputs, redactor, entities=["MEDICAL_LICENSE"])
