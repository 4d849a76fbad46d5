"""The evaluation report: PNG plots, one self-contained HTML page, and a short summary for task logs.

:func:`plots` draws the confusion matrix, the primary metric per slice and the accuracy under each
perturbation (each only when the report has the data). :func:`render_html` builds a single page with
inline CSS and the plots embedded as ``data:`` URIs: it loads nothing from elsewhere and runs no
script, so it can be opened straight from an MLflow artifact store or a mail attachment. The page is
the Jinja2 template ``include/templates/evaluation_report.html.j2`` (:mod:`llmops.templates`), which
escapes every string from the report. :func:`markdown_summary` gives the same headline numbers in a few
lines of Markdown.

A report holds labels, counts and metrics. The only example texts are the token attributions of a
few golden items (the golden set is redacted, and each shown item was rescanned for personal data);
the PII probe of model outputs is shown as counts only.
"""

from __future__ import annotations

import base64
import math
from numbers import Integral, Real
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from llmops.evaluation.gate import Decision

__all__ = ["markdown_summary", "plots", "render_html"]

SHA_PREFIX = 12  # characters of the golden set's sha256 shown in headers
MAX_CONFUSION_TABLE = 30  # the HTML confusion table is left out above this many labels (the plot stays)

_SCORED = "#4e79a7"
_SKIPPED = "#d9d9d9"
_CLEAN = "#4e79a7"
_PERTURBED = "#f28e2b"


