"""The evaluation report: PNG plots, one self-contained HTML page, and a short summary for task logs.

:func:`plots` draws the confusion matrix, the primary metric per slice and the accuracy under each
perturbation (each only when the report has the data). :func:`render_html` builds a single page with
inline CSS and the plots embedded as ``data:`` URIs: it loads nothing from elsewhere and runs no
script, so it can be opened straight from an MLflow artifact store or a mail attachment. Every string
from the report is HTML-escaped. :func:`markdown_summary` gives the same headline numbers in a few
lines of Markdown.

A report holds labels, counts and metrics. The only example texts are the token attributions of a
few golden items (the golden set is redacted, and each shown item was rescanned for personal data);
the PII probe of model outputs is shown as counts only.
"""

from __future__ import annotations

import base64
import html
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
def _e(value: Any) -> str:
    """``value`` as escaped HTML text (quotes too, so it is safe in attributes)."""
    return html.escape(str(value), quote=True)


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
_CSS = """
body{font-family:-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:2em auto;max-width:1100px;
  padding:0 1em;color:#222;line-height:1.4}
h1{font-size:1.5em;margin-bottom:.2em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ddd}
.meta{color:#555}.meta code{background:#f4f4f4;padding:0 .3em;border-radius:3px}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #d0d0d0;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
.verdict{display:inline-block;padding:.15em .7em;border-radius:4px;color:#fff;font-weight:bold}
.verdict.promote{background:#2e7d32}.verdict.reject{background:#c62828}
tr.pass td.result{color:#2e7d32;font-weight:bold}tr.fail td{background:#ffebee}
tr.fail td.result{color:#c62828;font-weight:bold}
tr.primary td:first-child{font-weight:bold}
tr.gap td{background:#fff8e1}tr.skipped td{color:#888;background:#fafafa;font-style:italic}
td.better{color:#2e7d32}td.worse{color:#c62828}
ul.reasons li{color:#c62828}
p.note{color:#555;font-size:.9em}td.tokens{line-height:1.8;max-width:40em}
span.tok{border-radius:2px;padding:0 1px;white-space:pre-wrap}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
footer{margin-top:2em;color:#888;font-size:.85em}
""".strip()


def _row(cells: list[tuple[str, str]], cls: str = "") -> str:
    """``cells``: ``(html, css class)`` pairs; the html must already be escaped."""
    tds = "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for v, c in cells)
    return f'<tr class="{cls}">{tds}</tr>' if cls else f"<tr>{tds}</tr>"


