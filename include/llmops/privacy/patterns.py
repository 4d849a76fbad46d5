"""The pattern side of PII detection, in one place: what the redactor adds to Presidio's own
recognizers and what the residual-PII gate (``expect_no_residual_pii``) scans for afterwards.

Both read this module, so they cannot drift apart: every written format the redactor redacts has a
gate pattern that flags it when it is left in text (``tests/unit/test_pii_patterns.py`` plants each
format and checks both sides). The gate is the wider of the two: it has no checksum and no
context, so a number the redactor kept on purpose (a card number failing the Luhn check) is
quarantined by the gate rather than passed on.

Pure ``re`` and ``phonenumbers``: importing this module does not import Presidio or spaCy.

* **Phone numbers**: every *possible* number (right length for its region, not only assigned
  ranges) of the configured regions, and of any region when written with a country code
  (``+44 …``, ``0044 …``); plus digit groups of 6–15 digits right after a phone word in English or
  Spanish (``call``, ``phone``, ``mobile``, ``teléfono``, ``llamar``, ``móvil``, …), which covers the
  formats of countries that are not configured.
* **Card numbers**: 12–19 digits, grouped by spaces or dashes or not, passing the Luhn check and
  starting like a card (2–6, or Maestro's 0604); a 12-digit number must also start like a Maestro card.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CARD_CONTEXT",
    "PHONE_CONTEXT",
    "RESIDUAL_PATTERNS",
    "card_number_ok",
    "luhn_ok",
    "phone_group_ok",
    "phone_spans",
    "residual_regexes",
]

#: words before a number that make it a phone number (matched as substrings of the lower-cased
#: words in front of it, as Presidio's context enhancer does)
PHONE_CONTEXT = [
    "phone", "call", "mobile", "cell", "fax", "whatsapp", "sms", "reach", "contact",
    "teléfono", "telefono", "tlf", "tfno", "llam", "llám", "móvil", "movil", "celular",
    # the labels of a number in a signature or a contact card (vCard's TEL types, RFC 6350 §6.4.1:
    # office, fax, cell, pager, voice, text) and the verbs of telephony: dial, answer, message
    "office", "landline", "voicemail", "pager", "hotline", "dial", "answer", "messag",
    "oficina", "fijo", "buzón", "contesta", "mensaj",
]
#: words before a number that make it a card number
CARD_CONTEXT = ["card", "visa", "mastercard", "amex", "maestro", "tarjeta", "jcb", "discover", "diners"]

# a digit run or digit groups separated by one space, dot or dash, with an optional (area); the
# digit count (6-15) is checked by phone_group_ok. A JSON-escaped line break (a literal "\n") may
# stand right before it.
PHONE_GROUPS = (r"(?:(?<![\w.+/$€£¥-])|(?<=\\[nt]))(?:\(\d{1,5}\)[ .-]?)?(?:\d{6,15}|\d{1,8}(?:[ .-]\d{1,8}){1,5})"
                r"(?![\w-]|[.,]\d)")
# 12-19 digits, optionally grouped by single spaces or dashes
CARD_DIGITS = r"(?<![\w.-])\d(?:[ -]?\d){11,18}(?![\w-]|[.,]\d)"

#: an IBAN as written: country, check digits, then groups of four (upper case; spaces optional)
IBAN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?\b"


#: "my number is", "su número es": a number somebody owns is a phone number, unlike "order number"
OWN_NUMBER = (r"\b(?:my|her|his|your|their|our|mi|su|tu|nuestro)[ \t]+(?:(?:phone|mobile|cell|contact)[ \t]+)?"
              r"(?:number|n[úu]mero)(?:[ \t]+(?:is|es))?[ \t]*:?[ \t]*")

#: words right before a number that make it the number of a thing, not a phone's: "a message about
#: order 12345678" keeps its order number (a phone word nearby or not)
ID_WORDS = ["order", "invoice", "ticket", "tracking", "item", "sku", "ref", "reference", "case", "booking",
            "reservation", "receipt", "transaction", "shipment", "parcel", "package", "serial", "model", "part",
            "pedido", "factura", "albarán", "albaran", "envío", "envio", "referencia", "reserva", "recibo",
            "artículo", "articulo", "seguimiento", "expediente"]
#: what a count or an amount is followed by: "120 000 square feet" is no phone number
UNIT_WORDS = ["sq", "square", "m2", "m²", "km", "kg", "units", "unidades", "euros", "eur", "usd", "dollars",
              "dólares", "dolares", "pesos", "feet", "ft", "metres", "meters", "metros", "people", "personas",
              "items", "artículos", "%", "€", "$"]
_ID_BEFORE = re.compile(r"(?i)(?<![^\W\d_])(?:" + "|".join(map(re.escape, ID_WORDS)) + r")\.?[ \t]*"
                        r"(?:(?:no|nr|n[º°o]|number|n[úu]mero|id)\.?[ \t]*)?[:#]?[ \t]*$")
_UNIT_AFTER = re.compile(r"(?i)[ \t]*(?:" + "|".join(map(re.escape, UNIT_WORDS)) + r")(?![^\W\d_])")


def phone_group_context_ok(text: str, start: int, end: int) -> bool:
    """Digit groups at ``text[start:end]`` may be a phone number where they do not stand right
    after an identifier word (``order``, ``invoice``, ``pedido`` ...) nor right before a unit or
    currency (``square feet``, ``euros``, ``%``)."""
    return not (_ID_BEFORE.search(text, max(0, start - 40), start) or _UNIT_AFTER.match(text, end))


# what may stand between a phone word and the number in the gate: up to 40 characters, no digit,
# no line break and no identifier word (the redactor's rule, phone_group_context_ok)
_CONTEXT_GAP = (r"(?:(?!(?i:" + "|".join(map(re.escape, ID_WORDS)) + r")\b)[^\d\n]){0,40}?")
_NO_UNIT = r"(?!(?i:[ \t]*(?:" + "|".join(map(re.escape, UNIT_WORDS)) + r")(?![^\W\d_])))"


def _ctx(words: Sequence[str]) -> str:
    return "(?:" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + ")"


#: the residual-PII gate's patterns, by entity: a superset of every written format the redactor
#: redacts with its patterns (NER entities such as names are not pattern-checked)
RESIDUAL_PATTERNS: dict[str, list[str]] = {
    "EMAIL_ADDRESS": [r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}"],
    "CREDIT_CARD": [r"(?<![\w.-])(?:[2-6](?:[ -]?\d){11,18}|0[ -]?6[ -]?0[ -]?4(?:[ -]?\d){8,15})(?![\w-]|[.,]\d)"],
    "US_SSN": [r"\b\d{3}[- .]\d{2}[- .]\d{4}\b", r"(?i)\b(?:ssn|social security)\D{0,30}\d{9}\b"],
    "IBAN_CODE": [IBAN],
    "IP_ADDRESS": [
        r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        r"(?i)(?<![\w:])(?:[0-9a-f]{1,4}:){2,7}(?::|(?::?[0-9a-f]{1,4}){1,6})(?![\w:])",
    ],
    "PHONE_NUMBER": [
        # with a country code: +44 20 7946 0958, +1 (397) 266-6191, 0044 20 7946 0958
        r"(?:\+|\b00)[1-9]\d{0,2}[ .-]?(?:\(\d{1,5}\)[ .-]?)?\d{1,5}(?:[ .-]?\d{1,5}){1,5}\b",
        # North American: (788) 394-1929, 675-684-3897, 675.684.3897
        r"(?:\(\d{3}\)[ .-]?|\b\d{3}[ .-])\d{3}[ .-]\d{4}\b",
        # unbroken national numbers of 9-11 digits (ES 612345678, US 6756843897, GB 07700900123)
        r"(?<![\w.,-])\d{9,11}(?![\w-]|[.,]\d)",
        # grouped national numbers of 9+ digits: 612 34 56 78, 020 7946 0958, 0340-8785417
        r"(?<![\w.,+/-])(?=(?:[ .-]?\(?\d\)?){9})(?:\(\d{1,5}\)[ .-]?)?\d{1,8}(?:[ .-]\d{1,8}){1,5}(?![\w-]|[.,]\d)",
        # digit groups after a phone word: call 9691 2587, teléfono 52-64-13-94 ...
        "(?i)" + _ctx(PHONE_CONTEXT) + _CONTEXT_GAP + r"(?=(?:[ .()-]{0,2}\d){6})" + PHONE_GROUPS + _NO_UNIT,
        # ... or after "my number is", "su número es"
        "(?i)" + OWN_NUMBER + r"(?=(?:[ .()-]{0,2}\d){6})" + PHONE_GROUPS,
        # ... or right before one (a signature's label, the word after it): 9691 2587 (mobile), 26 841054 office
        "(?i)" + r"(?=(?:[ .()-]{0,2}\d){6})" + PHONE_GROUPS + r"[ \t]*[-(,:/]?[ \t]*" + _ctx(PHONE_CONTEXT),
    ],
}


def residual_regexes(entities: Sequence[str] | None = None) -> list[str]:
    """The gate's regex list (all entities, or those of ``entities`` that have patterns)."""
    keep = set(entities) if entities is not None else set(RESIDUAL_PATTERNS)
    return [rx for entity, rxs in RESIDUAL_PATTERNS.items() if entity in keep for rx in rxs]


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