# --------------------------------------------------------------------------- small helpers
def _num(value: Any, digits: int = 4) -> str:
    """A number for display: floats with ``digits`` decimals, integers as they are, ``n/a`` for None."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        x = float(value)
        return f"{x:.{digits}f}" if math.isfinite(x) else str(x)
    return str(value)


def _is_num(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool) and math.isfinite(float(value))


def _ci(ci: Any) -> str | None:
    """``"low .. high"`` for a ``[low, high]`` pair, None when there is no interval."""
    if not ci or len(ci) != 2 or ci[0] is None or ci[1] is None:
        return None
    return f"{_num(ci[0])} .. {_num(ci[1])}"


def _primary(report: dict[str, Any]) -> str | None:
    return (report.get("suite") or {}).get("primary")


def _headline(report: dict[str, Any]) -> dict[str, str]:
    """Model, suite and golden-set identifiers, as plain strings."""
    suite = report.get("suite") or {}
    golden = suite.get("golden") or {}
    sha = str(golden.get("sha256") or "")
    return {
        "model": str(report.get("model", "?")),
        "suite": f"{suite.get('name', '?')}@{suite.get('version', '?')}",
        "task": str(suite.get("task") or ""),
        "primary": str(suite.get("primary") or ""),
        "golden": f"{golden.get('name', '?')} version {golden.get('version', '?')}" if golden else "",
        "sha": sha[:SHA_PREFIX],
        "items": str(golden.get("items")) if golden.get("items") is not None else "",
    }


def _metric_value(report: dict[str, Any] | None, name: str) -> Any:
    if not report:
        return None
    return ((report.get("metrics") or {}).get(name) or {}).get("value")


# --------------------------------------------------------------------------- plots
def _mpl(value: Any) -> str:
    """``value`` as literal matplotlib text (a ``$`` would otherwise start math mode)."""
    return str(value).replace("$", r"\$")


def _save(plt: Any, fig: Any, path: Path) -> Path:
    try:
        fig.tight_layout()
        # no "Software" chunk: the bytes depend on the data only
        fig.savefig(path, dpi=100, format="png", metadata={"Software": None})
    finally:
        plt.close(fig)
    return path


def _plot_confusion(plt: Any, conf: dict[str, Any], path: Path) -> Path:
    labels = [_mpl(lab) for lab in conf["labels"]]
    matrix = [[int(n) for n in row] for row in conf["matrix"]]
    k = len(labels)
    size = min(max(3.5, 1.2 + 0.55 * k), 18.0)
    fig, ax = plt.subplots(figsize=(size + 1.0, size))
    image = ax.imshow(matrix, cmap="Blues", vmin=0)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ax.set_xticks(range(k))
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticks(range(k))
    ax.set_yticklabels(labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("reference")
    ax.set_title("confusion matrix (counts)")
    top = max((max(row) for row in matrix if row), default=0)
    fontsize = 10 if k <= 12 else 7 if k <= 25 else 5
    for i, row in enumerate(matrix):
        for j, n in enumerate(row):
            ax.text(j, i, str(n), ha="center", va="center", fontsize=fontsize,
                    color="white" if top and n > top / 2 else "black")
    return _save(plt, fig, path)


def _plot_slices(plt: Any, report: dict[str, Any], by: dict[str, dict[str, Any]], path: Path) -> Path:
    fields = [f for f, values in by.items() if values]
    heights = [max(1, len(by[f])) for f in fields]
    fig, axes = plt.subplots(len(fields), 1, squeeze=False,
                             figsize=(7.0, 0.9 * len(fields) + 0.38 * sum(heights) + 0.4),
                             gridspec_kw={"height_ratios": heights})
    primary = _primary(report) or "metric"
    overall = _metric_value(report, primary)
    scores = [float(s["metric"]) for values in by.values() for s in values.values()
              if _is_num(s.get("metric"))]
    if _is_num(overall):
        scores.append(float(overall))
    right = max([1.0, *scores]) * 1.08
    for ax, field in zip(axes[:, 0], fields, strict=True):
        values = by[field]
        names = [_mpl(f"{value} (n={s.get('n', '?')})") for value, s in values.items()]
        ys = list(range(len(names)))
        for y, s in zip(ys, values.values(), strict=True):
            metric = s.get("metric")
            if _is_num(metric):
                ax.barh(y, float(metric), color=_SCORED)
                ax.text(float(metric) + right * 0.01, y, _num(metric, 3), va="center", fontsize=8)
            else:
                # not scored (too small): a hatched grey bar across the axis, labelled with the reason
                ax.barh(y, right, color=_SKIPPED, hatch="//", edgecolor="#999999", alpha=0.6)
                ax.text(right * 0.01, y, _mpl(f"skipped ({s.get('skipped', 'no metric')})"), va="center",
                        fontsize=8, color="#555555")
        if _is_num(overall):
            ax.axvline(float(overall), color="#555555", linestyle="--", linewidth=1, label="overall")
            ax.legend(loc="lower right", fontsize=7)
        ax.set_yticks(ys)
        ax.set_yticklabels(names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, right)
        ax.set_title(_mpl(f"{primary} by {field}"), fontsize=10)
    return _save(plt, fig, path)


def _plot_robustness(plt: Any, rows: dict[str, dict[str, Any]], path: Path) -> Path:
    kinds = list(rows)
    xs = list(range(len(kinds)))
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 + 1.1 * len(kinds)), 3.6))
    clean = [float(rows[k]["clean_accuracy"]) for k in kinds]
    perturbed = [float(rows[k]["perturbed_accuracy"]) for k in kinds]
    ax.bar([x - 0.2 for x in xs], clean, width=0.4, label="clean", color=_CLEAN)
    ax.bar([x + 0.2 for x in xs], perturbed, width=0.4, label="perturbed", color=_PERTURBED)
    for x, c, p in zip(xs, clean, perturbed, strict=True):
        ax.text(x + 0.2, p + 0.01, f"{p - c:+.3f}", ha="center", va="bottom", fontsize=8)
    ax.set_xticks(xs)
    ax.set_xticklabels([_mpl(k) for k in kinds], rotation=20 if len(kinds) > 4 else 0)
    ax.set_ylim(0, max([1.0, *clean, *perturbed]) * 1.22)
    ax.set_ylabel("accuracy")
    ax.set_title("accuracy under perturbations")
    ax.legend(loc="upper center", ncol=2, fontsize=8)
    return _save(plt, fig, path)


def plots(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """Write ``confusion_matrix.png``, ``slices.png`` and ``robustness.png`` into ``folder`` (created
    if needed), each only when the report has its data; returns ``{name: path}`` of those written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    conf = report.get("confusion") or {}
    if conf.get("labels") and conf.get("matrix"):
        out["confusion_matrix"] = _plot_confusion(plt, conf, folder / "confusion_matrix.png")

    by = (report.get("slices") or {}).get("by") or {}
    if any(by.values()):
        out["slices"] = _plot_slices(plt, report, by, folder / "slices.png")

    rob = {k: v for k, v in (report.get("robustness") or {}).items()
           if _is_num((v or {}).get("clean_accuracy")) and _is_num((v or {}).get("perturbed_accuracy"))}
    if rob:
        out["robustness"] = _plot_robustness(plt, rob, folder / "robustness.png")
    return out


# --------------------------------------------------------------------------- HTML
# The page is include/templates/evaluation_report.html.j2 (see llmops.templates); the functions
# below build its context from the report: plain strings, numbers, lists and dicts, numbers already
# formatted for display. The template escapes every value.
TEMPLATE = "evaluation_report.html.j2"


