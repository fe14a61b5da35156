"""Input file lists and documents, as the MLCommons and Cerebras recipes lay them out.

A *metadata file* lists input files, one path per line (relative paths are joined to a prefix). An input
file holds one document, or several separated by a separator line (by default a blank line, the
MLCommons part-file format: one sentence per line, a blank line between articles).
"""

from collections.abc import Iterable, Iterator
from pathlib import Path

from linctl.data.sources.textfile import read_lines
from linctl.errors import InputError


def read_metadata(metadata_files: Iterable[Path], prefix: str = "") -> list[Path]:
    """Return the input files listed in ``metadata_files``, in order, checking that each exists."""
    files: list[Path] = []
    for meta in map(Path, metadata_files):
        if not meta.is_file():
            raise InputError(f"--metadata-files {meta}: file not found")
        for lineno, line in enumerate(read_lines(meta), 1):
            if not line.strip():
                continue
            path = Path(prefix) / line.strip() if prefix else Path(line.strip())
            if not path.is_file():
                raise InputError(f"{meta}:{lineno}: input file {path} not found")
            files.append(path)
    if not files:
        raise InputError(f"--metadata-files {', '.join(map(str, metadata_files))}: lists no input files")
    return files


def separator_line(separator: str) -> str:
    r"""Return the line that separates documents: ``\n`` (typed as two characters) means a blank line.

    Lines are compared stripped, so a line of spaces counts as blank (WikiText writes blank lines so).
    """
    return separator.replace("\\n", "\n").strip()


def iter_documents(path: Path, separator: str | None) -> Iterator[list[str]]:
    """Yield each document of ``path`` (plain, ``.gz`` or ``.bz2``) as its non-empty lines, stripped.

    Args:
        separator: the line between documents (see ``separator_line``), or None when the whole file is
            one document.
    """
    lines: list[str] = []
    for raw in read_lines(path):
        line = raw.strip()
        if separator is not None and line == separator:
            if lines:
                yield lines
            lines = []
        elif line:
            lines.append(line)
    if lines:
        yield lines
