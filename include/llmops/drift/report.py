"""The nightly drift report as one self-contained HTML page (inline CSS, PNGs as data URIs).

It shows the verdict and breaches, every test with its effect size and p-value, where the data
moved (per slice), the champion's performance against its promotion-time numbers, and the trend
over earlier nights. Like the evaluation report it holds numbers and distributions, never texts.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from llmops.evaluation.report import _CSS, _e, _n, _row, _section_plots, _t, _table

__all__ = ["plots", "render_html"]


def _flag(entry: dict[str, Any] | None) -> tuple[str, str]:
    if not entry:
        return "", ""
    return ("DRIFT", "worse") if entry.get("drift") else ("ok", "better")


def _p(entry: dict[str, Any]) -> tuple[str, str]:
    return _e(f"{entry['p_value']:.2g}"), "num"


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


def render_html(report: dict[str, Any]) -> str:
    a = report["analysis"]
    verdict = "DRIFT" if report["drift"] else "NO DRIFT"
    reference = report.get("reference_name") or f"champion v{report['champion']['version']}'s training data"
    w = report["window"]
    parts = [f"<h1>Drift {_e(report['dataset'])} {_e(report['night'])}: "
             f'<span class="verdict {"reject" if report["drift"] else "promote"}">{verdict}</span></h1>',
             f'<p class="meta">window {_e(w["first"])}..{_e(w["last"])} ({len(w["curated_versions"])} curated '
             f"partition(s), {report['current_documents']} documents) against "
             f"{_e(reference)}"
             f" ({report['reference_documents']} documents); "
             f"{a['tests']} tests at level {a['level']:.2g} (alpha {a['alpha']} over all tests).</p>"]
    if report["breaches"]:
        parts.append('<ul class="reasons">' + "".join(
            f"<li>{_e(b['check'])}: " + _e(", ".join(f"{k} {v:.4g}" for k, v in b.items()
                                                     if k != "check" and isinstance(v, int | float))) + "</li>"
            for b in report["breaches"]) + "</ul>")
    rows = []
    for name, f in a["features"].items():
        rows.append(_row([_t(name), _t(f["test"]), _n(f.get("psi")), _p(f), _flag(f)]))
    if a.get("embedding"):
        e = a["embedding"]
        rows.append(_row([_t("embeddings (MMD)"), _t(f"auc {e['auc']:.3f}"), _n(e["mmd2"], 5), _p(e), _flag(e)]))
    if a.get("prediction"):
        e = a["prediction"]
        rows.append(_row([_t("predicted labels"), _t(e["test"]), _n(e["psi"]), _p(e), _flag(e)]))
    parts += ["<h2>Tests</h2>", _table(["check", "test", "effect (PSI / MMD²)", "p-value", ""], rows)]
    rows = []
    for field, values in a["slices"].items():
        for value, s in values.items():
            emb, length = s.get("embedding") or {}, s.get("length") or {}
            rows.append(_row([_t(f"{field}={value}"), _n(s["n_reference"]), _n(s["n_current"]),
                              _n(s["reference_share"], 3), _n(s["current_share"], 3), _flag(s["share"]),
                              _n(length.get("psi")), _flag(length), _n(emb.get("auc"), 3), _flag(emb),
                              _t(s.get("skipped", ""))]))
    parts += ["<h2>Where: slices</h2>", _table(["slice", "n ref", "n cur", "share ref", "share cur", "share",
                                                "length PSI", "length", "emb. AUC", "embedding", ""], rows)]
    perf = report["performance"]
    rows = [_row([_t(f"{name} ({s['metric']})"), _n(s["value"]), _n(s.get("at_promotion")), _n(s.get("drop")),
                  ("FAIL", "worse") if s["breach"] else ("ok", "better")]) for name, s in perf["suites"].items()]
    if perf.get("labeled"):
        lab = perf["labeled"]
        rows.append(_row([_t(f"{lab['items']} items labeled in the window (accuracy)"), _n(lab["accuracy"]),
                          _n(lab.get("golden_accuracy_at_promotion")), _n(lab.get("drop")),
                          ("FAIL", "worse") if lab["breach"] else ("ok", "better")]))
    parts += ["<h2>Champion performance</h2>", _table(["", "now", "at promotion", "drop", ""], rows)]
    with tempfile.TemporaryDirectory() as tmp:
        parts.append(_section_plots(plots(report, Path(tmp))))
    parts.append("<footer>Counts, distributions and metrics only; no document texts.</footer>")
    body = "\n".join(p for p in parts if p)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>Drift {_e(report['night'])}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n{body}\n"
            "</body>\n</html>\n")
