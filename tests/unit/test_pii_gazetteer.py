"""The name gazetteer: a shipped file rebuilt from the pinned Faker and spaCy, the rule that reads
it, and the recognizer that brings it into Presidio."""

from __future__ import annotations

import pytest

from llmops.config import PIIConfig
from llmops.privacy import patterns
from llmops.privacy.pii import PIIRedactor
from tests._modules import load_file


def _names(text: str) -> list[str]:
    return [text[a:b] for a, b, _ in patterns.gazetteer_name_spans(text)]


def test_the_shipped_file_is_what_the_pinned_packages_give(root):
    module = load_file(root / "scripts/build_name_gazetteer.py", "build_name_gazetteer")
    assert module.build() == patterns.GAZETTEER.read_bytes(), "run scripts/build_name_gazetteer.py"
    given, family, common = patterns.name_gazetteer()
    assert {"gregory", "siobhan", "chukwuemeka", "priya", "zbigniew", "xiomara"} <= given
    assert {"krogh", "nguyen", "okonkwo", "adeyemi", "quispe"} <= family
    assert not (given | family) & common  # a common word is never a name on its own


@pytest.mark.parametrize(("text", "expected"), [
    ("I want to add Terence Vassiliev as a beneficiary", ["Terence Vassiliev"]),
    ("my great grandmother was called Amy-leigh Paterson", ["Amy-leigh Paterson"]),
    ("please change it to Peverell C. Racine", ["Peverell C. Racine"]),      # known surname, initial
    ("Bertram Krogh\n\n144 South St", ["Bertram Krogh"]),                    # line ends the run
    ("Zoë van den Berg's parcel", ["Zoë van den Berg"]),                     # particles, possessive
    (r'Josef: "Who are you?"\nCynthia: "Me."', ["Josef", "Cynthia"]),        # JSON-escaped break
    ("Hola, soy María José García y vivo en Cádiz", ["María José García"]),
    ("Mary shouted at John", ["Mary", "John"]),
    ("Attendees Mary Smith John Doe Anna Lee", ["Mary Smith John Doe", "Anna Lee"]),  # four words at most each
])
def test_names_are_found(text: str, expected: list[str]):
    assert _names(text) == expected


@pytest.mark.parametrize("text", [
    "Will you call me? May I ask why the order was late.",   # given names that are common words
    "The order went from New York to San Francisco via Santiago.",  # places
    "Shipped from Boston to London, then Valencia.",
    "Thanks, Grace period ends on Monday.",
    "Ella dijo que el pedido llegó roto.",                    # a Spanish pronoun, also a name
    "Apple Inc. shipped it through Tesla Holdings.",
    "THE ORDER NUMBER IS WRONG",                               # upper case is no name
])
def test_common_words_places_and_brands_are_not_names(text: str):
    assert _names(text) == []


def test_the_recognizer_finds_what_the_model_misses(redactor):
    text = "Could you add Terence Vassiliev and Gréta Halász to the account?"
    redacted = redactor.redact(text, "en").text
    assert "Vassiliev" not in redacted and "Halász" not in redacted, redacted
    without = PIIRedactor(PIIConfig(name_gazetteer=False)).redact(text, "en").text
    assert "Vassiliev" in without or "Halász" in without, without  # the gazetteer is what found them


def test_a_missing_or_damaged_list_names_the_key_and_the_fix(tmp_path):
    damaged = tmp_path / "names.json.gz"
    damaged.write_bytes(b"not gzip")
    for path in (tmp_path / "missing.json.gz", damaged):
        with pytest.raises(RuntimeError, match=r"pii\.name_gazetteer: cannot read the name list .*name_gazetteer: false"):
            patterns.name_gazetteer(path)
