-- Monitoring: one row per run, the latest figures per (model version, chunk, metric) and per
-- (model version, chunk, feature, method), and the poller's position in model_predictions.
-- A run stores its figures, its run row and (for the poller) its watermark in one
-- transaction. Figures are upserted by their key, so monitoring the same data again changes
-- no row count; each run recomputes every chunk of its model version, so the rows of a
-- version are those of its latest successful run.
CREATE TABLE IF NOT EXISTS monitoring_runs (
    run_id         BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    model_version  VARCHAR(40)     NOT NULL,
    -- Who asked: the HTTP API, the poller or the command line.
    run_trigger    VARCHAR(16)     NOT NULL,
    status         VARCHAR(16)     NOT NULL,
    started_at     DATETIME(3)     NOT NULL COMMENT 'UTC',
    finished_at    DATETIME(3)     NOT NULL COMMENT 'UTC',
    chunking       VARCHAR(32)     NULL COMMENT 'e.g. period=D or size=5000',
    reference_rows INT UNSIGNED    NULL,
    analysis_rows  INT UNSIGNED    NULL,
    labelled_rows  INT UNSIGNED    NULL COMMENT 'analysis rows whose label was known',
    chunks         INT UNSIGNED    NULL,
    -- The highest model_predictions.id when the run read its inputs.
    watermark_id   BIGINT UNSIGNED NOT NULL DEFAULT 0,
    alerts         JSON            NULL COMMENT 'chunks in alert per kind, see MonitoringResult',
    warnings       INT UNSIGNED    NULL,
    -- Why a run failed, as shown to the user (a domain message, never a stack trace).
    error_message  VARCHAR(1024)   NULL,
    PRIMARY KEY (run_id),
    KEY ix_monitoring_runs_version (model_version, status, run_id),
    CONSTRAINT ck_monitoring_run_status CHECK (status IN ('succeeded', 'failed')),
    CONSTRAINT ck_monitoring_run_trigger CHECK (run_trigger IN ('api', 'poller', 'cli'))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS monitoring_results (
    model_version           VARCHAR(40)     NOT NULL,
    chunk_start             DATETIME        NOT NULL,
    chunk_end               DATETIME        NOT NULL,
    metric                  VARCHAR(16)     NOT NULL COMMENT 'roc_auc, f1 or accuracy',
    chunk_key               VARCHAR(64)     NOT NULL,
    estimate                DOUBLE          NULL COMMENT 'CBPE estimate',
    lower_bound             DOUBLE          NULL COMMENT 'estimate - 3 sampling errors',
    upper_bound             DOUBLE          NULL,
    sampling_error          DOUBLE          NULL,
    realized                DOUBLE          NULL COMMENT 'on the chunk''s known labels',
    lower_threshold         DOUBLE          NULL,
    upper_threshold         DOUBLE          NULL,
    alert                   TINYINT(1)      NOT NULL,
    realized_alert          TINYINT(1)      NULL,
    estimate_realized_alert TINYINT(1)      NULL,
    ece                     DOUBLE          NULL COMMENT 'expected calibration error',
    chunk_rows              INT UNSIGNED    NOT NULL,
    labelled_rows           INT UNSIGNED    NOT NULL,
    run_id                  BIGINT UNSIGNED NOT NULL,
    updated_at              TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (model_version, chunk_start, chunk_end, metric),
    KEY ix_monitoring_results_run (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Univariate and multivariate drift, and the data-quality rates, per chunk.
CREATE TABLE IF NOT EXISTS monitoring_drift (
    model_version   VARCHAR(40)     NOT NULL,
    chunk_start     DATETIME        NOT NULL,
    chunk_end       DATETIME        NOT NULL,
    feature         VARCHAR(128)    NOT NULL COMMENT 'a feature, or "all features"',
    method          VARCHAR(32)     NOT NULL,
    kind            VARCHAR(16)     NOT NULL
        COMMENT 'continuous, categorical, multivariate, missing_values, unseen_values',
    chunk_key       VARCHAR(64)     NOT NULL,
    value           DOUBLE          NULL,
    sampling_error  DOUBLE          NULL,
    lower_threshold DOUBLE          NULL,
    upper_threshold DOUBLE          NULL,
    alert           TINYINT(1)      NOT NULL,
    run_id          BIGINT UNSIGNED NOT NULL,
    updated_at      TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
    PRIMARY KEY (model_version, chunk_start, chunk_end, feature, method),
    KEY ix_monitoring_drift_run (run_id)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

CREATE TABLE IF NOT EXISTS monitoring_watermark (
    consumer           VARCHAR(64)     NOT NULL,
    last_prediction_id BIGINT UNSIGNED NOT NULL,
    run_id             BIGINT UNSIGNED NULL COMMENT 'the run that advanced it',
    updated_at         TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
                                       ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (consumer)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
