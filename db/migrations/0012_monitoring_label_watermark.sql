-- The poller recomputes only the chunks that changed since its last run: those with new
-- predictions (ids past last_prediction_id) and those whose labels became known. A label
-- counts once Processed_Data reaches the label delay past the prediction's date, so the
-- latest labelled date, label_cutoff, is the second watermark: when it moves, the chunks of
-- the dates it passed get their labels. It is written with last_prediction_id, in the
-- transaction that stores the run. NULL: no label known yet, or never recorded (a poller of
-- an older version), which makes the next poll recompute every chunk.
ALTER TABLE monitoring_watermark
    ADD COLUMN IF NOT EXISTS label_cutoff DATE NULL
    COMMENT 'the latest prediction date whose label counted in the run'
    AFTER last_prediction_id;
