"""Phone and card numbers the way a privacy team wants them, and a residual-PII gate that flags
every written format the redactor redacts (both read ``llmops.privacy.patterns``)."""

from __future__ import annotations

import re

import pandas as pd
import phonenumbers
import pytest

from llmops.privacy import patterns
from llmops.privacy.patterns import card_number_ok, luhn_ok, phone_group_ok, residual_regexes

GATE = [re.compile(rx) for rx in residual_regexes()]


def _gate_flags(text: str) -> bool:
    return any(rx.search(text) for rx in GATE)


def _luhn_complete(prefix: str, length: int) -> str:
    body = prefix + "7" * (length - len(prefix) - 1)
    return next(body + d for d in "0123456789" if luhn_ok(body + d))


# brand prefixes and every length they issue (Maestro 12-19, JCB 15-16, Visa 13/16/19, ...)
CARD_BRANDS = {
    "maestro": ("6759", [12, 13, 15, 16, 19]), "maestro-0604": ("0604", [12, 16]), "visa": ("4", [13, 16, 19]), "mastercard": ("51", [16]),
    "mastercard-2": ("2221", [16]), "amex": ("37", [15]), "diners": ("36", [14]), "jcb": ("3528", [15, 16]),
    "discover": ("6011", [16, 19]), "unionpay": ("62", [16, 17, 18, 19]),
}
CARDS = [_luhn_complete(prefix, n) for prefix, lengths in CARD_BRANDS.values() for n in lengths]


def _card_formats(number: str) -> list[str]:
    grouped = " ".join(number[i : i + 4] for i in range(0, len(number), 4))
    return [number, grouped, grouped.replace(" ", "-")]


# regions the default redactor is configured for, and others that only count with a phone word
CONFIGURED = ["US", "GB", "ES", "DE", "FR"]
ELSEWHERE = ["AU", "IN", "BR", "MX", "PK", "NL", "IT", "JP", "AR", "PL"]
FORMATS = [phonenumbers.PhoneNumberFormat.E164, phonenumbers.PhoneNumberFormat.INTERNATIONAL,
           phonenumbers.PhoneNumberFormat.NATIONAL]


def _phone_examples(regions: list[str], national: bool) -> list[str]:
    out = []
    for region in regions:
        for kind in (phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE):
            number = phonenumbers.example_number_for_type(region, kind)
            for fmt in FORMATS:
                if fmt == phonenumbers.PhoneNumberFormat.NATIONAL and not national:
                    continue
                text = phonenumbers.format_number(number, fmt)
                out += [text, text.replace(" ", "-")]
    return sorted(set(out))


# the numbers that reached curated data before (issue figures): unassigned US area codes, and
# formats of countries that are not configured, after a phone word
UNASSIGNED_US = ["675-684-3897", "+1 397 266 6191", "(788) 394-1929", "675.684.3897"]
AFTER_A_PHONE_WORD = ["0340-8785417", "52-64-13-94", "9691 2587", "(02) 9691 2587", "98765 43210", "6756843897",
                      "96 277723", "61 60 34"]

# text that carries numbers but no personal data: nothing may be redacted or flagged
NOT_PII = [
    "On 2026-12-04 I ordered 3 items for $1,299.00 and paid 1.299,00 EUR.",
    "Between 2019-2020 we bought 12 units; order ORD-123456 from 12/03/2026.",
    "Version 3.8.18 installed at 12:30, 45% done, 250 ml, model X-200.",
    "My tracking number is 123456789012 and the ticket is 1234567.",
    "Invoice total 1 299 EUR, reference 20261204, room 12 floor 3.",
    "El pedido 4521 llegó el 03/12/2026 por 49,99 euros.",
    "Can I change the address for order ORD-243700? Pedido ORD-797485: 219,21 €, ref A1234567B.",
    # phone words nearby, but the number is an identifier's or a quantity
    "I sent a message about order 12345678 yesterday; contact us about invoice no. 98765432.",
    "Nadie contesta sobre el pedido 12345678. Our office has 120 000 square feet.",
]


