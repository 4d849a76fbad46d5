"""Expectations the project owns. Adding one = a small subclass with defaults and a description,
registered under its snake_case name (GX derives it from the class name) in ``CUSTOM``.

Importing this module imports Great Expectations: only do it when a gate runs.
"""

from __future__ import annotations

from typing import Any

import great_expectations.expectations as gxe

from llmops.privacy.patterns import residual_regexes

# The residual-PII patterns come from the module the redactor builds its phone and card
# recognizers from (one place: they cannot drift apart). They do not match the placeholders
# redaction leaves behind (<EMAIL_ADDRESS>, masked '*' runs, ...).
RESIDUAL_PII_PATTERNS = residual_regexes()


class ExpectNoResidualPii(gxe.ExpectColumnValuesToNotMatchRegexList):
    """No value of the text column may still look like PII after redaction (a regex scan)."""

    column: str = "text"
    regex_list: list[str] = RESIDUAL_PII_PATTERNS
    description: str = "No residual PII (e-mail, card, SSN, IBAN, IP, phone in every redacted format) after redaction"


class ExpectLabelAgreementAtLeast(gxe.ExpectColumnValuesToBeBetween):
    """Every labeled item's inter-annotator agreement is at least ``min_value``."""

    column: str = "agreement"
    min_value: Any = 0.6
    max_value: Any = 1.0
    description: str = "Annotator agreement per item at least the configured minimum"


CUSTOM: dict[str, type[gxe.Expectation]] = {
    "expect_no_residual_pii": ExpectNoResidualPii,
    "expect_label_agreement_at_least": ExpectLabelAgreementAtLeast,
}


def expectation_class(name: str) -> type[gxe.Expectation]:
    """The GX class for a snake_case expectation name (custom ones first)."""
    if name in CUSTOM:
        return CUSTOM[name]
    camel = "".join(part.capitalize() for part in name.split("_"))
    cls = getattr(gxe, camel, None)
    if cls is None:
        raise ValueError(f"unknown expectation {name!r}: not a Great Expectations core expectation "
                         f"nor one of the project's ({', '.join(CUSTOM)})")
    return cls
