"""MinHash signatures, LSH banding and the streaming near-duplicate index (llmops.curate.minhash)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from llmops.curate.minhash import MinHasher, NearDupIndex, lsh_params, shingles

INCLUDE = Path(__file__).resolve().parents[2] / "include"

WORDS = ("order refund parcel arrived broken account password login card charge invoice delivery address "
         "courier tracking number screen battery warranty return label size colour store email phone week "
         "month yesterday today please thanks again help urgent replacement the a my is was not and to for "
         "of it in on with").split()


def _sentence(rng: random.Random, lo: int = 30, hi: int = 60) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(lo, hi))]


def _edit(rng: random.Random, words: list[str], edits: int) -> list[str]:
    """``edits`` random word substitutions / insertions / deletions."""
    out = list(words)
    for _ in range(edits):
        op = rng.choice(("sub", "ins", "del"))
        pos = rng.randrange(len(out))
        if op == "sub":
            out[pos] = rng.choice(WORDS)
        elif op == "ins":
            out.insert(pos, rng.choice(WORDS))
        elif len(out) > 1:
            del out[pos]
    return out


def _jaccard(a: str, b: str, **kw: object) -> float:
    sa, sb = shingles(a, **kw), shingles(b, **kw)  # type: ignore[arg-type]
    return len(sa & sb) / len(sa | sb)


def _stream(index: NearDupIndex, docs: list[tuple[str, str]], batch: int) -> list[str | None]:
    out: list[str | None] = []
    for start in range(0, len(docs), batch):
        part = docs[start : start + batch]
        out.extend(index.check_and_add([d for d, _ in part], [t for _, t in part]))
    return out


def _planted_corpus(seed: int, originals: int = 300, planted: int = 120) -> tuple[list[tuple[str, str]], dict[str, str]]:
    """Random distinct sentences plus 1-3 word edits of some of them, shuffled; truth: copy -> source."""
    rng = random.Random(seed)
    base = [_sentence(rng) for _ in range(originals)]
    docs = [(f"o{i}", " ".join(w)) for i, w in enumerate(base)]
    truth = {}
    for i in range(planted):
        docs.append((f"p{i}", " ".join(_edit(rng, base[i], rng.randint(1, 3)))))
        truth[f"p{i}"] = f"o{i}"
    rng.shuffle(docs)
    return docs, truth


# -- shingles ---------------------------------------------------------------------------------------
def test_shingles_char_word_and_short_texts():
    assert shingles("Hello   World", n=5) == shingles("hello world", n=5)  # case and whitespace runs
    assert "lo wo" in shingles("hello world")
    assert shingles("hello world", kind="word", n=2) == {"hello world"}
    assert shingles("a b c", kind="word", n=2) == {"a b", "b c"}
    assert shingles("abc") == {"abc"}  # shorter than n: the whole text is the one shingle
    assert shingles("") == {""} and shingles("   ") == {""}
    assert shingles("two words", kind="word", n=3) == {"two words"}
    assert shingles("Ñandú", n=2) == {"ña", "an", "nd", "dú"}  # characters, not bytes
    with pytest.raises(ValueError):
        shingles("x", kind="line")


# -- signatures -------------------------------------------------------------------------------------
def test_estimates_track_exact_jaccard_across_similarity_levels():
    rng = random.Random(3)
    hasher = MinHasher(128)
    exact, errors = [], []
    for edits in (0, 1, 2, 4, 8, 15, 30, 60):
        for _ in range(12):
            words = _sentence(rng)
            a, b = " ".join(words), " ".join(_edit(rng, words, edits))
            sig = hasher.signatures([a, b])
            j = _jaccard(a, b)
            exact.append(j)
            errors.append(abs(float(np.mean(sig[0] == sig[1])) - j))
    assert min(exact) < 0.4 and max(exact) == 1.0  # the pairs really span the similarity range
    errors_a = np.asarray(errors)
    assert errors_a.mean() < 0.04
    assert np.mean(errors_a <= 0.1) >= 0.97 and errors_a.max() < 0.15


def test_signatures_do_not_depend_on_batching_or_instance():
    rng = random.Random(5)
    texts = [" ".join(_sentence(rng, 1, 120)) for _ in range(60)] + ["", " ", "ab", "Ñandú ünïcode ☃", "x" * 3000,
                                                                   "lone \udcff surrogate"]
    hasher = MinHasher(64)
    whole = hasher.signatures(texts)
    assert whole.dtype == np.uint32 and whole.shape == (len(texts), 64)
    for size, chunk, block in ((1, 6144, 2048), (7, 64, 3), (64, 100, 16)):  # chunk 64: long-text path
        parts = [hasher.signatures(texts[i : i + size], chunk=chunk, block=block) for i in range(0, len(texts), size)]
        assert np.array_equal(whole, np.concatenate(parts)), (size, chunk, block)
    assert np.array_equal(whole, MinHasher(64).signatures(texts))
    assert not np.array_equal(whole, MinHasher(64, seed=2).signatures(texts))
    assert hasher.signatures([]).shape == (0, 64)
    assert np.array_equal(whole[60], whole[61])  # "" and " " have the same (empty) canonical text
    assert not np.array_equal(whole[60], whole[62])


def test_signatures_are_identical_in_another_process():
    texts = ["the parcel never arrived", "Ñandú", "", "refund please " * 20]
    code = ("import sys, numpy as np; from llmops.curate.minhash import MinHasher; "
            f"print(MinHasher(32).signatures({texts!r}).astype(np.int64).sum(axis=1).tolist())")
    env = dict(os.environ, PYTHONPATH=str(INCLUDE), PYTHONHASHSEED="12345")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    here = MinHasher(32).signatures(texts).astype(np.int64).sum(axis=1).tolist()
    assert out.stdout.strip() == str(here)


def test_word_shingles_and_casefold_option():
    hasher = MinHasher(128, kind="word", n=3)
    a = "the parcel never arrived at my address and the courier says it was delivered yesterday"
    sig = hasher.signatures([a, a.upper(), "completely unrelated words about the weather in summer", "two words"])
    assert np.array_equal(sig[0], sig[1])
    assert float(np.mean(sig[0] == sig[2])) < 0.2
    cased = MinHasher(128, casefold=False).signatures([a, a.upper()])
    assert float(np.mean(cased[0] == cased[1])) < 0.1
    with pytest.raises(ValueError):
        MinHasher(kind="line")


# -- banding ----------------------------------------------------------------------------------------
def test_lsh_params():
    for threshold in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        for num_perm in (16, 64, 128, 256):
            bands, rows = lsh_params(threshold, num_perm)
            assert bands >= 1 and rows >= 1 and bands * rows <= num_perm
    bands, rows = lsh_params(0.8, 128)
    assert rows >= 10 and rows > bands  # a high threshold: long bands
    assert lsh_params(0.5, 128)[1] < rows  # a lower threshold needs fewer rows per band
    recall_bands, recall_rows = lsh_params(0.8, 128, fp_weight=0.1)
    assert recall_bands > bands and recall_rows < rows  # leaning to recall: more, shorter bands
    for bad in ((0.0, 128), (1.5, 128), (0.8, 0)):
        with pytest.raises(ValueError):
            lsh_params(*bad)


# -- index ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("threshold", "min_exact"), [(0.7, 0.0), (0.8, 0.85)])
def test_index_finds_planted_near_duplicates_and_flags_no_different_docs(threshold, min_exact):
    docs, truth = _planted_corpus(seed=11)
    text = dict(docs)
    position = {doc_id: k for k, (doc_id, _) in enumerate(docs)}
    index = NearDupIndex(threshold=threshold)
    result = _stream(index, docs, batch=64)
    found = {doc_id: dup for (doc_id, _), dup in zip(docs, result, strict=True) if dup is not None}
    planted = {frozenset(p) for p in truth.items()}
    flagged = {frozenset(p) for p in found.items()}
    # at 0.7 every planted pair counts (all are >= 0.75 similar); at 0.8 those clearly above it
    target = [p for p in planted if _jaccard(*(text[x] for x in p)) >= min_exact]
    assert len(target) >= 0.6 * len(planted)
    recall = sum(1 for p in target if p in flagged) / len(target)
    assert recall >= 0.95, recall
    assert flagged <= planted, flagged - planted  # random distinct sentences are never flagged
    for doc_id, dup in found.items():
        assert dup != doc_id and position[dup] < position[doc_id]  # an earlier document is reported
    assert len(index) == len(docs) - len(found)
    assert index.stats.seen == len(docs) and index.stats.duplicates == len(found)
    assert index.stats.kept == len(index)


def test_results_do_not_depend_on_batch_size_and_are_deterministic():
    docs, _ = _planted_corpus(seed=4, originals=150, planted=80)
    docs += [(f"r{i}", t) for i, (_, t) in enumerate(docs[:40])]  # exact repeats, across batches
    reference = _stream(NearDupIndex(), docs, batch=len(docs))
    assert sum(r is not None for r in reference) >= 100
    for batch in (1, 7, 50):
        assert _stream(NearDupIndex(), docs, batch=batch) == reference, batch


def test_within_batch_duplicates_first_one_wins():
    index = NearDupIndex()
    text = "my order 4411 arrived broken and I want a replacement or a refund please, thanks in advance"
    other = "could you tell me when the blue running shoes in size 42 will be back in stock at the store"
    assert index.check_and_add(["a", "b", "c", "d"], [text, text + " !", other, text.upper()]) == [None, "a", None, "a"]
    assert index.check_and_add(["e", "f"], [other + " thanks", text]) == ["c", "a"]
    assert len(index) == 2 and index.stats.duplicates == 4


def test_never_its_own_duplicate():
    index = NearDupIndex()
    text = "the same message sent again and again by the same customer about the same parcel"
    out = index.check_and_add([f"m{i}" for i in range(5)], [text] * 5)
    assert out == [None, "m0", "m0", "m0", "m0"]
    assert index.check_and_add(["m5"], [text]) == ["m0"]


def test_empty_and_very_short_texts():
    index = NearDupIndex()
    out = index.check_and_add(["e1", "e2", "s1", "a", "b", "ab", "long"],
                              ["", "   ", "\n", "a", "b", "ab", "a longer message that merely contains ab"])
    assert out == [None, "e1", "e1", None, None, None, None]
    assert index.check_and_add(["a2", "ab2"], ["A", "ab"]) == ["a", "ab"]


def test_many_batches_merge_runs_and_grow_storage():
    rng = random.Random(8)
    docs = [(f"d{i}", " ".join(_sentence(rng, 8, 16))) for i in range(2500)]
    index = NearDupIndex(fingerprint_bits=16)
    assert all(r is None for r in _stream(index, docs, batch=100))
    assert len(index) == 2500 and len(index._table) == 2500 * index.bands
    assert len(index._table.keys) <= 12  # runs are merged log-structured
    assert index.nbytes > 0
    repeats = [docs[3], docs[1234], docs[2499]]
    assert index.check_and_add([f"x{i}" for i in range(3)], [t for _, t in repeats]) == ["d3", "d1234", "d2499"]


def test_verify_false_reports_lsh_candidates():
    index = NearDupIndex(verify=False)
    assert index.fp_weight == 0.5 and (index.bands, index.rows) == lsh_params(0.8, 128)
    text = "please cancel my subscription before it renews again next month, I no longer use it"
    assert index.check_and_add(["a", "b", "c"], [text, text, "something else entirely about a lost parcel"]) == [
        None, "a", None]


def test_bad_arguments():
    index = NearDupIndex()
    assert index.check_and_add([], []) == []
    with pytest.raises(ValueError):
        index.check_and_add(["a"], [])
    for kw in ({"threshold": 0.0}, {"threshold": 1.2}, {"fingerprint_bits": 12}, {"max_bucket": 0}):
        with pytest.raises(ValueError):
            NearDupIndex(**kw)  # type: ignore[arg-type]
