"""The nightly drift report as one self-contained HTML page (inline CSS, PNGs as data URIs).

It shows the verdict and breaches, every test with its effect size and p-value, where the data
moved (per slice), the champion's performance against its promotion-time numbers, and the trend
over earlier nights. Like the evaluation report it holds numbers and distributions, never texts.
The page is the Jinja2 template ``include/templates/drift_report.html.j2`` (:mod:`llmops.templates`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from llmops.evaluation.report import _figures, _num

__all__ = ["plots", "render_html"]

TEMPLATE = "drift_report.html.j2"


def plots(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out: dict[str, Path] = {}
    a = report["analysis"]
    bars = []
    for field, values in a["slices"].items():
        for value, s in values.items():
            auc = (s.get("embedding") or {}).get("auc")
            bars.append((f"{field}={value}", s["current_share"] - s["reference_share"], auc,
                         any((s.get(k) or {}).get("drift") for k in ("share", "length", "embedding"))))
    if bars:
        fig, axes = plt.subplots(1, 2, figsize=(10, 0.4 * len(bars) + 1.5))
        names = [b[0] for b in bars]
        colors = ["#e15759" if b[3] else "#4e79a7" for b in bars]
        axes[0].barh(names, [b[1] for b in bars], color=colors)
        axes[0].set_title("change of share (current - reference)")
        axes[1].barh(names, [b[2] if b[2] is not None else 0.5 for b in bars], color=colors)
        axes[1].axvline(0.5, color="#888", lw=0.8)
        axes[1].set_xlim(0.4, 1.0)
        axes[1].set_title("embedding domain AUC (0.5: same)")
        fig.tight_layout()
        out["drift_per_slice"] = folder / "drift_per_slice.png"
        fig.savefig(out["drift_per_slice"], dpi=90)
        plt.close(fig)
    dists = [(name, f) for name, f in a["features"].items() if "reference" in f and len(f["reference"]) <= 12]
    if dists:
        fig, axes = plt.subplots(1, len(dists), figsize=(3.2 * len(dists), 2.8), squeeze=False)
        for ax, (name, f) in zip(axes[0], dists, strict=True):
            keys = sorted(set(f["reference"]) | set(f["current"]))
            x = range(len(keys))
            ax.bar([i - 0.2 for i in x], [f["reference"].get(k, 0) for k in keys], 0.4, label="reference")
            ax.bar([i + 0.2 for i in x], [f["current"].get(k, 0) for k in keys], 0.4, label="current")
            ax.set_xticks(list(x), keys, rotation=30, fontsize=7)
            ax.set_title(name)
        axes[0][0].legend(fontsize=7)
        fig.tight_layout()
        out["distributions"] = folder / "distributions.png"
        fig.savefig(out["distributions"], dpi=90)
        plt.close(fig)
    trend = [t for t in report.get("trend") or [] if t.get("night")]
    if len(trend) >= 2:
        fig, ax = plt.subplots(figsize=(8, 2.8))
        nights = [t["night"] for t in trend]
        for key, label in (("embedding_auc", "embedding AUC"), ("length_psi", "length PSI"), ("primary", "golden "
                                                                                                           "metric")):
            ys = [t.get(key) for t in trend]
            if any(y is not None for y in ys):
                ax.plot(nights, [y if y is not None else float("nan") for y in ys], marker="o", label=label)
        ax.tick_params(axis="x", rotation=30, labelsize=7)
        ax.legend(fontsize=7)
        ax.set_title("trend over nights")
        fig.tight_layout()
        out["trend"] = folder / "trend.png"
        fig.savefig(out["trend"], dpi=90)
        plt.close(fig)
    return out


def _drift(entry: dict[str, Any] | None) -> bool | None:
    """A test's outcome: True drift, False none, None when the test did not run."""
    return bool(entry.get("drift")) if entry else None


