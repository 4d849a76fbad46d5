"""Per-token attributions (captum integrated gradients), generative NLL/perplexity and the sft suite."""

from __future__ import annotations

import math
import random

import pytest

from tests._tiny_models import build_tiny_causal_lm, build_tiny_classifier

FILLER = ["my", "order", "is", "late", "please", "help", "the", "app", "shows", "an", "error", "today", "again",
          "thanks", "hello", "account", "card", "box"]


def _corpus(n: int, seed: int) -> tuple[list[str], list[int]]:
    """Class 1 iff the message contains "zebra"; everything else is filler in random order."""
    rng = random.Random(seed)
    texts, labels = [], []
    for i in range(n):
        words = rng.sample(FILLER, rng.randint(4, 9))
        if i % 2:
            words.insert(rng.randrange(len(words) + 1), "zebra")
        texts.append(" ".join(words))
        labels.append(i % 2)
    return texts, labels


def _train_zebra_classifier(tmp_path):
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    texts, labels = _corpus(256, seed=1)
    folder = build_tiny_classifier(tmp_path / "clf", texts + ["zebra"], num_labels=2)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder)
    torch.manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(60):
        idx = [(step * 32 + k) % len(texts) for k in range(32)]
        batch = tok([texts[i] for i in idx], padding=True, return_tensors="pt")
        loss = model(**batch, labels=torch.tensor([labels[i] for i in idx])).loss
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    return model, tok


def test_examples_to_explain_cover_errors_and_every_slice_deterministically():
    from llmops.evaluation.explain import select_examples

    rows = [{"id": f"r{i}", "lang": "es" if i % 4 == 0 else "en", "meta": {"domain": "a" if i < 10 else "b"}}
            for i in range(20)]
    refs = ["x"] * 20
    preds = ["y" if i in (3, 7, 11) else "x" for i in range(20)]
    picked = select_examples(rows, preds, refs, by=["lang", "meta.domain"], errors=2, per_slice=2)
    assert picked == select_examples(rows, preds, refs, by=["lang", "meta.domain"], errors=2, per_slice=2)
    errors = [p["index"] for p in picked if "error" in p["reasons"]]
    assert len(errors) == 2 and set(errors) <= {3, 7, 11}
    for reason, members in (("slice lang=es", {i for i in range(20) if i % 4 == 0}),
                            ("slice lang=en", {i for i in range(20) if i % 4}),
                            ("slice meta.domain=a", set(range(10))), ("slice meta.domain=b", set(range(10, 20)))):
        tagged = {p["index"] for p in picked if reason in p["reasons"]}
        assert len(tagged) == 2 and tagged <= members, reason
    assert len({p["index"] for p in picked}) == len(picked)
    assert select_examples(rows, preds, refs, by=[], errors=0, per_slice=0) == []


def test_integrated_gradients_point_at_the_word_that_decides(tmp_path):
    from llmops.evaluation.explain import attribute_classifier

    model, tok = _train_zebra_classifier(tmp_path)
    texts, labels = _corpus(40, seed=99)
    positives = [t for t, y in zip(texts, labels, strict=True) if y == 1]
    out = attribute_classifier(model, tok, positives, steps=48)
    assert all(o["target"] == "LABEL_1" for o in out), [o["target"] for o in out]
    top = [o["tokens"][max(range(len(o["scores"])), key=lambda k: o["scores"][k])].strip() for o in out]
    assert top.count("zebra") >= 0.9 * len(out), top
    for o, text in zip(out, positives, strict=True):
        assert len(o["tokens"]) == len(text.split())  # [CLS]/[SEP] are not shown
        assert max(abs(s) for s in o["scores"]) == pytest.approx(1.0)
        assert o["delta"] >= 0  # completeness gap: large here, the tiny trained model is nearly a step function


def test_generative_attributions_cover_only_the_message(tmp_path):
    from llmops.evaluation.explain import attribute_generative
    from llmops.evaluation.inference import GenerativePredictor

    texts = ["my parcel is late", "refund please for the broken kettle", "hola, no puedo entrar"]
    corpus = [f"### Message:\n{t}\n### Intent:\nshipping" for t in texts]
    pred = GenerativePredictor.from_dir(build_tiny_causal_lm(tmp_path / "lm", corpus))
    out = attribute_generative(pred, texts, steps=64)
    for o, text in zip(out, texts, strict=True):
        assert "".join(o["tokens"]) == text
        assert max(abs(s) for s in o["scores"]) == pytest.approx(1.0)
        assert o["delta"] < 0.05


