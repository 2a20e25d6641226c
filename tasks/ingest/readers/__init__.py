"""Readers: stream records out of the places text lives, in batches, with faults as rejects.

One module per format over one base (:mod:`.base`: sniffing, bounded line reading, the
``binary`` / ``truncated`` / ``too_long`` handling): txt/md (:mod:`.text`), jsonl
(:mod:`.jsonl`), csv (:mod:`.csv`), parquet (:mod:`.parquet`), gettext po/mo
(:mod:`.gettext`). Ingest, ``train --corpus PATH`` and ``evaluate --text PATH`` all read files
through :func:`read_unit`.

Every file contributes to ``read == kept + rejected``: a file that cannot be read as its format
at all is one ``corrupt_file`` (or ``missing_field``, ``wrong_type``, ``binary``) reject; a fault
inside a stream (a cut gzip/zstd stream, a broken Parquet row group) is one ``truncated`` reject
at the place of the fault, and the records read before it are kept.
"""

from __future__ import annotations

from collections.abc import Iterator

from tokenfoundry.schemas.ingest import IngestSpec, IngestUnit
from tokenfoundry.tasks.ingest.readers.base import (
    Reader,
    Records,
    excerpt_of,
    line_limit,
    open_raw,
    sniff,
    text_limit,
)
from tokenfoundry.tasks.ingest.readers.csv import CsvReader
from tokenfoundry.tasks.ingest.readers.gettext import (
    MoReader,
    PoReader,
    align_key,
    lang_from_path,
    message_key,
    normalise_locale,
)
from tokenfoundry.tasks.ingest.readers.jsonl import JsonlReader
from tokenfoundry.tasks.ingest.readers.parquet import ParquetReader
from tokenfoundry.tasks.ingest.readers.text import TextReader

READERS: dict[str, type[Reader]] = {
    "jsonl": JsonlReader, "csv": CsvReader, "parquet": ParquetReader, "txt": TextReader,
    "md": TextReader, "po": PoReader, "mo": MoReader,
}


def read_unit(unit: IngestUnit, spec: IngestSpec) -> Iterator[tuple[Records, int]]:
    """Batches of records (and rejects) of one unit, with the bytes of the unit done so far."""
    return iter(READERS[unit.format](unit, spec))


__all__ = ["READERS", "IngestUnit", "Reader", "Records", "align_key", "excerpt_of",
           "lang_from_path", "line_limit", "message_key", "normalise_locale", "open_raw",
           "read_unit", "sniff", "text_limit"]
