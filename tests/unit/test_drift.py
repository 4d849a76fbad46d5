"""Drift detection on synthetic shifts: calibrated tests (false alarms at the configured level) and
detection of a length shift, a language-mix shift and a topic shift in embeddings, with the drifted
slice named."""

from __future__ import annotations

import numpy as np
import pytest

from tests._drift_data import make_rows


@pytest.fixture(scope="module")
def embed():
    from llmops.annotation.selection import embed_texts

    cache: dict[str, np.ndarray] = {}

    def fn(texts):
        missing = [t for t in dict.fromkeys(texts) if t not in cache]
        if missing:
            for t, v in zip(missing, embed_texts(missing), strict=True):
                cache[t] = v
        return np.stack([cache[t] for t in texts])

    return fn


def _cfg(**kw):
    from llmops.drift.settings import DriftConfig

    return DriftConfig.model_validate({"slices": ["lang", "source"], "min_slice_size": 30, **kw})


def test_statistics_against_known_distributions():
    from llmops.drift.stats import categorical_test, domain_auc, ks_test, mmd_test, psi, psi_categorical

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 2000), rng.normal(0, 1, 2000)
    assert psi(a, b) < 0.02 and psi(a, rng.normal(1, 1, 2000)) > 0.5
    assert psi_categorical(["x"] * 50 + ["y"] * 50, ["x"] * 50 + ["y"] * 50) == pytest.approx(0.0)
    # PSI of a 50/50 -> 80/20 split: 0.3 ln(1.6) + (-0.3) ln(0.4)
    assert psi_categorical(["x"] * 50 + ["y"] * 50, ["x"] * 80 + ["y"] * 20) == pytest.approx(
        0.3 * np.log(1.6) - 0.3 * np.log(0.4), rel=1e-6)
    assert ks_test(a, b)[1] > 0.01 and ks_test(a, a + 0.5)[1] < 1e-10
    assert categorical_test(["x"] * 50 + ["y"] * 50, ["x"] * 52 + ["y"] * 48)[1] > 0.5
    assert categorical_test(["x"] * 50 + ["y"] * 50, ["x"] * 90 + ["y"] * 10)[1] < 1e-6
    # the MMD permutation test holds its level: rejections at 5% over 60 null pairs stay near 5%
    rejections = sum(mmd_test(rng.normal(size=(60, 8)), rng.normal(size=(60, 8)), n_permutations=200,
                              seed=s)[1] < 0.05 for s in range(60))
    assert rejections <= 8
    assert mmd_test(rng.normal(size=(60, 8)), rng.normal(0.6, 1, size=(60, 8)), n_permutations=200)[1] < 0.01
    assert 0.35 < domain_auc(rng.normal(size=(200, 8)), rng.normal(size=(200, 8))) < 0.65
    assert domain_auc(rng.normal(size=(200, 8)), rng.normal(1.0, 1, size=(200, 8))) > 0.9


def test_no_false_alarms_on_one_distribution_over_seeds():
    from llmops.drift.detect import analyze

    cfg = _cfg(thresholds={"alpha": 0.05})
    alarms = [analyze(make_rows(300, 2 * s), make_rows(300, 2 * s + 1), cfg)["drift"] for s in range(30)]
    assert sum(alarms) <= 3, alarms  # at most alpha = 5% expected; 3 of 30 allows for chance


@pytest.mark.slow
def test_same_distribution_with_embeddings_is_quiet(embed):
    from llmops.drift.detect import analyze

    report = analyze(make_rows(400, 10), make_rows(400, 11), _cfg(), embed=embed)
    assert not report["drift"], report["breaches"]
    assert report["embedding"]["auc"] < 0.65 and report["drifted_slices"] == []


def test_a_length_shift_is_detected():
    from llmops.drift.detect import analyze

    report = analyze(make_rows(400, 20), make_rows(400, 21, long_share=0.7), _cfg())
    assert report["drift"] and report["features"]["length"]["drift"]
    assert report["features"]["length"]["current_mean"] > report["features"]["length"]["reference_mean"]
    assert not report["features"]["lang"]["drift"]


def test_a_language_mix_shift_is_detected_and_the_slice_named():
    from llmops.drift.detect import analyze

    report = analyze(make_rows(400, 30, es_share=0.2), make_rows(400, 31, es_share=0.6), _cfg())
    assert report["features"]["lang"]["drift"] and not report["features"]["source"]["drift"]
    assert {"lang=es", "lang=en"} <= set(report["drifted_slices"])  # one grew, the other shrank
    assert not any(s.startswith("source=") for s in report["drifted_slices"])
    es = report["slices"]["lang"]["es"]
    assert es["current_share"] - es["reference_share"] > 0.3