# Maestro (50, 56-69) is the brand with 12-digit numbers
_MAESTRO_12 = re.compile(r"^(?:50|5[6-9]|6\d|0604)")


def iban_ok(text: str) -> bool:
    """The ISO 13616 check (mod 97) of an IBAN written with or without spaces."""
    compact = re.sub(r"\s", "", text).upper()
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    digits = "".join(str(int(ch, 36)) for ch in moved)
    return int(digits) % 97 == 1


def card_number_ok(text: str) -> bool:
    """A 12–19 digit card number: starts like a card (2–6, or Maestro's 0604), passes Luhn, 12 digits
    only for Maestro."""
    digits = re.sub(r"\D", "", text)
    if not 12 <= len(digits) <= 19 or not (digits[0] in "23456" or digits.startswith("0604")) or not luhn_ok(digits):
        return False
    return len(digits) > 12 or bool(_MAESTRO_12.match(digits))


def phone_group_ok(text: str) -> bool:
    """Digit groups (after a phone word) that can be a phone number: 6–15 digits, not a date."""
    digits = re.sub(r"\D", "", text)
    if not 6 <= len(digits) <= 15:
        return False
    return not (_DATE.match(text.strip()) or _AMOUNT.fullmatch(text.strip()) or _YEAR_REF.match(text.strip()))


