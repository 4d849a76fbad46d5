from __future__ import annotations

import re

import pytest

from llmops.config import CustomRecognizer, PatternSpec, PIIConfig
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
    with pytest.raises(RuntimeError, match="pii.spacy_model"):
        PIIRedactor(PIIConfig(spacy_model="xx_not_installed_model"))


def test_worker_pool_gives_the_same_result():
    texts = [f"customer {i} wrote from user{i}@example.com about card 4111 1111 1111 1111" for i in range(40)]
    single = PIIRedactor(PIIConfig(spacy_model="blank")).redact_batch(texts)
    pooled = PIIRedactor(PIIConfig(spacy_model="blank", n_process=2))
    try:
        assert [r.text for r in pooled.redact_batch(texts)] == [r.text for r in single]
        assert pooled._pool is not None  # really ran in the pool
    finally:
        pooled.close()