def _delta(value: Any, other: Any, lower_is_better: bool) -> dict[str, str | None]:
    """``value - other`` for display, with ``trend`` ``better``/``worse``/empty; text None without both."""
    if not (_is_num(value) and _is_num(other)):
        return {"text": None, "trend": ""}
    delta = float(value) - float(other)
    better = delta < 0 if lower_is_better else delta > 0
    worse = delta > 0 if lower_is_better else delta < 0
    return {"text": f"{delta:+.4f}", "trend": "better" if better else "worse" if worse else ""}


def _opt_num(value: Any, digits: int = 4) -> str | None:
    """A number for display, None when there is none (shown as ``-``)."""
    return None if value is None else _num(value, digits)


def _decision_context(decision: Decision) -> dict[str, Any]:
    return {"verdict": "PROMOTE" if decision.promote else "REJECT", "promote": bool(decision.promote),
            "checks": [{"name": c.name, "passed": bool(c.passed), "value": c.value, "threshold": c.threshold,
                        "detail": c.detail} for c in decision.checks],
            "reasons": list(decision.reasons), "note": getattr(decision, "note", "") or ""}


def _metrics_context(report: dict[str, Any], champion: dict[str, Any] | None) -> dict[str, Any] | None:
    metrics = report.get("metrics") or {}
    if not metrics:
        return None
    primary = _primary(report)
    champ_metrics = (champion or {}).get("metrics") or {}
    rows = []
    for name, m in metrics.items():
        m = m or {}
        lower = bool(m.get("lower_is_better"))
        row = {"name": name, "primary": name == primary, "lower_is_better": lower,
               "value": _num(m.get("value")), "ci": _ci(m.get("ci")) or "-"}
        if champion is not None:
            cm = champ_metrics.get(name) or {}
            row.update(champion_value=_num(cm.get("value")), champion_ci=_ci(cm.get("ci")) or "-",
                       delta=_delta(m.get("value"), cm.get("value"), lower))
        rows.append(row)
    paired = (report.get("paired") or {}).get(primary) if primary else None
    paired_ctx = None
    if paired and len(paired) == 3 and _is_num(paired[0]):
        diff, low, high = paired
        paired_ctx = {"metric": primary, "diff": f"{float(diff):+.4f}",
                      "ci": f"{_num(low)} .. {_num(high)}" if low is not None and high is not None else None}
    return {"rows": rows, "any_lower_is_better": any((m or {}).get("lower_is_better") for m in metrics.values()),
            "paired": paired_ctx}


def _per_class_context(report: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"label": label, "precision": _num((v or {}).get("precision")), "recall": _num((v or {}).get("recall")),
             "f1": _num((v or {}).get("f1")), "support": _opt_num((v or {}).get("support"))}
            for label, v in (report.get("per_class") or {}).items()]


def _confusion_context(report: dict[str, Any]) -> dict[str, Any] | None:
    conf = report.get("confusion") or {}
    labels, matrix = conf.get("labels") or [], conf.get("matrix") or []
    if not labels or not matrix or len(labels) > MAX_CONFUSION_TABLE:
        return None
    return {"labels": [str(lab) for lab in labels],
            "rows": [{"label": label, "counts": [str(n) for n in row]}
                     for label, row in zip(labels, matrix, strict=False)]}


def _slices_context(report: dict[str, Any], champion: dict[str, Any] | None) -> dict[str, Any] | None:
    slices = report.get("slices") or {}
    by = slices.get("by") or {}
    if not any(by.values()):
        return None
    gap = slices.get("largest_gap") or {}
    champ_by = ((champion or {}).get("slices") or {}).get("by") or {}
    rows = []
    for field, values in by.items():
        for value, s in values.items():
            s = s or {}
            metric = s.get("metric")
            in_gap = bool(gap) and field == gap.get("field") and str(value) in (str(gap.get("best")),
                                                                                str(gap.get("worst")))
            row = {"field": field, "value": value, "n": _num(s.get("n")), "metric": _opt_num(metric),
                   # the reason a slice was not scored, None when it was
                   "skipped": str(s.get("skipped", "no metric")) if metric is None else None,
                   # "best" / "worst" for the two slices of the largest gap
                   "gap": ("best" if str(value) == str(gap.get("best")) else "worst") if in_gap else None}
            if champion is not None:
                cm = ((champ_by.get(field) or {}).get(value) or {}).get("metric")
                row.update(champion=_opt_num(cm), delta=_delta(metric, cm, False))
            rows.append(row)
    gap_ctx = None
    if gap:
        gap_ctx = {"field": gap.get("field"), "best": gap.get("best"), "best_metric": _num(gap.get("best_metric")),
                   "worst": gap.get("worst"), "worst_metric": _num(gap.get("worst_metric")),
                   "gap": _num(gap.get("gap"))}
    return {"metric": _primary(report) or "metric", "rows": rows, "gap": gap_ctx}


