"""The name gazetteer: a shipped file rebuilt from the pinned Faker and spaCy, the rule that reads
it, and the recognizer that brings it into Presidio."""

from __future__ import annotations

import re

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
    # surnames by their form, with the given names before them
    ("Kovačević began writing as a teenager", ["Kovačević"]),
    ("Unlike the Björgvinsdóttir novel, it is short", ["Björgvinsdóttir"]),
    ("Have you met Izaket Musliyevich and Jabłońska?", ["Izaket Musliyevich", "Jabłońska"]),
    ("We flew over Alaska to Moldova and Kiev", []),                          # places of that form
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
    "The Princess Royal arrived at the port this morning.",   # titles
])
def test_common_words_places_and_brands_are_not_names(text: str):
    assert _names(text) == []


def test_the_recognizer_finds_what_the_model_misses(redactor):
    text = "Could you add Terence Vassiliev and Gréta Halász to the account?"
    redacted = redactor.redact(text, "en").text
    assert "Vassiliev" not in redacted and "Halász" not in redacted, redacted
    without = PIIRedactor(PIIConfig(name_gazetteer=False, name_propagation=False)).redact(text, "en").text
    assert "Vassiliev" in without or "Halász" in without, without  # the gazetteer is what found them


def test_a_missing_or_damaged_list_names_the_key_and_the_fix(tmp_path):
    damaged = tmp_path / "names.json.gz"
    damaged.write_bytes(b"not gzip")
    for path in (tmp_path / "missing.json.gz", damaged):
        with pytest.raises(RuntimeError, match=r"pii\.name_gazetteer: cannot read the name list .*name_gazetteer: false"):
            patterns.name_gazetteer(path)


# -- names the findings imply ----------------------------------------------------------------------
def _person(start: int, end: int):
    from presidio_analyzer import RecognizerResult

    return RecognizerResult("PERSON", start, end, 0.85)


def _implied(text: str, *names: str) -> list[str]:
    from llmops.privacy.pii import propagate_names

    found = [_person(text.index(n), text.index(n) + len(n)) for n in names]
    return [text[f.start:f.end] for f in propagate_names(text, found)[len(found):]]


@pytest.mark.parametrize(("text", "names", "expected"), [
    ("A film directed by Samuel Dias and starring Dias himself.", ["Samuel Dias"], ["Dias"]),
    ("My name is Longin Symanski but everyone calls me Longin.", ["Longin Symanski"], ["Longin"]),
    ("Caird and Jones were precision engineers.", ["Jones"], ["Caird"]),
    ("Our founders: Guibord, Cannon and Moore.", ["Cannon"], ["Guibord", "Moore"]),
    ("Los socios son Ana Ruiz y Paco Gámez.", ["Ana Ruiz"], ["Paco Gámez"]),
    # a one-word finding that is no known name does not spread ("GenericAlias" tagged by the model)
    ("Use GenericAlias here; GenericAlias is a class.", ["GenericAlias"], []),
    # nor does a list joined to a one-word finding that is no known name
    ("Capitalised words like Wisdom and Discipline are taken for names.", ["Discipline"], []),
    # common words in a list are not names, and lower-case words never are
    ("Today, Jones and the team met; jones is a verb in slang.", ["Jones"], []),
])
def test_names_carry_over_to_their_repeats_and_lists(text: str, names: list[str], expected: list[str]):
    assert _implied(text, *names) == expected


@pytest.mark.parametrize(("text", "name"), [
    (r"Date: 1998-09-07\nName: Kosara Reišl\nPhone: 082 777 7526", "Kosara Reišl"),   # JSON-escaped lines
    (r"James Sparks\n\n7972 Kankaanpääntie 40\n Suite 985", "James Sparks"),         # address block head
    ("What's your last name? Chládek", "Chládek"),
    ("Her maiden name is Yefremova", "Yefremova"),
    ("My name is Ella Carlsen and my card was stolen.", "Ella Carlsen"),
    ("It was signed by Marie Drummond DVM yesterday.", "Marie Drummond DVM"),         # post-nominal
])
def test_names_the_rules_find_in_full(redactor, text: str, name: str):
    redacted = redactor.redact(text, "en").text
    assert not [w for w in re.findall(r"\w+", name) if re.search(rf"\b{w}\b", redacted)], redacted


def test_form_labels_are_not_names(redactor):
    text = r"Date: 2026-12-04\nName: Kosara Reišl\nPhone: 082 777 7526\nMobile: 0413-7966539"
    findings = redactor.analyze_batch([text], ["en"])[0]
    assert [text[f.start:f.end] for f in findings if f.entity_type == "PERSON"] == ["Kosara Reišl"]