def _table(head: list[str], rows: list[str], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    attr = f' class="{cls}"' if cls else ""
    return f"<table{attr}><thead><tr>{th}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _n(value: Any, digits: int = 4) -> tuple[str, str]:
    return _e(_num(value, digits)), "num"


def _t(value: Any) -> tuple[str, str]:
    return _e(value), ""


def _section_header(report: dict[str, Any], champion: dict[str, Any] | None, title: str) -> str:
    h = _headline(report)
    bits = [f"model <code>{_e(h['model'])}</code>", f"suite <b>{_e(h['suite'])}</b>"]
    if h["task"]:
        bits.append(f"task {_e(h['task'])}")
    if h["primary"]:
        bits.append(f"primary metric <b>{_e(h['primary'])}</b>")
    golden = ""
    if h["golden"]:
        golden = f"golden set {_e(h['golden'])}"
        if h["items"]:
            golden += f", {_e(h['items'])} items"
        if h["sha"]:
            golden += f", sha256 <code>{_e(h['sha'])}</code>"
    lines = [f"<h1>{_e(title)}</h1>", f'<p class="meta">{" &middot; ".join(bits)}</p>']
    if golden:
        lines.append(f'<p class="meta">{golden}</p>')
    if champion is not None:
        lines.append(f'<p class="meta">compared with champion <code>{_e(champion.get("model", "?"))}</code></p>')
    return "\n".join(lines)


def _section_decision(decision: Decision) -> str:
    verdict = "PROMOTE" if decision.promote else "REJECT"
    rows = []
    for c in decision.checks:
        status = "pass" if c.passed else "fail"
        rows.append(_row([_t(c.name), (_e("pass" if c.passed else "FAIL"), "result"), _t(c.value),
                          _t(c.threshold), _t(c.detail if not c.passed else "")], status))
    parts = [f'<h2>Promotion gate: <span class="verdict {verdict.lower()}">{verdict}</span></h2>',
             _table(["check", "result", "value", "threshold", "detail"], rows, "gate")]
    reasons = decision.reasons
    if reasons:
        parts.append("<p>Reasons:</p><ul class=\"reasons\">"
                     + "".join(f"<li>{_e(r)}</li>" for r in reasons) + "</ul>")
    if getattr(decision, "note", ""):
        parts.append(f'<p class="note">{_e(decision.note)}</p>')
    return "\n".join(parts)


def _delta_cell(value: Any, other: Any, lower_is_better: bool) -> tuple[str, str]:
    if not (_is_num(value) and _is_num(other)):
        return "-", ""
    delta = float(value) - float(other)
    better = delta < 0 if lower_is_better else delta > 0
    worse = delta > 0 if lower_is_better else delta < 0
    return _e(f"{delta:+.4f}"), "num " + ("better" if better else "worse" if worse else "")


def _section_metrics(report: dict[str, Any], champion: dict[str, Any] | None) -> str:
    metrics = report.get("metrics") or {}
    if not metrics:
        return ""
    primary = _primary(report)
    head = ["metric", "value", "95% CI"]
    if champion is not None:
        head += ["champion", "champion 95% CI", "delta"]
    rows = []
    champ_metrics = (champion or {}).get("metrics") or {}
    for name, m in metrics.items():
        m = m or {}
        lower = bool(m.get("lower_is_better"))
        label = f"{name} (primary)" if name == primary else name
        if lower:
            label += " \u2193"
        cells = [_t(label), _n(m.get("value")), _t(_ci(m.get("ci")) or "-")]
        if champion is not None:
            cm = champ_metrics.get(name) or {}
            cells += [_n(cm.get("value")), _t(_ci(cm.get("ci")) or "-"),
                      _delta_cell(m.get("value"), cm.get("value"), lower)]
        rows.append(_row(cells, "primary" if name == primary else ""))
    parts = ["<h2>Metrics</h2>", _table(head, rows, "metrics")]
    notes = []
    if any((m or {}).get("lower_is_better") for m in metrics.values()):
        notes.append("\u2193 lower is better.")
    paired = (report.get("paired") or {}).get(primary) if primary else None
    if paired and len(paired) == 3 and _is_num(paired[0]):
        diff, low, high = paired
        ci = f" (95% CI {_num(low)} .. {_num(high)})" if low is not None and high is not None else ""
        notes.append(f"Paired bootstrap difference of {primary} vs the champion on the same items: "
                     f"{float(diff):+.4f}{ci}.")
    if notes:
        parts.append(f'<p class="meta">{" ".join(_e(n) for n in notes)}</p>')
    return "\n".join(parts)


def _section_per_class(report: dict[str, Any]) -> str:
    per_class = report.get("per_class") or {}
    if not per_class:
        return ""
    rows = []
    for label, v in per_class.items():
        v = v or {}
        support = v.get("support")
        rows.append(_row([_t(label), _n(v.get("precision")), _n(v.get("recall")), _n(v.get("f1")),
                          _n(support) if support is not None else _t("-")]))
    return "\n".join(["<h2>Per class</h2>", _table(["label", "precision", "recall", "f1", "support"], rows)])


def _section_confusion(report: dict[str, Any]) -> str:
    conf = report.get("confusion") or {}
    labels, matrix = conf.get("labels") or [], conf.get("matrix") or []
    if not labels or not matrix or len(labels) > MAX_CONFUSION_TABLE:
        return ""
    head = ["reference \u2193 / predicted \u2192", *[str(lab) for lab in labels]]
    rows = []
    for i, (label, row) in enumerate(zip(labels, matrix, strict=False)):
        cells = [(f"<b>{_e(label)}</b>", "")]
        cells += [(f"<b>{_e(n)}</b>" if i == j else _e(n), "num") for j, n in enumerate(row)]
        rows.append(_row(cells))
    return "\n".join(["<h2>Confusion matrix</h2>", _table(head, rows, "confusion")])


def _section_slices(report: dict[str, Any], champion: dict[str, Any] | None) -> str:
    slices = report.get("slices") or {}
    by = slices.get("by") or {}
    if not any(by.values()):
        return ""
    gap = slices.get("largest_gap") or {}
    champ_by = ((champion or {}).get("slices") or {}).get("by") or {}
    head = ["field", "value", "n", _primary(report) or "metric"]
    if champion is not None:
        head += ["champion", "delta"]
    head.append("note")
    rows = []
    for field, values in by.items():
        for value, s in values.items():
            s = s or {}
            metric = s.get("metric")
            skipped = metric is None
            in_gap = bool(gap) and field == gap.get("field") and str(value) in (str(gap.get("best")),
                                                                                str(gap.get("worst")))
            note = f"skipped: {s.get('skipped', 'no metric')}" if skipped else ""
            if in_gap:
                note = "largest gap: " + ("best" if str(value) == str(gap.get("best")) else "worst")
            cells = [_t(field), _t(value), _n(s.get("n")), _n(metric) if not skipped else _t("-")]
            if champion is not None:
                cm = ((champ_by.get(field) or {}).get(value) or {}).get("metric")
                cells += [_n(cm) if cm is not None else _t("-"), _delta_cell(metric, cm, False)]
            cells.append(_t(note))
            rows.append(_row(cells, "gap" if in_gap else "skipped" if skipped else ""))
    parts = ["<h2>Slices</h2>", _table(head, rows, "slices")]
    if gap:
        parts.append(f'<p class="meta">Largest gap: {_e(gap.get("field"))} {_e(gap.get("best"))} '
                     f"{_e(_num(gap.get('best_metric')))} vs {_e(gap.get('worst'))} "
                     f"{_e(_num(gap.get('worst_metric')))} (gap {_e(_num(gap.get('gap')))}). "
                     "Slices too small to score are listed but left out of the gap.</p>")
    return "\n".join(parts)


def _section_robustness(report: dict[str, Any]) -> str:
    rob = report.get("robustness") or {}
    if not rob:
        return ""
    drops = {k: float(v["drop"]) for k, v in rob.items() if _is_num((v or {}).get("drop"))}
    worst = max(drops, key=lambda k: drops[k]) if drops else None
    rows = []
    for kind, v in rob.items():
        v = v or {}
        rows.append(_row([_t(kind), _n(v.get("n")), _n(v.get("clean_accuracy")), _n(v.get("perturbed_accuracy")),
                          _n(v.get("drop")), _n(v.get("flip_rate")), _n(v.get("changed"))],
                         "gap" if kind == worst and drops[kind] > 0 else ""))
    head = ["perturbation", "n", "clean accuracy", "perturbed accuracy", "drop", "flip rate", "texts changed"]
    return "\n".join(["<h2>Robustness</h2>", _table(head, rows, "robustness")])


def _section_pii(report: dict[str, Any]) -> str:
    pii = report.get("pii")
    if not pii:
        return ""
    entities = pii.get("entities") or {}
    rows = [_row([_t("outputs scanned"), _n(pii.get("outputs"))]),
            _row([_t("outputs with personal data"), _n(pii.get("with_pii"))]),
            _row([_t("leak rate"), _n(pii.get("leak_rate"))])]
    rows += [_row([_t(f"entities: {kind}"), _n(n)]) for kind, n in sorted(entities.items())]
    if not entities:
        rows.append(_row([_t("entities"), _t("none")]))
    return "\n".join(["<h2>PII probe</h2>", _table(["", "count"], rows, "pii"),
                      '<p class="meta">Counts only; the flagged outputs are not shown.</p>'])


def _section_contamination(report: dict[str, Any]) -> str:
    c = report.get("contamination")
    if not c:
        return ""
    if not c.get("checked"):
        return ("<h2>Training data contamination</h2>\n<p>Not recorded: the candidate's training run did not check "
                "its data against this suite's golden set (trained without <code>training.decontamination</code>, "
                "or not by the pipeline).</p>")
    rows = [_row([_t("golden items"), _n(c.get("golden_items"))]),
            _row([_t("golden items found in the training data"), _n(c.get("golden_items_found"))]),
            _row([_t("contamination rate (before removal)"), _n(c.get("contamination_rate"))]),
            _row([_t("training rows checked"), _n(c.get("rows_checked"))]),
            _row([_t("training rows removed before the split"), _n(c.get("rows_removed"))])]
    return "\n".join(["<h2>Training data contamination</h2>", _table(["", "value"], rows, "contamination"),
                      '<p class="meta">Exact and near duplicates of this suite\'s golden items found in the '
                      "candidate's labeled data were removed before training; the rate says how much of the "
                      "golden set the data held.</p>"])


def _token_span(token: str, score: float) -> str:
    alpha = min(1.0, abs(float(score)))
    color = f"rgba(44,160,44,{alpha:.2f})" if score >= 0 else f"rgba(214,39,40,{alpha:.2f})"
    return f'<span class="tok" style="background:{color}" title="{float(score):+.3f}">{_e(token)}</span>'


def _section_explanations(report: dict[str, Any]) -> str:
    ex = report.get("explanations") or {}
    if not ex.get("examples") and not ex.get("withheld"):
        return ""
    parts = ["<h2>Why the model decided</h2>",
             f'<p class="note">{_e(ex.get("method", ""))}, {_e(ex.get("steps", ""))} steps, attributing the '
             "predicted label. Green tokens pushed towards the prediction, red against it; the strongest token "
             "of each example is fully coloured. Texts come from the redacted golden set and are scanned for "
             "personal data again before they are shown.</p>"]
    rows = []
    for e in ex.get("examples", []):
        mark = "correct" if e.get("label") == e.get("prediction") else "error"
        tokens = "".join(_token_span(t, sc) for t, sc in zip(e.get("tokens", []), e.get("scores", []), strict=False))
        rows.append(_row([_t(e.get("id")), _t(", ".join(e.get("reasons", []))), _t(e.get("label")),
                          (_e(e.get("prediction")), "worse" if mark == "error" else "better"), (tokens, "tokens"), _n(e.get("delta"), 3)]))
    if rows:
        parts.append(_table(["id", "why chosen", "label", "prediction", "attribution", "IG delta"], rows,
                            "explanations"))
    if ex.get("withheld"):
        parts.append(f'<p class="note">{int(ex["withheld"])} selected example(s) withheld: the PII analyzer '
                     "found personal data in their text.</p>")
    return "\n".join(parts)


def _section_timing(report: dict[str, Any]) -> str:
    t = report.get("timing") or {}
    if not t:
        return ""
    rows = [_row([_t("examples"), _n(t.get("examples"))]),
            _row([_t("seconds"), _n(t.get("seconds"), 2)]),
            _row([_t("examples / s"), _n(t.get("examples_per_s"), 1)])]
    return "\n".join(["<h2>Timing</h2>", _table(["", ""], rows, "timing")])


_IMAGE_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"))


def _section_plots(images: dict[str, Path] | None) -> str:
    parts = []
    for name, path in (images or {}).items():
        path = Path(path)
        if not path.is_file():
            continue
        data = path.read_bytes()
        mime = next((m for magic, m in _IMAGE_TYPES if data.startswith(magic)), None)
        if mime is None:  # only raster images: an SVG could reference or run something
            continue
        label = str(name).replace("_", " ")
        parts.append(f'<figure><img alt="{_e(label)}" src="data:{mime};base64,{base64.b64encode(data).decode()}">'
                     f"<figcaption>{_e(label)}</figcaption></figure>")
    return "\n".join(["<h2>Plots</h2>", *parts]) if parts else ""


def render_html(report: dict[str, Any], *, decision: Decision | None = None, champion: dict[str, Any] | None = None,
                plots: dict[str, Path] | None = None, title: str | None = None) -> str:
    """One self-contained HTML page for ``report``: header, the gate ``decision`` (if given), metrics
    with CIs (and the ``champion`` report's values and deltas), per-class, confusion, slices,
    robustness, PII-probe counts, timing and the ``plots`` (embedded as data URIs)."""
    h = _headline(report)
    title = title or f"Evaluation: {h['model']} on {h['suite']}"
    sections = [
        _section_header(report, champion, title),
        _section_decision(decision) if decision is not None else "",
        _section_metrics(report, champion),
        _section_per_class(report),
        _section_confusion(report),
        _section_slices(report, champion),
        _section_robustness(report),
        _section_pii(report),
        _section_contamination(report),
        _section_explanations(report),
        _section_timing(report),
        _section_plots(plots),
        "<footer>Labels, counts and metrics; example texts only in the attributions, from the redacted golden "
        "set.</footer>",
    ]
    body = "\n".join(s for s in sections if s)
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{_e(title)}</title>\n<style>\n{_CSS}\n</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n")


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