# dates (also 20261204) and year ranges (2019-2020) are not phone numbers, even where they are
# valid ones
_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}|(?:19|20)\d\d ?[-/] ?(?:19|20)\d\d"
                   r"|(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")


# a reference numbered within a year (invoice 2024/123456): not a phone number
_YEAR_REF = re.compile(r"(?:19|20)\d\d ?/ ?\d")
_AMOUNT = re.compile(r"\d{1,3}(?:[.,]\d{3})+(?:[.,]\d{1,2})?|\d+[.,]\d{1,2}")


_WORD_BEFORE = re.compile(r"(?:[^\W\d_][-_#/]?|[$€£¥%] ?)$")


def _inside_a_word(text: str, start: int, end: int) -> bool:
    """A number glued to letters (``ORD-243700``, ``A1234567B``) or to a currency or percent sign is
    an identifier or an amount: libphonenumber checks this itself only from its VALID leniency on."""
    after = text[end : end + 1]
    before = text[max(0, start - 2) : start]
    if before in ("\\n", "\\t"):  # a JSON-escaped line break or tab is a separator
        return False
    return bool(_WORD_BEFORE.search(before)) or (after != "" and (after.isalpha() or after in "%€$£¥"))


def phone_spans(text: str, regions: Sequence[str]) -> Iterator[tuple[int, int]]:
    """(start, end) of the phone numbers of ``regions`` in ``text``: every number in an assigned
    range (what Presidio takes), and also every *possible* one (right length, range not assigned,
    e.g. ``675-684-3897``) that is written with a country code, or in groups with at least 9
    digits (an unbroken run that is not an assigned number is as likely an order number). Dates
    and amounts are never phone numbers."""
    import phonenumbers
    from phonenumbers import (
        PhoneNumberMatcher,
        ValidationResult,
        is_possible_number_with_reason,
        is_valid_number,
    )

    seen: set[tuple[int, int]] = set()
    for region in regions:
        for match in PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.POSSIBLE):
            span = (match.start, match.end)
            raw = match.raw_string
            bare = raw.lstrip("( ")
            if (span in seen or _DATE.match(bare) or _AMOUNT.fullmatch(bare) or _YEAR_REF.match(bare)
                    or _inside_a_word(text, *span)):
                continue
            number = match.number
            ok = is_valid_number(number)
            if not ok and is_possible_number_with_reason(number) == ValidationResult.IS_POSSIBLE:
                with_code = raw.lstrip("(").startswith(("+", "00"))
                grouped = not raw.isdigit()  # an unbroken digit run is as likely an order number
                ok = with_code or (grouped and sum(ch.isdigit() for ch in raw) >= 9)
            if ok:
                seen.add(span)
                yield span