def _robustness_context(report: dict[str, Any]) -> list[dict[str, Any]]:
    rob = report.get("robustness") or {}
    drops = {k: float(v["drop"]) for k, v in rob.items() if _is_num((v or {}).get("drop"))}
    worst = max(drops, key=lambda k: drops[k]) if drops else None
    rows = []
    for kind, v in rob.items():
        v = v or {}
        rows.append({"kind": kind, "n": _num(v.get("n")), "clean_accuracy": _num(v.get("clean_accuracy")),
                     "perturbed_accuracy": _num(v.get("perturbed_accuracy")), "drop": _num(v.get("drop")),
                     "flip_rate": _num(v.get("flip_rate")), "changed": _num(v.get("changed")),
                     "worst": kind == worst and drops[kind] > 0})
    return rows


def _pii_context(report: dict[str, Any]) -> dict[str, Any] | None:
    pii = report.get("pii")
    if not pii:
        return None
    return {"outputs": _num(pii.get("outputs")), "with_pii": _num(pii.get("with_pii")),
            "leak_rate": _num(pii.get("leak_rate")),
            "entities": [[kind, _num(n)] for kind, n in sorted((pii.get("entities") or {}).items())]}


def _contamination_context(report: dict[str, Any]) -> dict[str, Any] | None:
    c = report.get("contamination")
    if not c:
        return None
    if not c.get("checked"):
        return {"checked": False}
    return {"checked": True, **{k: _num(c.get(k)) for k in ("golden_items", "golden_items_found",
                                                             "contamination_rate", "rows_checked", "rows_removed")}}


def _token(token: str, score: float) -> dict[str, Any]:
    """One attributed token: ``alpha`` is the colour's opacity, green when ``positive``, red otherwise."""
    return {"text": token, "positive": score >= 0, "alpha": f"{min(1.0, abs(float(score))):.2f}",
            "score": f"{float(score):+.3f}"}


def _explanations_context(report: dict[str, Any]) -> dict[str, Any] | None:
    ex = report.get("explanations") or {}
    if not ex.get("examples") and not ex.get("withheld"):
        return None
    examples = [{"id": e.get("id"), "reasons": ", ".join(e.get("reasons", [])), "label": e.get("label"),
                 "prediction": e.get("prediction"), "correct": e.get("label") == e.get("prediction"),
                 "tokens": [_token(t, sc) for t, sc in zip(e.get("tokens", []), e.get("scores", []), strict=False)],
                 "delta": _num(e.get("delta"), 3)}
                for e in ex.get("examples", [])]
    return {"method": ex.get("method", ""), "steps": ex.get("steps", ""), "examples": examples,
            "withheld": int(ex["withheld"]) if ex.get("withheld") else 0}


def _timing_context(report: dict[str, Any]) -> dict[str, Any] | None:
    t = report.get("timing") or {}
    if not t:
        return None
    return {"examples": _num(t.get("examples")), "seconds": _num(t.get("seconds"), 2),
            "examples_per_s": _num(t.get("examples_per_s"), 1)}


_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _figures(images: dict[str, Path] | None) -> list[dict[str, str]]:
    """``{"label", "src"}`` for each raster image in ``images`` (``{name: path}``), ``src`` a ``data:``
    URI of its bytes; missing files and anything but PNG, JPEG or GIF are left out (an SVG could
    reference or run something)."""
    out = []
    for name, path in (images or {}).items():
        path = Path(path)
        if not path.is_file():
            continue
        data = path.read_bytes()
        mime = next((m for magic, m in _IMAGE_TYPES if data.startswith(magic)), None)
        if mime is None:
            continue
        out.append({"label": str(name).replace("_", " "),
                    "src": f"data:{mime};base64,{base64.b64encode(data).decode()}"})
    return out


