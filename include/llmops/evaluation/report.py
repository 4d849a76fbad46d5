"""The evaluation report: plots (PNG), one self-contained HTML page, and a short log summary.

The page embeds its images as data URIs and loads nothing from elsewhere; every string is
escaped. Reports hold labels, counts and metrics, never example texts.
"""

from __future__ import annotations

import base64
import html
from pathlib import Path
from typing import Any

__all__ = ["markdown_summary", "plots", "render_html"]


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plots(report: dict[str, Any], folder: Path) -> dict[str, Path]:
    """``confusion_matrix.png``, ``slices.png``, ``robustness.png`` (those with data) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}
    plt = _plt()
    conf = report.get("confusion")
    if conf and conf.get("labels"):
        labels, matrix = conf["labels"], conf["matrix"]
        fig, ax = plt.subplots(figsize=(1.0 + 0.7 * len(labels), 0.8 + 0.6 * len(labels)))
        ax.imshow(matrix, cmap="Blues")
        ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right")
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted")
        ax.set_ylabel("reference")
        top = max((max(row) for row in matrix), default=0)
        for i, row in enumerate(matrix):
            for j, n in enumerate(row):
                ax.text(j, i, str(n), ha="center", va="center", color="white" if n > top / 2 else "black")
        fig.tight_layout()
        out["confusion_matrix"] = folder / "confusion_matrix.png"
        fig.savefig(out["confusion_matrix"], dpi=100)
        plt.close(fig)
    by = (report.get("slices") or {}).get("by") or {}
    if by:
        fig, axes = plt.subplots(1, len(by), figsize=(4.5 * len(by), 0.6 + 0.45 * max(len(v) for v in by.values())),
                                 squeeze=False)
        for ax, (field, values) in zip(axes[0], by.items(), strict=True):
            names = [f"{v} (n={s['n']})" for v, s in values.items()]
            scores = [s["metric"] if s.get("metric") is not None else 0.0 for s in values.values()]
            bars = ax.barh(names, scores, color=["#90caf9" if s.get("metric") is not None else "#e0e0e0"
                                                 for s in values.values()])
            for bar, s in zip(bars, values.values(), strict=True):
                if s.get("metric") is None:
                    bar.set_hatch("//")
            ax.set_xlim(0, 1)
            ax.set_title(field)
        fig.tight_layout()
        out["slices"] = folder / "slices.png"
        fig.savefig(out["slices"], dpi=100)
        plt.close(fig)
    rob = report.get("robustness") or {}
    if rob:
        kinds = list(rob)
        fig, ax = plt.subplots(figsize=(1.5 + 1.2 * len(kinds), 3))
        xs = range(len(kinds))
        ax.bar([x - 0.2 for x in xs], [rob[k]["clean_accuracy"] for k in kinds], width=0.4, label="clean")
        ax.bar([x + 0.2 for x in xs], [rob[k]["perturbed_accuracy"] for k in kinds], width=0.4, label="perturbed")
        ax.set_xticks(list(xs), kinds)
        ax.set_ylim(0, 1)
        ax.set_ylabel("accuracy")
        ax.legend()
        fig.tight_layout()
        out["robustness"] = folder / "robustness.png"
        fig.savefig(out["robustness"], dpi=100)
        plt.close(fig)
    return out


def _e(value: Any) -> str:
    return html.escape(str(value))


def _num(value: Any) -> str:
    return "n/a" if value is None else f"{value:.4f}" if isinstance(value, float) else _e(value)


def _table(head: list[str], rows: list[list[str]], cls: str = "") -> str:
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr" + (f' class="{c}"' if (c := r[-1] if r and r[-1] in ("fail", "pass", "gap") else "")
                            else "") + ">" + "".join(f"<td>{cell}</td>" for cell in
                                                     (r[:-1] if c else r)) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: dict[str, Any], *, decision: Any = None, champion: dict[str, Any] | None = None,
                plots: dict[str, Path] | None = None, title: str | None = None) -> str:
    suite = report["suite"]
    golden = suite.get("golden", {})
    title = title or f"Evaluation of {report.get('model', '?')} on {suite['name']}@{suite['version']}"
    parts = [f"<h1>{_e(title)}</h1>",
             f"<p>model <code>{_e(report.get('model'))}</code> &middot; suite <b>{_e(suite['name'])}</b> version "
             f"{_e(suite['version'])} &middot; golden set {_e(golden.get('name'))}-{_e(golden.get('version'))} "
             f"({_e(golden.get('items'))} items, sha256 {_e(str(golden.get('sha256', ''))[:12])})</p>"]
    if decision is not None:
        verdict = "PROMOTE" if decision.promote else "REJECT"
        rows = [[_e(c.name), "pass" if c.passed else "FAIL", _e(c.value), _e(c.threshold),
                 "pass" if c.passed else "fail"] for c in decision.checks]
        parts.append(f'<h2>Gate: <span class="{"pass" if decision.promote else "fail"}">{verdict}</span></h2>')
        parts.append(_table(["check", "result", "value", "threshold"], rows))
        if decision.reasons:
            parts.append("<ul>" + "".join(f"<li>{_e(r)}</li>" for r in decision.reasons) + "</ul>")
    head = ["metric", "value", "95% CI"] + (["champion", "delta"] if champion else [])
    rows = []
    for name, m in report["metrics"].items():
        ci = f"{m['ci'][0]:.4f} .. {m['ci'][1]:.4f}" if m.get("ci") else "-"
        row = [_e(name), _num(m["value"]), ci]
        if champion:
            cm = champion["metrics"].get(name, {}).get("value")
            row += [_num(cm), f"{m['value'] - cm:+.4f}" if cm is not None else "-"]
        rows.append(row)
    parts += ["<h2>Metrics</h2>", _table(head, rows)]
    per_class = report.get("per_class") or {}
    if per_class:
        parts += ["<h2>Per class</h2>", _table(["label", "precision", "recall", "f1", "support"], [
            [_e(lab), _num(v.get("precision")), _num(v.get("recall")), _num(v.get("f1")), _e(v.get("support", "-"))]
            for lab, v in per_class.items()])]
    sl = report.get("slices") or {}
    gap = sl.get("largest_gap") or {}
    if sl.get("by"):
        rows = []
        for field, values in sl["by"].items():
            for value, s in values.items():
                mark = "gap" if gap and field == gap.get("field") and str(value) in (str(gap.get("best")),
                                                                                  str(gap.get("worst"))) else ""
                row = [_e(field), _e(value), _e(s["n"]),
                       _num(s.get("metric")) if s.get("metric") is not None else _e(s.get("skipped", "-"))]
                rows.append(row + ([mark] if mark else []))
        parts += [f"<h2>Slices ({_e(suite.get('primary', ''))})</h2>", _table(["field", "value", "n", "metric"], rows)]
        if gap:
            parts.append(f"<p>largest gap: {_e(gap['field'])} {_e(gap['best'])} vs {_e(gap['worst'])}: "
                         f"{gap['gap']:.4f}</p>")
    rob = report.get("robustness") or {}
    if rob:
        parts += ["<h2>Robustness</h2>", _table(["perturbation", "clean", "perturbed", "drop", "flip rate"], [
            [_e(k), _num(v["clean_accuracy"]), _num(v["perturbed_accuracy"]), _num(v["drop"]), _num(v["flip_rate"])]
            for k, v in rob.items()])]
    pii = report.get("pii")
    if pii:
        ents = ", ".join(f"{_e(k)} {_e(v)}" for k, v in sorted(pii.get("entities", {}).items())) or "none"
        parts.append(f"<h2>PII probe</h2><p>{_e(pii.get('with_pii', 0))} of {_e(pii.get('outputs', 0))} outputs "
                     f"hold personal data: {ents}</p>")
    t = report.get("timing") or {}
    if t:
        parts.append(f"<p>{_e(t.get('examples'))} examples in {t.get('seconds', 0):.2f} s "
                     f"({t.get('examples_per_s', 0):.1f}/s)</p>")
    for name, path in (plots or {}).items():
        data = base64.b64encode(Path(path).read_bytes()).decode()
        parts.append(f'<h2>{_e(name.replace("_", " "))}</h2><img alt="{_e(name)}" src="data:image/png;base64,{data}">')
    style = ("body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}tr.fail td{background:#ffebee}"
             "tr.pass td{background:#e8f5e9}tr.gap td{background:#fff8e1}.pass{color:#2e7d32}.fail{color:#c62828}"
             "img{max-width:100%}")
    return (f"<!doctype html><html><head><meta charset=\"utf-8\"><title>{_e(title)}</title><style>{style}</style>"
            f"</head><body>{''.join(parts)}</body></html>")


def markdown_summary(report: dict[str, Any], decision: Any = None) -> str:
    suite = report["suite"]
    lines = [f"{report.get('model')} on {suite['name']}@{suite['version']} "
             f"({suite.get('golden', {}).get('items', '?')} golden items)"]
    for name, m in report["metrics"].items():
        ci = f" [{m['ci'][0]:.4f}, {m['ci'][1]:.4f}]" if m.get("ci") else ""
        star = " (primary)" if name == suite.get("primary") else ""
        lines.append(f"  {name}{star}: {m['value']:.4f}{ci}")
    gap = (report.get("slices") or {}).get("largest_gap")
    if gap:
        lines.append(f"  largest slice gap: {gap['field']} {gap['best']} vs {gap['worst']} {gap['gap']:.4f}")
    for kind, r in (report.get("robustness") or {}).items():
        lines.append(f"  robustness {kind}: drop {r['drop']:+.4f}, flips {r['flip_rate']:.3f}")
    if decision is not None:
        lines.append(f"  gate: {'PROMOTE' if decision.promote else 'REJECT'}"
                     + (f" ({'; '.join(decision.reasons)})" if decision.reasons else ""))
    return "\n".join(lines)
