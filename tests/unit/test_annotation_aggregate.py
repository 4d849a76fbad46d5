"""Label aggregation: Dawid-Skene beats majority vote when spammers are in the crowd; agreement
and gold statistics on cases with known answers."""

from __future__ import annotations

import random

import pytest

from llmops.annotation.aggregate import aggregate, gold_accuracy, krippendorff_alpha, majority_vote

LABELS = ["billing", "shipping", "technical_issue", "account_access", "refund", "product_question"]


def simulated_crowd(seed: int, n_items: int = 300, per_item: int = 5):
    """6 honest workers (accuracy 0.55-0.8) and 4 spammers who click their favourite label 80% of the time."""
    rng = random.Random(seed)
    workers = [(f"h{i}", rng.uniform(0.55, 0.8), None) for i in range(6)]
    workers += [(f"s{i}", 0.0, rng.choice(LABELS)) for i in range(4)]
    truth, votes = {}, []
    for i in range(n_items):
        item = f"item-{i}"
        truth[item] = rng.choice(LABELS)
        for name, acc, fav in rng.sample(workers, per_item):
            if fav is not None:
                label = fav if rng.random() < 0.8 else rng.choice(LABELS)
            elif rng.random() < acc:
                label = truth[item]
            else:
                label = rng.choice([x for x in LABELS if x != truth[item]])
            votes.append((item, name, label))
    return truth, votes


def _accuracy(result, truth):
    return sum(result[i].label == t for i, t in truth.items()) / len(truth)


@pytest.mark.slow
def test_dawid_skene_recovers_truth_better_than_majority_vote():
    gains = []
    for seed in range(6):
        truth, votes = simulated_crowd(seed)
        ds, skills = aggregate(votes, LABELS, "dawid_skene")
        mv = majority_vote(votes, LABELS)
        acc_ds, acc_mv = _accuracy(ds, truth), _accuracy(mv, truth)
        assert acc_ds > acc_mv, (seed, acc_ds, acc_mv)
        gains.append(acc_ds - acc_mv)
        # the model knows who the spammers are
        assert max(skills[f"s{i}"] for i in range(4)) < min(skills[f"h{i}"] for i in range(6)), seed
        assert all(0.0 <= r.confidence <= 1.0 + 1e-9 for r in ds.values())
    assert sum(gains) / len(gains) > 0.03, gains


def test_majority_vote_ties_follow_label_order_and_confidence_is_the_share():
    votes = [("a", "w1", "refund"), ("a", "w2", "billing"), ("b", "w1", "shipping"), ("b", "w2", "shipping"),
             ("b", "w3", "refund")]
    mv = majority_vote(votes, LABELS)
    assert mv["a"].label == "billing" and mv["a"].confidence == 0.5  # billing is listed before refund
    assert mv["b"].label == "shipping" and mv["b"].confidence == pytest.approx(2 / 3)
    assert mv["b"].votes == {"shipping": 2, "refund": 1} and mv["b"].agreement == pytest.approx(2 / 3)


def test_unanimous_votes_skip_em():
    votes = [(f"i{k}", f"w{j}", "refund") for k in range(3) for j in range(3)]
    labels, skills = aggregate(votes, LABELS, "dawid_skene")
    assert {r.label for r in labels.values()} == {"refund"} and skills == {}


def test_krippendorff_alpha_known_values():
    perfect = [(f"i{k}", w, LABELS[k % 3]) for k in range(6) for w in ("a", "b", "c")]
    assert krippendorff_alpha(perfect, LABELS) == 1.0
    # two coders, four items, one disagreement: alpha = 1 - (n-1) * D_o / D_e on the coincidence matrix
    votes = [("1", "a", "billing"), ("1", "b", "billing"), ("2", "a", "refund"), ("2", "b", "refund"),
             ("3", "a", "billing"), ("3", "b", "refund"), ("4", "a", "shipping"), ("4", "b", "shipping")]
    # coincidences: billing 3, refund 3, shipping 2 (n=8); observed disagreement pairs 2 -> D_o = 2/8
    # expected: (8*8 - (3*3 + 3*3 + 2*2)) / (8*7) = 42/56 -> alpha = 1 - (2/8)/(42/56) = 2/3
    assert krippendorff_alpha(votes, LABELS) == pytest.approx(2 / 3, abs=1e-4)
    assert krippendorff_alpha([("1", "a", "billing")], LABELS) is None


def test_gold_accuracy_per_worker():
    votes = [("g1", "a", "refund"), ("g2", "a", "billing"), ("g1", "b", "shipping"), ("x", "b", "refund")]
    stats = gold_accuracy(votes, {"g1": "refund", "g2": "billing"})
    assert stats == {"a": {"answered": 2, "correct": 2, "accuracy": 1.0},
                     "b": {"answered": 1, "correct": 0, "accuracy": 0.0}}
