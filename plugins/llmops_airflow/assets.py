"""Assets the pipeline's DAGs produce and consume (one per dataset stage).

The URIs use the custom scheme ``x-llmops``: Airflow never attaches semantics to schemes prefixed
``x-`` and skips their normalization ("If you want to define assets with a scheme that doesn't
include additional semantic constraints, use a scheme with the prefix ``x-``. Airflow skips any
semantic validation on URIs with these schemes", Asset Definitions / "What is valid URI?",
https://airflow.apache.org/docs/apache-airflow/stable/authoring-and-scheduling/assets.html#what-is-valid-uri;
``_sanitize_uri`` in ``airflow/sdk/definitions/asset/__init__.py`` returns such URIs unchanged).
Any other unknown scheme (``llmops://``) makes ``Asset()`` look up a normalizer among every
provider's asset handlers, which imports them all (the Amazon provider's S3 hook, boto3): about a
second of every DAG file's parse time. The asset *names* are the identifiers to use.
"""

from __future__ import annotations

import os

from airflow.sdk import Asset

DATASET = os.environ.get("LLMOPS_DATASET", "support_messages")

#: A curated dataset version was published; the event's extra carries version id and counts.
CURATED_DATASET = Asset(
    name=f"llmops.{DATASET}.curated",
    uri=f"x-llmops://datasets/{DATASET}/curated",
    group="llmops",
)

#: A labeled dataset version was published; the event's extra carries version id, counts, labels.
LABELED_DATASET = Asset(
    name=f"llmops.{DATASET}.labeled",
    uri=f"x-llmops://datasets/{DATASET}/labeled",
    group="llmops",
)

#: Fine-tuning registered candidate model versions; the extra lists them (registered model, version,
#: MLflow run, candidate name, dataset versions) for evaluation to rank.
CANDIDATE_MODEL = Asset(
    name=f"llmops.{DATASET}.candidate_model",
    uri=f"x-llmops://models/{DATASET}/candidates",
    group="llmops",
)