# -- names after the words that introduce them ----------------------------------------------------
# Written for the `regex` module (Presidio's): a variable-length look-behind and Unicode classes.
_CAP = r"\p{Lu}[\p{L}'’]*(?:-\p{Lu}[\p{L}'’]*)?"
#: lower-case words inside a name ("María del Carmen", "van den Berg", "bin Salman"): the lead
#: rule and the gazetteer rule read the same list; one or two of them stand between name words
_PARTICLES = frozenset("de del la las los da das do dos di du van von der den ter le bin al y i e".split())
_ONE_PARTICLE = "(?:" + "|".join(sorted(_PARTICLES, key=len, reverse=True)) + ")"
_PARTICLE = _ONE_PARTICLE + r"(?:[ \t]+" + _ONE_PARTICLE + ")?"
_NOT_A_NAME = (r"(?!(?:The|A|An|Our|My|Your|His|Her|Their|This|That|El|La|Los|Las|Un|Una|Mi|Su|Sus|Tu|"
               r"Nuestro|Nuestra|Support|Soporte|Team|Equipo|Customer|Cliente|Service|Servicio|Sir|Madam|"
               r"Señor|Señora|All|Todos)\b)")
#: words that introduce a name, English then Spanish: introductions, "under the name of", form
#: labels, greetings, sign-offs and honorifics
NAME_LEADS = [
    "my name is", "my name's", "this is", "i am", "i'm", "under the name of", "under the name",
    "in the name of", "name:", "full name:", "last name:", "last name is", "first name:", "surname:",
    "hi", "hello", "dear", "regards,", "best regards,", "kind regards,", "sincerely,", "thanks,",
    "thank you,", "cheers,", "best,", "signed,", "mr.", "mrs.", "ms.", "dr.", "mr", "mrs", "ms",
    "account holder is", "account holder:", "cardholder:", "card holder:", "holder name:",
    "name is", "name's", "last name?", "surname?", "first name?", "calls me", "call me",
    "me llamo", "mi nombre es", "soy", "apellido?", "nombre?", "me llaman", "a nombre de", "de parte de", "nombre:", "apellido:",
    "titular es", "titular:", "el titular de la cuenta es",
    "apellidos:", "hola", "estimado", "estimada", "querido", "querida", "atentamente,", "saludos,",
    "un saludo,", "gracias,", "muchas gracias,", "cordialmente,", "sr.", "sra.", "srta.", "don", "doña",
]
#: one to four capitalised words (with particles: "María del Carmen", "van Dijk") after a lead
NAME_AFTER_LEAD = (
    r"(?<=(?:^|[^\p{L}])(?i:" + "|".join(sorted((re.escape(w) for w in NAME_LEADS), key=len, reverse=True))
    + r")[ \t]*[,:]?\s+)" + _NOT_A_NAME + _CAP + r"(?:[ \t]+(?:" + _PARTICLE + r"[ \t]+)?" + _NOT_A_NAME + _CAP + r"){0,3}"
)


