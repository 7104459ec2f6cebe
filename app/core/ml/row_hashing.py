"""Row hashes exactly as pandas makes them (pandas.util.hash_pandas_object of the cleaned frame, index
left out, columns combined in name order), computed from plain arrays without importing pandas.

The content hash of every stored dataset version is made of these hashes, so they must not change:
tests/test_arrow_ingest.py checks them against pandas' for every column type ingest stores."""

import numpy as np

HASH_KEY = b"0123456789123456"  # pandas' default hash key
MISSING_CATEGORY_HASH = np.uint64(0xFFFFFFFFFFFFFFFF)  # a missing cell of a text column (pandas: u8max)
MISSING_NULLABLE_HASH = np.uint64((1 << 61) - 1)  # a missing cell of an Int64/Float64 column: hash(pd.NA)
# Text columns with more distinct values than this are hashed by pandas' compiled siphash
# (pandas is imported for them); fewer are hashed here.
PYTHON_HASHED_VALUES = 20_000
_MASK = 0xFFFFFFFFFFFFFFFF
_K0 = int.from_bytes(HASH_KEY[:8], "little")
_K1 = int.from_bytes(HASH_KEY[8:], "little")


def _mix(values: np.ndarray) -> np.ndarray:
    """pandas' redistribution of 64-bit values (in place)."""
    values ^= values >> np.uint64(30)
    values *= np.uint64(0xBF58476D1CE4E5B9)
    values ^= values >> np.uint64(27)
    values *= np.uint64(0x94D049BB133111EB)
    values ^= values >> np.uint64(31)
    return values


def float_hashes(values: np.ndarray) -> np.ndarray:
    """A float64 column (NaN where missing): every NaN hashes alike, and -0.0 as 0.0."""
    bits = values.view(np.uint64).copy()
    bits[np.isnan(values)] = np.array(np.nan, dtype=np.float64).view(np.uint64)
    bits[bits == np.array(-0.0, dtype=np.float64).view(np.uint64)] = 0
    return _mix(bits)


def nullable_hashes(values: np.ndarray, missing: np.ndarray) -> np.ndarray:
    """A nullable Int64 (int64 values) or Float64 (float64 values) column, missing where missing is set."""
    hashes = float_hashes(values) if values.dtype == np.float64 else _mix(values.astype(np.int64).view(np.uint64).copy())
    hashes[missing] = MISSING_NULLABLE_HASH
    return hashes


def text_hashes(distinct: list[str | None], codes: np.ndarray) -> np.ndarray:
    """A text column given as its distinct values (None: missing) and each row's index into them."""
    hashed = np.array([MISSING_CATEGORY_HASH if value is None else 0 for value in distinct], dtype=np.uint64)
    present = [i for i, value in enumerate(distinct) if value is not None]
    if len(present) > PYTHON_HASHED_VALUES:
        import pandas as pd

        values = np.array([distinct[i] for i in present], dtype=object)
        hashed[present] = pd.util.hash_array(values, categorize=False)
    elif present:
        raw = np.array([siphash24(str(distinct[i]).encode("utf-8")) for i in present], dtype=np.uint64)
        hashed[present] = _mix(raw)
    return hashed[codes]


def combine(columns: list[np.ndarray], rows: int) -> np.ndarray:
    """pandas' combination of per-column hashes into row hashes (CPython's tuple hash)."""
    if not columns:
        return np.full(rows, 0x345678 + 97531, dtype=np.uint64)
    multiplier = np.uint64(1000003)
    out = np.zeros_like(columns[0]) + np.uint64(0x345678)
    for i, hashes in enumerate(columns):
        inverse = len(columns) - i
        out ^= hashes
        out *= multiplier
        multiplier += np.uint64(82520 + inverse + inverse)
    out += np.uint64(97531)
    return out


def siphash24(data: bytes) -> int:
    """SipHash-2-4 of data under pandas' hash key (what pandas' hash_object_array computes per string)."""
    v0, v1 = _K0 ^ 0x736F6D6570736575, _K1 ^ 0x646F72616E646F6D
    v2, v3 = _K0 ^ 0x6C7967656E657261, _K1 ^ 0x7465646279746573
    length = len(data)
    tail_start = length - length % 8
    words = [int.from_bytes(data[i:i + 8], "little") for i in range(0, tail_start, 8)]
    words.append(((length & 0xFF) << 56) | int.from_bytes(data[tail_start:], "little"))
    for word in words:
        v3 ^= word
        for _ in range(2):
            v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
        v0 ^= word
    v2 ^= 0xFF
    for _ in range(4):
        v0, v1, v2, v3 = _sip_round(v0, v1, v2, v3)
    return v0 ^ v1 ^ v2 ^ v3


def _sip_round(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & _MASK
    v1 = ((v1 << 13) | (v1 >> 51)) & _MASK
    v1 ^= v0
    v0 = ((v0 << 32) | (v0 >> 32)) & _MASK
    v2 = (v2 + v3) & _MASK
    v3 = ((v3 << 16) | (v3 >> 48)) & _MASK
    v3 ^= v2
    v0 = (v0 + v3) & _MASK
    v3 = ((v3 << 21) | (v3 >> 43)) & _MASK
    v3 ^= v0
    v2 = (v2 + v1) & _MASK
    v1 = ((v1 << 17) | (v1 >> 47)) & _MASK
    v1 ^= v2
    v2 = ((v2 << 32) | (v2 >> 32)) & _MASK
    return v0, v1, v2, v3
