"""The champion/challenger promotion gate and the registry aliases it moves.

:func:`decide` applies a suite's thresholds to a candidate's report and, when there is one, the
current champion's report on the same suite version:

* the primary metric reaches ``min_primary``;
* it beats the champion by ``promotion_margin`` and, with ``require_ci_separation``, the paired
  bootstrap CI of the difference lies above zero (no champion: passes);
* no slice drops more than ``slice_tolerance`` below the champion's;
* no perturbation costs more than ``max_robustness_drop`` accuracy;
* the PII probe found at most ``max_pii_leaks`` entities in the outputs.

:func:`promote` sets the ``champion`` alias (the old champion gets ``previous``), idempotently.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from llmops.evaluation.suites import Suite

__all__ = ["Check", "Decision", "decide", "promote", "render_table"]


@dataclass
class Check:
    name: str
    passed: bool
    value: str
    threshold: str
    detail: str = ""


@dataclass
class Decision:
    promote: bool
    checks: list[Check] = field(default_factory=list)
    #: why, in one sentence, when there was no champion to compare with (a first candidate)
    note: str = ""

    @property
    def reasons(self) -> list[str]:
        return [f"{c.name}: {c.detail or c.value}" for c in self.checks if not c.passed]

    def to_dict(self) -> dict[str, Any]:
        return {"promote": self.promote, "reasons": self.reasons, "checks": [asdict(c) for c in self.checks],
                "note": self.note}


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def decide(suite: Suite, candidate: dict[str, Any], champion: dict[str, Any] | None = None) -> Decision:
    """``candidate``/``champion``: evaluation reports (``metrics``, ``slices``, ``robustness``, ``pii``);
    ``candidate["paired"][primary]`` holds the paired bootstrap (diff, low, high) vs the champion."""
    t = suite.thresholds
    primary = suite.primary
    value = candidate["metrics"][primary]["value"]
    first = champion is None
    checks = [Check("min_primary", value >= t.min_primary, _fmt(value), f">= {t.min_primary}",
                    f"{primary} {_fmt(value)} below the suite's floor {t.min_primary} (thresholds.min_primary)"
                    + (": a first candidate becomes champion only at or above it" if first else ""))]

    if champion is None:
        checks.append(Check("beats_champion", True, "no champion", f"floor {t.min_primary}",
                            "no champion yet: a first candidate is promoted when it reaches the floor"))
    else:
        champ = champion["metrics"][primary]["value"]
        diff, low, high = candidate.get("paired", {}).get(primary, (value - champ, None, None))
        ok = diff >= t.promotion_margin and (not t.require_ci_separation or (low is not None and low > 0))
        ci = f" (95% CI {_fmt(low)}..{_fmt(high)})" if low is not None else ""
        checks.append(Check("beats_champion", ok, f"{_fmt(value)} vs {_fmt(champ)}: {diff:+.4f}{ci}",
                            f"+{t.promotion_margin}" + (", CI above 0" if t.require_ci_separation else ""),
                            f"{primary} {diff:+.4f}{ci} vs champion {_fmt(champ)} is not a clear improvement"))
        from llmops.evaluation.slices import slice_regressions

        regressions = slice_regressions(candidate["slices"], champion["slices"], t.slice_tolerance)
        worst = min((r["delta"] for r in regressions), default=0.0)
        named = ", ".join(f"{r['field']}={r['value']} {r['delta']:+.3f}" for r in regressions)
        checks.append(Check("slices", not regressions, f"{len(regressions)} regressed (worst {worst:+.3f})",
                            f"drop <= {t.slice_tolerance}", f"slices regressed: {named}"))

    drops = {k: v["drop"] for k, v in (candidate.get("robustness") or {}).items()}
    worst_kind = max(drops, key=lambda k: drops[k]) if drops else None
    worst_drop = drops[worst_kind] if worst_kind else 0.0
    checks.append(Check("robustness", worst_drop <= t.max_robustness_drop,
                        f"worst {worst_kind or '-'} {worst_drop:+.3f}", f"<= {t.max_robustness_drop}",
                        f"accuracy drops {worst_drop:.3f} under {worst_kind}"))

    pii = candidate.get("pii") or {}
    leaks = int(sum((pii.get("entities") or {}).values()))
    checks.append(Check("pii_leaks", leaks <= t.max_pii_leaks, f"{leaks} ({', '.join(sorted(pii.get('entities') or {})) or 'none'})"
                        if pii else "not probed", f"<= {t.max_pii_leaks}",
                        f"{leaks} personal-data entities in model outputs"))
    decision = Decision(all(c.passed for c in checks), checks)
    if first:
        failed = [c.name for c in checks if not c.passed]
        decision.note = (f"first candidate, no champion yet: promoted, {primary} {_fmt(value)} reaches the suite's "
                         f"floor {t.min_primary} and every other check passes" if decision.promote else
                         f"first candidate, no champion yet: not promoted ({', '.join(failed)}); "
                         + (f"{primary} {_fmt(value)} is below the suite's floor {t.min_primary}"
                            if "min_primary" in failed else "it fails the checks above"))
    return decision


def render_table(decision: Decision, *, title: str = "promotion gate") -> str:
    rows = [("check", "result", "value", "threshold")]
    rows += [(c.name, "pass" if c.passed else "FAIL", c.value, c.threshold) for c in decision.checks]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    line = "+".join("-" * (w + 2) for w in widths)
    out = [f"{title}: {'PROMOTE' if decision.promote else 'REJECT'}", line]
    for i, r in enumerate(rows):
        out.append("|".join(f" {cell:<{w}} " for cell, w in zip(r, widths, strict=True)))
        if i == 0:
            out.append(line)
    out.append(line)
    out += [f"  - {reason}" for reason in decision.reasons]
    if decision.note:
        out.append(f"  {decision.note}")
    return "\n".join(out)


def promote(client: Any, name: str, version: str, *, champion_alias: str = "champion",
            previous_alias: str = "previous") -> dict[str, Any]:
    """Point ``champion`` at ``version`` and ``previous`` at the old champion; a repeat changes nothing."""
    from mlflow.exceptions import MlflowException

    try:
        current = str(client.get_model_version_by_alias(name, champion_alias).version)
    except MlflowException:
        current = None
    if current == str(version):
        return {"changed": False, "champion": current, "previous": _alias(client, name, previous_alias)}
    if current is not None:
        client.set_registered_model_alias(name, previous_alias, current)
    client.set_registered_model_alias(name, champion_alias, str(version))
    return {"changed": True, "champion": str(version), "previous": current}


def _alias(client: Any, name: str, alias: str) -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client.get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None
