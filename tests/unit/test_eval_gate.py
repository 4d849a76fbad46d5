"""The promotion gate: promotes a clearly better model, rejects a worse one, one with a slice
regression and one that leaks PII; the alias move is idempotent."""

from __future__ import annotations

import random

import pytest

from llmops.evaluation.gate import decide, promote, render_table
from llmops.evaluation.metrics import FAST
from llmops.evaluation.runner import paired_comparison
from llmops.evaluation.slices import slice_metrics
from llmops.evaluation.suites import load_suite

SUITE = load_suite("support_intents")


def _golden():
    from llmops.evaluation.golden import load_golden

    rows, _ = load_golden(SUITE.golden.name, SUITE.golden.version)
    return rows


def _report(rows, accuracy_by_lang: dict[str, float], seed: int, *, drop: float = 0.0, leaks: int = 0) -> dict:
    """A report whose predictions are right with the given probability per language."""
    rng = random.Random(seed)
    labels = sorted({r["label"] for r in rows})
    preds = []
    for r in rows:
        if rng.random() < accuracy_by_lang[r["lang"]]:
            preds.append(r["label"])
        else:
            preds.append(rng.choice([lab for lab in labels if lab != r["label"]]))
    refs = [r["label"] for r in rows]
    value = FAST["macro_f1"](preds, refs)
    return {"suite": {"name": SUITE.name, "version": SUITE.version},
            "metrics": {"macro_f1": {"value": value, "ci": None}},
            "slices": slice_metrics(rows, preds, refs, by=SUITE.slices, metric=FAST["macro_f1"],
                                    min_size=SUITE.min_slice_size),
            "robustness": {"typos": {"drop": drop}, "casing": {"drop": 0.0}},
            "pii": {"entities": {"EMAIL_ADDRESS": leaks}} if leaks else {"entities": {}},
            "predictions": preds, "ids": [r["id"] for r in rows]}


def _gate(cand, champ):
    cand = dict(cand)
    if champ is not None:
        cand["paired"] = paired_comparison(SUITE, cand, champ)
    return decide(SUITE, cand, champ)


def test_a_clearly_better_model_is_promoted_and_a_worse_one_rejected():
    rows = _golden()
    champion = _report(rows, {"en": 0.6, "es": 0.6}, seed=1)
    better = _report(rows, {"en": 0.9, "es": 0.9}, seed=2)
    d = _gate(better, champion)
    assert d.promote, render_table(d)
    beats = next(c for c in d.checks if c.name == "beats_champion")
    assert "CI" in beats.value and beats.passed
    worse = _report(rows, {"en": 0.5, "es": 0.5}, seed=3)
    d = _gate(worse, champion)
    assert not d.promote and "beats_champion" in [c.name for c in d.checks if not c.passed]
    assert "PROMOTE" not in render_table(d) and "beats_champion" in render_table(d)


def test_a_tie_is_not_promoted_when_the_ci_must_be_above_zero():
    rows = _golden()
    champion = _report(rows, {"en": 0.8, "es": 0.8}, seed=4)
    same = dict(champion)
    d = _gate(same, champion)
    assert not d.promote


def test_a_slice_regression_blocks_promotion_even_when_the_average_improves():
    rows = _golden()
    champion = _report(rows, {"en": 0.6, "es": 0.8}, seed=5)
    cand = _report(rows, {"en": 0.95, "es": 0.5}, seed=6)  # better overall, much worse in Spanish
    d = _gate(cand, champion)
    assert not d.promote
    failed = {c.name: c for c in d.checks if not c.passed}
    assert "slices" in failed and "lang=es" in failed["slices"].detail


def test_pii_leaks_and_robustness_drops_block_promotion_without_a_champion():
    rows = _golden()
    assert _gate(_report(rows, {"en": 0.9, "es": 0.9}, seed=7), None).promote  # first champion
    leaky = _gate(_report(rows, {"en": 0.9, "es": 0.9}, seed=7, leaks=2), None)
    assert not leaky.promote and [c.name for c in leaky.checks if not c.passed] == ["pii_leaks"]
    brittle = _gate(_report(rows, {"en": 0.9, "es": 0.9}, seed=7, drop=0.3), None)
    assert not brittle.promote and [c.name for c in brittle.checks if not c.passed] == ["robustness"]


