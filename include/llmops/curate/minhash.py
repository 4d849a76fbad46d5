"""Near-duplicate detection with MinHash LSH, vectorised with NumPy, for streams of documents.

How it stays fast:

* shingles are hashed without a Python loop per shingle: a block of texts is canonicalised
  (case-folded, whitespace collapsed), concatenated and viewed as one array of Unicode code points
  (or word ids for word shingles); every n-unit window is hashed at once (a polynomial hash over
  contiguous slices, then the splitmix64 finaliser, truncated to 32 bits);
* the ``num_perm`` permutations ``h_k(x) = (a_k * x + b_k) mod 2^32`` (``a_k`` odd, so each is a
  bijection of the 32-bit shingle hashes) are applied to all windows of a group of documents in
  one array operation, in a reused cache-sized (permutation-major) buffer, and reduced per
  document with ``np.minimum.reduceat``;
* candidates from the LSH bands and their verification are handled per batch in array operations;
  only documents whose band keys collide *within* the batch go through a (short) Python loop.

How it stays small (1M kept documents at 128 permutations: ~170 MB of band tables with the
default banding plus 128 MB of fingerprints, besides the ids): each band of ``rows`` signature
values is hashed to one 64-bit key; the keys live in sorted NumPy runs (12 bytes per key and
document, no per-entry Python objects) merged log-structured; kept signatures are stored as
``fingerprint_bits``-bit fingerprints (b-bit MinHash, the similarity estimate corrected for the
chance collisions of 2^-bits), texts and shingles are never stored.

Everything is deterministic across processes and platforms (no Python ``hash()``, NumPy's frozen
``RandomState`` for the permutation parameters); signatures never depend on how texts are batched,
and neither do the index's answers unless a band bucket outgrows ``max_bucket``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["MinHasher", "NearDupIndex", "NearDupStats", "lsh_params", "shingles"]

_U64 = np.uint64
_M1 = _U64(0xBF58476D1CE4E5B9)
_M2 = _U64(0x94D049BB133111EB)
_LOW32 = _U64(0xFFFFFFFF)
_BASE = 1_000_003  # odd multiplier of the polynomial window hash
_PAD = 0x110000  # one past the last Unicode code point: pads texts shorter than n (never a real unit)
_KINDS = ("char", "word")


def _canon(text: str, casefold: bool = True) -> str:
    """The text the shingles are taken from: case-folded, whitespace runs collapsed to one space."""
    return " ".join((text.casefold() if casefold else text).split())


def shingles(text: str, *, kind: str = "char", n: int = 5, casefold: bool = True) -> set[str]:
    """The shingle set of ``text`` (reference implementation; :class:`MinHasher` hashes the same set).

    ``kind="char"``: character n-grams of the canonical text (case-folded unless ``casefold`` is
    false, whitespace collapsed); ``kind="word"``: n-grams of its words, joined by one space.
    A text with fewer than ``n`` characters (words) has one shingle, the whole canonical text.
    """
    if kind not in _KINDS:
        raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
    if n < 1:
        raise ValueError("n must be >= 1")
    canon = _canon(text, casefold)
    if kind == "word":
        words = canon.split(" ")
        if len(words) < n:
            return {canon}
        return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}
    if len(canon) < n:
        return {canon}
    return {canon[i : i + n] for i in range(len(canon) - n + 1)}


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser (a bijection of uint64 that spreads every input bit over all output bits)."""
    h = h ^ (h >> _U64(30))
    h *= _M1
    h ^= h >> _U64(27)
    h *= _M2
    return h ^ (h >> _U64(31))


def _word_id(word: str) -> int:
    """A stable 56-bit id of a word, offset past the padding unit so it never equals it."""
    digest = hashlib.blake2b(word.encode("utf-8", "surrogatepass"), digest_size=7).digest()
    return int.from_bytes(digest, "little") + _PAD + 1


