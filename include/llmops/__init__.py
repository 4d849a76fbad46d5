"""llmops: the Airflow-free core of the LLMOps pipeline (config, storage, collection, curation,
privacy, dataset versions). Airflow operators in ``llmops_airflow`` and the ``llmops`` command
are thin layers over it."""

__version__ = "0.1.0"
