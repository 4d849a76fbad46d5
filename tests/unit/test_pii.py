from __future__ import annotations

import re

import pytest

from llmops.config import CustomRecognizer, PatternSpec, PIIConfig
from llmops.privacy import pii as pii_module
from llmops.privacy.pii import PIIRedactor, pseudonym

pytestmark = pytest.mark.slow

PATTERN_TEXT = (
    "Contact jane.doe@example.com or call (212) 736-4821; card 4111 1111 1111 1111, "
    "SSN 536-22-1234, IBAN DE89370400440532013000, from 203.0.113.9 via https://shop.example.com/o/1"
)
PATTERN_VALUES = ["jane.doe@example.com", "(212) 736-4821", "4111 1111 1111 1111", "536-22-1234",
                  "DE89370400440532013000", "203.0.113.9", "https://shop.example.com/o/1"]


def test_pattern_entities_need_no_model():
    """Pattern recognizers work with a blank spaCy pipeline: nothing to download."""
    red = PIIRedactor(PIIConfig(spacy_model="blank"))
    res = red.redact(PATTERN_TEXT)
    for value in PATTERN_VALUES:
        assert value not in res.text
    assert set(res.entities) >= {"EMAIL_ADDRESS", "PHONE_NUMBER", "CREDIT_CARD", "US_SSN", "IBAN_CODE",
                                 "IP_ADDRESS", "URL"}
    assert "<EMAIL_ADDRESS>" in res.text and "<CREDIT_CARD>" in res.text


def test_person_and_location_with_the_offline_spacy_pipeline(redactor):
    res = redactor.redact("Hi, this is John Smith from Chicago, my parcel never arrived.")
    assert "John Smith" not in res.text and "Chicago" not in res.text
    assert res.entities["PERSON"] == 1 and res.entities["LOCATION"] == 1


def test_batch_equals_single(redactor):
    texts = [PATTERN_TEXT, "nothing personal in here at all", "Maria Garcia vive en Madrid"]
    batch = redactor.redact_batch(texts)
    single = [redactor.redact(t) for t in texts]
    assert [b.text for b in batch] == [s.text for s in single]
    assert batch[1].text == texts[1] and not batch[1].entities


