"""Column layout of the raw CDR table `DP_CDR_Data`, as the migrations create it.

The seed's column names live here and in the raw table only; the code that reads the raw
table maps them to plain names once.
"""

from __future__ import annotations

DATE_COLUMN = "DP_DATE"
SUBSCRIBER_COLUMN = "DP_MSISDN"
LABEL_COLUMN = "PSEUDO_CHURNED"

# Whole numbers of events per subscriber and day.
COUNT_COLUMNS: tuple[str, ...] = (
    "DP_MOC_COUNT",  # outgoing calls
    "DP_MTC_COUNT",  # incoming calls
    "DP_MOSMS_COUNT",  # outgoing SMS
    "DP_MTSMS_COUNT",  # incoming SMS
    "DP_DATA_COUNT",  # data sessions (purchases)
)
# Non-negative amounts: call minutes and data megabytes.
AMOUNT_COLUMNS: tuple[str, ...] = (
    "DP_MOC_DURATION",
    "DP_MTC_DURATION",
    "DP_DATA_VOLUME",
)
USAGE_COLUMNS: tuple[str, ...] = (
    "DP_MOC_COUNT",
    "DP_MOC_DURATION",
    "DP_MTC_COUNT",
    "DP_MTC_DURATION",
    "DP_MOSMS_COUNT",
    "DP_MTSMS_COUNT",
    "DP_DATA_COUNT",
    "DP_DATA_VOLUME",
)
# Every column a loader writes, in table order (`id` is assigned by the database).
CDR_COLUMNS: tuple[str, ...] = (DATE_COLUMN, SUBSCRIBER_COLUMN, *USAGE_COLUMNS, LABEL_COLUMN)

VOICE_COLUMNS: tuple[str, ...] = (
    "DP_MOC_COUNT",
    "DP_MOC_DURATION",
    "DP_MTC_COUNT",
    "DP_MTC_DURATION",
)
SMS_COLUMNS: tuple[str, ...] = ("DP_MOSMS_COUNT", "DP_MTSMS_COUNT")
DATA_COLUMNS: tuple[str, ...] = ("DP_DATA_COUNT", "DP_DATA_VOLUME")

MSISDN_MAX_LENGTH = 32

# The processed names of the usage columns and the label, used from the Spark stage on
# (and by the EDA, so report and model speak of the same features). Mapped here, once.
PROCESSED_NAMES: dict[str, str] = {
    "DP_MOC_COUNT": "M_Out_Call_Count",
    "DP_MOC_DURATION": "M_Out_Call_Time",
    "DP_MTC_COUNT": "M_In_Call_Count",
    "DP_MTC_DURATION": "M_In_Call_Time",
    "DP_MOSMS_COUNT": "M_Out_SMS_Count",
    "DP_MTSMS_COUNT": "M_In_SMS_Count",
    "DP_DATA_COUNT": "M_Data_Count",
    "DP_DATA_VOLUME": "M_Data_Sum",
}
PROCESSED_LABEL = "Churn_Within_Horizon"
