"""The canonical Parquet copy: its Arrow schema (`_arrow_schema`, fixed from the first chunk) and the
rewrite without the rows a dataset-level check dropped (`_drop_rows`). The aggregator writes the
chunks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from mlcore.kinds import kind_get
from mlcore.readers import SOURCE_LINE_COL
from mlcore.validation.chunks import _ChunkResult
from mlcore.validation.plan import _Plan


def _arrow_schema(plan: _Plan, first: _ChunkResult) -> Any:
    """The canonical copy's schema, fixed up front so every chunk is written with the same types."""
    import pyarrow as pa

    fields = [pa.field(SOURCE_LINE_COL, pa.int64())]
    for name in first.out:
        if name == SOURCE_LINE_COL:
            continue
        if name in plan.target_cols and plan.target_kind is not None and kind_get(plan.target_kind).numeric_targets:
            fields.append(pa.field(name, pa.float64()))
        elif plan.input_kind in ("long", "lists") and name in plan.element_cols:
            fields.append(pa.field(name, pa.list_(pa.string() if name == "band" else pa.float64())))
        elif plan.input_kind == "table" and name in plan.numeric_cols:
            fields.append(pa.field(name, pa.float64()))
        else:
            fields.append(pa.field(name, pa.string()))
    return pa.schema(fields)


def _drop_rows(path: Path, lines: set[int]) -> None:
    """Rewrite a Parquet file without the rows whose source line is in `lines`, batch by batch."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    tmp = path.with_name(path.name + ".filtered")
    pfile = pq.ParquetFile(path)
    drop = pa.array(sorted(lines), type=pa.int64())
    with pq.ParquetWriter(str(tmp), pfile.schema_arrow, compression="zstd") as writer:
        for batch in pfile.iter_batches(batch_size=65536):
            keep = pc.invert(pc.is_in(batch.column(SOURCE_LINE_COL), value_set=drop))
            writer.write_table(pa.Table.from_batches([batch.filter(keep)], schema=pfile.schema_arrow))
    os.replace(tmp, path)
