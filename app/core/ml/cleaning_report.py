"""What cleaning found in a file: counts of missing, unreadable, infinite and unseen cells per column,
the first of each (row and cell), and the warnings and report they make. Shared by the pandas cleaner
(datasets.Cleaner) and the Arrow ingest (arrow_ingest), so both word a file's problems the same way;
this module imports neither pandas nor pyarrow."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.core.domain.entities import Column, Schema
from app.core.domain.errors import ValidationError

MAX_STORED_CATEGORIES = 500


@dataclass
class Occurrences:
    """How many cells have one problem, and the first of them (its 1-based row in the file, the cell quoted)."""

    count: int = 0
    first_row: int = 0
    first_cell: str = ""

    def add(self, mask: Any, cells: Any = None, row_offset: int = 0,
            quote: Callable[[Any], str] = repr) -> None:
        flags = np.asarray(mask, dtype=bool)
        found = int(flags.sum())
        if not found:
            return
        if not self.count:
            position = int(np.flatnonzero(flags)[0])
            self.first_row = row_offset + position + 1
            self.first_cell = quote(cells.iloc[position]) if cells is not None else ""
        self.count += found

    def add_found(self, found: int, first_position: int, first_cell: str = "", row_offset: int = 0) -> None:
        """As add, from a count and the position of the first cell found (first_cell already quoted)."""
        if not found:
            return
        if not self.count:
            self.first_row, self.first_cell = row_offset + first_position + 1, first_cell
        self.count += found


@dataclass
class ColumnTally:
    missing: int = 0
    unreadable: Occurrences = field(default_factory=Occurrences)
    infinite: Occurrences = field(default_factory=Occurrences)
    unseen: Occurrences = field(default_factory=Occurrences)


class CleaningReport:
    """What cleaning a file found, column by column, gathered as its rows are cleaned (whole or in
    chunks), and finish(): the warnings and the report for the whole file."""

    def __init__(self, source: str, schema: Schema, purpose: str = "ingest", strict: bool = False,
                 id_column: str | None = None):
        self.source, self.schema, self.purpose, self.strict, self.id_column = source, schema, purpose, strict, id_column
        self.header_warnings: list[str] = []
        self.columns = {c.name: ColumnTally() for c in schema.columns}
        self.target_unreadable = Occurrences()
        self.unseen_classes = Occurrences()
        self.target_present = False
        self.target_raw_values = False  # some target cell is not missing
        self.target_read_values = False  # some target cell was read
        self.first_target_cell = ""
        self.rows_read = 0
        self.duplicates = 0

    def check_columns(self, columns: Iterable) -> None:
        """The header against the schema: a missing feature is an error, extra columns a warning."""
        source, target, expected = self.source, self.schema.target, self.schema.features
        present = set(columns)
        missing_columns = [c for c in expected if c not in present]
        if missing_columns:
            raise ValidationError(
                f"{source}: missing feature column(s) {', '.join(repr(c) for c in missing_columns)} "
                f"(expected: {', '.join(expected)})"
            )
        extra = [str(c) for c in columns if c not in expected and c != target and c != self.id_column]
        if extra:
            self.header_warnings.append(f"{source}: extra column(s) ignored: {', '.join(extra)}")
        if self.purpose == "predict" and target in present:
            self.header_warnings.append(f"{source}: target column {target!r} present; ignored for scoring")
        self.target_present = self.purpose != "predict" and target in present

    def finish(self, reader_warnings: list[str], rows: int, labelled_rows: int) -> tuple[list[str], dict]:
        """(warnings, report) for the whole file, once every chunk is cleaned and its duplicates dropped."""
        source, schema, target = self.source, self.schema, self.schema.target
        if self.target_raw_values and not self.target_read_values:
            raise ValidationError(
                f"{source}: every row lost in cleaning: no value of target {target!r} could be read "
                f"(row 1: {self.first_target_cell})"
            )
        warnings = list(reader_warnings) + self.header_warnings
        for column in schema.columns:
            warnings.extend(self._column_warnings(column))
        if self.target_unreadable.count:
            bad = self.target_unreadable
            warnings.append(f"{source}: target {target!r}: {bad.count} value(s) not readable as {schema.target_kind} "
                            f"(first: row {bad.first_row}, {bad.first_cell}); those rows are unlabelled")
        if self.unseen_classes.count:
            unseen = self.unseen_classes
            warnings.append(f"{source}: target {target!r}: {unseen.count} row(s) have a class unseen in training "
                            f"(first: row {unseen.first_row}, {unseen.first_cell}); a retrained model will learn it")
        if self.duplicates:
            warnings.append(f"{source}: {self.duplicates} exact duplicate row(s) dropped")
        unlabelled_rows = rows - labelled_rows
        if self.purpose != "predict":
            if not labelled_rows:
                warnings.append(f"{source}: no labels (target {target!r} absent or empty): an unlabelled batch, for monitoring only")
            elif unlabelled_rows:
                warnings.append(f"{source}: {unlabelled_rows} row(s) have no target value: kept as unlabelled rows")
        report = {
            "source": source,
            "rows_read": self.rows_read,
            "rows": rows,
            "duplicates_dropped": self.duplicates,
            "labelled_rows": labelled_rows,
            "unlabelled_rows": unlabelled_rows,
            "columns": {name: {"missing": tally.missing} for name, tally in self.columns.items()},
            "warnings": warnings,
        }
        return warnings, report

    def _column_warnings(self, column: Column) -> list[str]:
        source, name, kind, tally = self.source, column.name, column.kind, self.columns[column.name]
        warnings = []
        if tally.missing == self.rows_read and self.rows_read:
            warnings.append(f"{source}: column {name!r} is empty in this file; it will be imputed (drift will show it)")
        if kind == "numeric":
            parts = []
            if tally.unreadable.count:
                parts.append(f"{tally.unreadable.count} cell(s) not readable as numbers "
                             f"(first: row {tally.unreadable.first_row}, {tally.unreadable.first_cell})")
            if tally.infinite.count:
                parts.append(f"{tally.infinite.count} infinite value(s) (first: row {tally.infinite.first_row})")
            if parts:
                warnings.append(f"{source}: column {name!r}: " + " and ".join(parts) + "; treated as missing")
        elif tally.unreadable.count:
            warnings.append(f"{source}: column {name!r}: {tally.unreadable.count} cell(s) not readable as {kind} "
                            f"(first: row {tally.unreadable.first_row}, {tally.unreadable.first_cell}); treated as missing")
        if tally.unseen.count:
            warnings.append(f"{source}: column {name!r} has {tally.unseen.count} value(s) unseen in training "
                            f"(e.g. {tally.unseen.first_cell}); the model ignores them")
        return warnings