def render_html(report: dict[str, Any], *, decision: Decision | None = None, champion: dict[str, Any] | None = None,
                plots: dict[str, Path] | None = None, title: str | None = None) -> str:
    """One self-contained HTML page for ``report``: header, the gate ``decision`` (if given), metrics
    with CIs (and the ``champion`` report's values and deltas), per-class, confusion, slices,
    robustness, PII-probe counts, timing and the ``plots`` (embedded as data URIs)."""
    from llmops.templates import render

    h = _headline(report)
    context = {
        "title": title or f"Evaluation: {h['model']} on {h['suite']}",
        "header": h,
        "champion_model": None if champion is None else champion.get("model", "?"),
        "compare": champion is not None,
        "decision": _decision_context(decision) if decision is not None else None,
        "metrics": _metrics_context(report, champion),
        "per_class": _per_class_context(report),
        "confusion": _confusion_context(report),
        "slices": _slices_context(report, champion),
        "robustness": _robustness_context(report),
        "pii": _pii_context(report),
        "contamination": _contamination_context(report),
        "explanations": _explanations_context(report),
        "timing": _timing_context(report),
        "figures": _figures(plots),
    }
    return render(TEMPLATE, context)


# --------------------------------------------------------------------------- Markdown
def _md(value: Any) -> str:
    """A string safe inside a Markdown table cell / inline text."""
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_summary(report: dict[str, Any], decision: Decision | None = None) -> str:
    """A compact Markdown summary: header, metrics table, largest slice gap, worst perturbation, PII
    counts, timing and the gate verdict with its reasons."""
    h = _headline(report)
    primary = h["primary"]
    head = f"**{_md(h['model'])}** on `{_md(h['suite'])}`"
    if h["golden"]:
        head += f" (golden {_md(h['golden'])}"
        head += f", {_md(h['items'])} items" if h["items"] else ""
        head += f", sha256 {_md(h['sha'])})" if h["sha"] else ")"
    lines = [head]
    if decision is not None:
        lines.append(f"Gate: **{'PROMOTE' if decision.promote else 'REJECT'}**")
    metrics = report.get("metrics") or {}
    if metrics:
        lines += ["", "| metric | value | 95% CI |", "|---|---:|---|"]
        for name, m in metrics.items():
            m = m or {}
            label = f"**{_md(name)}** (primary)" if name == primary else _md(name)
            lines.append(f"| {label} | {_num(m.get('value'))} | {_ci(m.get('ci')) or '-'} |")
        lines.append("")
    bullets = []
    paired = (report.get("paired") or {}).get(primary) if primary else None
    if paired and len(paired) == 3 and _is_num(paired[0]):
        ci = f" (95% CI {_num(paired[1])} .. {_num(paired[2])})" if paired[1] is not None else ""
        bullets.append(f"{_md(primary)} vs champion: {float(paired[0]):+.4f}{ci}")
    slices = report.get("slices") or {}
    gap = slices.get("largest_gap")
    if gap:
        bullets.append(f"largest slice gap: {_md(gap.get('field'))} {_md(gap.get('best'))} "
                       f"{_num(gap.get('best_metric'))} vs {_md(gap.get('worst'))} {_num(gap.get('worst_metric'))} "
                       f"(gap {_num(gap.get('gap'))})")
    skipped = sum(1 for values in (slices.get("by") or {}).values() for s in values.values()
                  if (s or {}).get("metric") is None)
    if skipped:
        bullets.append(f"{skipped} slice(s) too small to score")
    drops = {k: float(v["drop"]) for k, v in (report.get("robustness") or {}).items() if _is_num((v or {}).get("drop"))}
    if drops:
        worst = max(drops, key=lambda k: drops[k])
        bullets.append(f"robustness: worst {_md(worst)} drop {drops[worst]:+.4f} ({len(drops)} perturbations)")
    pii = report.get("pii")
    if pii:
        entities = ", ".join(f"{_md(k)} {v}" for k, v in sorted((pii.get("entities") or {}).items())) or "none"
        bullets.append(f"PII probe: {pii.get('with_pii', 0)}/{pii.get('outputs', 0)} outputs ({entities})")
    cont = report.get("contamination")
    if cont:
        bullets.append(f"training data contamination: {cont.get('golden_items_found')}/{cont.get('golden_items')} "
                       f"golden items (rate {_num(cont.get('contamination_rate'))}), removed before training"
                       if cont.get("checked") else "training data contamination: not recorded")
    t = report.get("timing") or {}
    if t:
        bullets.append(f"timing: {t.get('examples', '?')} examples in {_num(t.get('seconds'), 2)} s "
                       f"({_num(t.get('examples_per_s'), 1)}/s)")
    lines += [f"- {b}" for b in bullets]
    if decision is not None and decision.reasons:
        lines.append("- gate reasons:")
        lines += [f"  - {_md(r)}" for r in decision.reasons]
    return "\n".join(lines).strip()
