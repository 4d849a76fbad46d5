"""Airflow-facing layer of the LLMOps pipeline: hooks, operators and assets over the ``llmops`` core.

Importing this package is cheap (no pandas, torch, Presidio or Great Expectations): DAG files
import it at parse time; the heavy work is imported inside ``execute()``.
"""