class MinHasher:
    """MinHash signatures of batches of texts: ``num_perm`` uint32 values per text.

    The shingle set of a text is the one :func:`shingles` returns; each shingle is hashed once to
    32 bits and the ``num_perm`` permutations are applied to all shingles of a group of texts at
    once. A text's signature depends only on the text, ``num_perm``, ``kind``, ``n``, ``casefold``
    and ``seed`` - not on the batch it comes in, nor on the process.
    """

    def __init__(self, num_perm: int = 128, *, kind: str = "char", n: int = 5, seed: int = 1,
                 casefold: bool = True) -> None:
        if kind not in _KINDS:
            raise ValueError(f"kind must be one of {_KINDS}, not {kind!r}")
        if n < 1:
            raise ValueError("n must be >= 1")
        if num_perm < 1:
            raise ValueError("num_perm must be >= 1")
        self.num_perm = num_perm
        self.kind = kind
        self.n = n
        self.seed = seed
        self.casefold = casefold
        rng = np.random.RandomState(seed)  # legacy generator: its stream is frozen across NumPy versions
        # (a*x + b) mod 2^32 with odd a: a bijection of the (already mixed) 32-bit shingle hashes.
        # Against exact Jaccard it is as accurate as multiply-shift in 64 bits or a 2^61-1 Mersenne
        # modulus (same error on random inputs), at 1/2 and 1/8 of their cost in NumPy.
        self.a = (rng.randint(0, 1 << 31, size=num_perm, dtype=np.int64) * 2 + 1).astype(np.uint32)
        self.b = rng.randint(0, 1 << 32, size=num_perm, dtype=np.int64).astype(np.uint32)
        self._powers = [_U64(pow(_BASE, n - 1 - k, 1 << 64)) for k in range(n)]
        self._words: dict[str, int] = {}

    # -- shingle hashes ----------------------------------------------------------------------------
    def _units(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Concatenated units (code points or word ids) and per-text unit counts."""
        canon = [_canon(t, self.casefold) for t in texts]
        if self.kind == "char":
            lengths = np.fromiter(map(len, canon), dtype=np.int64, count=len(canon))
            raw = "".join(canon).encode("utf-32-le", "surrogatepass")
            return np.frombuffer(raw, dtype=np.uint32).astype(np.uint64), lengths
        ids: list[int] = []
        lens: list[int] = []
        cache = self._words
        for c in canon:
            words = c.split(" ")
            for w in words:
                v = cache.get(w)
                if v is None:
                    v = _word_id(w)
                    if len(cache) < 1_000_000:
                        cache[w] = v
                ids.append(v)
            lens.append(len(words))
        return np.asarray(ids, dtype=np.uint64), np.asarray(lens, dtype=np.int64)

    def _window_hashes(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """uint32 hash of every shingle window, and the offset of each text's first window."""
        n = self.n
        units, lengths = self._units(texts)
        short = lengths < n
        if short.any():  # pad texts shorter than n with a unit no text contains: one window each
            padded = np.maximum(lengths, n)
            starts = np.cumsum(lengths) - lengths
            pstarts = np.cumsum(padded) - padded
            full = np.full(int(padded.sum()), _PAD, dtype=np.uint64)
            full[np.repeat(pstarts - starts, lengths) + np.arange(len(units))] = units
            units, lengths = full, padded
        windows = lengths - n + 1
        starts = np.cumsum(lengths) - lengths
        first = np.cumsum(windows) - windows
        total = int(windows.sum())
        span = len(units) - n + 1  # every position of the concatenation, then keep the in-text ones
        h = units[:span] * self._powers[0]
        for k in range(1, n):
            h += units[k : k + span] * self._powers[k]
        if span != total:
            h = h[np.repeat(starts - first, windows) + np.arange(total, dtype=np.int64)]
        return (_mix(h) & _LOW32).astype(np.uint32), first

    # -- signatures --------------------------------------------------------------------------------
    def signatures(self, texts: Sequence[str], *, chunk: int = 6144, block: int = 2048) -> np.ndarray:
        """``(len(texts), num_perm)`` uint32 MinHash signatures.

        ``block`` texts are shingled at a time, and permuted ``chunk`` shingles at a time (a
        ``num_perm x chunk`` buffer that stays in cache); neither changes the result.
        """
        if chunk < 1 or block < 1:
            raise ValueError("chunk and block must be >= 1")
        out = np.empty((len(texts), self.num_perm), dtype=np.uint32)
        buf = np.empty((self.num_perm, chunk), dtype=np.uint32)
        for s in range(0, len(texts), block):
            part = texts[s : s + block]
            hashes, first = self._window_hashes(part)
            self._permute_min(hashes, first, buf, out[s : s + len(part)])
        return out

    def _permute_min(self, hashes: np.ndarray, first: np.ndarray, buf: np.ndarray, out: np.ndarray) -> None:
        """``out[d, k] = min over text d's windows x of (a_k * x + b_k) mod 2^32``.

        The buffer is permutation-major (``num_perm x windows``): ``np.minimum.reduceat`` along the
        contiguous last axis is an order of magnitude faster than along the first.
        """
        a, b, chunk = self.a[:, None], self.b[:, None], buf.shape[1]
        flat = buf.reshape(-1)
        ends = np.append(first[1:], len(hashes))
        docs = len(first)
        i = 0
        while i < docs:
            lo = int(first[i])
            j = int(np.searchsorted(ends, lo + chunk, side="right"))
            if j <= i:  # one text with more windows than a chunk: running minimum over its chunks
                hi = int(ends[i])
                acc = np.full(self.num_perm, np.iinfo(np.uint32).max, dtype=np.uint32)
                for c in range(lo, hi, chunk):
                    m = min(chunk, hi - c)
                    v = flat[: self.num_perm * m].reshape(self.num_perm, m)  # contiguous: fast ufunc loops
                    np.multiply(a, hashes[None, c : c + v.shape[1]], out=v)
                    v += b
                    np.minimum(acc, v.min(axis=1), out=acc)
                out[i] = acc
                i += 1
                continue
            hi = int(ends[j - 1])
            v = flat[: self.num_perm * (hi - lo)].reshape(self.num_perm, hi - lo)
            np.multiply(a, hashes[None, lo:hi], out=v)
            v += b
            out[i:j] = np.minimum.reduceat(v, first[i:j] - lo, axis=1).T
            i = j


def _trapezoid(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Trapezoid rule along the last axis."""
    return ((y[..., 1:] + y[..., :-1]) * np.diff(x)).sum(axis=-1) / 2


@lru_cache(maxsize=128)
def lsh_params(threshold: float, num_perm: int, fp_weight: float = 0.5) -> tuple[int, int]:
    """``(bands, rows)`` with ``bands * rows <= num_perm`` for an LSH at Jaccard ``threshold``.

    Two documents of similarity ``s`` become candidates with probability
    ``P(s) = 1 - (1 - s**rows) ** bands``. The false-positive mass is the area under ``P`` over
    ``[0, threshold]``, the false-negative mass the area under ``1 - P`` over ``[threshold, 1]``;
    the banding minimises ``fp_weight * FP + (1 - fp_weight) * FN`` (0.5: the equal weighting
    datasketch's ``MinHashLSH`` uses by default). Ties go to fewer bands.
    """
    if not 0 < threshold <= 1:
        raise ValueError("threshold must be in (0, 1]")
    if num_perm < 1:
        raise ValueError("num_perm must be >= 1")
    if not 0 <= fp_weight <= 1:
        raise ValueError("fp_weight must be in [0, 1]")
    lo = np.linspace(0.0, threshold, 201)
    hi = np.linspace(threshold, 1.0, 201)
    best, best_err = (1, num_perm), math.inf
    for bands in range(1, num_perm + 1):
        rows = np.arange(1, num_perm // bands + 1, dtype=np.float64)[:, None]
        fp = _trapezoid(1 - (1 - lo**rows) ** bands, lo)
        fn = _trapezoid((1 - hi**rows) ** bands, hi)
        err = fp_weight * fp + (1 - fp_weight) * fn
        k = int(np.argmin(err))
        if err[k] < best_err - 1e-12:
            best_err, best = float(err[k]), (bands, k + 1)
    return best


class _SortedRuns:
    """A multimap uint64 -> int32 stored as sorted NumPy runs, merged log-structured.

    Appending a run of ``m`` keys costs ``O(m log m)`` plus amortised merges; a lookup is one
    ``searchsorted`` per run (at most ``log2`` of the number of runs appended).
    """

    def __init__(self) -> None:
        self.keys: list[np.ndarray] = []
        self.vals: list[np.ndarray] = []

    def __len__(self) -> int:
        return sum(len(k) for k in self.keys)

    @property
    def nbytes(self) -> int:
        return sum(k.nbytes + v.nbytes for k, v in zip(self.keys, self.vals, strict=True))

    def add(self, keys: np.ndarray, vals: np.ndarray) -> None:
        if len(keys) == 0:
            return
        order = np.argsort(keys, kind="stable")
        self.keys.append(keys[order])
        self.vals.append(vals[order].astype(np.int32))
        while len(self.keys) > 1 and 2 * len(self.keys[-1]) >= len(self.keys[-2]):
            k2, v2 = self.keys.pop(), self.vals.pop()
            k1, v1 = self.keys.pop(), self.vals.pop()
            # stable merge: the newer run's entries go after equal keys of the older one
            pos = np.searchsorted(k1, k2, side="right") + np.arange(len(k2))
            keep = np.ones(len(k1) + len(k2), dtype=bool)
            keep[pos] = False
            k = np.empty(len(keep), dtype=k1.dtype)
            v = np.empty(len(keep), dtype=v1.dtype)
            k[pos], v[pos] = k2, v2
            k[keep], v[keep] = k1, v1
            self.keys.append(k)
            self.vals.append(v)

    def lookup(self, query: np.ndarray, cap: int) -> tuple[np.ndarray, np.ndarray]:
        """``(query_index, value)`` pairs for every stored entry whose key is in ``query``; at most
        ``cap`` values per query key and run (the oldest ones)."""
        qs: list[np.ndarray] = []
        vs: list[np.ndarray] = []
        order = np.argsort(query)
        needles = query[order]  # sorted needles: searchsorted walks each run once, cache-friendly
        for keys, vals in zip(self.keys, self.vals, strict=True):
            lo = np.searchsorted(keys, needles, side="left")
            hit = np.nonzero(keys[np.minimum(lo, len(keys) - 1)] == needles)[0]
            if len(hit) == 0:
                continue
            lo = lo[hit]
            count = np.minimum(np.searchsorted(keys, needles[hit], side="right") - lo, cap)
            total = int(count.sum())
            offset = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
            qs.append(np.repeat(order[hit], count))
            vs.append(vals[np.repeat(lo, count) + offset].astype(np.int64))
        if not qs:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty
        return np.concatenate(qs), np.concatenate(vs)


@dataclass
class NearDupStats:
    """Counters of a :class:`NearDupIndex`."""

    seen: int = 0  # documents checked
    kept: int = 0  # documents added to the index (not near-duplicates)
    duplicates: int = 0  # documents reported as near-duplicates
    candidates: int = 0  # (document, candidate) pairs from the LSH bands that were verified


class NearDupIndex:
    """Streaming near-duplicate filter over MinHash LSH: the first document of a group is kept.

    :meth:`check_and_add` takes batches in stream order; each document is compared with every
    document kept before it (earlier batches and earlier in its own batch) that shares an LSH band
    with it. With ``verify`` (default) a candidate counts only when the similarity estimated from
    the two signatures is ``>= threshold``; without it every LSH candidate counts (what
    ``datasketch.MinHashLSH`` returns).

    ``fp_weight`` picks the banding (see :func:`lsh_params`); the default leans to recall when
    candidates are verified (0.1: at 0.8/128, 14 bands x 9 rows make a pair at exactly the threshold
    a candidate with probability 0.87, at 0.85 with 0.97; the even weighting, 9 x 13, gives 0.40 and
    0.69), and is 0.5 without verification. ``fingerprint_bits`` (8, 16 or 32) of every signature
    value are kept for verification. ``max_bucket`` bounds the candidates taken from one band
    bucket per sorted run (the oldest documents), against pathological buckets.
    """

    def __init__(self, threshold: float = 0.8, num_perm: int = 128, *, kind: str = "char", n: int = 5,
                 seed: int = 1, verify: bool = True, fp_weight: float | None = None, fingerprint_bits: int = 8,
                 max_bucket: int = 64, casefold: bool = True) -> None:
        if not 0 < threshold <= 1:
            raise ValueError("threshold must be in (0, 1]")
        if fingerprint_bits not in (8, 16, 32):
            raise ValueError("fingerprint_bits must be 8, 16 or 32")
        if max_bucket < 1:
            raise ValueError("max_bucket must be >= 1")
        self.threshold = threshold
        self.verify = verify
        self.max_bucket = max_bucket
        self.hasher = MinHasher(num_perm, kind=kind, n=n, seed=seed, casefold=casefold)
        self.fp_weight = (0.1 if verify else 0.5) if fp_weight is None else fp_weight
        self.bands, self.rows = lsh_params(threshold, num_perm, self.fp_weight)
        rng = np.random.RandomState(seed + 7919)
        self._band_mult = (rng.randint(0, 1 << 62, size=(self.bands, self.rows), dtype=np.int64)
                           .astype(np.uint64) * _U64(2) + _U64(1))
        self._band_salt = rng.randint(0, 1 << 62, size=self.bands, dtype=np.int64).astype(np.uint64)
        self._fp_dtype = {8: np.uint8, 16: np.uint16, 32: np.uint32}[fingerprint_bits]
        self._fp_mask = np.uint32((1 << fingerprint_bits) - 1)
        chance = 0.0 if fingerprint_bits == 32 else 2.0**-fingerprint_bits
        # estimate = (matches / num_perm - chance) / (1 - chance) >= threshold, in whole matches
        self._need = max(1, math.ceil(num_perm * (threshold * (1 - chance) + chance) - 1e-9))
        self._fp = np.zeros((0, num_perm), dtype=self._fp_dtype)
        self._table = _SortedRuns()
        self._ids: list[str] = []
        self.stats = NearDupStats()

    def __len__(self) -> int:
        """Number of documents kept (added to the index)."""
        return len(self._ids)

    @property
    def nbytes(self) -> int:
        """Bytes held in NumPy arrays (band tables and fingerprints; the ids list is extra)."""
        return self._table.nbytes + self._fp.nbytes

    def _band_keys(self, sigs: np.ndarray) -> np.ndarray:
        """``(len(sigs), bands)`` uint64 keys: each band's ``rows`` values hashed to 64 bits."""
        part = sigs[:, : self.bands * self.rows].reshape(len(sigs), self.bands, self.rows).astype(np.uint64)
        h = (part * self._band_mult).sum(axis=2, dtype=np.uint64)
        h += self._band_salt
        return _mix(h)

    def _fingerprints(self, sigs: np.ndarray) -> np.ndarray:
        # the low bits: the minimum of a permutation is small, so its high bits are mostly zero
        return (sigs & self._fp_mask).astype(self._fp_dtype)

    def check_and_add(self, ids: Sequence[str], texts: Sequence[str]) -> list[str | None]:
        """Check a batch in order: per document, the id of an earlier kept document it
        near-duplicates, or None, in which case the document is kept (added to the index).

        When several kept documents qualify, the earliest kept one is reported.
        """
        if len(ids) != len(texts):
            raise ValueError(f"{len(ids)} ids but {len(texts)} texts")
        if not texts:
            return []
        keys, fps = self.keys(texts)
        return self.check_and_add_keys(ids, keys, fps)

    def keys(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """What the index needs of each text, computed anywhere (a shard worker) and passed to
        :meth:`check_and_add_keys` later: ``(len(texts), bands)`` uint64 band keys and
        ``(len(texts), num_perm)`` fingerprints. Depends only on the texts and the parameters."""
        sigs = self.hasher.signatures(texts)
        return self._band_keys(sigs), self._fingerprints(sigs)

    @property
    def fingerprint_dtype(self) -> type:
        return self._fp_dtype

    @property
    def need(self) -> int:
        """Equal fingerprint values two documents must share to count as near duplicates."""
        return self._need

    def check_and_add_keys(self, ids: Sequence[str], keys: np.ndarray, fps: np.ndarray) -> list[str | None]:
        """:meth:`check_and_add` for documents whose :meth:`keys` were computed elsewhere."""
        count = len(ids)
        if count == 0:
            return []
        if keys.shape != (count, self.bands) or fps.shape != (count, self.hasher.num_perm):
            raise ValueError(f"keys {keys.shape} / fingerprints {fps.shape} do not match {count} documents "
                             f"at {self.bands} bands and {self.hasher.num_perm} permutations")
        bands = self.bands
        old = np.full(count, -1, dtype=np.int64)  # index of the matching document kept earlier
        if self._ids:
            q, c = self._table.lookup(keys.ravel(), self.max_bucket)
            if len(q):
                pair = np.unique(((q // bands) << 32) | c)  # sorted: by document, then oldest first
                q, c = pair >> 32, pair & 0xFFFFFFFF
                self.stats.candidates += len(pair)
                if self.verify:
                    ok = np.count_nonzero(fps[q] == self._fp[c], axis=1) >= self._need
                    q, c = q[ok], c[ok]
                doc, at = np.unique(q, return_index=True)
                old[doc] = c[at]
        local = self._within_batch(keys, fps, old)
        kept = np.nonzero((old < 0) & (local < 0))[0]
        out: list[str | None] = [None] * count
        for i in np.nonzero(old >= 0)[0].tolist():
            out[i] = self._ids[int(old[i])]
        for i in np.nonzero(local >= 0)[0].tolist():
            out[i] = ids[int(local[i])]
        self._add(kept, keys, fps, ids)
        self.stats.seen += count
        self.stats.kept += len(kept)
        self.stats.duplicates += count - len(kept)
        return out

    def _within_batch(self, keys: np.ndarray, fps: np.ndarray, old: np.ndarray) -> np.ndarray:
        """Batch row of the earliest kept batch document each row near-duplicates (-1: none)."""
        local = np.full(len(keys), -1, dtype=np.int64)
        flat = keys.ravel()
        order = np.argsort(flat, kind="stable")
        same = flat[order[1:]] == flat[order[:-1]]
        if not same.any():
            return local
        shared = np.zeros(len(flat), dtype=bool)
        shared[order[1:][same]] = True
        shared[order[:-1][same]] = True
        rows = np.unique(np.nonzero(shared)[0] // self.bands)
        rows = rows[old[rows] < 0]  # rows already matched earlier documents are neither kept nor candidates
        buckets: dict[int, list[int]] = {}
        for i, row_keys in zip(rows.tolist(), keys[rows].tolist(), strict=True):
            cands = sorted({j for k in row_keys for j in buckets.get(k, ())})
            if cands:
                self.stats.candidates += len(cands)
                if self.verify:
                    ok = np.count_nonzero(fps[cands] == fps[i], axis=1) >= self._need
                    hit = np.nonzero(ok)[0]
                    if len(hit):
                        local[i] = cands[int(hit[0])]
                else:
                    local[i] = cands[0]
            if local[i] < 0:
                for k in row_keys:
                    buckets.setdefault(k, []).append(i)
        return local

    def _add(self, kept: np.ndarray, keys: np.ndarray, fps: np.ndarray, ids: Sequence[str]) -> None:
        if len(kept) == 0:
            return
        base = len(self._ids)
        need = base + len(kept)
        if need > len(self._fp):  # grow by doubling: amortised O(1) per document
            grown = np.zeros((max(need, 2 * len(self._fp), 1024), self._fp.shape[1]), dtype=self._fp_dtype)
            grown[:base] = self._fp[:base]
            self._fp = grown
        self._fp[base:need] = fps[kept]
        index = np.arange(base, need, dtype=np.int64)
        self._table.add(keys[kept].ravel(), np.repeat(index, self.bands))
        self._ids.extend(ids[i] for i in kept.tolist())
