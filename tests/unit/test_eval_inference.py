"""Batched inference returns exactly what one-by-one inference returns, in input order."""

from __future__ import annotations

import pytest

from tests._tiny_models import build_tiny_causal_lm, build_tiny_classifier

TEXTS = ["my parcel is late", "I was charged twice on the invoice and nobody answers my emails at all",
         "refund please", "where is my package, the courier never came and the tracking page is empty",
         "password reset", "ok", "the app crashes when I pay with my card on the checkout page", "hola"]


def test_classifier_batches_sorted_by_length_match_one_by_one(tmp_path):
    from llmops.evaluation.inference import ClassifierPredictor, predict_one_by_one

    model_dir = build_tiny_classifier(tmp_path / "clf", TEXTS, num_labels=3)
    pred = ClassifierPredictor.from_dir(model_dir, batch_size=3)
    batched = pred.predict(TEXTS)
    assert batched.labels == predict_one_by_one(pred, TEXTS)
    single = [pred.predict([t]) for t in TEXTS]
    for i, one in enumerate(single):
        assert batched.probabilities[i] == pytest.approx(one.probabilities[0], abs=1e-5)
        assert batched.confidences[i] == pytest.approx(max(one.probabilities[0]), abs=1e-5)
    assert len(set(batched.labels)) >= 1 and set(batched.labels) <= set(pred.classes)


def test_generation_left_pads_and_matches_one_by_one(tmp_path):
    from llmops.evaluation.inference import GenerativePredictor, predict_one_by_one

    corpus = [f"### Message:\n{t}\n### Intent:\nshipping" for t in TEXTS]
    model_dir = build_tiny_causal_lm(tmp_path / "lm", corpus)
    pred = GenerativePredictor.from_dir(model_dir, batch_size=4, max_new_tokens=4)
    assert pred.predict(TEXTS).labels == predict_one_by_one(pred, TEXTS)
