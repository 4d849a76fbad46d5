from __future__ import annotations

import http.server
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llmops.collect import CollectContext, SourceError, collect
from llmops.config import FilesSource, HFDiskSource, HttpSource, S3Source
from llmops.records import Quarantined, Record


def _run(cfg, ctx=None):
    items = list(collect([cfg], ctx or CollectContext()))
    recs = [i for i in items if isinstance(i, Record)]
    bad = [i for i in items if isinstance(i, Quarantined)]
    return recs, bad


def test_jsonl_malformed_lines_are_quarantined_not_fatal(tmp_path: Path):
    f = tmp_path / "in.jsonl"
    lines = [
        b'{"id": "a", "text": "first good record", "created_at": "2026-11-25T10:00:00Z", "tier": "gold"}',
        b'{"id": "b", "text": "trunc',
        b'{"id": "c", "text": null}',
        b'{"id": "d", "text": 12345}',
        b'{"id": "e"}',
        b'["not", "an", "object"]',
        b'{"id": "f", "text": "bad \xff\xfe bytes"}',
        b"",
        b'{"id": "g", "text": "' + b"x" * 60 + b'"}',
        b'{"id": "h", "text": "   "}',
        b'{"id": "i", "text": "created later", "created_at": "not a date"}',
    ]
    f.write_bytes(b"\n".join(lines) + b"\n")
    cfg = FilesSource(name="mail", paths=[str(f)], meta_fields=["tier"])
    recs, bad = _run(cfg, CollectContext(max_input_chars=50))
    assert [r.id for r in recs] == ["a", "i"]
    assert recs[0].created_at == "2026-11-25T10:00:00+00:00" and recs[0].meta["tier"] == "gold"
    assert recs[1].created_at is None and recs[1].meta["created_at_raw"] == "not a date"
    reasons = {q.location.rsplit(":", 1)[1]: q.reason for q in bad}
    assert reasons == {"2": "malformed_json", "3": "null_text", "4": "non_string_text", "5": "missing_text",
                       "6": "not_an_object", "7": "invalid_utf8", "9": "oversized", "10": "empty_text"}
    assert all(q.source == "mail" for q in bad)


def test_csv_quoting_bad_bytes_and_extra_fields(tmp_path: Path):
    f = tmp_path / "chat.csv"
    f.write_bytes(
        b'id,text,agent\n'
        b'1,"hello, with a comma and ""quotes""\nand a newline",ann\n'
        b'2,"bad \xff byte",bob\n'
        b'3,fine text here,carl,EXTRA\n'
        b'4,,dan\n'
    )
    recs, bad = _run(FilesSource(name="chat", paths=[str(f)], meta_fields=["agent"]))
    assert [r.id for r in recs] == ["1"]
    assert recs[0].text == 'hello, with a comma and "quotes"\nand a newline' and recs[0].meta["agent"] == "ann"
    assert sorted(q.reason for q in bad) == ["empty_text", "invalid_utf8", "malformed_csv_row"]


def test_parquet_txt_json_and_globs_with_partition(tmp_path: Path):
    d = tmp_path / "dt=2026-11-25"
    d.mkdir()
    pq.write_table(pa.table({"id": ["p1", "p2"], "text": ["parquet text", None]}), d / "f.parquet")
    (d / "notes.txt").write_text("line one\n\nline two\n")
    (d / "page.json").write_text(json.dumps({"items": [{"id": "j1", "text": "json text"}]}))
    (d / "ignored.xml").write_text("<a/>")
    cfg = FilesSource(name="mixed", paths=["dt={partition}/*.*"])
    recs, bad = _run(cfg, CollectContext(partition="2026-11-25", base_dir=tmp_path))
    assert sorted(r.text for r in recs) == ["json text", "line one", "line two", "parquet text"]
    assert sorted(q.reason for q in bad) == ["null_text", "unsupported_format"]
    txt_ids = [r.id for r in recs if r.text.startswith("line")]
    assert len(set(txt_ids)) == 2 and all(len(i) == 24 for i in txt_ids)
    again, _ = _run(cfg, CollectContext(partition="2026-11-25", base_dir=tmp_path))
    assert [r.id for r in again] == [r.id for r in recs]  # ids are stable across runs


def test_missing_files_warn_or_fail(tmp_path: Path):
    assert _run(FilesSource(name="x", paths=[str(tmp_path / "none*.jsonl")])) == ([], [])
    with pytest.raises(SourceError, match="no file matches"):
        _run(FilesSource(name="x", paths=[str(tmp_path / "none*.jsonl")], required=True))


def _api_handler(pages: dict[str, object], flaky: dict[str, int], seen_auth: list[str]):
    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen_auth.append(self.headers.get("Authorization", ""))
            if flaky.get(self.path, 0) > 0:
                flaky[self.path] -= 1
                self.send_response(503)
                self.end_headers()
                return
            if self.path not in pages:
                self.send_response(404)
                self.end_headers()
                return
            body = json.dumps(pages[self.path]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body)

    return H


