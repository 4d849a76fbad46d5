"""Write the name gazetteer the PII redactor reads (``include/llmops/privacy/names.json.gz``) from
the installed, pinned packages: the given names and surnames of every Faker locale whose person
lists are written in Latin script, Faker's English and Spanish word lists and spaCy's English and
Spanish stop words. Deterministic (sorted, no timestamp): rebuilding with the locked versions gives
the same bytes, which ``tests/unit/test_pii_gazetteer.py`` checks.

    python scripts/build_name_gazetteer.py [--out FILE]
"""

from __future__ import annotations

import argparse
import gzip
import importlib
import importlib.metadata as md
import json
import pkgutil
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "include"))

from llmops.privacy.patterns import GAZETTEER  # noqa: E402

_LATIN_WORD = re.compile(r"[A-ZÀ-ÖØ-ÞĀ-ɏ][a-zß-öø-ÿĀ-ɏ'’]+(?:-[A-Za-zÀ-ɏ][a-zß-öø-ÿĀ-ɏ'’]+)?")


def faker_words(module: str, prefixes: tuple[str, ...], pattern: re.Pattern[str] | None = _LATIN_WORD) -> list[str]:
    """Lower-cased words of the list attributes named ``prefixes*`` of every locale provider of
    Faker's ``module`` (``pattern``: only words it matches whole, e.g. capitalised Latin script)."""
    package = importlib.import_module(module)
    words: set[str] = set()
    for mod in pkgutil.iter_modules(package.__path__):
        try:
            provider = importlib.import_module(f"{module}.{mod.name}").Provider
        except (ImportError, AttributeError):
            continue
        for attr in dir(provider):
            values = getattr(provider, attr, None) if attr.startswith(prefixes) else None
            if isinstance(values, (tuple, list, dict)):  # not properties, methods or formats
                for value in values:
                    if isinstance(value, str):
                        words.update(w.casefold() for w in value.split() if pattern is None or pattern.fullmatch(w))
    return sorted(words)


def build() -> bytes:
    from spacy.lang.en.stop_words import STOP_WORDS as EN
    from spacy.lang.es.stop_words import STOP_WORDS as ES

    word_lists: set[str] = set()
    for locale in ("en_US", "es_ES"):
        word_lists.update(w.casefold() for w in importlib.import_module(f"faker.providers.lorem.{locale}").Provider.word_list)
    doc = {
        "source": {p: md.version(p) for p in ("faker", "spacy")},
        "given_names": faker_words("faker.providers.person", ("first_name", "first_romanized_name")),
        "surnames": faker_words("faker.providers.person", ("last_name", "last_romanized_name")),
        "word_lists": sorted(word_lists),
        "stop_words": sorted(set(EN) | set(ES)),
    }
    return gzip.compress(json.dumps(doc, ensure_ascii=False, indent=0).encode(), mtime=0)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(GAZETTEER))
    args = ap.parse_args()
    data = build()
    Path(args.out).write_bytes(data)
    print(f"wrote {args.out} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
