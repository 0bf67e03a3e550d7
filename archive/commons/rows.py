"""Row-level validation errors: every bad value is reported with its line, column and reason."""

from __future__ import annotations

from dataclasses import dataclass

from archive.errors import InvalidRequest

MAX_REPORTED = 200


@dataclass(frozen=True, slots=True)
class RowError:
    line: int  # 1-based line of a CSV/TSV file (header = 1) or item number of a JSON list
    column: str
    reason: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "reason": self.reason}

    def __str__(self) -> str:
        return f"line {self.line}, column {self.column}: {self.reason}"


class RowErrors(InvalidRequest):
    """A batch was rejected as a whole; nothing from it was written."""

    def __init__(self, errors: list[RowError]) -> None:
        self.errors = errors[:MAX_REPORTED]
        more = f" (first {MAX_REPORTED} shown)" if len(errors) > MAX_REPORTED else ""
        first = f"; first: {errors[0]}" if errors else ""
        super().__init__(f"{len(errors)} invalid value(s){more}, nothing was imported{first}")

    def details(self) -> dict[str, object]:
        return {"errors": [e.as_dict() for e in self.errors]}
