"""Loading seed history into `DP_CDR_Data`: from the generator, a CSV file or a gs:// object.

Every load is a source in `ingest_sources` whose id is derived from its content (the
generator's parameters, a file's SHA-256); it is written in numbered batches, each in one
transaction with its `ingest_batches` row. Running a load again skips the batches already
committed, so it neither duplicates rows nor loses the ones an interrupted run left out.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from tqdm import tqdm

from config.settings import Settings
from db.cdr import frame_to_rows
from db.connection import connection
from db.ingest_log import Source, SourceKind, committed_batches, register_source, set_source_state
from db.ingest_log import write_batch as write_logged_batch
from db.schema import CDR_COLUMNS
from ingest.generator import GeneratorConfig, generate_cdr
from ingest.sources import download_gcs_object, file_digest, read_cdr_csv

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SeedReport:
    """What one seeding run did."""

    source_id: str
    rows_total: int
    rows_inserted: int
    batches_total: int
    batches_skipped: int

    def describe(self) -> str:
        if self.batches_skipped == self.batches_total:
            return (
                f"{self.source_id}: already loaded ({self.rows_total} rows in "
                f"{self.batches_total} batches); nothing inserted"
            )
        return (
            f"{self.source_id}: inserted {self.rows_inserted} of {self.rows_total} rows "
            f"({self.batches_total - self.batches_skipped} new batches, "
            f"{self.batches_skipped} already loaded)"
        )


def seed_from_generator(
    settings: Settings, config: GeneratorConfig, progress: bool = True
) -> SeedReport:
    """Generate synthetic history with ``config`` and load it."""
    params = config.model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()
    log.info(
        "generating %d subscribers x %d days from %s (seed %d)",
        config.subscribers,
        config.days,
        config.start_date,
        config.seed,
    )
    frame = generate_cdr(config)
    source = Source(
        source_id=f"generator-{digest[:32]}",
        kind="generator",
        description=f"synthetic CDRs: {config.subscribers} subscribers x {config.days} days",
        params=params,
        total_batches=0,
    )
    return load_frame(settings, frame, source, progress)


def seed_from_source(settings: Settings, location: str, progress: bool = True) -> SeedReport:
    """Load a CSV / CSV.gz from a path or a ``gs://bucket/object`` URI."""
    if location.startswith("gs://"):
        with tempfile.TemporaryDirectory(prefix="cdr-seed-") as tmp:
            path = download_gcs_object(location, Path(tmp) / "object")
            return _seed_file(settings, path, location, "gcs", progress)
    return _seed_file(settings, Path(location), location, "csv", progress)


def _seed_file(
    settings: Settings, path: Path, location: str, kind: SourceKind, progress: bool
) -> SeedReport:
    validated = read_cdr_csv(path)
    if validated.missing_usage_columns:
        log.warning(
            "%s has no column(s) %s: loaded as NULL",
            location,
            ", ".join(validated.missing_usage_columns),
        )
    if validated.ignored_columns:
        log.info("%s: ignored column(s) %s", location, ", ".join(validated.ignored_columns))
    source = Source(
        source_id=f"{kind}-{file_digest(path)[:40]}",
        kind=kind,
        description=location,
        params={"location": location},
        total_batches=0,
    )
    return load_frame(settings, validated.frame, source, progress)


def load_frame(
    settings: Settings, frame: pd.DataFrame, source: Source, progress: bool = True
) -> SeedReport:
    """Write ``frame`` as the batches of ``source``, skipping batches committed before."""
    chunk_rows = settings.insert_chunk_rows
    with connection(settings) as conn:
        stored = register_source(
            conn,
            Source(
                source_id=source.source_id,
                kind=source.kind,
                description=source.description,
                params={**source.params, "batch_rows": chunk_rows, "rows": len(frame)},
                total_batches=-(-len(frame) // chunk_rows),
            ),
        )
        # Batch boundaries must match the first run's, whatever INSERT_CHUNK_ROWS is now.
        chunk_rows = int(stored.params.get("batch_rows", chunk_rows))
        total = -(-len(frame) // chunk_rows)
        done = committed_batches(conn, source.source_id)
        inserted = 0
        bar = tqdm(
            total=len(frame),
            unit="rows",
            unit_scale=True,
            desc="seeding",
            disable=not progress,
            initial=sum(done.values()),
        )
        with bar:
            for batch_no in range(total):
                if batch_no in done:
                    continue
                part = frame.iloc[batch_no * chunk_rows : (batch_no + 1) * chunk_rows]
                rows = frame_to_rows(part.loc[:, list(CDR_COLUMNS)])
                if write_logged_batch(conn, source.source_id, batch_no, rows, chunk_rows):
                    inserted += len(rows)
                bar.update(len(rows))
        set_source_state(conn, source.source_id, "completed", total)
    report = SeedReport(source.source_id, len(frame), inserted, total, len(done))
    log.info(report.describe())
    return report
