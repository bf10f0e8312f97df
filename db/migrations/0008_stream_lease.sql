-- Stream ids compare exactly: under utf8mb4_general_ci `casetest` found `CaseTest` and
-- resumed it, writing nothing. The batch log's foreign key must match the new collation.
ALTER TABLE ingest_batches DROP FOREIGN KEY fk_batch_source;

ALTER TABLE ingest_sources
    MODIFY source_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL;

ALTER TABLE ingest_batches
    MODIFY source_id VARCHAR(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    ADD CONSTRAINT fk_batch_source FOREIGN KEY (source_id) REFERENCES ingest_sources (source_id);

-- One writer per stream: the ingest service writing a stream holds its lease, renews it in
-- every batch's transaction and while it waits, and gives it up when the stream ends. A lease
-- past `expires_at` (its service crashed or lost the database) may be taken over.
CREATE TABLE IF NOT EXISTS stream_leases (
    source_id  VARCHAR(64)  CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL,
    owner      VARCHAR(64)  NOT NULL COMMENT 'instance id of the ingest service holding it',
    expires_at TIMESTAMP(3) NOT NULL,
    PRIMARY KEY (source_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
