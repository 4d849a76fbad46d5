"""Configuration of the privacy controls: subject index, retention, erasure and the PIA report."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PrivacyConfig", "RetentionConfig", "SubjectIndexConfig"]

#: identifiers that single out one person; PERSON and LOCATION are left out by default (names are
#: shared by many people, so an erasure by name would remove other people's records too)
DEFAULT_SUBJECT_ENTITIES = ["EMAIL_ADDRESS", "PHONE_NUMBER", "US_SSN", "CREDIT_CARD", "IBAN_CODE"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _reference(value: str | None) -> str | None:
    if value is not None and not value.startswith(("conn:", "env:", "file:")):
        raise ValueError("must be a reference (`conn:<id>`, `env:<VAR>` or `file:<path>`), never the key itself")
    return value


class SubjectIndexConfig(_Model):
    """Which records relate to which data subject, kept as keyed-HMAC subject keys (never the raw
    identifiers) beside the curated versions, so an erasure request finds every record."""

    enabled: bool = True
    key: str | None = Field(
        default="file:${LLMOPS_HOME}/secrets/subject-index.key",
        description="Reference to the HMAC key of the subject keys (`conn:<id>`, `env:<VAR>`, `file:<path>`); "
        "null = curation.pii.pseudonym_key. Pseudonyms made with the same key match index entries.")
    create_key: bool = Field(
        default=True, description="Create a missing `file:` key (32 random bytes, mode 0600): the local "
        "default. Production configs reference a connection and set this to false.")
    entities: list[str] = Field(
        default_factory=lambda: list(DEFAULT_SUBJECT_ENTITIES),
        description="Detected entity types whose values identify a subject.")
    fields: list[str] = Field(
        default_factory=list,
        description="Record meta fields holding a subject id (e.g. customer_id; list them in the source's "
        "meta_fields too).")
    include_quarantine: bool = Field(
        default=True, description="Also index records curation set aside (duplicates, filtered), which keep "
        "their original text in the quarantine.")

    _ref = field_validator("key")(classmethod(lambda cls, v: _reference(v)))


class RetentionConfig(_Model):
    """How long data is kept (days; null = no limit). Enforced daily by ``llm_privacy_retention``."""

    raw_days: int | None = Field(default=None, ge=1, description="Raw partitions (unredacted text).")
    quarantine_days: int | None = Field(default=None, ge=1, description="Quarantine files of every stage.")
    annotation_days: int | None = Field(
        default=None, ge=1, description="Annotation exports (job items sent to the crowd) after publishing.")


class PrivacyConfig(_Model):
    subject_index: SubjectIndexConfig = Field(default_factory=SubjectIndexConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    erasure_scan_mlflow: bool = Field(
        default=True, description="Erasure also scrubs the subject's text from MLflow run artifacts.")
    controller: str = Field(default="", description="Data controller named in the PIA report.")
    purpose: str = Field(
        default="Fine-tuning and evaluating support-intent models on customer-support messages.",
        description="Purpose of processing, for the PIA report.")
