-- Per-day totals of the raw CDRs, refreshed by GetDailyCDRDataBatch.
CREATE TABLE IF NOT EXISTS DailySummary (
    summary_date          DATE            NOT NULL,
    cdr_rows              BIGINT UNSIGNED NOT NULL,
    outgoing_calls        BIGINT UNSIGNED NOT NULL,
    outgoing_call_minutes DOUBLE          NOT NULL,
    data_purchases        BIGINT UNSIGNED NOT NULL,
    data_volume_mb        DOUBLE          NOT NULL,
    refreshed_at          TIMESTAMP(3)    NOT NULL DEFAULT CURRENT_TIMESTAMP(3)
                                          ON UPDATE CURRENT_TIMESTAMP(3),
    PRIMARY KEY (summary_date)
) ENGINE = InnoDB DEFAULT CHARSET = utf8mb4;

-- Recomputes the summary of every day from startDate on (an upsert, so calling it twice
-- leaves one row per day) and returns those days.
DELIMITER //
CREATE OR REPLACE PROCEDURE GetDailyCDRDataBatch(IN startDate DATE)
BEGIN
    IF startDate IS NULL THEN
        SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'GetDailyCDRDataBatch: startDate must not be NULL';
    END IF;

    INSERT INTO DailySummary
        (summary_date, cdr_rows, outgoing_calls, outgoing_call_minutes, data_purchases, data_volume_mb)
    SELECT DATE(DP_DATE),
           COUNT(*),
           COALESCE(SUM(DP_MOC_COUNT), 0),
           COALESCE(SUM(DP_MOC_DURATION), 0),
           COALESCE(SUM(DP_DATA_COUNT), 0),
           COALESCE(SUM(DP_DATA_VOLUME), 0)
    FROM DP_CDR_Data
    WHERE DP_DATE >= startDate
    GROUP BY DATE(DP_DATE)
    ON DUPLICATE KEY UPDATE
        cdr_rows = VALUES(cdr_rows),
        outgoing_calls = VALUES(outgoing_calls),
        outgoing_call_minutes = VALUES(outgoing_call_minutes),
        data_purchases = VALUES(data_purchases),
        data_volume_mb = VALUES(data_volume_mb);

    SELECT summary_date, cdr_rows, outgoing_calls, outgoing_call_minutes, data_purchases, data_volume_mb
    FROM DailySummary
    WHERE summary_date >= startDate
    ORDER BY summary_date;
END //
DELIMITER ;