# -- names from a public list ----------------------------------------------------------------------
#: the gazetteer file: Faker's person lists of every Latin-script locale, its English and Spanish
#: word lists and spaCy's stop words of both languages, as written by scripts/build_name_gazetteer.py
#: from the pinned packages (tests/unit/test_pii_gazetteer.py rebuilds it and compares)
GAZETTEER = Path(__file__).with_name("names.json.gz")
#: capitalised words that are given names or surnames in some locale but, in English or Spanish
#: text, far more often ordinary words, months, places or brands: alone they make no name
AMBIGUOUS_NAMES = frozenset("""
may mark grant bill joy rose faith love summer iris dawn hunter mason angel chase don ray said nova sol luz
my mar will hope page art victor april june july august autumn winter spring sky star lane rich young brown
white green black gray grey king bishop major rowan sage river storm ocean rain cash price case sunny
patience charity grace honor honour destiny harmony liberty trinity precious blessing justice royal
pilar dolores rosario consuelo amparo mercedes paz fe esperanza remedios reyes cruz luna rocio rocío
soledad asunción concepción salud milagros gloria victoria alegría alba aurora estrella cielo
jordan paris florence georgia austin dallas sydney chelsea madison china india israel virginia carolina
lincoln washington jackson houston denver phoenix orlando memphis santiago lima york jersey
america asia arizona atlanta berlin boston brooklyn dakota devon france geneva holland indiana ireland
kent london melbourne milan montana nevada rome texas venice valencia sevilla toledo bilbao
apple amazon tesla ford dell porsche chevrolet toyota oracle google microsoft
christian christmas easter monday friday sunday buck penny dollar euro ruby pearl amber jade ivy
holly rocky dusty misty candy brandy sandy ginger cherry poppy daisy lily violet hazel olive german meta
prince princess queen duke duchess lord lady baron baroness countess earl squire
""".split())
#: names that Faker's word lists hold because texts are full of them: names first, not common words
NAMES_IN_WORD_LISTS = frozenset("""
antonio carlos felipe fernando francisco jorge josé juan luis manuel martín maría miguel pablo pedro rafael
garcía gonzález lópez rodríguez
""".split())
#: a capitalised word before a given name that makes the run a place ("San Francisco", "New York")
_PLACE_BEFORE = frozenset("san santa santo são new los las el port fort saint st mount lake cape "
                          "north south east west upper lower puerto villa ciudad isla".split())
#: words a name cannot run into: company, address and title words
_NAME_STOPS = frozenset("""
inc ltd llc corp co plc gmbh ag sa sl bv nv srl spa group company holdings bank hospital university
street st avenue ave road rd lane drive boulevard blvd square plaza calle avenida paseo
""".split())
#: endings that make a capitalised word a surname wherever it stands: South Slavic -ić, Icelandic
#: patronymics and matronymics, Polish -ski/-ska/-cki/-wicz, East Slavic -enko/-ov/-ev/-ovich/-ovna,
#: Czech and Slovak -ová, Georgian -shvili/-dze (5+ letters; places with such endings are excluded)
_SURNAME_FORM = re.compile(r"^\w{3,}(?:ić|sson|dóttir|[sc]ki|[sc]ka|dzki|dzka|owicz|ewicz|enko|ová|ov|ova|ev|eva|ovich|evich"
                           r"|ovna|evna|shvili|dze)$")
_NOT_SURNAMES = frozenset("alaska nebraska casanova moldova genova geneva bratislava kharkov rostov "
                          "chernobyl pskov jaroslav".split())
_NAME_TOKEN = re.compile(r"[^\W\d_](?:[^\W\d_]|['’-](?=[^\W\d_]))*\.?")
_POSSESSIVE = re.compile(r"['’]s?$")
_ESCAPED_BREAK = re.compile(r"\\[nrt]")


def unescape_breaks(text: str) -> str:
    """``text`` with each JSON-escaped line break or tab (a literal ``\\n``, ``\\r``, ``\\t``, as
    exports and logs write them) turned into a space and a line break: same length, so offsets
    found in the result hold for ``text``; words on both sides are separate words again."""
    return _ESCAPED_BREAK.sub(" \n", text) if "\\" in text else text


