"""Run every benchmark (one run, same machine), then write the figures where the README shows them.

    python benchmarks/run_all.py [--quick]

Results: ``benchmarks/results/*.json`` and ``benchmarks/results/SUMMARY.md``; the README's
Performance section (between the ``bench:start`` / ``bench:end`` markers) is replaced with it.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RES = ROOT / "benchmarks/results"


def run(script: str, *args: str) -> dict:
    out = RES / (script.replace("bench_", "").replace(".py", "") + ".json")
    print(f"bench: {script} {' '.join(args)}", flush=True)
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), "--out", str(out), *args], check=True)
    return json.loads(out.read_text())


def render(cur: dict, dedup: dict, parse: dict, mem: dict, gate: dict, train: dict | None = None,
           infer: dict | None = None, drift: dict | None = None, pii: dict | None = None,
           shards: dict | None = None, history: dict | None = None) -> str:
    d = cur["docs_per_s"]
    r = cur["ratios"]
    lines = [
        f"Measured by `make bench` {_dates(cur=cur, dedup=dedup, parse=parse, memory=mem, gate=gate, training=train, inference=infer, drift=drift, pii=pii)} ({mem.get('machine', '') or platform.machine()}, "
        f"{cur['machine']['cpus']} CPUs, Python {cur['machine']['python']}); raw numbers in `benchmarks/results/`.",
        "",
        "| what | docs/s | ratio |",
        "|---|---:|---:|",
        f"| Presidio per-document analyze + anonymize loop (baseline a) | {d['presidio_per_doc_loop']} | 1.00 |",
        f"| spaCy `nlp.pipe`, same full pipeline, no Presidio (limit b) | {d['spacy_nlp_pipe_full_pipeline']} | "
        f"{d['spacy_nlp_pipe_full_pipeline'] / d['presidio_per_doc_loop']:.2f} |",
        f"| `llmops` curation incl. PII, 1 process | {d['llmops_curate_1_process']} | {r['curate_vs_presidio_loop']:.2f} |",
        f"| `llmops` curation incl. PII, `pii.n_process: 2` | {d['llmops_curate_2_processes']} | "
        f"{r['curate_2proc_vs_presidio_loop']:.2f} |",
        "",
        f"Curation with PII runs at {r['curate_vs_nlp_pipe_limit']:.2f}x (1 process) and "
        f"{r['curate_2proc_vs_nlp_pipe_limit']:.2f}x (2 processes) of the raw `nlp.pipe` limit "
        f"({cur['docs']} seeded short documents; the baseline loop on {cur['baseline_docs']}). The `llmops` "
        "figures are the whole `curate_paths` call: normalise, filter, language id, dedup, PII, Parquet, and the "
        "quality gate with its Data Docs (a fixed few seconds per version).",
        *(["", f"The same curation (`pii.n_process: 2`) by the code and config of `{c['ref']}` (the redactor before "
               f"language routing, the name rules and gazetteer and the wider phone and card patterns), same run, same "
               f"documents: {c['curate_2_processes']} docs/s; now {d['llmops_curate_2_processes']} docs/s "
               f"(**{c['ratio']:.2f}x**)."] if (c := cur.get("compare_ref")) else []),
        "",
        f"Near-duplicate detection, {dedup['docs']} docs, threshold {dedup['threshold']}, {dedup['num_perm']} "
        f"permutations: `llmops` {dedup['llmops']['docs_per_s']:.0f} docs/s (recall {dedup['llmops']['recall']:.3f}, "
        f"precision {dedup['llmops']['precision']:.3f}) vs datasketch {dedup['datasketch']['docs_per_s']:.0f} docs/s "
        f"(recall {dedup['datasketch']['recall']:.3f}, precision {dedup['datasketch']['precision']:.3f}): "
        f"**{dedup['speedup']:.1f}x**."
        + (f" The same corpus through the sharded path (`collect_raw` in {sh['shards']} shards, `curate_shard` x "
           f"{sh['shards']}, `merge_shards`): recall {sh['recall']:.3f}, precision {sh['precision']:.3f} "
           f"(difference {dedup['sharded_vs_llmops']['recall_diff']:+.3f} / "
           f"{dedup['sharded_vs_llmops']['precision_diff']:+.3f}); {sh['docs_per_s']:,.0f} docs/s for the whole "
           "collect-free curation with PII off." if (sh := dedup.get("llmops_sharded")) else ""),
        "",
        *_parse_table(parse),
        "",
        f"Memory: curating {mem['docs']:,} short documents (PII off) peaked at "
        f"{mem['curate_no_pii']['peak_rss_mib']:.0f} MiB RSS ({mem['curate_no_pii']['docs_per_s']:.0f} docs/s) vs "
        f"{mem['curate_no_pii_tenth']['peak_rss_mib']:.0f} MiB for a tenth of them "
        f"(x{mem['ratios']['rss_growth_for_10x_docs']:.2f} for 10x the input) and "
        f"{mem['pandas_load_only']['peak_rss_mib']:.0f} MiB just to load the input with pandas; input file "
        f"{mem['input_bytes'] / 2**20:.0f} MiB."
        + (f" With PII on {mem['curate_with_pii']['docs']:,} documents: "
           f"{mem['curate_with_pii']['peak_rss_mib']:.0f} MiB." if "curate_with_pii" in mem else ""),
        "",
        f"Quality gate: the `curated` suite ({gate['expectations']} expectations) through Great Expectations on "
        f"{gate['rows']:,} rows took {gate['gx_seconds']:.1f} s ({gate['gx_rows_per_s']:,} rows/s); the same checks "
        f"in plain pandas {gate['pandas_seconds']:.1f} s (GX / pandas time: {gate['ratio_gx_vs_pandas_time']:.2f}).",
    ]
    if train:
        lines += [
            "",
            f"Training on CPU ({train['model']}, {train['parameters'] / 1e6:.1f}M parameters, batch {train['batch']} x "
            f"{train['seq']} tokens, {train['precision']}): DeepSpeed ZeRO-2 in one process "
            f"{train['tokens_per_s']['deepspeed_zero2']:,.0f} tokens/s vs a plain torch loop "
            f"{train['tokens_per_s']['torch_loop']:,.0f} tokens/s (ratio {train['ratio_deepspeed_vs_torch']:.2f}): "
            "on one CPU process ZeRO only adds bookkeeping; it pays off across GPUs, measured by "
            "`benchmarks/gpu_train_throughput.sh` (tokens/s and MFU, ~1.1B parameters, bf16 ZeRO-2) where one is available.",
        ]
    if infer:
        c, g = infer["classification"], infer["generation"]
        sweep = g.get("batched_samples_per_s_by_batch_size") or {}
        lines += [
            "",
            f"Inference on CPU ({c['n']} golden-set texts; length-sorted batches under `torch.inference_mode` vs "
            f"`predict_one_by_one`, same threads; labels identical: {c['identical'] and g['identical']}): MiniLM-L6 "
            f"classifier ({c['parameters'] / 1e6:.1f}M parameters, batch {c['batch_size']}) "
            f"{c['samples_per_s']['batched']:,.0f} vs {c['samples_per_s']['one_by_one']:,.0f} samples/s "
            f"(**{c['ratio_batched_vs_one_by_one']:.1f}x**); greedy generation of {g['max_new_tokens']} tokens with a "
            f"{g['parameters'] / 1e6:.1f}M-parameter Llama (random weights, left padding, KV cache, batch "
            f"{g['batch_size']}) {g['samples_per_s']['batched']:,.0f} vs {g['samples_per_s']['one_by_one']:,.0f} "
            f"samples/s (**{g['ratio_batched_vs_one_by_one']:.1f}x**"
            + ("; batched at batch " + ", ".join(f"{k}: {v:,.0f}" for k, v in sweep.items()) if sweep else "")
            + f"). Length sorting cuts padding from {g['pad_fraction']['input_order']:.0%} to "
            f"{g['pad_fraction']['length_sorted']:.0%} of batch positions; on CPU the encoder pass and the prompt "
            f"prefill ({g['prompt_tokens']['mean']:.0f} tokens on average) are compute-bound, so batching mostly saves "
            "per-call overhead and the decode steps.",
        ]
    if drift:
        n, b = drift["nightly"], drift["baseline_embed_everything"]
        lines += [
            "",
            f"Drift: one nightly analysis (`llmops.drift.detect.analyze`, default config, {n['tests']} tests) of "
            f"{drift['docs']:,} current against {drift['docs']:,} reference documents, embedding a seeded sample of "
            f"{drift['config']['max_embedded']:,} per side with MiniLM on CPU, took {n['seconds']:.1f} s "
            f"({n['docs_per_s']:,.0f} docs/s; {n['embed_seconds']:.1f} s of it embedding; peak RSS "
            f"{n['peak_rss_mib']:.0f} MiB with the generated rows). Embedding every document of both sides would "
            f"take ~{b['seconds']:,.0f} s (extrapolated from embedding {b['measured_chunk_docs']:,} documents at "
            f"{b['embed_docs_per_s']:,.0f} docs/s in the same run; embeddings alone): the sampled night is "
            f"**{drift['ratio_baseline_vs_nightly']:.1f}x** cheaper.",
        ]
    if pii:
        lines += ["", *_pii_table(pii)]
    if shards:
        lines += ["", *_shards_text(shards)]
    if history:
        lines += ["", *_history_text(history)]
    return "\n".join(lines)


def _shards_text(sh: dict) -> list[str]:
    """One partition by 1 vs 2 curate_shard workers, and the capacity model from the measured rates."""
    one, two, cap = sh["one_worker"], sh["two_workers"], sh["capacity"]
    reps = sh.get("repeats", 1)
    lines = [
        f"Scale-out (`benchmarks/bench_shards.py`{', ' + _when(sh) if _when(sh) else ''}): one partition of "
        f"{sh['docs']:,} sample records (PII, duplicates, bad records) through `llm_data_collection` under `airflow "
        f"standalone` (LocalExecutor, {sh['machine']['cpus']} CPUs, `pii.n_process: 1`), "
        + (f"each configuration run {reps} times, alternating, in fresh stores (the median run of each). "
           if reps > 1 else "")
        + f"Curation wall time, first `curate_shard` start to `dedup_merge` end: {one['shard_tasks']} shard task "
        f"{one['curation_s']:.0f} s, {two['shard_tasks']} shard tasks at once {two['curation_s']:.0f} s "
        f"(**{sh['speedup']:.2f}x**"
        + (f"; by repeat {', '.join(f'{x:.2f}x' for x in sh['speedups_by_repeat'])}" if reps > 1 else "")
        + f"; shard tasks {', '.join(f'{x:.0f}' for x in two['shard_task_s'])} s against "
        f"{one['shard_task_s'][0]:.0f} s, cut at half the day's text bytes (`curation.shard_bytes`), each loading its "
        f"own Presidio/spaCy pipelines; the merge {two['merge_s']:.0f} s against {one['merge_s']:.0f} s). Same data "
        f"files from every run: {sh['same_data_files']}.",
    ]
    if "cpu_s_by_process" in one:
        def cpu(run: dict) -> str:
            shares = run.get("machine_cpu", {})
            parts = ", ".join(f"{k} {v:.0f} s" for k, v in run["cpu_s_by_process"].items() if v >= 1)
            return parts + (f" (machine busy {shares['busy']:.0%}, steal {shares['steal']:.0%})" if shares else "")
        lines += ["", f"Where the CPU went during those runs (collect to merge, every process under `airflow "
                  f"standalone`): one shard task: {cpu(one)}; two: {cpu(two)}."]
    lines += [
        "",
        f"Capacity, from these rates: one worker core curates ~{sh['per_worker_docs_per_s']:.0f} docs/s with PII, "
        f"pipeline loading and the merge included, i.e. ~{cap['docs_per_day_per_worker'] / 1e6:.1f}M documents a day; "
        f"10M documents/day need ~{cap['workers_for_10M_per_day']} worker core(s), 100M/day "
        f"~{cap['workers_for_100M_per_day']} (Celery worker slots or Kubernetes pods; shards of `curation.shard_rows` "
        f"spread over them). What does not spread: the merge of a partition runs in one task "
        f"({two['merge_s']:.0f} s for {sh['docs']:,} records here, with the quality gate and its Data Docs; its "
        "history lookups are below), and every shard task pays its own start (the task process, the PII "
        "pipelines); on this 2-core machine the shard tasks also share the cores with Airflow's own processes "
        "(their CPU seconds above).",
    ]
    return lines


def _history_text(h: dict) -> list[str]:
    """Lookups in the dedup index of earlier partitions, as the history grows."""
    big, small = (str(q) for q in h["query_docs"])
    lines = [
        f"Dedup index (`benchmarks/bench_history.py`{', ' + _when(h) if _when(h) else ''}): a new partition "
        f"looked up (exact, then near with verification) against the kept records of earlier partitions of "
        f"{h['docs_per_partition']:,} documents each, each size in a fresh process; planted repeats "
        f"({h['planted']['exact_share']:.0%} exact, {h['planted']['near_share']:.0%} near) found:",
        "",
        f"| history | runs | segments | disk | per query doc ({int(big):,} docs) | per query doc ({int(small):,} docs) | "
        "index keys read | peak RSS | recall exact / near |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in h["results"]:
        qb, qs = r["queries"][big], r["queries"][small]
        lines.append(f"| {r['history_docs']:,} | {r['runs']} | {qb['segments']} | {r['build']['disk_gb']:.2f} GB | "
                     f"{qb['us_per_doc']:,.0f} µs | {qs['us_per_doc']:,.0f} µs | {qb['keys_read']:,} | "
                     f"{max(qb['peak_rss_mib'], qs['peak_rss_mib']):,.0f} MiB | "
                     f"{qb['exact_recall']:.2f} / {qb['near_recall']:.2f} |")
    first, last = h["results"][0], h["results"][-1]
    growth = last["history_docs"] / first["history_docs"]
    ratio = {q: last["queries"][q]["us_per_doc"] / first["queries"][q]["us_per_doc"] for q in (big, small)}
    verdict = "sub-linearly" if h.get("per_doc_cost_sub_linear") else "not sub-linearly"
    lines += ["", f"For {growth:.0f}x the history the cost per query document grew {ratio[big]:.1f}x "
              f"({int(big):,}-document partition) and {ratio[small]:.1f}x ({int(small):,}): {verdict}. "
              "A lookup of Q keys reads, per segment, at most Q blocks of "
              f"{h['index']['block']} keys (the segment's fence says which), and compaction "
              f"(tiers of {h['index']['fanout']}) keeps the segments few; so the keys read grow with the "
              "number of segments, not with the documents behind them. "
              f"Peak RSS: {h['peak_rss_mib_max']:,.0f} MiB (the blocks are read through memory maps whose "
              "pages are handed back after each chunk of queries). The build times include the compactions; "
              "`curation.dedup.history.horizon_days` bounds the partitions checked."]
    return lines


PII_ENTITIES = ["PERSON", "PHONE_NUMBER", "CREDIT_CARD", "EMAIL_ADDRESS", "IBAN_CODE", "US_SSN", "IP_ADDRESS"]


def _pii_table(pii: dict) -> list[str]:
    """Recall / precision per entity: Presidio's default analyzer against the project's redactor."""
    v = pii["versions"]
    fmt = lambda x: "–" if x is None else f"{x:.3f}"  # noqa: E731
    lines = [
        f"PII (`benchmarks/bench_pii.py`{', ' + _when(pii) if _when(pii) else ''}, seed {pii['seed']}): recall / precision per entity of Presidio's default "
        f"`AnalyzerEngine` (presidio-analyzer {v['presidio-analyzer']}, same `{pii['spacy_model']}` pipeline) and of "
        f"the project's redactor (`include/config/pipeline.yaml`, NER pipelines {pii['ner_models']} besides English), on "
        f"(i) presidio-evaluator {v['presidio-evaluator']}'s sentence generator ({pii['records']['presidio_evaluator']:,} "
        f"en_US sentences) and (ii) the project's multilingual set ({pii['records']['own_multilingual']:,} support "
        f"messages, half English, half Spanish, values from Faker {v['faker']} in many locales). A labelled span "
        "counts as removed only when all its letters and digits are.",
        "",
        "| entity | (i) Presidio default | (i) llmops | (ii) Presidio default | (ii) llmops |",
        "|---|---:|---:|---:|---:|",
    ]
    res = pii["results"]
    for e in PII_ENTITIES:
        cells = []
        for s in ("presidio_evaluator", "own_multilingual"):
            for a in ("presidio_default", "llmops"):
                m = res[s][a]["entities"].get(e)
                cells.append("–" if m is None else f"{fmt(m['recall'])} / {fmt(m['precision'])}")
        lines.append(f"| {e} | " + " | ".join(cells) + " |")
    by = res["own_multilingual"].get("by_language", {})
    if by:
        parts = [f"{lang}: PERSON {fmt(x['llmops']['PERSON']['recall'])} (default {fmt(x['presidio_default']['PERSON']['recall'])}), "
                 f"phone {fmt(x['llmops']['PHONE_NUMBER']['recall'])}" for lang, x in sorted(by.items())]
        lines += ["", "Recall on (ii) by language, llmops: " + "; ".join(parts) + "."]
    if "llmops_no_gazetteer" in res["presidio_evaluator"]:
        person = lambda s, a: fmt(res[s][a]["entities"]["PERSON"]["recall"])  # noqa: E731
        lines += ["", "PERSON recall without the name gazetteer (`pii.name_gazetteer: false`): (i) "
                  f"{person('presidio_evaluator', 'llmops_no_gazetteer')} (with: {person('presidio_evaluator', 'llmops')}), "
                  f"(ii) {person('own_multilingual', 'llmops_no_gazetteer')} (with: {person('own_multilingual', 'llmops')}). "
                  "(ii)'s names come from the Faker lists the gazetteer is built from, so its figure with the "
                  "gazetteer is an upper bound; (i)'s come from presidio-evaluator's own records."]
    lines += ["", "Analysis speed on the same texts (docs/s): "
              + "; ".join(f"({k}) Presidio default {res[s]['presidio_default']['docs_per_s']}, llmops "
                          f"{res[s]['llmops']['docs_per_s']}" for k, s in (("i", "presidio_evaluator"),
                                                                             ("ii", "own_multilingual")))
              + " (Presidio's loop per document; the redactor runs spaCy over batches)."]
    return lines


def _dates(**results: dict | None) -> str:
    """When each figure was measured: one date, or the dates with the benchmarks of each."""
    by_date: dict[str, list[str]] = {}
    for name, result in results.items():
        if result is not None:
            by_date.setdefault(str(result.get("measured", datetime.now(UTC).date())), []).append(
                "curation" if name == "cur" else name)
    if len(by_date) == 1:
        return f"on {next(iter(by_date))}"
    return "on " + "; ".join(f"{d} ({', '.join(names)})" for d, names in sorted(by_date.items()))


def _when(result: dict) -> str:
    """``measured DATE`` of ``result`` ("" for a result written before dates were kept)."""
    return f"measured {result['measured']}" if "measured" in result else ""


def _parse_table(parse: dict) -> list[str]:
    """Every DAG file's parse time (beyond the SDK import) and the heavy modules it loaded."""
    return [
        f"DAG parse time{f' ({_when(parse)})' if _when(parse) else ''}: a fresh interpreter per measurement, median of {parse.get('repeat', '?')} runs, seconds "
        "beyond `import airflow.sdk` (what a DAG processor child pays for the file itself).",
        "",
        "| DAG file | parse s | heavy modules |",
        "|---|---:|---|",
        f"| `import airflow.sdk` (baseline, not part of the figures below) | {parse['import_airflow_sdk_s']:.2f} | – |",
        *(f"| `{name}` | {v['median_s']:.3f} | {', '.join(v['heavy_modules']) or 'none'} |"
          for name, v in sorted(parse["files"].items())),
    ]


