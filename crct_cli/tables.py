"""Result tables on the screen, printed so that no file name or number is ever cut.

rich fits a table to the console's width (80 columns when the output is not a terminal) and,
by default, shortens what does not fit with an ellipsis. Here every column folds instead, so
a narrow terminal wraps a long path or number onto more lines; and when the output is a file
or a pipe (``crct ... > table.txt``, a test, a CI log) each table gets the width it needs, so
a file name stays whole on one line and can be searched for.
"""

from __future__ import annotations

from collections.abc import Iterable

from rich.cells import cell_len
from rich.console import Console, RenderableType
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

#: The narrowest a table is printed when the output is not a terminal (rich's own default).
MIN_FILE_WIDTH = 80
#: Wide enough for any table we print: its natural width is measured against this.
UNBOUNDED = 10_000


def never_cut(table: Table) -> Table:
    """Make every column fold (wrap inside a word) rather than end in '...' or be cropped, and
    let no column refuse to wrap, so a too-narrow screen costs lines, never characters."""
    for column in table.columns:
        column.overflow = "fold"
        column.no_wrap = False
    return table


def _text_width(text: object) -> int:
    if isinstance(text, str):
        return max((cell_len(line) for line in text.splitlines()), default=0)
    return text.cell_len if isinstance(text, Text) else 0


def print_tables(tables: Iterable[RenderableType], console: Console | None = None) -> None:
    """Print result tables (to stdout unless ``console`` says otherwise). On a terminal they fit
    its width and fold; redirected, each is as wide as its longest cell, title or caption."""
    console = console or Console()
    for table in tables:
        if isinstance(table, Table):
            never_cut(table)
        if not console.is_terminal:
            if isinstance(table, Table):  # a title naming folders is not wrapped either
                words = max(_text_width(table.title), _text_width(table.caption))
                table.min_width = max(table.min_width or 0, words)
            natural = Measurement.get(console, console.options.update_width(UNBOUNDED), table)
            console.width = max(MIN_FILE_WIDTH, natural.maximum)
        console.print(table)
