from __future__ import annotations

from pathlib import Path

import pytest

from llmops.config import ConfigError, PIIConfig, config_hash, load_config, parse_config


def test_embedded_defaults_need_no_file():
    cfg = load_config(None)
    assert cfg.dataset == "support_messages"
    assert cfg.curation.dedup.near.threshold == 0.8
    assert "EMAIL_ADDRESS" in cfg.curation.pii.entities
    assert cfg.resolved_storage_root().endswith("/store")


def test_project_config_file_is_valid(root: Path):
    cfg = load_config(root / "include/config/pipeline.yaml")
    assert [s.name for s in cfg.sources][:2] == ["email_tickets", "chat_logs"]
    assert {s.kind for s in cfg.sources} >= {"files", "http"}


def test_unknown_key_names_key_and_suggests_fix():
    with pytest.raises(ConfigError) as err:
        parse_config({"curation": {"filters": {"min_charz": 3}}})
    msg = str(err.value)
    assert "curation.filters.min_charz" in msg
    assert "did you mean 'min_chars'" in msg


def test_wrong_type_names_key_and_value():
    with pytest.raises(ConfigError) as err:
        parse_config({"curation": {"dedup": {"near": {"threshold": "high"}}}})
    msg = str(err.value)
    assert "curation.dedup.near.threshold" in msg and "'high'" in msg


def test_source_kind_must_be_known():
    with pytest.raises(ConfigError) as err:
        parse_config({"sources": [{"name": "x", "kind": "ftp", "paths": ["a"]}]})
    assert "sources.0" in str(err.value) and "files, http, s3, hf_disk" in str(err.value)


def test_bad_source_field_in_union_member():
    with pytest.raises(ConfigError) as err:
        parse_config({"sources": [{"name": "x", "kind": "files", "path": ["a"]}]})
    msg = str(err.value)
    assert "path" in msg and "paths" in msg


def test_pseudonymize_requires_a_key_reference_not_a_key():
    with pytest.raises(ConfigError, match="pseudonym_key"):
        parse_config({"curation": {"pii": {"default_operator": "pseudonymize"}}})
    with pytest.raises(ConfigError, match="never the key itself"):
        parse_config({"curation": {"pii": {"default_operator": "pseudonymize",
                                           "pseudonym_key": "s3cr3t-value"}}})
    ok = PIIConfig(default_operator="pseudonymize", pseudonym_key="env:LLMOPS_PII_KEY")
    assert ok.operator_for("EMAIL_ADDRESS") == "pseudonymize"


def test_yaml_errors_and_missing_file(tmp_path: Path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("curation:\n  filters: [\n")
    with pytest.raises(ConfigError, match="not valid YAML at line"):
        load_config(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.yaml")
    top = tmp_path / "list.yaml"
    top.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(top)


def test_duplicate_source_names_rejected():
    src = {"name": "a", "kind": "files", "paths": ["x"]}
    with pytest.raises(ConfigError, match="repeated: a"):
        parse_config({"sources": [src, src]})


def test_config_hash_is_stable_and_sensitive():
    a = load_config(None).curation
    b = load_config(None).curation
    assert config_hash(a) == config_hash(b)
    b.filters.min_chars = 99
    assert config_hash(a) != config_hash(b)