#: the redactor the PII work is measured against (bench_curation --compare-ref): before language
#: routing, name rules, the gazetteer and the wider phone and card patterns
PII_BASELINE_REF = "fa67e3f"


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    ap.add_argument("--render-only", action="store_true", help="rewrite SUMMARY.md/README from existing results")
    args = ap.parse_args()
    RES.mkdir(parents=True, exist_ok=True)
    q = args.quick
    if args.render_only:
        loaded = [json.loads((RES / f"{name}.json").read_text())
                  for name in ("curation", "dedup", "parse", "memory", "gate")]
        train_path, infer_path, drift_path = RES / "training.json", RES / "inference.json", RES / "drift.json"
        pii_path, shards_path, history_path = RES / "pii.json", RES / "shards.json", RES / "history.json"
        text = render(*loaded, train=json.loads(train_path.read_text()) if train_path.exists() else None,
                      infer=json.loads(infer_path.read_text()) if infer_path.exists() else None,
                      drift=json.loads(drift_path.read_text()) if drift_path.exists() else None,
                      pii=json.loads(pii_path.read_text()) if pii_path.exists() else None,
                      shards=json.loads(shards_path.read_text()) if shards_path.exists() else None,
                      history=json.loads(history_path.read_text()) if history_path.exists() else None)
        _write(text, readme=True)
        print(text)
        return 0
    cur = run("bench_curation.py", "--docs", "600" if q else "3000", "--baseline-docs", "200" if q else "1000",
              "--compare-ref", PII_BASELINE_REF)
    dedup = run("bench_dedup.py", "--docs", "2000" if q else "20000")
    parse = run("bench_parse.py", "--repeat", "2" if q else "5")
    mem = run("bench_memory.py", "--docs", "20000" if q else "1000000", "--pii-docs", "1000" if q else "20000")
    gate = run("bench_gate.py", "--rows", "50000" if q else "1000000")
    train = run("bench_training.py", "--steps", "8" if q else "30")
    infer = run("bench_inference.py", "--n", "64" if q else "240", "--repeat", "1" if q else "3")
    drift = run("bench_drift.py", "--docs", "20000" if q else "100000", "--chunk", "500" if q else "2000")
    pii = run("bench_pii.py", "--evaluator", "300" if q else "3000", "--own", "200" if q else "1200")
    shards = run("bench_shards.py", "--docs", "400" if q else "30000")
    history = run("bench_history.py", *(["--quick"] if q else []))
    text = render(cur, dedup, parse, mem, gate, train, infer, drift, pii, shards, history)
    _write(text, readme=not q)
    print(text)
    return 0


def _write(text: str, readme: bool) -> None:
    (RES / "SUMMARY.md").write_text(text + "\n")
    path = ROOT / "README.md"
    body = path.read_text()
    start, end = "<!-- bench:start -->", "<!-- bench:end -->"
    if readme and start in body and end in body:
        head, rest = body.split(start, 1)
        _, tail = rest.split(end, 1)
        path.write_text(f"{head}{start}\n{text}\n{end}{tail}")


if __name__ == "__main__":
    raise SystemExit(main())