def _context(report: dict[str, Any]) -> dict[str, Any]:
    """The template's context: plain values, numbers already formatted for display."""
    a = report["analysis"]
    w = report["window"]
    tests = [{"name": name, "test": f["test"], "effect": _num(f.get("psi")), "p_value": f"{f['p_value']:.2g}",
              "drift": _drift(f)} for name, f in a["features"].items()]
    if a.get("embedding"):
        e = a["embedding"]
        tests.append({"name": "embeddings (MMD)", "test": f"auc {e['auc']:.3f}", "effect": _num(e["mmd2"], 5),
                      "p_value": f"{e['p_value']:.2g}", "drift": _drift(e)})
    if a.get("prediction"):
        e = a["prediction"]
        tests.append({"name": "predicted labels", "test": e["test"], "effect": _num(e["psi"]),
                      "p_value": f"{e['p_value']:.2g}", "drift": _drift(e)})
    slices = []
    for field, values in a["slices"].items():
        for value, s in values.items():
            emb, length = s.get("embedding") or {}, s.get("length") or {}
            slices.append({"name": f"{field}={value}", "n_reference": _num(s["n_reference"]),
                           "n_current": _num(s["n_current"]), "reference_share": _num(s["reference_share"], 3),
                           "current_share": _num(s["current_share"], 3), "share_drift": _drift(s["share"]),
                           "length_psi": _num(length.get("psi")), "length_drift": _drift(length),
                           "embedding_auc": _num(emb.get("auc"), 3), "embedding_drift": _drift(emb),
                           "skipped": s.get("skipped", "")})
    perf = report["performance"]
    suites = [{"name": name, "metric": s["metric"], "now": _num(s["value"]), "at_promotion": _num(s.get("at_promotion")),
               "drop": _num(s.get("drop")), "breach": bool(s["breach"])} for name, s in perf["suites"].items()]
    labeled = None
    if perf.get("labeled"):
        lab = perf["labeled"]
        labeled = {"n_items": lab["items"], "now": _num(lab["accuracy"]),
                   "at_promotion": _num(lab.get("golden_accuracy_at_promotion")), "drop": _num(lab.get("drop")),
                   "breach": bool(lab["breach"])}
    with tempfile.TemporaryDirectory() as tmp:
        images = _figures(plots(report, Path(tmp)))
    return {
        "dataset": report["dataset"], "night": report["night"], "drift": bool(report["drift"]),
        "window": {"first": w["first"], "last": w["last"], "partitions": len(w["curated_versions"])},
        "reference": report.get("reference_name") or f"champion v{report['champion']['version']}'s training data",
        "documents": {"current": report["current_documents"], "reference": report["reference_documents"]},
        "tests_summary": {"tests": a["tests"], "level": f"{a['level']:.2g}", "alpha": a["alpha"]},
        "breaches": [{"check": b["check"], "detail": ", ".join(f"{k} {v:.4g}" for k, v in b.items()
                                                                 if k != "check" and isinstance(v, int | float))}
                     for b in report["breaches"]],
        "tests": tests, "slices": slices, "performance": {"suites": suites, "labeled": labeled},
        "figures": images, "watchdog": _watchdog(report.get("watchdog")),
    }


def _watchdog(found: dict[str, Any] | None) -> dict[str, Any] | None:
    """The watchdog's findings as table rows (None: it did not run)."""
    if not found:
        return None
    rows = [{"what": "curated version without labels", "item": f"{u['partition']}: {u['version_id']}",
             "age": f"{u['age_hours']:.0f} h"} for u in found.get("unlabeled", [])]
    rows += [{"what": "model version without evaluation", "item": f"{u['model']} v{u['version']}",
              "age": f"{u['age_hours']:.0f} h"} for u in found.get("unevaluated", [])]
    return {"max_age_hours": f"{found['max_age_hours']:g}", "rows": rows}


def render_html(report: dict[str, Any]) -> str:
    """The drift report as one self-contained HTML page, from ``include/templates/drift_report.html.j2``."""
    from llmops.templates import render

    return render(TEMPLATE, _context(report))
