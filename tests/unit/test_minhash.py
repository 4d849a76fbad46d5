from __future__ import annotations

import random

import numpy as np
import pytest

from llmops.curate.minhash import MinHasher, NearDupIndex, lsh_params, shingles

WORDS = ("order refund parcel arrived broken account password login card charge invoice delivery "
         "address courier tracking number screen battery warranty return label size colour store "
         "email phone week month yesterday today please thanks again help urgent replacement").split()


def _sentence(rng: random.Random, lo: int = 30, hi: int = 60) -> list[str]:
    return [rng.choice(WORDS) + str(rng.randint(0, 99)) for _ in range(rng.randint(lo, hi))]


def _edit(rng: random.Random, words: list[str], edits: int) -> list[str]:
    out = list(words)
    for _ in range(edits):
        op = rng.choice(("sub", "ins", "del"))
        pos = rng.randrange(len(out))
        if op == "sub":
            out[pos] = rng.choice(WORDS)
        elif op == "ins":
            out.insert(pos, rng.choice(WORDS))
        else:
            del out[pos]
    return out


def _jaccard(a: str, b: str) -> float:
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / len(sa | sb)


def test_estimates_track_exact_jaccard():
    rng = random.Random(3)
    hasher = MinHasher(128)
    errors = []
    for edits in (0, 1, 3, 6, 10, 20, 40):
        for _ in range(15):
            base = _sentence(rng)
            a, b = " ".join(base), " ".join(_edit(rng, base, edits))
            sig = hasher.signatures([a, b])
            errors.append(abs(float(np.mean(sig[0] == sig[1])) - _jaccard(a, b)))
    assert np.mean(errors) < 0.05 and max(errors) < 0.2


def test_signatures_do_not_depend_on_batching():
    rng = random.Random(5)
    texts = [" ".join(_sentence(rng, 1, 80)) for _ in range(50)] + ["", "ab", "Ñandú ünïcode"]
    hasher = MinHasher(64)
    whole = hasher.signatures(texts)
    parts = np.concatenate([hasher.signatures(texts[i : i + 7], chunk=64) for i in range(0, len(texts), 7)])
    assert whole.dtype == np.uint32 and whole.shape == (len(texts), 64)
    assert np.array_equal(whole, parts)
    assert np.array_equal(whole, MinHasher(64).signatures(texts))  # no process-dependent hashing


def test_word_shingles():
    hasher = MinHasher(128, kind="word", n=3)
    a = "the parcel never arrived at my address and the courier says it was delivered yesterday"
    sig = hasher.signatures([a, a.upper(), "completely unrelated words about the weather in summer"])
    assert np.array_equal(sig[0], sig[1])
    assert float(np.mean(sig[0] == sig[2])) < 0.2


def test_lsh_params():
    b, r = lsh_params(0.8, 128)
    assert b * r <= 128 and r > b
    b2, r2 = lsh_params(0.5, 128)
    assert r2 < r  # a lower threshold needs fewer rows per band
    b3, r3 = lsh_params(0.8, 128, fp_weight=0.2)
    assert b3 > b  # leaning to recall means more bands


def test_index_finds_planted_near_duplicates_and_no_false_ones():
    rng = random.Random(11)
    originals = [_sentence(rng) for _ in range(300)]
    docs, truth = [], {}
    for i, words in enumerate(originals):
        docs.append((f"o{i}", " ".join(words)))
    for i, words in enumerate(originals[:100]):
        docs.append((f"d{i}", " ".join(_edit(rng, words, rng.randint(1, 3)))))
        truth[f"d{i}"] = f"o{i}"
    rng.shuffle(docs)
    # an original that comes after its near-duplicate is the duplicate then: normalise the truth
    order = {doc_id: k for k, (doc_id, _) in enumerate(docs)}
    index = NearDupIndex(threshold=0.8)
    found = {}
    for start in range(0, len(docs), 64):
        batch = docs[start : start + 64]
        for (doc_id, _), dup in zip(batch, index.check_and_add([d for d, _ in batch], [t for _, t in batch]),
                                    strict=True):
            if dup is not None:
                found[doc_id] = dup
    pairs = {frozenset((d, o)) for d, o in truth.items()}
    hits = {frozenset((a, b)) for a, b in found.items()}
    true_pairs = [p for p in pairs if _jaccard(*(dict(docs)[x] for x in p)) >= 0.8]
    assert len(true_pairs) >= 40
    recall = sum(1 for p in true_pairs if p in hits) / len(true_pairs)
    assert recall >= 0.95, recall
    assert hits <= pairs, hits - pairs  # nothing flagged that is not a planted pair
    for a, b in found.items():
        assert a != b and order[b] < order[a]  # the earlier document is the one kept
    assert len(index) == len(docs) - len(found)
    assert index.stats.duplicates == len(found)


def test_within_batch_and_exact_repeat():
    index = NearDupIndex()
    text = "my order 4411 arrived broken and I want a replacement or a refund please, thanks"
    assert index.check_and_add(["a", "b"], [text, text + " !"]) == [None, "a"]
    assert index.check_and_add(["c"], [text]) == ["a"]
    assert index.check_and_add(["e", "f"], ["", ""]) == [None, "e"]


def test_empty_batch_and_mismatch():
    index = NearDupIndex()
    assert index.check_and_add([], []) == []
    with pytest.raises(ValueError):
        index.check_and_add(["a"], [])