@pytest.mark.parametrize("number", CARDS)
def test_card_numbers_of_every_brand_and_length_pass(number: str):
    assert card_number_ok(number)
    broken = number[:-1] + str((int(number[-1]) + 1) % 10)
    assert not card_number_ok(broken)  # a Luhn failure is not a card


def test_card_rules_and_phone_digit_groups():
    assert not card_number_ok(_luhn_complete("4111", 12))  # 12 digits: Maestro only
    assert not card_number_ok(_luhn_complete("1234", 16))  # no card starts with 1
    assert not card_number_ok(_luhn_complete("4", 20))
    assert phone_group_ok("9691 2587") and phone_group_ok("52-64-13-94") and phone_group_ok("0340-8785417")
    assert not phone_group_ok("12345") and not phone_group_ok("2026-12-04") and not phone_group_ok("03/12/2026")


def test_possible_numbers_are_found_without_a_model():
    text = "call 675-684-3897 or +44 7400 123456, not 2019-2020 or $1,299.00"
    spans = [text[s:e] for s, e in patterns.phone_spans(text, ["US", "GB"])]
    assert spans == ["675-684-3897", "+44 7400 123456"]
    assert list(patterns.phone_spans("675-684-3897", ["US"])) == [(0, 12)]  # the whole text
    # glued to letters or to a currency sign: an identifier or an amount, also where DE has the number
    assert list(patterns.phone_spans("ORD-243700, A243700B, $243700", ["DE"])) == []
    assert len(list(patterns.phone_spans("Tel 243700", ["DE"]))) == 1


@pytest.mark.parametrize("text", NOT_PII)
def test_the_gate_leaves_numbers_that_are_not_personal_data_alone(text: str):
    assert not _gate_flags(text)


@pytest.mark.parametrize("placeholder", ["<PHONE_NUMBER>", "<CREDIT_CARD>", "****************",
                                         "<PHONE_NUMBER_1a2b3c4d5e6f>", "<IP_ADDRESS>", "<IBAN_CODE>"])
def test_the_gate_passes_what_redaction_writes(placeholder: str):
    assert not _gate_flags(f"call me on {placeholder} or use the card {placeholder}")


