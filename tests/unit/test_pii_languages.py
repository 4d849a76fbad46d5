"""Language-routed NER (one spaCy pipeline per configured language) and the rules for the names a
statistical model misses: the words that introduce a name, greetings cut off names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmops.config import PIIConfig
from llmops.privacy import patterns
from tests._cli_runner import run_llmops

pytestmark = pytest.mark.slow

# names of many origins, in Spanish and English support messages, each after words that do not
# introduce a name as well as after ones that do
SPANISH = [
    ("El pedido está a nombre de Crescencia Melero Ibáñez, ¿pueden revisarlo?", "Crescencia Melero Ibáñez"),
    ("Hola, soy Xiomara Quispe y no me ha llegado el paquete.", "Xiomara Quispe"),
    ("Me llamo Aitor Zubizarreta y quiero cambiar la dirección.", "Aitor Zubizarreta"),
    ("Mi compañero Jacinto Pardo tampoco puede entrar en la cuenta.", "Jacinto Pardo"),
    ("Saludos,\nMaría del Carmen Gálvez", "María del Carmen Gálvez"),
    ("La factura debería ir a nombre de Nguyen Van Thanh.", "Nguyen Van Thanh"),
    ("Escribo de parte de Oluwaseun Adeyemi por el reembolso.", "Oluwaseun Adeyemi"),
    ("Atentamente, Felipa Múgica-Sarmiento", "Felipa Múgica-Sarmiento"),
]
ENGLISH = [
    ("Hi, my name is Csanád Kovács and my parcel never came.", "Csanád Kovács"),
    ("The order is under the name of Priya Raghunathan.", "Priya Raghunathan"),
    ("Regards,\nSiobhán O'Sullivan", "Siobhán O'Sullivan"),
    ("Dear Mr. Bjørnstad, thank you for your patience.", "Bjørnstad"),
]
# text with capitalised words after the same leads that are not names: nothing may be redacted
NOT_NAMES = [
    ("Hola, buenas tardes, el paquete no ha llegado.", "es"),
    ("Thanks, The Support Team", "en"),
    ("Hi Team, this is the third time I write.", "en"),
    ("Saludos, El Equipo de Atención", "es"),
]


def _name_left(name: str, text: str) -> bool:
    return any(re.search(rf"\b{re.escape(w)}\b", text) for w in re.findall(r"\w{3,}", name) if w not in {"del", "Van"})


def test_each_language_has_its_pipeline(redactor):
    assert redactor.languages == ["en", "es"]
    assert redactor.analysis_language("es") == "es" and redactor.analysis_language("fr") == "en"
    assert redactor.analysis_language(None) == "en"
    assert redactor.has_ner("es") and redactor.has_ner("en") and not redactor.has_ner("fr")
    assert set(redactor.nlp_engine.nlp) == {"en", "es"}
    assert "ner" in redactor.nlp_engine.nlp["es"].pipe_names


def test_spanish_names_are_found_in_spanish_records(redactor):
    results = redactor.redact_batch([t for t, _ in SPANISH], ["es"] * len(SPANISH))
    left = [name for (t, name), r in zip(SPANISH, results, strict=True) if _name_left(name, r.text)]
    assert not left, left
    # the English pipeline alone (the fallback) misses most of them: the routing is what finds them
    english_only = type(redactor)(PIIConfig(ner_models={}))
    fallback = english_only.redact_batch([t for t, _ in SPANISH], ["es"] * len(SPANISH))
    assert sum(_name_left(name, r.text) for (_, name), r in zip(SPANISH, fallback, strict=True)) >= 2


def test_names_after_the_words_that_introduce_them(redactor):
    results = redactor.redact_batch([t for t, _ in ENGLISH], ["en"] * len(ENGLISH))
    left = [name for (t, name), r in zip(ENGLISH, results, strict=True) if _name_left(name, r.text)]
    assert not left, left


def test_the_lead_rule_itself():
    import regex

    rx = regex.compile(patterns.NAME_AFTER_LEAD, regex.MULTILINE)
    found = lambda text: [m.group(0) for m in rx.finditer(text)]  # noqa: E731
    assert found("me llamo Ana María de la Fuente, gracias") == ["Ana María de la Fuente"]
    assert found("My name is Zoë Van Der Berg.") == ["Zoë Van Der Berg"]
    assert found("Kind regards,\n  Ngozi Okonkwo-Adebayo\nAccounts") == ["Ngozi Okonkwo-Adebayo"]
    assert found("I think this is a bug; soy cliente desde 2019") == []  # lower-case: no name
    assert found("Thanks, The Support Team") == [] and found("Hola Equipo de soporte") == []


@pytest.mark.parametrize(("text", "lang"), NOT_NAMES)
def test_greetings_and_teams_are_not_names(redactor, text: str, lang: str):
    res = redactor.redact(text, lang)
    assert "PERSON" not in res.entities, res.text


def test_a_title_goes_with_the_name(redactor):
    for text, lang in (("Please ask Dr. Thomas Ford about it.", "en"), ("Hablé con la Sra. Lucía Mendoza ayer.", "es")):
        res = redactor.redact(text, lang)
        assert "Dr." not in res.text and "Sra." not in res.text and res.entities["PERSON"] == 1, res.text


def test_greetings_are_cut_off_names(redactor):
    res = redactor.redact("Hola Jacinto, gracias por la ayuda.", "es")
    assert res.text.startswith("Hola <PERSON>"), res.text


def test_a_missing_pipeline_names_its_key():
    from llmops.privacy.pii import PIIRedactor

    with pytest.raises(RuntimeError, match=r"pii\.ner_models\.fr"):
        PIIRedactor(PIIConfig(ner_models={"fr": "fr_core_news_missing"}))
    with pytest.raises(ValueError, match="language code"):
        PIIConfig(ner_models={"Spanish": "es_core_news_sm"})


def test_the_manifest_counts_records_without_a_pipeline_for_their_language(tmp_path: Path, capfd):
    rows = [
        {"id": "en1", "text": "Hi, this is John Smith, my parcel to Chicago never arrived at all."},
        {"id": "es1", "text": "Hola, soy Xiomara Quispe y mi paquete no ha llegado todavía a casa."},
        {"id": "fr1", "text": "Bonjour, je suis Jean Dupont et mon colis n'est jamais arrivé chez moi."},
        {"id": "fr2", "text": "Bonjour, ma commande est arrivée cassée, je voudrais un remboursement."},
    ]
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text("curation:\n  filters: {languages: [en, es, fr]}\n  dedup: {near: {enabled: false}}\n")
    out = tmp_path / "v"
    res = run_llmops(capfd, "curate", str(src), "--out", str(out), "--config", str(cfg))
    assert res.returncode == 0, res.stderr
    m = json.loads((out / "manifest.json").read_text())
    assert m["counts"]["kept"] == 4
    assert m["pii"]["without_ner"] == {"fr": 2}
    import pyarrow.parquet as pq

    text = " ".join(pq.read_table(out / m["files"][0]["path"]).column("text").to_pylist())
    for name in ("John Smith", "Xiomara", "Quispe", "Jean Dupont"):  # French: capitalised NER findings
        assert name not in text
