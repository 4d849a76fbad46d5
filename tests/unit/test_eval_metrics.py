"""Evaluation metrics: the local ``evaluate`` modules, the fast numpy versions and the bootstrap intervals."""

from __future__ import annotations

import math

import numpy as np
import pytest
import sacrebleu

from llmops.evaluation import metrics as M
from llmops.evaluation.metrics import FAST, bootstrap_ci, compute, load_metric, paired_bootstrap_diff

# Loading the evaluate modules imports evaluate (and transformers through it): seconds, once per session.
slow = pytest.mark.slow

NAMES = ["accuracy", "bleu", "chrf", "ece", "exact_match", "macro_f1", "perplexity", "rouge"]


def _noisy_labels(n: int, accuracy: float, seed: int, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """References and predictions that are right about ``accuracy`` of the time."""
    rng = np.random.default_rng(seed)
    refs = rng.integers(0, k, size=n)
    wrong = (refs + rng.integers(1, k, size=n)) % k
    preds = np.where(rng.random(n) < accuracy, refs, wrong)
    return preds, refs


# --------------------------------------------------------------------------- loading
def test_metric_folders_are_found():
    assert M.METRICS_DIR.is_dir()
    assert M.available_metrics() == NAMES


def test_unknown_metric_lists_the_available_ones():
    with pytest.raises(ValueError, match="unknown metric 'bleurt'.*accuracy.*rouge"):
        load_metric("bleurt")


@slow
def test_modules_load_offline_and_are_cached():
    # conftest blocks non-local sockets, so a Hub lookup would fail here.
    for name in NAMES:
        module = load_metric(name)
        assert module is load_metric(name)
        assert module.description and module.citation and module.features
    assert load_metric("macro_f1").name == "macro_f1"


# --------------------------------------------------------------------------- known values
@slow
def test_accuracy():
    assert compute("accuracy", predictions=[0, 1, 1, 0], references=[0, 1, 0, 0]) == {"accuracy": 0.75}
    assert compute("accuracy", predictions=["refund", "billing"], references=["refund", "refund"]) == {
        "accuracy": 0.5}
    assert compute("accuracy", predictions=np.array([2, 2]), references=np.array([2, 2]))["accuracy"] == 1.0
    # a failed call leaves nothing behind for the next one
    with pytest.raises(ValueError, match="Mismatch"):
        compute("accuracy", predictions=[0, 1, 1], references=[0, 1])
    assert compute("accuracy", predictions=["x", "y"], references=["x", "x"]) == {"accuracy": 0.5}


@slow
def test_macro_f1_by_hand():
    # a: P=2/2 R=2/3 F1=0.8 | b: P=1/2 R=1/2 F1=0.5 | c: P=1/2 R=1/1 F1=2/3
    out = compute("macro_f1", predictions=["a", "a", "b", "b", "c", "c"],
                  references=["a", "a", "a", "b", "b", "c"])
    assert out["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert out["macro_precision"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert out["macro_recall"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    assert out["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": 0.8, "support": 3})
    assert out["per_class"]["c"]["f1"] == pytest.approx(2 / 3)

    # a label only ever predicted counts as a class with F1 0; integer labels are keyed by str(label)
    out = compute("macro_f1", predictions=[0, 9], references=[0, 0])
    assert out["macro_f1"] == pytest.approx((2 / 3 + 0) / 2)
    assert set(out["per_class"]) == {"0", "9"}
    # a fixed label set includes classes absent from both lists
    out = compute("macro_f1", predictions=[0, 1], references=[0, 1], labels=[0, 1, 2])
    assert out["macro_f1"] == pytest.approx(2 / 3)


@slow
def test_exact_match_normalises_case_and_whitespace():
    out = compute("exact_match", predictions=["  Refund\tPLEASE \n", "STRASSE", "ok"],
                  references=["refund please", "straße", "okay"])
    assert out == {"exact_match": pytest.approx(2 / 3)}
    assert compute("exact_match", predictions=["a b"], references=["ab"])["exact_match"] == 0.0


@slow
def test_bleu_matches_sacrebleu():
    same = compute("bleu", predictions=["the cat sat on the mat"], references=["the cat sat on the mat"])
    assert same["bleu"] == pytest.approx(100.0)
    assert same["brevity_penalty"] == 1.0

    hyps = ["the cat sat on the mat", "there is a dog in the garden today"]
    refs = ["the cat is on the mat", "a dog is in the garden"]
    out = compute("bleu", predictions=hyps, references=refs)
    direct = sacrebleu.corpus_bleu(hyps, [refs])
    assert out["bleu"] == pytest.approx(direct.score)
    assert [out[f"precision_{n}"] for n in range(1, 5)] == pytest.approx(direct.precisions)
    assert out["sys_len"] == direct.sys_len and out["ref_len"] == direct.ref_len

    # several references per hypothesis, of different counts
    multi = [["the cat is on the mat", "a cat sat on the mat"], ["a dog is in the garden"]]
    out = compute("bleu", predictions=hyps, references=multi)
    direct = sacrebleu.corpus_bleu(hyps, [[m[0] for m in multi], [multi[0][1], None]])
    assert out["bleu"] == pytest.approx(direct.score)


@slow
def test_chrf_matches_sacrebleu():
    same = compute("chrf", predictions=["la factura"], references=["la factura"])
    assert same["chrf"] == pytest.approx(100.0)
    hyps = ["quiero un reembolso", "mi paquete llegó tarde"]
    refs = ["quiero el reembolso", "el paquete llegó muy tarde"]
    assert compute("chrf", predictions=hyps, references=refs)["chrf"] == pytest.approx(
        sacrebleu.corpus_chrf(hyps, [refs]).score)
    chrf_pp = compute("chrf", predictions=hyps, references=[[r] for r in refs], word_order=2)
    assert chrf_pp["chrf"] == pytest.approx(sacrebleu.corpus_chrf(hyps, [refs], word_order=2).score)


@slow
def test_rouge_by_hand():
    # "the cat sat" vs "the cat sat on the mat": 3 shared unigrams -> P=1, R=1/2, F=2/3;
    # bigrams 2 shared of 2 / 5 -> F=4/7; LCS 3 -> as ROUGE-1.
    out = compute("rouge", predictions=["the cat sat"], references=["the cat sat on the mat"])
    assert out["rouge1"] == pytest.approx(2 / 3)
    assert out["rouge2"] == pytest.approx(2 * 1 * 0.4 / 1.4)
    assert out["rougeL"] == pytest.approx(2 / 3)
    # the mean over examples; an exact copy scores 1
    out = compute("rouge", predictions=["the cat sat", "a dog"],
                  references=["the cat sat on the mat", "a dog"])
    assert out["rouge1"] == pytest.approx((2 / 3 + 1) / 2)
    # with several references the best one counts
    out = compute("rouge", predictions=["the cat sat"], references=[["a dog", "the cat sat"]])
    assert out["rouge1"] == pytest.approx(1.0)


@slow
def test_ece_by_hand():
    # bin (0.9, 1.0]: 4 examples, accuracy 3/4, confidence 0.95 -> gap 0.2
    # bin (0.2, 0.3]: 2 examples, accuracy 1/2, confidence 0.25 -> gap 0.25
    out = compute("ece", predictions=[1, 1, 1, 1, 0, 0], references=[1, 1, 1, 0, 1, 0],
                  confidences=[0.95, 0.95, 0.95, 0.95, 0.25, 0.25])
    assert out["ece"] == pytest.approx(4 / 6 * 0.2 + 2 / 6 * 0.25)
    assert out["mce"] == pytest.approx(0.25)
    assert out["accuracy"] == pytest.approx(4 / 6)
    # one bin: |accuracy - mean confidence|; perfectly calibrated -> 0
    one = compute("ece", predictions=["a", "b"], references=["a", "a"], confidences=[0.9, 0.6], n_bins=1)
    assert one["ece"] == pytest.approx(abs(0.5 - 0.75))
    assert compute("ece", predictions=[1, 0], references=[1, 1], confidences=[1.0, 0.0])["ece"] == 0.0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        compute("ece", predictions=[1], references=[1], confidences=[1.5])


@slow
def test_perplexity_of_uniform_nll_is_vocab_size():
    vocab, counts = 32000, [3, 7, 1]
    out = compute("perplexity", nll=[c * math.log(vocab) for c in counts], n_tokens=counts)
    assert out["perplexity"] == pytest.approx(vocab)
    assert out["n_tokens"] == 11
    # token-weighted, not a mean of per-example perplexities
    out = compute("perplexity", nll=[1.0, 9.0], n_tokens=[1, 4])
    assert out["perplexity"] == pytest.approx(math.exp(10 / 5))
    with pytest.raises(ValueError, match="no tokens"):
        compute("perplexity", nll=[0.0], n_tokens=[0])


# --------------------------------------------------------------------------- fast versions
@slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_functions_equal_the_modules(seed: int):
    rng = np.random.default_rng(seed)
    preds, refs = _noisy_labels(300, 0.6, seed, k=6)
    preds[preds == 5] = 4  # one class is never predicted
    named = np.array([f"intent_{v}" for v in range(6)])
    for p, r in ((preds, refs), (named[preds], named[refs])):
        for name in ("accuracy", "macro_f1"):
            assert FAST[name](p, r) == pytest.approx(compute(name, predictions=p, references=r)[name])

    words = ["refund", "Refund", " refund ", "REFUND  please", "refund please", "billing", "Billing\n"]
    p = [words[i] for i in rng.integers(0, len(words), 200)]
    r = [words[i] for i in rng.integers(0, len(words), 200)]
    assert FAST["exact_match"](p, r) == pytest.approx(
        compute("exact_match", predictions=p, references=r)["exact_match"])


def test_fast_macro_f1_against_sklearn_with_large_sparse_labels():
    from sklearn.metrics import f1_score

    preds, refs = _noisy_labels(500, 0.5, 3, k=7)
    preds, refs = preds * 1000 + 5, refs * 1000 + 5  # labels too large to index directly
    expected = f1_score(refs, preds, average="macro", zero_division=0)
    assert FAST["macro_f1"](preds, refs) == pytest.approx(expected)
    assert FAST["macro_f1"](preds % 3, refs % 3) == pytest.approx(
        f1_score(refs % 3, preds % 3, average="macro", zero_division=0))


def test_fast_functions_reject_mismatched_inputs():
    with pytest.raises(ValueError, match="equal length"):
        FAST["accuracy"]([0, 1], [0])
    with pytest.raises(ValueError, match="no examples"):
        FAST["macro_f1"]([], [])


# --------------------------------------------------------------------------- bootstrap
def test_bootstrap_ci_contains_point_and_is_deterministic():
    preds, refs = _noisy_labels(1000, 0.8, 0)
    for fn in (FAST["accuracy"], FAST["macro_f1"]):
        point, low, high = bootstrap_ci(fn, preds, refs)
        assert low <= point <= high
        assert 0.0 < high - low < 0.1
        assert bootstrap_ci(fn, preds, refs) == (point, low, high)
        assert bootstrap_ci(fn, preds, refs, seed=1) != (point, low, high)
    point, low, high = bootstrap_ci(FAST["accuracy"], preds, refs)
    assert point == pytest.approx(0.8, abs=0.03)
    # a wider confidence level gives a wider interval
    _, low99, high99 = bootstrap_ci(FAST["accuracy"], preds, refs, confidence=0.99)
    assert low99 <= low and high99 >= high


def test_bootstrap_ci_narrows_with_more_data():
    small = bootstrap_ci(FAST["accuracy"], *_noisy_labels(100, 0.7, 1))
    large = bootstrap_ci(FAST["accuracy"], *_noisy_labels(4000, 0.7, 1))
    assert (large[2] - large[1]) < (small[2] - small[1]) / 3  # width shrinks like 1/sqrt(n)


def test_bootstrap_ci_resamples_arrays_jointly_and_takes_any_metric():
    values = np.arange(50, dtype=float)
    # resampling the same array twice must keep pairs together: x - x is always 0
    mean_gap = bootstrap_ci(lambda a, b: float(np.mean(a - b)), values, values, n_resamples=200)
    assert mean_gap == (0.0, 0.0, 0.0)
    point, low, high = bootstrap_ci(lambda a: float(np.mean(a)), values.tolist(), n_resamples=500)
    assert point == pytest.approx(24.5) and low < 24.5 < high
    # ragged inputs (several references per example) are resampled as objects
    refs = [["a"], ["b", "c"], ["d"]]
    point, _, _ = bootstrap_ci(lambda r: float(np.mean([len(x) for x in r])), refs, n_resamples=20)
    assert point == pytest.approx(4 / 3)


def test_bootstrap_ci_validates_inputs():
    with pytest.raises(ValueError, match="same length"):
        bootstrap_ci(FAST["accuracy"], [0, 1], [0])
    with pytest.raises(ValueError, match="confidence"):
        bootstrap_ci(FAST["accuracy"], [0, 1], [0, 1], confidence=1.0)
    with pytest.raises(ValueError, match="n_resamples"):
        bootstrap_ci(FAST["accuracy"], [0, 1], [0, 1], n_resamples=0)


def test_bootstrap_is_fast_enough():
    import time

    preds, refs = _noisy_labels(1000, 0.75, 4)
    labels = np.array(["billing", "refund", "shipping", "account", "other"])
    start = time.perf_counter()
    bootstrap_ci(FAST["accuracy"], preds, refs)
    bootstrap_ci(FAST["macro_f1"], labels[preds], labels[refs])
    paired_bootstrap_diff(FAST["macro_f1"], preds, refs, refs)
    assert time.perf_counter() - start < 5.0


def test_paired_diff_detects_a_better_predictor():
    refs = np.random.default_rng(5).integers(0, 4, size=500)
    rng = np.random.default_rng(6)
    good = np.where(rng.random(500) < 0.9, refs, (refs + 1) % 4)
    bad = np.where(rng.random(500) < 0.6, refs, (refs + 1) % 4)
    for fn in (FAST["accuracy"], FAST["macro_f1"]):
        diff, low, high = paired_bootstrap_diff(fn, good, bad, refs)
        assert diff == pytest.approx(fn(good, refs) - fn(bad, refs))
        assert 0 < low <= diff <= high
        # the other way round the interval is mirrored below 0
        rdiff, rlow, rhigh = paired_bootstrap_diff(fn, bad, good, refs)
        assert rdiff == pytest.approx(-diff) and rhigh < 0
        assert rlow == pytest.approx(-high) and rhigh == pytest.approx(-low)


def test_paired_diff_includes_zero_for_equal_predictors():
    preds, refs = _noisy_labels(400, 0.7, 7)
    assert paired_bootstrap_diff(FAST["accuracy"], preds, preds.copy(), refs) == (0.0, 0.0, 0.0)
    # two different predictors of the same quality: the interval straddles 0
    other = np.where(np.random.default_rng(9).random(400) < 0.7, refs, (refs + 2) % 5)
    diff, low, high = paired_bootstrap_diff(FAST["accuracy"], preds, other, refs, n_resamples=500, seed=3)
    assert low < 0 < high
    again = paired_bootstrap_diff(FAST["accuracy"], preds, other, refs, n_resamples=500, seed=3)
    assert again == (diff, low, high)
    with pytest.raises(ValueError, match="same length"):
        paired_bootstrap_diff(FAST["accuracy"], preds, other[:-1], refs)