@pytest.mark.slow
class TestRedactorAndGateAgree:
    """Each written format is planted in a sentence: the redactor removes it, the gate flags the
    unredacted sentence and passes the redacted one."""

    def _check(self, redactor, sentences: list[tuple[str, str]]) -> None:
        results = redactor.redact_batch([s for s, _ in sentences])
        missed = [value for (s, value), r in zip(sentences, results, strict=True) if value in r.text]
        unflagged = [value for s, value in sentences if not _gate_flags(s)]
        residual = [r.text for r in results if _gate_flags(r.text)]
        assert not missed, f"the redactor kept {missed}"
        assert not unflagged, f"the gate does not flag {unflagged}"
        assert not residual, f"the gate flags redacted text {residual}"

    def test_phone_numbers_of_configured_regions_without_a_phone_word(self, redactor):
        values = _phone_examples(CONFIGURED, national=True) + UNASSIGNED_US
        self._check(redactor, [(f"Please use {v} for the delivery.", v) for v in values])

    def test_phone_numbers_with_a_country_code_from_anywhere(self, redactor):
        values = _phone_examples(ELSEWHERE, national=False)
        self._check(redactor, [(f"Please use {v} for the delivery.", v) for v in values])

    def test_phone_numbers_of_other_countries_after_a_phone_word(self, redactor):
        values = _phone_examples(ELSEWHERE, national=True) + AFTER_A_PHONE_WORD
        sentences = [f"You can call me at {v} after five." for v in values]
        sentences += [f"Mi teléfono es {v}, gracias." for v in AFTER_A_PHONE_WORD]
        sentences += [f"My mobile: {v}" for v in AFTER_A_PHONE_WORD]
        sentences += [f"She is locked out, her number is {v}." for v in AFTER_A_PHONE_WORD]
        sentences += [f"No puede entrar, su número es {v}." for v in AFTER_A_PHONE_WORD]
        sentences += [f"Jane Roe\\nPhone:\\n{v}\\nE-mail: on request" for v in AFTER_A_PHONE_WORD]  # JSON-escaped
        sentences += [f"Office: none, {v} (mobile)" for v in AFTER_A_PHONE_WORD]  # the label after it
        # a contact card's labels (vCard TEL types) and the words of telephony, before or after
        sentences += [f"Jane Roe\n{v} office\n" for v in AFTER_A_PHONE_WORD]
        sentences += [f"Leave a voicemail on {v} if nobody answers." for v in AFTER_A_PHONE_WORD]
        sentences += [f"I get no text messages on {v} any more." for v in AFTER_A_PHONE_WORD]
        sentences += [f"Nadie contesta en el {v} desde ayer." for v in AFTER_A_PHONE_WORD]
        self._check(redactor, [(s, re.search(r"[+(]?\d[\d ().-]*\d", s).group(0)) for s in sentences])

    def test_card_numbers_of_every_brand_length_and_grouping(self, redactor):
        values = [f for number in CARDS for f in _card_formats(number)]
        self._check(redactor, [(f"The charge on {v} is wrong.", v) for v in values])

    def test_other_pattern_entities(self, redactor):
        values = ["jane.doe@example.co.uk", "536-22-1234", "DE89370400440532013000",
                  "DE89 3704 0044 0532 0130 00", "ES91 2100 0418 4502 0005 1332", "203.0.113.9",
                  "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8::8a2e:370:7334"]
        self._check(redactor, [(f"Details: {v} (see above)", v) for v in values])
        # followed by a lower-case word (Presidio's own IBAN recognizer took "plea" as a last group)
        ibans = ["ES2018231024734829956946", "GB82 WEST 1234 5698 7654 32", "DE89370400440532013000"]
        self._check(redactor, [(f"Refund it to {v} please", v) for v in ibans])
        assert patterns.iban_ok("GB82 WEST 1234 5698 7654 32") and not patterns.iban_ok("GB82 WEST 1234 5698 7654 33")

    def test_numbers_that_are_not_personal_data_are_kept(self, redactor):
        for text, result in zip(NOT_PII, redactor.redact_batch(NOT_PII), strict=True):
            assert not set(result.entities) & {"PHONE_NUMBER", "CREDIT_CARD", "US_SSN"}, (text, result.text)

    def test_context_words_lift_weak_patterns(self, redactor):
        # the context enhancer needs keywords: a bare 9-digit number is an SSN only after "SSN"
        found = redactor.analyze_batch(["My SSN is 536221234 thanks", "My phone: 9691 2587"])
        assert {f.entity_type for f in found[0]} >= {"US_SSN"}
        assert [f.entity_type for f in found[1]] == ["PHONE_NUMBER"]
        assert not redactor.analyze_batch(["Order 9691 2587 arrived"])[0]
        assert redactor.analyze_batch(["My order number is 96912587.", "El número de pedido es 96912587."],
                                      ["en", "es"]) == [[], []]

    def test_the_gate_quarantines_each_planted_row(self, redactor):
        from llmops.quality.gate import run_gate
        from llmops.quality.suites import SuiteSpec

        planted = UNASSIGNED_US + [f"call {v}" for v in AFTER_A_PHONE_WORD] + [_card_formats(c)[1] for c in CARDS]
        texts = planted + [r.text for r in redactor.redact_batch(planted)] + NOT_PII
        spec = SuiteSpec("pii", 1, [("expect_no_residual_pii", {})])
        out = run_gate(pd.DataFrame({"text": texts}), spec, {}, policy="quarantine")
        assert sorted(out.row_reasons) == list(range(len(planted)))
        assert set(out.row_reasons.values()) == {"gx:expect_no_residual_pii"}
