-- The streaming query's batch log (`python -m spark_jobs stream`). A micro-batch's row is
-- written in the same transaction as the Processed_Data and model_predictions rows it
-- produced, so a batch that Spark replays after a crash finds its row and changes nothing.
CREATE TABLE IF NOT EXISTS stream_batches (
    -- The streaming query's id, kept in its checkpoint: the same across restarts.
    query_id        VARCHAR(64)      CHARACTER SET ascii COLLATE ascii_bin NOT NULL,
    batch_id        BIGINT UNSIGNED  NOT NULL,
    first_cdr_id    BIGINT UNSIGNED  NULL COMMENT 'lowest DP_CDR_Data.id in the batch',
    last_cdr_id     BIGINT UNSIGNED  NULL COMMENT 'highest DP_CDR_Data.id in the batch',
    cdr_rows        INT UNSIGNED     NOT NULL,
    subscriber_days INT UNSIGNED     NOT NULL COMMENT 'Processed_Data rows rewritten',
    predictions     INT UNSIGNED     NOT NULL COMMENT 'model_predictions rows written',
    model_version   VARCHAR(40)      NULL,
    committed_at    TIMESTAMP(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (query_id, batch_id),
    KEY ix_stream_batches_last_id (last_cdr_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
