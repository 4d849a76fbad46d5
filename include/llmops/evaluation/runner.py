"""Evaluate one model on one suite: metrics with bootstrap CIs, per-slice metrics, robustness under
perturbations, the PII-leak probe on outputs, a confusion matrix, and the raw predictions (labels,
never texts) so a champion can be compared on exactly the same examples.

    llmops evaluate --model models:/support-intent/3 --suite support_intents
"""

from __future__ import annotations

import time
from typing import Any

from llmops.evaluation.suites import Suite

__all__ = ["evaluate_model", "paired_comparison"]


def _metric_values(suite: Suite, preds: list[str], refs: list[str], confidences: list[float],
                   nll: tuple[list[float], list[int]] | None = None) -> dict[str, Any]:
    from llmops.evaluation.metrics import FAST, bootstrap_ci, compute

    out: dict[str, Any] = {}
    for name in suite.metrics:
        if name == "perplexity":
            if nll is None:
                raise ValueError(f"suite {suite.name}: perplexity needs a generative model")
            import numpy as np

            losses, counts = np.asarray(nll[0]), np.asarray(nll[1])
            point, low, high = bootstrap_ci(lambda a, b: float(np.exp(a.sum() / max(b.sum(), 1))), losses, counts,
                                            n_resamples=suite.bootstrap_resamples)
            value = compute("perplexity", nll=losses, n_tokens=counts)["perplexity"]
            out[name] = {"value": float(value), "ci": [low, high], "lower_is_better": True}
            continue
        if name == "ece":
            value = compute("ece", predictions=preds, references=refs, confidences=confidences)["ece"]
            out[name] = {"value": float(value), "ci": None, "lower_is_better": True}
            continue
        if name in FAST:
            point, low, high = bootstrap_ci(FAST[name], preds, refs, n_resamples=suite.bootstrap_resamples)
            out[name] = {"value": point, "ci": [low, high]}
        else:
            result = compute(name, predictions=preds, references=refs)
            out[name] = {"value": float(result[name]), "ci": None}
    return out


def evaluate_model(model: str, suite: Suite, *, predictor: Any = None, redactor: Any = None,
                   seed: int = 0) -> dict[str, Any]:
    """The report of ``model`` (a folder or an MLflow model URI) on ``suite``."""
    from llmops.evaluation.golden import load_golden
    from llmops.evaluation.inference import load_predictor
    from llmops.evaluation.robustness import robustness_report
    from llmops.evaluation.slices import slice_metrics

    rows, manifest = load_golden(suite.golden.name, suite.golden.version)
    texts = [r["text"] for r in rows]
    refs = [str(r["label"]) for r in rows]
    predictor = predictor or load_predictor(model, task=suite.task)

    t0 = time.perf_counter()
    pred = predictor.predict(texts)
    elapsed = time.perf_counter() - t0
    preds = [str(p) for p in pred.labels]

    from llmops.evaluation.metrics import FAST, compute

    primary_fn = FAST.get(suite.primary, FAST["accuracy"])
    report: dict[str, Any] = {
        "suite": {"name": suite.name, "version": suite.version, "task": suite.task, "primary": suite.primary,
                  "golden": {"name": manifest["name"], "version": manifest["version"],
                             "sha256": manifest["sha256"], "items": manifest["items"]}},
        "model": str(model),
        "metrics": _metric_values(suite, preds, refs, list(pred.confidences) or [1.0] * len(preds),
                                  nll=predictor.nll(texts, refs) if "perplexity" in suite.metrics else None),
        "slices": slice_metrics(rows, preds, refs, by=suite.slices, metric=primary_fn,
                                min_size=suite.min_slice_size),
        "robustness": robustness_report(lambda xs: [str(x) for x in predictor.predict(xs).labels], texts, refs,
                                        kinds=suite.robustness, seed=seed, clean_predictions=preds)
        if suite.robustness else {},
        "predictions": preds,
        "ids": [r["id"] for r in rows],
        "timing": {"examples": len(texts), "seconds": elapsed, "examples_per_s": len(texts) / max(elapsed, 1e-9)},
    }
    if suite.task == "classification":
        labels = sorted(set(refs) | set(preds))
        index = {lab: i for i, lab in enumerate(labels)}
        matrix = [[0] * len(labels) for _ in labels]
        for p, r in zip(preds, refs, strict=True):
            matrix[index[r]][index[p]] += 1
        report["confusion"] = {"labels": labels, "matrix": matrix}  # rows: reference, columns: prediction
        report["per_class"] = compute("macro_f1", predictions=preds, references=refs).get("per_class", {})
    if suite.pii_probe:
        from llmops.evaluation.pii_probe import pii_leak_probe

        if redactor is None:
            from llmops.config import PIIConfig
            from llmops.privacy.pii import PIIRedactor

            redactor = PIIRedactor(PIIConfig())
        report["pii"] = pii_leak_probe(preds, redactor)
    if suite.explain is not None and (suite.explain.errors or suite.explain.per_slice):
        from llmops.evaluation.explain import explain

        if redactor is None:
            from llmops.config import PIIConfig
            from llmops.privacy.pii import PIIRedactor

            redactor = PIIRedactor(PIIConfig())
        t0 = time.perf_counter()
        report["explanations"] = explain(predictor, rows, preds, refs, by=suite.slices, errors=suite.explain.errors,
                                         per_slice=suite.explain.per_slice, steps=suite.explain.steps,
                                         redactor=redactor, seed=seed)
        report["timing"]["explain_seconds"] = time.perf_counter() - t0
    return report


def paired_comparison(suite: Suite, candidate: dict[str, Any], champion: dict[str, Any]) -> dict[str, Any]:
    """Paired bootstrap of the primary metric, candidate minus champion, on the same golden items."""
    from llmops.evaluation.metrics import FAST, paired_bootstrap_diff

    if candidate["ids"] != champion["ids"]:
        raise ValueError("candidate and champion were evaluated on different items; re-evaluate the champion")
    fn = FAST.get(suite.primary)
    if fn is None:
        return {}
    refs = [str(r) for r in _references(suite)]
    diff, low, high = paired_bootstrap_diff(fn, candidate["predictions"], champion["predictions"], refs,
                                            n_resamples=suite.bootstrap_resamples)
    return {suite.primary: (diff, low, high)}


def _references(suite: Suite) -> list[str]:
    from llmops.evaluation.golden import load_golden

    rows, _ = load_golden(suite.golden.name, suite.golden.version)
    return [str(r["label"]) for r in rows]
