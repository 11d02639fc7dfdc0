"""GitHub-flavoured Markdown tables, for reports pasted into notes, issues and papers."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], align: str | None = None
) -> str:
    """A pipe table. ``align`` has one letter per column, ``l`` or ``r``; by default the first
    column is left-aligned and the others (numbers) right-aligned."""
    align = align or "l" + "r" * (len(headers) - 1)
    lines = [
        _line(headers),
        _line([":---" if letter == "l" else "---:" for letter in align]),
        *(_line(row) for row in rows),
    ]
    return "\n".join(lines)


def _line(cells: Sequence[str]) -> str:
    return "| " + " | ".join(_escape(str(cell)) for cell in cells) + " |"


def _escape(cell: str) -> str:
    return cell.replace("|", "\\|").replace("\n", " ")
