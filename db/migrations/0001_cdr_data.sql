-- The raw call-detail records: one row per subscriber and day (or per streamed event).
CREATE TABLE IF NOT EXISTS DP_CDR_Data (
    id              BIGINT UNSIGNED  NOT NULL AUTO_INCREMENT,
    DP_DATE         DATETIME         NOT NULL,
    DP_MSISDN       VARCHAR(32)      NOT NULL,
    DP_MOC_COUNT    INT UNSIGNED     NULL COMMENT 'outgoing calls',
    DP_MOC_DURATION DOUBLE           NULL COMMENT 'outgoing call minutes',
    DP_MTC_COUNT    INT UNSIGNED     NULL COMMENT 'incoming calls',
    DP_MTC_DURATION DOUBLE           NULL COMMENT 'incoming call minutes',
    DP_MOSMS_COUNT  INT UNSIGNED     NULL COMMENT 'outgoing SMS',
    DP_MTSMS_COUNT  INT UNSIGNED     NULL COMMENT 'incoming SMS',
    DP_DATA_COUNT   INT UNSIGNED     NULL COMMENT 'data sessions / purchases',
    DP_DATA_VOLUME  DOUBLE           NULL COMMENT 'data megabytes',
    PSEUDO_CHURNED  TINYINT UNSIGNED NULL COMMENT '1 within the label horizon before churn',
    PRIMARY KEY (id),
    KEY ix_cdr_date (DP_DATE),
    KEY ix_cdr_subscriber_date (DP_MSISDN, DP_DATE),
    CONSTRAINT ck_cdr_amounts CHECK (
        (DP_MOC_DURATION IS NULL OR DP_MOC_DURATION >= 0)
        AND (DP_MTC_DURATION IS NULL OR DP_MTC_DURATION >= 0)
        AND (DP_DATA_VOLUME IS NULL OR DP_DATA_VOLUME >= 0)
    ),
    CONSTRAINT ck_cdr_label CHECK (PSEUDO_CHURNED IS NULL OR PSEUDO_CHURNED IN (0, 1))
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
