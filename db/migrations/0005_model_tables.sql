-- The model job's registry, and every scored row: the held-out reference rows (with labels)
-- and the later analysis rows (labels unknown when scored) that monitoring reads.
CREATE TABLE IF NOT EXISTS model_registry (
    version      VARCHAR(40)   NOT NULL,
    created_at   TIMESTAMP(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    split_kind   VARCHAR(16)   NOT NULL COMMENT 'time or stratified',
    train_start  DATE          NOT NULL,
    train_end    DATE          NOT NULL,
    test_start   DATE          NOT NULL,
    test_end     DATE          NOT NULL,
    params       JSON          NOT NULL COMMENT 'chosen hyper-parameters, grid, seed, windows',
    metrics      JSON          NOT NULL COMMENT 'held-out metrics, as in metrics.json',
    features     JSON          NOT NULL COMMENT '[{"name", "type": continuous|categorical}]',
    path         VARCHAR(1024) NOT NULL COMMENT 'the versioned model folder',
    is_current   TINYINT(1)    NOT NULL DEFAULT 0,
    PRIMARY KEY (version),
    KEY ix_registry_current (is_current, created_at)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS model_predictions (
    -- Increases with every write: the monitoring poller's watermark.
    id            BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
    model_version VARCHAR(40)      NOT NULL,
    subscriber    VARCHAR(32)      NOT NULL,
    as_of_date    DATE             NOT NULL,
    period        ENUM('reference', 'analysis') NOT NULL,
    probability_0 DOUBLE           NOT NULL,
    probability_1 DOUBLE           NOT NULL,
    prediction    TINYINT UNSIGNED NOT NULL,
    -- Known for reference rows; NULL for analysis rows until the label arrives.
    label         TINYINT UNSIGNED NULL,
    -- The model's inputs for this row, so monitoring can check them for drift.
    features      JSON             NOT NULL,
    scored_at     TIMESTAMP(3)     NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (model_version, as_of_date, subscriber),
    UNIQUE KEY ux_predictions_id (id),
    KEY ix_predictions_period (model_version, period, as_of_date),
    CONSTRAINT fk_predictions_model FOREIGN KEY (model_version)
        REFERENCES model_registry (version)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