@functools.cache
def name_gazetteer(path: Path = GAZETTEER) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    """(given names, surnames, common words), lower case. Common words are the English and Spanish
    word lists and stop words and :data:`AMBIGUOUS_NAMES`, and no name is one of them. A missing or
    damaged file is a RuntimeError naming the key and the fix."""
    import gzip
    import json

    try:
        raw = json.loads(gzip.decompress(Path(path).read_bytes()))
        given, surnames = frozenset(raw["given_names"]), frozenset(raw["surnames"])
        common = (frozenset(raw["word_lists"]) - NAMES_IN_WORD_LISTS) | frozenset(raw["stop_words"]) | AMBIGUOUS_NAMES
    except (OSError, EOFError, ValueError, KeyError, TypeError) as exc:
        raise RuntimeError(
            f"pii.name_gazetteer: cannot read the name list {path} ({type(exc).__name__}: {exc}); it ships with "
            "the llmops package (reinstall it, or rebuild it with scripts/build_name_gazetteer.py), or set "
            "curation.pii.name_gazetteer: false") from exc
    return given - common, surnames - common, common


def gazetteer_name_spans(text: str) -> Iterator[tuple[int, int, int]]:
    """``(start, end, words)`` of names in ``text`` found through :func:`name_gazetteer`: in a run of
    capitalised words on one line (initials and particles such as "van den" inside it), from the
    first known given name to the run's end, at most four name words; or two to four capitalised
    words, none of them common, ending in a known surname. ``words`` counts the name words (one:
    a given name alone). Words common in English or Spanish never start a name, and a given name
    after a place word ("San Francisco") is none."""
    given, family, common = name_gazetteer()

    def key(word: str) -> str:
        return _POSSESSIVE.sub("", word.rstrip(".")).casefold()

    def names_in(run: list[tuple[int, int, str]]) -> Iterator[tuple[int, int, int]]:
        caps = [i for i, t in enumerate(run) if _is_cap(t[2])]
        start = next((i for i in caps if key(run[i][2]) in given), None)
        if start is not None and start > 0 and key(run[start - 1][2]) in _PLACE_BEFORE:
            return
        if start is None and len(caps) >= 2 and key(run[caps[-1]][2]) in family:
            if not any(key(run[i][2]) in common for i in caps):
                start = caps[0]
        if start is None:  # a surname by its form: Kovačević, Jóhannsdóttir, Genghis Avdeyev
            form = next((n for n, i in enumerate(caps) if _SURNAME_FORM.search(key(run[i][2]))
                         and key(run[i][2]) not in common and key(run[i][2]) not in _NOT_SURNAMES), None)
            if form is not None:
                while form > 0 and key(run[caps[form - 1]][2]) not in common:
                    form -= 1  # the given names before it
                start = caps[form]
        if start is None:
            return
        end, words = start, 1
        for i in range(start + 1, len(run)):
            word = run[i][2]
            if _is_cap(word) and words < 4:
                end, words = i, words + 1
            elif not (_is_initial(word) or word in _PARTICLES):
                break
        last = run[end][2]
        trim = len(last) - len(_POSSESSIVE.sub("", last.rstrip("."))) if not _is_initial(last) else 0
        yield run[start][0], run[end][1] - trim, words
        if end + 1 < len(run):  # names side by side on one line: "Mary Smith John Doe Anna Lee"
            yield from names_in(run[end + 1:])

    text = unescape_breaks(text)  # a JSON-escaped line break (a literal "\\n") separates words too
    for match in _name_runs().finditer(text):
        run = [(match.start() + t.start(), match.start() + t.end(), t.group(0))
               for t in _NAME_TOKEN.finditer(match.group(0))]
        while run and not _is_cap(run[0][2]):
            run.pop(0)  # "M." of "M. Dupont" is a title or an initial: the name starts after it
        if run:
            yield from names_in(run)


@functools.cache
def _name_runs() -> Any:
    """Capitalised words on one line, with initials and particles between them (``regex``)."""
    import regex

    cap = r"\p{Lu}[\p{L}'’-]*\.?"
    return regex.compile(rf"(?<![\p{{L}}\p{{N}}'’-]){cap}(?:[ \t]+(?:{_ONE_PARTICLE}[ \t]+)*{cap})*")


def _is_cap(word: str) -> bool:
    bare = word.rstrip(".")
    return (len(bare) >= 2 and bare[0].isupper() and any(c.islower() for c in bare[1:])
            and bare.casefold() not in _NAME_STOPS)


def _is_initial(word: str) -> bool:
    return len(word) <= 2 and word[0].isupper() and (len(word) == 1 or word[1] == ".")