def test_http_pagination_retries_and_auth(serve_dir, monkeypatch):
    pages = {
        "/v1/2026-11-25/p1": {"items": [{"id": "h1", "body": "first api item", "posted_at": "2026-11-25"}],
                              "next": "p2"},
        "/v1/2026-11-25/p2": {"items": [{"id": "h2", "body": "second api item"}, {"id": "h3", "body": None}],
                              "next": None},
    }
    flaky = {"/v1/2026-11-25/p2": 2}
    auth: list[str] = []
    base = serve_dir(Path("."), _api_handler(pages, flaky, auth))
    cfg = HttpSource(name="api", url=base + "/v1/{partition}/p1", conn_id="support_api", backoff_s=0.01,
                     field_map={"id": "id", "text": "body", "created_at": "posted_at"})
    ctx = CollectContext(partition="2026-11-25", secret_resolver=lambda ref: "tok-" + ref.split(":")[1])
    recs, bad = _run(cfg, ctx)
    assert [r.id for r in recs] == ["h1", "h2"] and [q.reason for q in bad] == ["null_text"]
    assert recs[0].created_at == "2026-11-25T00:00:00+00:00"
    assert flaky["/v1/2026-11-25/p2"] == 0  # two 503s were retried
    assert set(auth) == {"Bearer tok-support_api"}


def test_http_failures_fail_the_source(serve_dir):
    base = serve_dir(Path("."), _api_handler({}, {"/always": 100}, []))
    with pytest.raises(SourceError, match="HTTP 404"):
        _run(HttpSource(name="api", url=base + "/missing", retries=0))
    with pytest.raises(SourceError, match="failed after 1 retries|HTTP 503"):
        _run(HttpSource(name="api", url=base + "/always", retries=1, backoff_s=0.01))


def test_hf_disk_source(tmp_path: Path):
    import datasets

    ds = datasets.Dataset.from_dict({"id": ["r1", "r2"], "text": ["a saved review", None], "rating": [5, 1]})
    ds.save_to_disk(str(tmp_path / "reviews"))
    recs, bad = _run(HFDiskSource(name="reviews", path="reviews", meta_fields=["rating"]),
                     CollectContext(base_dir=tmp_path))
    assert [(r.id, r.meta["rating"]) for r in recs] == [("r1", 5)] and bad[0].reason == "null_text"
    dd = datasets.DatasetDict({"train": ds})
    dd.save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(SourceError, match="set `split`"):
        _run(HFDiskSource(name="reviews", path=str(tmp_path / "dd")))
    recs, _ = _run(HFDiskSource(name="reviews", path=str(tmp_path / "dd"), split="train"))
    assert len(recs) == 1


def test_s3_prefix_source(tmp_path: Path, s3_client):
    s3 = s3_client
    s3.create_bucket(Bucket="landing")
    s3.put_object(Bucket="landing", Key="in/dt=2026-11-25/a.jsonl",
                  Body=b'{"id": "s1", "text": "object store text"}\n{"id": "s2", "text": "tru\n')
    s3.put_object(Bucket="landing", Key="in/dt=2026-11-26/b.jsonl", Body=b'{"id": "s3", "text": "other day"}\n')
    cfg = S3Source(name="bucket", uri="s3://landing/in/dt={partition}/")
    ctx = CollectContext(partition="2026-11-25", s3_client_factory=lambda conn, ep: s3)
    recs, bad = _run(cfg, ctx)
    assert [r.id for r in recs] == ["s1"] and [q.reason for q in bad] == ["malformed_json"]
    assert recs[0].meta["location"].startswith("s3://landing/in/dt=2026-11-25/a.jsonl")


def test_the_same_items_from_two_addresses_make_the_same_raw_version(serve_dir, tmp_path: Path, monkeypatch):
    """A version's identity comes from content: the API's host and port are not part of it."""
    from llmops.config import PipelineConfig
    from llmops.stages import collect_raw
    from llmops.storage import LocalStore

    pages = {"/v1/2026-11-25/p1": {"items": [{"id": "h1", "body": "first api item, long enough"},
                                             {"body": "an item without an id of its own"}], "next": "p2"},
             "/v1/2026-11-25/p2": {"items": [{"id": "h2", "body": "second api item, long enough"}], "next": None}}
    first = serve_dir(Path("."), _api_handler(pages, {}, []))
    second = serve_dir(Path("."), _api_handler(pages, {}, []))
    assert first.rsplit(":", 1)[1] != second.rsplit(":", 1)[1]
    versions, locations = [], []
    for n, base in enumerate((first, second)):
        monkeypatch.setenv("SUPPORT_API", base)
        cfg = PipelineConfig(base_dir=str(tmp_path), sources=[HttpSource(
            name="api", url="${SUPPORT_API}/v1/{partition}/p1", field_map={"id": "id", "text": "body"})])
        recs, _ = _run(cfg.sources[0], CollectContext(partition="2026-11-25"))
        locations.append([(r.id, r.meta["location"]) for r in recs])
        raw = collect_raw(cfg, store=LocalStore(tmp_path / f"store{n}"), partition="2026-11-25",
                          producer={"kind": "test"})
        versions.append(raw["id"])
    assert locations[0] == locations[1]
    assert locations[0][0][1] == "/v1/2026-11-25/p1#0" and locations[0][2][1] == "/v1/2026-11-25/p2#0"
    assert versions[0] == versions[1]


def test_files_outside_the_base_folder_are_located_without_absolute_paths(tmp_path: Path):
    for where in ("a", "b"):
        folder = tmp_path / where / "landing" / "2026-11-25"
        folder.mkdir(parents=True)
        (folder / "x.jsonl").write_text('{"text": "a message without an id of its own"}\n')
    found = []
    for where in ("a", "b"):
        pattern = str(tmp_path / where / "landing" / "{partition}" / "*.jsonl")
        recs, _ = _run(FilesSource(name="drop", paths=[pattern]),
                       CollectContext(partition="2026-11-25", base_dir=tmp_path / "elsewhere"))
        found.append((recs[0].id, recs[0].meta["location"]))
    assert found[0] == found[1] and found[0][1] == "x.jsonl:1"
