-- Every load into DP_CDR_Data is a source (a stream, a generated history, a file) written
-- in numbered batches. A batch's log row is inserted in the same transaction as its CDR
-- rows, so its primary key makes a retried batch a no-op instead of a duplicate.
CREATE TABLE IF NOT EXISTS ingest_sources (
    source_id     VARCHAR(64)   NOT NULL,
    kind          VARCHAR(16)   NOT NULL COMMENT 'stream, generator, csv or gcs',
    description   VARCHAR(1024) NOT NULL,
    params        JSON          NULL,
    total_batches INT UNSIGNED  NOT NULL,
    anchor_date   DATETIME      NULL COMMENT 'first simulated day of a stream',
    state         VARCHAR(16)   NOT NULL DEFAULT 'running',
    last_error    VARCHAR(1024) NULL,
    created_at    TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    updated_at    TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3) ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (source_id),
    CONSTRAINT ck_source_kind CHECK (kind IN ('stream', 'generator', 'csv', 'gcs')),
    CONSTRAINT ck_source_state CHECK (state IN ('running', 'completed', 'stopped', 'failed'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS ingest_batches (
    source_id    VARCHAR(64)  NOT NULL,
    batch_no     INT UNSIGNED NOT NULL,
    row_count    INT UNSIGNED NOT NULL,
    committed_at TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (source_id, batch_no),
    CONSTRAINT fk_batch_source FOREIGN KEY (source_id) REFERENCES ingest_sources (source_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
