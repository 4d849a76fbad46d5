"""Registers the project's Airflow plugin (extra links land here as stages add them)."""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin


class LLMOpsPlugin(AirflowPlugin):
    name = "llmops"