@pytest.mark.slow
def test_a_topic_shift_in_one_language_is_found_in_the_embeddings_of_that_slice(embed):
    from llmops.drift.detect import analyze

    shifted = {"en": ["billing", "shipping", "account"], "es": ["gardening"]}
    report = analyze(make_rows(600, 40, es_share=0.3), make_rows(600, 41, es_share=0.3, topics=shifted),
                     _cfg(), embed=embed)
    assert report["drift"] and report["embedding"]["drift"]
    assert not report["features"]["lang"]["drift"] and not report["features"]["length"]["drift"]
    es, en = report["slices"]["lang"]["es"], report["slices"]["lang"]["en"]
    assert es["embedding"]["drift"] and es["embedding"]["auc"] > 0.9
    assert not en["embedding"]["drift"]
    assert "lang=es" in report["drifted_slices"] and "lang=en" not in report["drifted_slices"]


def test_prediction_drift_from_the_champion_labels():
    from llmops.drift.detect import analyze

    def predict(texts):
        return ["billing" if ("invoice" in t or "factura" in t or "payment" in t or "pago" in t) else "other"
                for t in texts]

    billing_heavy = {"en": ["billing"], "es": ["billing"]}
    report = analyze(make_rows(300, 50), make_rows(300, 51, topics=billing_heavy), _cfg(), predict=predict)
    assert report["prediction"]["drift"]
    assert report["prediction"]["current"]["billing"] > report["prediction"]["reference"]["billing"]


def test_llmops_drift_compares_two_dataset_versions(tmp_path, capsys):
    import json

    from llmops.cli import main
    from llmops.config import parse_config
    from llmops.records import Record
    from llmops.stages import open_config_store
    from llmops.versions import VersionWriter

    config = tmp_path / "pipeline.yaml"
    config.write_text(f"storage: {{root: {tmp_path / 'store'}}}\n")
    cfg = parse_config({"storage": {"root": str(tmp_path / "store")}})
    store = open_config_store(cfg)
    ids = []
    for k, (partition, kw) in enumerate((("2026-11-01", {}), ("2026-11-02", {}),
                                         ("2026-11-03", {"long_share": 0.8, "es_share": 0.7}))):
        writer = VersionWriter(cfg.dataset, "curated")
        rows = make_rows(300, 200 + k, **kw)
        writer.counts.input = len(rows)
        writer.add_records([Record(r["id"], r["text"], r["source"], r["lang"], meta=r["meta"]) for r in rows])
        ids.append(writer.finish(store, partition=partition)["id"])
    base = ["drift", "--config", str(config), "--no-embeddings", "--reference", ids[0]]
    assert main([*base, "--current", ids[1]]) == 0
    assert capsys.readouterr().out.startswith("no drift")
    assert main([*base, "--current", ids[2], "--out", str(tmp_path / "r")]) == 1
    out = capsys.readouterr().out
    assert out.startswith("DRIFT") and "feature:length" in out and "lang=es" in out
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["analysis"]["features"]["length"]["drift"] and report["analysis"]["embedding"] == {}
    html = (tmp_path / "r" / "report.html").read_text()
    assert f"dataset version {ids[0]}" in html and "DRIFT" in html
    assert main([*base, "--current", "nope"]) == 2
    assert "--current nope: no such dataset version" in capsys.readouterr().err


def test_champion_performance_against_its_promotion_time_numbers(tmp_path):
    from transformers import AutoModelForSequenceClassification

    from llmops.config import PipelineConfig
    from llmops.drift.nightly import _performance
    from llmops.evaluation.golden import load_golden
    from llmops.evaluation.inference import ClassifierPredictor
    from tests._tiny_models import build_tiny_classifier

    golden, _ = load_golden("support_intents", "v1")
    labels = sorted({r["label"] for r in golden})
    folder = build_tiny_classifier(tmp_path / "clf", [r["text"] for r in golden], num_labels=len(labels))
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    model.config.id2label = dict(enumerate(labels))
    model.save_pretrained(folder)
    predictor = ClassifierPredictor.from_dir(folder)
    cfg = PipelineConfig()
    labeled = [{"text": r["text"], "label": r["label"]} for r in golden[:60]]
    champion = {"version": "3", "task": "classification", "promoted": {}}
    quiet = _performance(cfg, champion, predictor, labeled)
    suite = quiet["suites"]["support_intents"]
    assert suite["metric"] == "macro_f1" and suite["at_promotion"] is None and not suite["breach"]
    assert quiet["labeled"]["items"] == 60 and quiet["breaches"] == []
    # a random model against promotion-time numbers of 0.9: both the golden suite and the labeled items breach
    champion["promoted"] = {"support_intents.macro_f1": 0.9, "support_intents.accuracy": 0.9}
    worse = _performance(cfg, champion, predictor, labeled)
    assert worse["suites"]["support_intents"]["drop"] == pytest.approx(0.9 - suite["value"], abs=1e-6)
    assert {b["check"] for b in worse["breaches"]} == {"performance:support_intents.macro_f1",
                                                        "performance:labeled_in_window.accuracy"}
    # within the tolerance: no breach
    champion["promoted"] = {"support_intents.macro_f1": suite["value"] + 0.01}
    assert _performance(cfg, champion, predictor, [])["breaches"] == []