def test_perplexity_is_the_exponent_of_the_mean_answer_token_loss(tmp_path):
    import torch

    from llmops.evaluation.inference import GenerativePredictor
    from llmops.evaluation.runner import _metric_values
    from llmops.evaluation.suites import load_suite
    from llmops.training.sft import encode_sft

    texts = ["my parcel is late", "refund please", "the app crashes at checkout"]
    refs = ["shipping", "refund", "technical_issue"]
    corpus = [f"### Message:\n{t}\n### Intent:\n{r}" for t, r in zip(texts, refs, strict=True)]
    pred = GenerativePredictor.from_dir(build_tiny_causal_lm(tmp_path / "lm", corpus), batch_size=2)
    nll, counts = pred.nll(texts, refs)
    # the same quantity one example at a time, with the model's own loss (mean over the answer tokens)
    enc = encode_sft([{"id": "0", "text": t, "label": r} for t, r in zip(texts, refs, strict=True)], pred.tok,
                     max_length=256, template=pred.template)
    for i in range(3):
        with torch.no_grad():
            loss = pred.model(input_ids=torch.tensor([enc["input_ids"][i]]),
                              labels=torch.tensor([enc["labels"][i]])).loss
        n_answer = sum(1 for x in enc["labels"][i] if x != -100)
        assert counts[i] == n_answer
        assert nll[i] == pytest.approx(float(loss) * n_answer, rel=1e-4)
    suite = load_suite("support_intents_generative")
    metrics = _metric_values(suite, refs, refs, [1.0] * 3, nll=(nll, counts))
    assert metrics["perplexity"]["value"] == pytest.approx(math.exp(sum(nll) / sum(counts)), rel=1e-6)
    low, high = metrics["perplexity"]["ci"]
    assert low <= metrics["perplexity"]["value"] <= high and metrics["perplexity"]["lower_is_better"]
    assert metrics["exact_match"]["value"] == 1.0


def test_suite_primary_must_be_a_metric_the_gate_can_rank(tmp_path):
    from llmops.config import ConfigError
    from llmops.evaluation.suites import load_suite

    path = tmp_path / "gen.yaml"
    path.write_text("name: gen\nversion: 1\ntask: sft\ngolden: {name: support_intents, version: v1}\n"
                    "metrics: [exact_match, perplexity]\nprimary: perplexity\n")
    with pytest.raises(ConfigError, match="primary 'perplexity' cannot rank models"):
        load_suite(str(path))
    path.write_text(path.read_text().replace("primary: perplexity", "primary: exact_match\nexplain: {steps: 2}"))
    with pytest.raises(ConfigError, match="explain.steps"):
        load_suite(str(path))
    path.write_text(path.read_text().replace("explain: {steps: 2}", "explain: null"))
    assert load_suite(str(path)).explain is None


def test_an_example_with_personal_data_is_withheld_from_the_report(tmp_path):
    from llmops.config import PIIConfig
    from llmops.evaluation.explain import explain
    from llmops.evaluation.inference import ClassifierPredictor
    from llmops.evaluation.report import render_html
    from llmops.privacy.pii import PIIRedactor

    rows = [{"id": "a", "lang": "en", "text": "my parcel is late again"},
            {"id": "b", "lang": "en", "text": "write to jane.roe@example.com or call 212-555-0199 about the refund"},
            {"id": "c", "lang": "en", "text": "the app shows an <b>error</b>"}]
    folder = build_tiny_classifier(tmp_path / "clf", [r["text"] for r in rows], num_labels=2)
    predictor = ClassifierPredictor.from_dir(folder)
    preds = predictor.predict([r["text"] for r in rows]).labels
    refs = ["nope"] * 3  # every item is an error, so every item is selected
    out = explain(predictor, rows, preds, refs, by=["lang"], errors=3, per_slice=0, steps=8,
                  redactor=PIIRedactor(PIIConfig()))
    assert out["withheld"] == 1 and sorted(e["id"] for e in out["examples"]) == ["a", "c"]
    report = {"suite": {"name": "s", "version": 1, "task": "classification", "primary": "accuracy",
                        "golden": {"name": "g", "version": "v1", "sha256": "0" * 64, "items": 3}},
              "model": "m", "metrics": {"accuracy": {"value": 0.0, "ci": [0.0, 0.0]}}, "slices": {"by": {}},
              "explanations": out}
    html = render_html(report)
    assert "Why the model decided" in html and "1 selected example(s) withheld" in html
    assert "jane.roe" not in html and "555-0199" not in html
    assert ">&lt;</span>" in html and "<b>error" not in html  # tokens are escaped


def test_a_generative_model_on_the_generative_suite(tmp_path):
    from llmops.config import ConfigError, PipelineConfig
    from llmops.evaluation.golden import load_golden
    from llmops.evaluation.promotion import suites_for
    from llmops.evaluation.report import render_html
    from llmops.evaluation.runner import evaluate_model
    from llmops.evaluation.suites import load_suite

    rows, _ = load_golden("support_intents", "v1")
    corpus = [f"### Message:\n{r['text']}\n### Intent:\n{r['label']}" for r in rows[::3]]
    folder = build_tiny_causal_lm(tmp_path / "lm", corpus)
    suite = load_suite("support_intents_generative")
    report = evaluate_model(str(folder), suite)
    assert set(report["metrics"]) == {"exact_match", "accuracy", "chrf", "perplexity"}
    assert report["metrics"]["perplexity"]["value"] > 1 and report["pii"]["outputs"] == 240
    assert report["explanations"]["examples"] and all(e["tokens"] for e in report["explanations"]["examples"])
    assert "Why the model decided" in render_html(report)

    cfg = PipelineConfig.model_validate({"evaluation": {"suites": ["support_intents", "support_intents_generative"]}})
    assert [s.name for s in suites_for(cfg, "sft")] == ["support_intents_generative"]
    assert [s.name for s in suites_for(cfg, None)] == ["support_intents", "support_intents_generative"]
    only_clf = PipelineConfig.model_validate({"evaluation": {"suites": ["support_intents"]}})
    with pytest.raises(ConfigError, match="evaluation.suites: none of .* evaluates a 'sft' model"):
        suites_for(only_clf, "sft")
