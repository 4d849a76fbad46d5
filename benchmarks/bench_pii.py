"""PII recall and precision, one run: Presidio's default ``AnalyzerEngine`` (the anchor, same spaCy
English pipeline) against the project's redactor, on two labelled sets nobody tuned the rules on.

* **(i) presidio-evaluator**: its public sentence generator (``PresidioSentenceFaker``, en_US,
  pinned version in the lock, fixed seed); evaluation only – no rule is written from its templates.
* **(ii) the project's multilingual set**: support messages in English and Spanish written for
  this benchmark, whose values come from Faker in many locales: names of many origins (Spanish,
  Latin American, Portuguese, German, French, Polish, Turkish, Indian, Nigerian, Vietnamese, ...;
  Latin script),
  phone numbers as those countries write them, every card brand Faker issues, IBANs of several
  countries, e-mails, IPs, US SSNs.

Scoring is ``llmops pii-eval``'s (:mod:`llmops.privacy.pii_eval`): a labelled span counts as
removed only when every letter and digit of it lies inside a finding; precision is the share of
findings touching a labelled span. Throughput: the analysers' docs/s on the same texts.

The redactor is also scored without its name gazetteer: (ii) draws its names from Faker's locale
lists, which the gazetteer is built from, so its PERSON recall with the gazetteer is an upper bound;
(i) draws its names from presidio-evaluator's own records (FakeNameGenerator), another source.

    python benchmarks/bench_pii.py [--evaluator 3000] [--own 1200] [--out benchmarks/results/pii.json]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _common import write_result  # noqa: E402

from llmops.privacy.pii_eval import LabeledSample, evaluate  # noqa: E402

ENTITIES = ["PERSON", "PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


# -- (i) presidio-evaluator ------------------------------------------------------------------------
def evaluator_set(n: int, seed: int) -> list[LabeledSample]:
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    faker = PresidioSentenceFaker("en_US", lower_case_ratio=0.05, random_seed=seed)
    out = []
    for s in faker.generate_new_fake_sentences(n):
        spans = [(sp.start_position, sp.end_position, sp.entity_type) for sp in s.spans]
        out.append(LabeledSample(s.full_text, spans, "en"))
    return out


# -- (ii) the project's multilingual set -------------------------------------------------------------
# Latin-script names (Faker's hi_IN writes Devanagari, which English or Spanish messages rarely hold)
NAME_LOCALES = ["en_US", "en_GB", "es_ES", "es_MX", "es_AR", "es_CO", "pt_BR", "de_DE", "fr_FR", "it_IT", "pl_PL",
                "tr_TR", "en_IN", "yo_NG", "vi_VN", "nl_NL", "sv_SE", "cs_CZ", "ro_RO", "en_NG"]
PHONE_LOCALES = ["en_US", "en_GB", "es_ES", "es_MX", "de_DE", "fr_FR", "pt_BR", "en_IN", "en_AU", "it_IT"]
IBAN_LOCALES = ["de_DE", "es_ES", "fr_FR", "nl_NL", "it_IT", "en_GB"]
CARD_TYPES = ["visa13", "visa16", "visa19", "mastercard", "amex", "discover", "diners", "jcb15", "jcb16", "maestro"]

# {name}, {phone}, {card}, {email}, {iban}, {ip}, {ssn}: support messages written for this benchmark;
# {ref} is a number that is not personal data (order and tracking numbers, amounts, dates, times,
# quantities), unlabelled: what precision is measured on
TEMPLATES = {
    "en": [
        "Hello, I'm {name} and I still have not received my refund for {ref}. You can reach me on {phone}.",
        "The order {ref} was placed under the name {name}; please send the invoice to {email}.",
        "Please call me back at {phone}, the courier never came. Thanks, {name}",
        "I was charged twice on card {card} ({ref}), can you reverse one of the payments?",
        "Order {ref} arrived late and {ref} is missing, please check with the courier.",
        "My colleague {name} cannot log in since yesterday, her number is {phone}.",
        "Refund it to {iban} please, the account holder is {name}.",
        "Login attempts from {ip} were not me. Regards,\n{name}",
        "For the tax form my SSN is {ssn}, the contact e-mail is {email}.",
        "{name} here: the blender from {ref} arrived broken, call {phone} any time.",
        "Can you update the card on file to {card}? The name on it is {name}.",
    ],
    "es": [
        "Hola, soy {name} y todavía no me han devuelto el dinero de {ref}. Mi teléfono es {phone}.",
        "El pedido {ref} está a nombre de {name}, envíen la factura a {email} por favor.",
        "Llámenme al {phone}, el repartidor no vino. Gracias, {name}",
        "Me cobraron dos veces en la tarjeta {card} ({ref}), ¿pueden anular un cargo?",
        "El pedido {ref} llegó tarde y falta {ref}, revisen con el repartidor por favor.",
        "Mi compañera {name} no puede entrar en su cuenta, su número es {phone}.",
        "Devuelvan el importe a la cuenta {iban}, el titular es {name}.",
        "Hubo accesos desde {ip} que no fui yo. Saludos,\n{name}",
        "Me llamo {name} y quiero cambiar la dirección de envío.",
        "Escribo de parte de {name}: la batidora llegó rota, contacten al {phone}.",
        "¿Pueden cambiar la tarjeta guardada por {card}? El titular es {name}.",
    ],
}
SLOT_ENTITY = {"ref": None, "name": "PERSON", "phone": "PHONE_NUMBER", "card": "CREDIT_CARD", "email": "EMAIL_ADDRESS",
               "iban": "IBAN_CODE", "ip": "IP_ADDRESS", "ssn": "US_SSN"}


def own_set(n: int, seed: int) -> list[LabeledSample]:
    import re

    from faker import Faker

    rng = random.Random(seed)
    fakers: dict[str, Any] = {}

    def fk(locale: str) -> Any:
        if locale not in fakers:
            fakers[locale] = Faker(locale)
            fakers[locale].seed_instance(seed + len(fakers))
        return fakers[locale]

    def value(slot: str) -> str:
        if slot == "ref":
            kind = rng.randrange(8)
            return [f"order ORD-{rng.randrange(10**6, 10**7)}", f"order {rng.randrange(10**7, 10**8)}",
                    f"tracking number 1Z{rng.randrange(10**15, 10**16)}", f"${rng.randrange(1, 3000)}.{rng.randrange(100):02d}",
                    f"{rng.randrange(1, 28):02d}/{rng.randrange(1, 13):02d}/20{rng.randrange(19, 27)}",
                    f"{rng.randrange(2019, 2027)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 28):02d} {rng.randrange(24)}:{rng.randrange(60):02d}",
                    f"{rng.randrange(2, 40)} units of item {rng.randrange(100, 999)}-{rng.randrange(1000, 9999)}",
                    f"invoice {rng.randrange(2019, 2027)}/{rng.randrange(10**5, 10**6)}"][kind]
        if slot == "name":
            f = fk(rng.choice(NAME_LOCALES))
            return f.name() if rng.random() < 0.5 else f"{f.first_name()} {f.last_name()}"
        if slot == "phone":
            return fk(rng.choice(PHONE_LOCALES)).phone_number()
        if slot == "card":
            number = fk("en_US").credit_card_number(card_type=rng.choice(CARD_TYPES))
            style = rng.random()
            if style < 0.33:
                return " ".join(number[i:i + 4] for i in range(0, len(number), 4))
            return "-".join(number[i:i + 4] for i in range(0, len(number), 4)) if style < 0.5 else number
        if slot == "email":
            return fk(rng.choice(NAME_LOCALES)).free_email()
        if slot == "iban":
            return fk(rng.choice(IBAN_LOCALES)).iban()
        if slot == "ip":
            return fk("en_US").ipv4_public() if rng.random() < 0.8 else fk("en_US").ipv6()
        return fk("en_US").ssn()

    out = []
    for i in range(n):
        lang = "es" if i % 2 else "en"
        template = rng.choice(TEMPLATES[lang])
        text, spans, pos = "", [], 0
        for m in re.finditer(r"\{(\w+)\}", template):
            text += template[pos:m.start()]
            v = value(m.group(1))
            if SLOT_ENTITY[m.group(1)] is not None:
                spans.append((len(text), len(text) + len(v), SLOT_ENTITY[m.group(1)]))
            text += v
            pos = m.end()
        text += template[pos:]
        out.append(LabeledSample(text, spans, lang))
    return out


# -- the analysers -------------------------------------------------------------------------------------
class PresidioDefault:
    """Presidio's ``AnalyzerEngine`` as its documentation sets it up, over the same spaCy pipeline
    (English: it has no other language configured)."""

    def __init__(self, model: str) -> None:
        from presidio_analyzer import AnalyzerEngine
        from presidio_analyzer.nlp_engine import SpacyNlpEngine

        self.engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(models=[{"lang_code": "en", "model_name": model}]))
        self.entities = ENTITIES + ["LOCATION"]

    def findings_batch(self, texts: list[str], langs: list[str | None]) -> list[list[Any]]:
        return [self.engine.analyze(text=t, language="en", entities=self.entities) for t in texts]


def _score(analyser: Any, samples: list[LabeledSample]) -> dict[str, Any]:
    t = time.perf_counter()
    analyser.findings_batch([s.text for s in samples[:200]], [s.lang for s in samples[:200]])  # warm
    t = time.perf_counter()
    result = evaluate(analyser, samples)
    elapsed = time.perf_counter() - t
    entities = {e: v for e, v in result["entities"].items() if e in ENTITIES}
    return {"docs_per_s": round(len(samples) / elapsed, 1), "entities": entities}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--evaluator", type=int, default=3000, help="presidio-evaluator sentences")
    ap.add_argument("--own", type=int, default=1200, help="sentences of the project's multilingual set")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/pii.json"))
    args = ap.parse_args()

    import os

    os.environ.setdefault("TLDEXTRACT_PUBLIC_SUFFIX_LIST_URLS", "")
    import importlib.metadata as md

    import yaml

    from llmops.config import PIIConfig
    from llmops.privacy.pii import PIIRedactor

    cfg = PIIConfig.model_validate(yaml.safe_load((ROOT / "include/config/pipeline.yaml").read_text())
                                   ["curation"]["pii"])
    sets = {"presidio_evaluator": evaluator_set(args.evaluator, args.seed), "own_multilingual": own_set(args.own, args.seed)}
    analysers = {"presidio_default": PresidioDefault(cfg.spacy_model), "llmops": PIIRedactor(cfg),
                 # (ii)'s names come from the Faker lists the gazetteer is built from: this is the
                 # figure for names outside the list
                 "llmops_no_gazetteer": PIIRedactor(cfg.model_copy(update={"name_gazetteer": False}))}
    result: dict[str, Any] = {
        "versions": {p: md.version(p) for p in ("presidio-analyzer", "presidio-evaluator", "faker", "spacy")},
        "spacy_model": cfg.spacy_model, "ner_models": cfg.ner_models, "seed": args.seed,
        "records": {k: len(v) for k, v in sets.items()}, "results": {},
    }
    for set_name, samples in sets.items():
        result["results"][set_name] = {name: _score(a, samples) for name, a in analysers.items()}
        by_lang = {}
        for lang in sorted({s.lang for s in samples}):
            part = [s for s in samples if s.lang == lang]
            if len(part) < len(samples):
                by_lang[lang] = {name: _score(a, part)["entities"] for name, a in analysers.items()}
        if by_lang:
            result["results"][set_name]["by_language"] = by_lang
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
