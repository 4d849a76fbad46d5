"""Cost of one nightly drift analysis on many documents: ``llmops.drift.detect.analyze`` with the
default ``DriftConfig`` (embeddings of a seeded sample of ``max_embedded`` documents per side)
against what embedding every document would cost, measured in the same run.

    python benchmarks/bench_drift.py [--docs 100000] [--chunk 2000] [--out benchmarks/results/drift.json]

Both sides (reference and current) are ``--docs`` generated support-like messages (English and
Spanish templates over six topics, two sources, a ``meta.channel`` field; the current side has a
small topic shift and a few more Spanish messages). Generation is not timed.

* nightly: one ``analyze(reference, current, DriftConfig(), embed=embed_texts)`` call, end to end
  (text statistics on all documents, the embedding sample, MMD + domain-classifier tests overall
  and per slice), with the real offline MiniLM embedder; it loads the model once per side, as the
  nightly DAG does. Documents/s counts both sides; the time inside the two ``embed_texts`` calls is
  recorded separately (``embed_seconds``). Peak RSS is this process's high-water mark
  (``ru_maxrss``, generated rows included) after the call.
* baseline (extrapolated, not run in full): embedding every document of both sides, what an
  unsampled analysis would pay for embeddings alone. ``embed_texts`` is timed on ``--chunk``
  reference documents and on one document (model load); the per-document cost
  ``(chunk time - one-document time) / (chunk - 1)`` times ``2 * docs``, plus two model loads
  (one per side), is the baseline. Everything else an unsampled analysis does is left out, so the
  baseline is a lower bound.

One warm-up ``embed_texts`` call (imports, model files into the page cache) runs before anything is
timed; torch uses all CPUs on both sides.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import time
from pathlib import Path

from _common import write_result

for _key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(_key, "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

TOPICS = ("billing", "shipping", "login", "refund", "product", "bug")
TEMPLATES = {
    "en": {
        "billing": ["I was charged {n} times for order {ref}, please fix the invoice.",
                    "My card shows a charge of ${amt} that I do not recognise.",
                    "Can you send me the invoice for {ref}? The billing address is wrong."],
        "shipping": ["Order {ref} has not arrived after {n} days, where is it?",
                     "The tracking number for {ref} does not work.",
                     "Can I change the delivery address of order {ref}?"],
        "login": ["I cannot log in to my account since {day}.",
                  "The password reset email never arrives, I tried {n} times.",
                  "My account is locked after too many attempts."],
        "refund": ["I returned order {ref} {day} and still have no refund of ${amt}.",
                   "Please refund the {item}, it arrived broken.",
                   "How long does a refund take? I sent the {item} back {day}."],
        "product": ["Is the {item} compatible with my phone?",
                    "Does the {item} come with a warranty of {n} years?",
                    "What is the difference between the two {item} models?"],
        "bug": ["The app crashes when I open my orders, error code {n}.",
                "The checkout page shows a blank screen since {day}.",
                "I get an error {n} when I try to pay with my card."],
    },
    "es": {
        "billing": ["Me cobraron {n} veces el pedido {ref}, por favor corrijan la factura.",
                    "Veo un cargo de {amt} euros que no reconozco.",
                    "¿Pueden enviarme la factura de {ref}? La dirección es incorrecta."],
        "shipping": ["El pedido {ref} no ha llegado después de {n} días.",
                     "El número de seguimiento de {ref} no funciona.",
                     "¿Puedo cambiar la dirección de entrega del pedido {ref}?"],
        "login": ["No puedo entrar en mi cuenta desde {day}.",
                  "El correo para cambiar la contraseña no llega, lo intenté {n} veces.",
                  "Mi cuenta está bloqueada tras demasiados intentos."],
        "refund": ["Devolví el pedido {ref} {day} y todavía no tengo el reembolso de {amt} euros.",
                   "Por favor reembolsen el {item}, llegó roto.",
                   "¿Cuánto tarda un reembolso? Envié el {item} {day}."],
        "product": ["¿El {item} es compatible con mi teléfono?",
                    "¿El {item} tiene garantía de {n} años?",
                    "¿Cuál es la diferencia entre los dos modelos de {item}?"],
        "bug": ["La aplicación se cierra al abrir mis pedidos, código de error {n}.",
                "La página de pago está en blanco desde {day}.",
                "Me sale el error {n} al pagar con mi tarjeta."],
    },
}
OPENERS = {"en": ["Hi,", "Hello,", "Hey,", ""], "es": ["Hola,", "Buenos días,", ""]}
CLOSERS = {"en": ["Thanks.", "Regards.", "Please help.", ""], "es": ["Gracias.", "Saludos.", "Ayuda, por favor.", ""]}
DAYS = {"en": ["yesterday", "on Monday", "last week", "two days ago"],
        "es": ["ayer", "el lunes", "la semana pasada", "hace dos días"]}
ITEMS = {"en": ["headphones", "charger", "phone case", "smart watch", "keyboard"],
         "es": ["auriculares", "cargador", "funda", "reloj", "teclado"]}
# topic weights: the current side moves some traffic from billing/product to shipping/bug
REFERENCE_MIX = {"topics": (0.2, 0.2, 0.15, 0.15, 0.2, 0.1), "es": 0.25}
CURRENT_MIX = {"topics": (0.15, 0.25, 0.15, 0.15, 0.15, 0.15), "es": 0.30}


def generate(n: int, mix: dict, seed: int) -> list[dict]:
    """``n`` rows ``{"text", "lang", "source", "meta"}``, deterministic for ``seed``."""
    rng = random.Random(seed)
    topics = rng.choices(TOPICS, weights=mix["topics"], k=n)
    rows = []
    for topic in topics:
        lang = "es" if rng.random() < mix["es"] else "en"
        source = "email" if rng.random() < 0.6 else "chat"
        body = rng.choice(TEMPLATES[lang][topic]).format(
            n=rng.randrange(2, 15), ref=f"ORD-{rng.randrange(100000, 1000000)}", amt=rng.randrange(5, 500),
            day=rng.choice(DAYS[lang]), item=rng.choice(ITEMS[lang]))
        text = " ".join(p for p in (rng.choice(OPENERS[lang]), body, rng.choice(CLOSERS[lang])) if p)
        rows.append({"text": text, "lang": lang, "source": source,
                     "meta": {"channel": "web" if source == "chat" else rng.choice(("web", "mobile"))}})
    return rows


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--docs", type=int, default=100_000, help="documents per side (reference and current)")
    ap.add_argument("--chunk", type=int, default=2000, help="documents embedded to extrapolate the baseline")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/drift.json"))
    args = ap.parse_args()
    import torch

    from llmops.annotation.selection import embed_texts
    from llmops.drift.detect import analyze
    from llmops.drift.settings import DriftConfig

    threads = os.cpu_count() or 1
    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    reference = generate(args.docs, REFERENCE_MIX, seed=1)
    current = generate(args.docs, CURRENT_MIX, seed=2)
    generate_s = time.perf_counter() - t0
    cfg = DriftConfig()
    embed_texts([reference[0]["text"]])  # warm-up: imports, model files into the page cache
    rss_before = peak_rss_mib()

    embed_calls: list[tuple[int, float]] = []

    def timed_embed(texts: list[str]):  # type: ignore[no-untyped-def]
        start = time.perf_counter()
        out = embed_texts(texts)
        embed_calls.append((len(texts), time.perf_counter() - start))
        return out

    t0 = time.perf_counter()
    report = analyze(reference, current, cfg, embed=timed_embed)
    nightly_s = time.perf_counter() - t0
    embed_s = sum(s for _, s in embed_calls)
    rss_after = peak_rss_mib()

    chunk = [r["text"] for r in reference[:args.chunk]]
    t0 = time.perf_counter()
    embed_texts(chunk[:1])
    one_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    embed_texts(chunk)
    chunk_s = time.perf_counter() - t0
    per_doc_s = max(chunk_s - one_s, 1e-9) / max(len(chunk) - 1, 1)
    total = 2 * args.docs
    baseline_s = 2 * one_s + total * per_doc_s

    result = {
        "docs": args.docs, "docs_total": total, "generate_s": round(generate_s, 2),
        "config": {"max_embedded": cfg.max_embedded, "slices": cfg.slices, "seed": cfg.seed},
        "embedder": f"{cfg.embedding_model} via llmops.annotation.selection.embed_texts (cpu)",
        "nightly": {
            "seconds": round(nightly_s, 2), "docs_per_s": round(total / nightly_s, 1),
            "embed_seconds": round(embed_s, 2), "other_seconds": round(nightly_s - embed_s, 2),
            "embedded_per_side": report["embedding"].get("documents"), "tests": report["tests"],
            "permutations": report["embedding"].get("permutations"), "drift": report["drift"],
            "breaches": [b["check"] for b in report["breaches"]],
            "peak_rss_mib": round(rss_after, 1), "peak_rss_mib_before_analyze": round(rss_before, 1),
        },
        "baseline_embed_everything": {
            "extrapolated": True,
            "method": (f"embed_texts timed on {len(chunk)} reference documents and on 1 document (model load); "
                       f"per-document cost x {total} documents + 2 model loads; embeddings only, so a lower bound "
                       "of an unsampled analysis"),
            "measured_chunk_docs": len(chunk), "measured_chunk_s": round(chunk_s, 3),
            "model_load_s": round(one_s, 3), "embed_docs_per_s": round(1 / per_doc_s, 1),
            "seconds": round(baseline_s, 1),
        },
        "ratio_baseline_vs_nightly": round(baseline_s / nightly_s, 2),
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "python": sys.version.split()[0],
                    "torch": torch.__version__},
    }
    return write_result(args.out, result)


if __name__ == "__main__":
    raise SystemExit(main())