def test_a_first_candidate_below_the_shipped_floor_is_not_promoted():
    rows = _golden()
    assert SUITE.thresholds.min_primary == 0.70  # the shipped suite's floor (include/evaluation/suites)
    weak = _report(rows, {"en": 0.5, "es": 0.5}, seed=8)  # macro-F1 about 0.5, like the old 30-step default
    assert weak["metrics"]["macro_f1"]["value"] < 0.70
    d = _gate(weak, None)
    assert not d.promote and [c.name for c in d.checks if not c.passed] == ["min_primary"]
    table = render_table(d)
    assert "REJECT" in table and "below the suite's floor 0.7" in table
    assert "first candidate, no champion yet: not promoted (min_primary)" in table
    good = _gate(_report(rows, {"en": 0.9, "es": 0.9}, seed=8), None)
    assert good.promote and "first candidate, no champion yet: promoted" in render_table(good)
    assert "reaches the suite's floor 0.7" in good.note and good.to_dict()["note"] == good.note
    # with a champion there is no first-candidate note
    assert _gate(_report(rows, {"en": 0.95, "es": 0.95}, seed=9), _report(rows, {"en": 0.9, "es": 0.9}, seed=8)).note == ""


def test_promotion_moves_aliases_once(tmp_path):
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    client.create_registered_model("m")
    for _ in range(2):
        client.create_model_version("m", source=str(tmp_path))
    assert promote(client, "m", "1") == {"changed": True, "champion": "1", "previous": None}
    assert promote(client, "m", "2") == {"changed": True, "champion": "2", "previous": "1"}
    again = promote(client, "m", "2")  # a retried promotion changes nothing
    assert again == {"changed": False, "champion": "2", "previous": "1"}
    assert client.get_model_version_by_alias("m", "champion").version in ("2", 2)
    assert client.get_model_version_by_alias("m", "previous").version in ("1", 1)


def test_suites_validate_and_name_the_key(tmp_path):
    from llmops.config import ConfigError
    from llmops.evaluation.suites import load_suite as load

    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nversion: 1\ntask: classification\ngolden: {name: g, version: v1}\n"
                   "metrics: [accuracy]\nprimary: accuracy\nthreshold: {}\n")
    with pytest.raises(ConfigError, match="threshold: unknown key"):
        load(str(bad))
    bad.write_text("name: bad\nversion: 1\ntask: classification\ngolden: {name: g, version: v1}\n"
                   "metrics: [bleu]\nprimary: bleu\n")
    with pytest.raises(ConfigError, match="do not apply to task classification"):
        load(str(bad))


def test_a_promotion_is_audited_in_the_given_store_also_when_a_retry_finds_the_aliases_moved(tmp_path):
    """The promote task passes the store it reaches through the Airflow connection; a try that failed
    after moving the aliases (e.g. the audit write) is retried, and the retry records the promotion,
    once."""
    from mlflow import MlflowClient

    from llmops.config import parse_config
    from llmops.evaluation.promotion import apply
    from llmops.privacy.audit import read_events
    from llmops.storage import LocalStore

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cfg = parse_config({"storage": {"root": str(tmp_path / "config-store")},
                        "training": {"registered_model": "m", "tracking": {"tracking_uri": uri}}})
    client = MlflowClient(tracking_uri=uri)
    client.create_registered_model("m")
    client.create_model_version("m", source=str(tmp_path))
    store = LocalStore(tmp_path / "task-store")
    promote(client, "m", "1")  # a first try moved the aliases, then failed before the audit record
    out = apply(cfg, "1", store=store)
    assert out["changed"] is False and out["champion"] == "1"
    assert [e["details"]["version"] for e in read_events(store, event="model_promotion")] == ["1"]
    apply(cfg, "1", store=store)  # another retry: the record exists, nothing is added
    assert len(read_events(store, event="model_promotion")) == 1
    assert not (tmp_path / "config-store").exists()  # only the store the task gave was written
