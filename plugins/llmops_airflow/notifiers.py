"""Drift alerts through Airflow notifiers: a JSON-lines file by default, SMTP or Slack by connection."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from airflow.sdk import BaseNotifier

__all__ = ["FileNotifier", "alert_text", "build_notifier"]


class FileNotifier(BaseNotifier):
    """Appends one JSON line per alert to ``path``; an alert whose ``key`` is already there is not
    written again (a retried task alerts once)."""

    template_fields = ("path",)

    def __init__(self, path: str, payload: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path, self.payload = path, payload

    def notify(self, context: Any) -> None:
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        key = self.payload.get("key")
        if path.exists() and key is not None:
            for line in path.read_text().splitlines():
                if line.strip() and json.loads(line).get("key") == key:
                    return
        with path.open("a") as fh:
            fh.write(json.dumps(self.payload, sort_keys=True, default=str) + "\n")


def alert_text(summary: dict[str, Any]) -> str:
    lines = []
    if summary.get("drift"):
        lines.append(f"Drift in {summary['dataset']} for {summary['night']} (champion v{summary.get('champion')}):")
        lines += [f"- {b['check']}" + "".join(f", {k} {v:.4g}" for k, v in b.items() if isinstance(v, int | float))
                  for b in summary.get("breaches", [])]
        if summary.get("drifted_slices"):
            lines.append(f"Drifted slices: {', '.join(summary['drifted_slices'])}")
    w = summary.get("watchdog") or {}
    if w.get("overdue"):
        lines.append(f"Overdue in {summary['dataset']} on {summary['night']} (published more than "
                     f"{w['max_age_hours']:g} h ago, next stage not run):")
        lines += [f"- curated {u['partition']} {u['version_id']}: no labels ({u['age_hours']:.0f} h)"
                  for u in w.get("unlabeled", [])]
        lines += [f"- model {u['model']} v{u['version']}: no evaluation ({u['age_hours']:.0f} h)"
                  for u in w.get("unevaluated", [])]
    if summary.get("report_path"):
        lines.append(f"Report: {summary.get('report_path')}")
    return "\n".join(lines)


def build_notifier(settings: Any, summary: dict[str, Any]) -> BaseNotifier:
    """The notifier of ``drift.notifier`` for one breach summary (no document text is in it)."""
    from llmops.config import ConfigError, expand_vars

    text = alert_text(summary)
    if settings.kind == "file":
        return FileNotifier(expand_vars(settings.path), {"key": f"{summary['dataset']}/{summary['night']}",
                                                         "text": text, **{k: summary.get(k) for k in (
                                                             "night", "dataset", "champion", "breaches",
                                                             "drifted_slices", "report_path", "mlflow_run_id",
                                                             "watchdog")}})
    if settings.kind == "smtp":
        if not settings.to:
            raise ConfigError("drift.notifier.to: list the recipients of the SMTP notifier")
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        return SmtpNotifier(to=settings.to, smtp_conn_id=settings.conn_id, subject=text.splitlines()[0],
                            html_content="<pre>" + text.replace("&", "&amp;").replace("<", "&lt;") + "</pre>")
    try:
        from airflow.providers.slack.notifications.slack import SlackNotifier
    except ImportError:
        raise ConfigError("drift.notifier.kind: slack needs apache-airflow-providers-slack; install it in the "
                          "image or use kind: smtp / file") from None
    return SlackNotifier(slack_conn_id=settings.conn_id or "slack_api_default", channel=settings.channel or "#general",
                         text=text)
