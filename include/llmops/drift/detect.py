"""One drift analysis: reference rows (the champion's training data) against current rows (a window
of curated data), overall and per slice.

Checks and their decision rule (drift = significant *and* large enough):

* text statistics: length in characters and out-of-vocabulary rate (KS test + PSI), the share of
  documents with redacted personal data, the language mix and the source mix (chi-squared + PSI);
* embeddings: sentence embeddings (MiniLM, offline) by an MMD permutation test + the AUC of a
  domain classifier;
* predictions: the champion's predicted-label mix (chi-squared + PSI), when a predictor is given;
* slices: for every value of every slice field, its share of the data (chi-squared + change of
  share) and, inside the slice, length (KS + PSI) and embeddings (MMD + AUC), so the report says
  *where* the data moved.

All p-values of one report are compared with ``alpha / number of tests`` (Bonferroni), so a night
without drift raises an alarm with probability at most ``alpha``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from llmops.drift.settings import DriftConfig
from llmops.drift.stats import (
    categorical_test,
    distribution,
    domain_auc,
    ks_test,
    mmd_test,
    psi,
    psi_categorical,
)

__all__ = ["analyze", "slice_value", "text_features"]

_WORD = re.compile(r"\w+", re.UNICODE)
_REDACTED = re.compile(r"<[A-Z][A-Z0-9_]*>|\[[A-Z][A-Z0-9_]*\]")


def slice_value(row: dict[str, Any], field: str) -> str | None:
    if field.startswith("meta."):
        meta = row.get("meta")
        if isinstance(meta, str):
            try:
                meta = json.loads(meta)
            except ValueError:
                meta = {}
        value = (meta or {}).get(field[5:])
    else:
        value = row.get(field)
    return None if value is None else str(value)


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(text)]


def text_features(texts: Sequence[str], vocabulary: set[str]) -> dict[str, np.ndarray]:
    lengths, oov, pii = [], [], []
    for text in texts:
        toks = _tokens(text)
        lengths.append(len(text))
        oov.append(sum(t not in vocabulary for t in toks) / len(toks) if toks else 0.0)
        pii.append(1 if _REDACTED.search(text) else 0)
    return {"length": np.asarray(lengths, float), "oov_rate": np.asarray(oov, float), "pii": np.asarray(pii)}


class _Tests:
    """Collects p-values; decisions are made once the number of tests (the correction) is known."""

    def __init__(self) -> None:
        self.items: list[dict[str, Any]] = []

    def add(self, entry: dict[str, Any], *, p: float, large: bool) -> dict[str, Any]:
        entry.update(p_value=p, large=bool(large))
        self.items.append(entry)
        return entry

    def decide(self, alpha: float) -> float:
        level = alpha / max(len(self.items), 1)
        for e in self.items:
            e["drift"] = bool(e["p_value"] < level and e["large"])
        return level


def _r(x: Any) -> float:
    return round(float(x), 6)


def analyze(reference: Sequence[dict[str, Any]], current: Sequence[dict[str, Any]], cfg: DriftConfig, *,
            embed: Callable[[list[str]], Any] | None = None,
            predict: Callable[[list[str]], list[str]] | None = None) -> dict[str, Any]:
    """The drift report of ``current`` against ``reference`` (rows with ``text`` and slice fields)."""
    if not reference or not current:
        raise ValueError(f"drift needs rows on both sides (reference {len(reference)}, current {len(current)})")
    th, rng = cfg.thresholds, np.random.default_rng(cfg.seed)
    ref_texts = [str(r.get("text") or "") for r in reference]
    cur_texts = [str(r.get("text") or "") for r in current]
    # vocabulary from half of the reference; the other half gives the reference's own OOV rate
    order = rng.permutation(len(ref_texts))
    vocab_half, held_out = order[: len(order) // 2 or 1], order[len(order) // 2:]
    vocabulary = {t for i in vocab_half for t in _tokens(ref_texts[i])}
    ref_f = text_features([ref_texts[i] for i in held_out], vocabulary)
    ref_all = text_features(ref_texts, vocabulary)
    cur_f = text_features(cur_texts, vocabulary)
    tests = _Tests()

    features: dict[str, Any] = {}
    for name, ref_num, cur_num in (("length", ref_all["length"], cur_f["length"]),
                                   ("oov_rate", ref_f["oov_rate"], cur_f["oov_rate"])):
        stat, p = ks_test(ref_num, cur_num)
        value = psi(ref_num, cur_num)
        features[name] = tests.add({"check": f"feature:{name}", "test": "ks", "statistic": _r(stat), "psi": _r(value),
                                    "reference_mean": _r(np.mean(ref_num)), "current_mean": _r(np.mean(cur_num))},
                                   p=p, large=value >= th.psi)
    categorical: dict[str, tuple[list[Any], list[Any]]] = {"pii": ([int(x) for x in ref_all["pii"]], [int(x) for x in cur_f["pii"]])}
    for field in dict.fromkeys(["lang", "source", *cfg.slices]):
        categorical[field] = ([slice_value(r, field) for r in reference], [slice_value(r, field) for r in current])
    for name, (ref_values, cur_values) in categorical.items():
        stat, p = categorical_test(ref_values, cur_values)
        value = psi_categorical(ref_values, cur_values)
        features[name] = tests.add({"check": f"feature:{name}", "test": "chi2", "statistic": _r(stat),
                                    "psi": _r(value), "reference": distribution(ref_values),
                                    "current": distribution(cur_values)}, p=p, large=value >= th.psi)

    n_slice_tests = sum(len({v for v in categorical[f][0] + categorical[f][1] if v is not None})
                        for f in cfg.slices) * (3 if embed else 2)
    n_tests = len(tests.items) + (1 if embed else 0) + (1 if predict else 0) + n_slice_tests
    n_perm = int(min(20000, max(200, math.ceil(2 * n_tests / th.alpha))))

    ref_idx = _subsample(len(reference), cfg.max_embedded, rng)
    cur_idx = _subsample(len(current), cfg.max_embedded, rng)
    embedding: dict[str, Any] = {}
    ref_emb = cur_emb = None
    if embed is not None:
        ref_emb = np.asarray(embed([ref_texts[i] for i in ref_idx]))
        cur_emb = np.asarray(embed([cur_texts[i] for i in cur_idx]))
        mmd2, p = mmd_test(ref_emb, cur_emb, n_permutations=n_perm, seed=cfg.seed)
        auc = domain_auc(ref_emb, cur_emb, seed=cfg.seed)
        embedding = tests.add({"check": "embedding", "test": "mmd", "mmd2": _r(mmd2), "auc": _r(auc),
                               "permutations": n_perm, "documents": [len(ref_idx), len(cur_idx)]},
                              p=p, large=auc >= th.embedding_auc)

    prediction: dict[str, Any] = {}
    if predict is not None:
        ref_pred = predict([ref_texts[i] for i in ref_idx])
        cur_pred = predict([cur_texts[i] for i in cur_idx])
        stat, p = categorical_test(ref_pred, cur_pred)
        value = psi_categorical(ref_pred, cur_pred)
        prediction = tests.add({"check": "prediction:labels", "test": "chi2", "statistic": _r(stat), "psi": _r(value),
                                "reference": distribution(ref_pred), "current": distribution(cur_pred),
                                "reference_output_chars": _r(np.mean([len(x) for x in ref_pred])),
                                "current_output_chars": _r(np.mean([len(x) for x in cur_pred]))},
                               p=p, large=value >= th.psi)

    slices: dict[str, dict[str, Any]] = {}
    for field in cfg.slices:
        ref_values, cur_values = categorical[field]
        ref_share, cur_share = distribution(ref_values), distribution(cur_values)
        field_stat, field_p = categorical_test(ref_values, cur_values)
        slices[field] = {}
        for value in sorted({v for v in ref_values + cur_values if v is not None}):
            entry: dict[str, Any] = {"reference_share": _r(ref_share.get(value, 0.0)),
                                     "current_share": _r(cur_share.get(value, 0.0)),
                                     "n_reference": ref_values.count(value), "n_current": cur_values.count(value)}
            delta = entry["current_share"] - entry["reference_share"]
            entry["share"] = tests.add({"check": f"slice:{field}={value}:share", "test": "chi2",
                                        "delta": _r(delta)}, p=field_p, large=abs(delta) >= th.share_delta)
            ri = [i for i, v in enumerate(ref_values) if v == value]
            ci = [i for i, v in enumerate(cur_values) if v == value]
            if min(len(ri), len(ci)) >= cfg.min_slice_size:
                stat, p = ks_test(ref_all["length"][ri], cur_f["length"][ci])
                value_psi = psi(ref_all["length"][ri], cur_f["length"][ci])
                entry["length"] = tests.add({"check": f"slice:{field}={value}:length", "test": "ks",
                                             "statistic": _r(stat), "psi": _r(value_psi)},
                                            p=p, large=value_psi >= th.psi)
                if ref_emb is not None and cur_emb is not None:
                    re_rows = [k for k, i in enumerate(ref_idx) if ref_values[i] == value]
                    ce_rows = [k for k, i in enumerate(cur_idx) if cur_values[i] == value]
                    if min(len(re_rows), len(ce_rows)) >= cfg.min_slice_size:
                        mmd2, p = mmd_test(ref_emb[re_rows], cur_emb[ce_rows], n_permutations=n_perm, seed=cfg.seed)
                        auc = domain_auc(ref_emb[re_rows], cur_emb[ce_rows], seed=cfg.seed)
                        entry["embedding"] = tests.add({"check": f"slice:{field}={value}:embedding", "test": "mmd",
                                                        "mmd2": _r(mmd2), "auc": _r(auc)},
                                                       p=p, large=auc >= th.embedding_auc)
            else:
                entry["skipped"] = f"fewer than {cfg.min_slice_size} documents on a side"
            slices[field][value] = entry

    level = tests.decide(th.alpha)
    breaches = [{"check": e["check"], "p_value": e["p_value"], **{k: e[k] for k in ("psi", "auc", "delta")
                                                                   if k in e}}
                for e in tests.items if e["drift"]]
    drifted = sorted({e["check"].split(":")[1] for e in tests.items if e["drift"] and e["check"].startswith("slice:")})
    return {
        "documents": {"reference": len(reference), "current": len(current)},
        "alpha": th.alpha, "tests": len(tests.items), "level": level,
        "features": features, "embedding": embedding, "prediction": prediction, "slices": slices,
        "breaches": breaches, "drifted_slices": drifted, "drift": bool(breaches),
    }


def _subsample(n: int, k: int, rng: np.random.Generator) -> list[int]:
    return list(range(n)) if n <= k else sorted(rng.choice(n, size=k, replace=False).tolist())
