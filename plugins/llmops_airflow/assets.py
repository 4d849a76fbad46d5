"""Assets the pipeline's DAGs produce and consume (one per dataset stage)."""

from __future__ import annotations

import os

from airflow.sdk import Asset

DATASET = os.environ.get("LLMOPS_DATASET", "support_messages")

#: A curated dataset version was published; the event's extra carries version id and counts.
CURATED_DATASET = Asset(
    name=f"llmops.{DATASET}.curated",
    uri=f"llmops://datasets/{DATASET}/curated",
    group="llmops",
)

#: A labeled dataset version was published; the event's extra carries version id, counts, labels.
LABELED_DATASET = Asset(
    name=f"llmops.{DATASET}.labeled",
    uri=f"llmops://datasets/{DATASET}/labeled",
    group="llmops",
)

#: Fine-tuning registered candidate model versions; the extra lists them (registered model, version,
#: MLflow run, candidate name, dataset versions) for evaluation to rank.
CANDIDATE_MODEL = Asset(
    name=f"llmops.{DATASET}.candidate_model",
    uri=f"llmops://models/{DATASET}/candidates",
    group="llmops",
)
