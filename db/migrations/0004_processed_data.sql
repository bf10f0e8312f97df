-- The analysis job's output: one row per subscriber and day, in the seed's processed schema.
CREATE TABLE IF NOT EXISTS Processed_Data (
    `Date`               DATE             NOT NULL,
    `User`               VARCHAR(32)      NOT NULL,
    M_Out_Call_Count     BIGINT UNSIGNED  NOT NULL,
    M_Out_Call_Time      DOUBLE           NOT NULL COMMENT 'minutes',
    M_In_Call_Count      BIGINT UNSIGNED  NOT NULL,
    M_In_Call_Time       DOUBLE           NOT NULL COMMENT 'minutes',
    M_Out_SMS_Count      BIGINT UNSIGNED  NOT NULL,
    M_In_SMS_Count       BIGINT UNSIGNED  NOT NULL,
    M_Data_Count         BIGINT UNSIGNED  NOT NULL COMMENT 'data sessions / purchases',
    M_Data_Sum           DOUBLE           NOT NULL COMMENT 'data megabytes',
    Record_Count         INT UNSIGNED     NOT NULL COMMENT 'raw CDR rows aggregated',
    -- PSEUDO_CHURNED of the raw data: the subscriber churns within the label horizon.
    Churn_Within_Horizon TINYINT UNSIGNED NULL,
    PRIMARY KEY (`Date`, `User`),
    KEY ix_processed_user_date (`User`, `Date`)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;