def test_operators_redact_mask_keep_and_pseudonymize(monkeypatch):
    monkeypatch.setenv("TEST_PII_KEY", "k1")
    cfg = PIIConfig(spacy_model="blank", operators={"EMAIL_ADDRESS": "pseudonymize", "CREDIT_CARD": "mask",
                                                    "IP_ADDRESS": "redact", "URL": "keep"},
                    pseudonym_key="env:TEST_PII_KEY")
    red = PIIRedactor(cfg)
    text = "mail a@example.com and A@Example.com, card 4111111111111111, ip 203.0.113.9, https://x.example.org"
    out = red.redact(text).text
    tokens = re.findall(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", out)
    assert len(tokens) == 2 and tokens[0] == tokens[1]  # same person, same pseudonym (case-insensitive)
    assert tokens[0] == pseudonym(b"k1", "EMAIL_ADDRESS", "a@example.com")
    assert "****************" in out and "4111" not in out
    assert "203.0.113.9" not in out and "ip ," in out
    assert "https://x.example.org" in out
    monkeypatch.setenv("TEST_PII_KEY", "k2")
    other = PIIRedactor(cfg).redact(text).text
    assert re.findall(r"<EMAIL_ADDRESS_[0-9a-f]{12}>", other)[0] != tokens[0]  # keyed: another key, another id


def test_pseudonymize_key_comes_from_a_reference_only(monkeypatch):
    monkeypatch.delenv("MISSING_KEY", raising=False)
    from llmops.secrets import SecretError

    cfg = PIIConfig(spacy_model="blank", default_operator="pseudonymize", pseudonym_key="env:MISSING_KEY")
    with pytest.raises(SecretError, match="MISSING_KEY"):
        PIIRedactor(cfg)


def test_custom_regex_deny_list_and_allow_list():
    cfg = PIIConfig(
        spacy_model="blank",
        custom_recognizers=[
            CustomRecognizer(name="orders", entity="ORDER_ID", patterns=[PatternSpec(regex=r"\bORD-\d{6}\b", score=0.9)]),
            CustomRecognizer(name="vip", entity="VIP_NAME", deny_list=["Zaphod Beeblebrox"]),
        ],
        allow_list=["support@example.com"],
    )
    out = PIIRedactor(cfg).redact("Order ORD-123456 for Zaphod Beeblebrox, reply to support@example.com or z@example.com")
    assert "<ORDER_ID>" in out.text and "<VIP_NAME>" in out.text
    assert "support@example.com" in out.text and "z@example.com" not in out.text
    assert out.entities == {"ORDER_ID": 1, "VIP_NAME": 1, "EMAIL_ADDRESS": 1}


def test_unknown_spacy_model_names_the_key():
    for _ in range(2):  # a failed load is not cached: it fails the same way again
        with pytest.raises(RuntimeError, match="pii.spacy_model"):
            PIIRedactor(PIIConfig(spacy_model="xx_not_installed_model"))
    assert "xx_not_installed_model" not in pii_module._SPACY_PIPELINES


def test_redactors_share_the_spacy_pipeline_not_their_config(redactor, monkeypatch):
    """The spaCy pipeline is loaded once per process and shared by every redactor of the model;
    what a config sets (custom recognizers, phone regions, score threshold, allow list) stays
    with its redactor, and an earlier redactor is unchanged by later ones."""
    import spacy

    text = "Hi, this is John Smith, order ORD-123456, my line: 020 7946 0958 or js@example.com"
    before = redactor.redact(text)
    monkeypatch.setattr(spacy, "load", lambda *a, **k: pytest.fail("spaCy pipeline loaded again"))
    orders = PIIRedactor(PIIConfig(
        phone_regions=["US"], allow_list=["js@example.com"],
        custom_recognizers=[CustomRecognizer(name="orders", entity="ORDER_ID",
                                             patterns=[PatternSpec(regex=r"\bORD-\d{6}\b", score=0.9)])]))
    strict = PIIRedactor(PIIConfig(score_threshold=0.95))
    assert orders.nlp_engine.nlp["en"] is strict.nlp_engine.nlp["en"] is redactor.nlp_engine.nlp["en"]

    assert before.entities == {"PERSON": 1, "PHONE_NUMBER": 1, "EMAIL_ADDRESS": 1}
    assert "ORD-123456" in before.text and "020 7946 0958" not in before.text
    got = orders.redact(text)  # its recognizer, its regions (US only), its allow list; NER as before
    assert got.entities == {"PERSON": 1, "ORDER_ID": 1}
    assert "020 7946 0958" in got.text and "js@example.com" in got.text and "John Smith" not in got.text
    high = strict.redact(text)  # its threshold: a name (0.85) and a phone (0.4) score below 0.95
    assert high.entities == {"EMAIL_ADDRESS": 1} and "John Smith" in high.text and "020 7946 0958" in high.text
    after = redactor.redact(text)  # the shared pipeline carries nothing of the later configs
    assert (after.text, after.entities) == (before.text, before.entities)
    assert "ORDER_ID" not in redactor.entities


def test_worker_pool_gives_the_same_result():
    """``n_process: 2`` in real spawned workers. Its cost is the workers' start-up, not the input:
    each worker imports Presidio, which imports torch and transformers (about as long as this
    process took to import it, the two workers in parallel); the 40 texts take well under a second."""
    texts = [f"customer {i} wrote from user{i}@example.com about card 4111 1111 1111 1111" for i in range(40)]
    single = PIIRedactor(PIIConfig(spacy_model="blank")).redact_batch(texts)
    pooled = PIIRedactor(PIIConfig(spacy_model="blank", n_process=2))
    try:
        got = pooled.redact_batch(texts)
        assert [r.text for r in got] == [r.text for r in single]
        assert [r.entities for r in got] == [r.entities for r in single]
        assert pooled._pool is not None  # really ran in the pool
    finally:
        pooled.close()


def test_a_redactor_does_not_import_transformers_and_leaves_it_importable():
    """A fresh process (a shard task) builds the redactor without Presidio's Hugging Face engine
    pulling in transformers; transformers imports normally afterwards."""
    import json
    import subprocess
    import sys

    code = (
        "import json, sys, time\n"
        "from llmops.config import PIIConfig\n"
        "from llmops.privacy.pii import PIIRedactor\n"
        "r = PIIRedactor(PIIConfig())\n"
        "text = r.redact_batch(['Hello John Smith, write to john@example.com'])[0].text\n"
        "before = 'transformers' in sys.modules\n"
        "from transformers import AutoConfig\n"
        "print(json.dumps({'text': text, 'before': before, 'after': AutoConfig.__name__}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"text": "Hello <PERSON>, write to <EMAIL_ADDRESS>", "before": False, "after": "AutoConfig"}
