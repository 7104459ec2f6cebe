"""The data files Keel reads, by name: CSV-like text (optionally gzipped) and Parquet."""

CSV_SUFFIXES = (".csv", ".tsv", ".txt")
GZIP_SUFFIX = ".gz"
PARQUET_SUFFIXES = (".parquet", ".pq")
# what the window offers to open and accepts dropped (a .gz that is not CSV is refused when read)
DATA_FILE_SUFFIXES = CSV_SUFFIXES + (GZIP_SUFFIX,) + PARQUET_SUFFIXES


def file_dialog_filter() -> str:
    """The filter of an open-file dialog that lists data files first."""
    patterns = " ".join(f"*{suffix}" for suffix in DATA_FILE_SUFFIXES)
    return f"Data files ({patterns});;All files (*)"
