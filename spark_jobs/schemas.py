"""Explicit schemas of the Spark stage: the raw CDRs as read, and the processed table.

The seed's raw column names (`DP_*`) are mapped to the processed names here, once.
"""

from __future__ import annotations

from pyspark.sql.types import (
    DateType,
    DoubleType,
    IntegerType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from db.schema import PROCESSED_LABEL, PROCESSED_NAMES

RAW_CDR_SCHEMA = StructType(
    [
        StructField("id", LongType(), False),
        StructField("DP_DATE", TimestampType(), True),
        StructField("DP_MSISDN", StringType(), True),
        StructField("DP_MOC_COUNT", LongType(), True),
        StructField("DP_MOC_DURATION", DoubleType(), True),
        StructField("DP_MTC_COUNT", LongType(), True),
        StructField("DP_MTC_DURATION", DoubleType(), True),
        StructField("DP_MOSMS_COUNT", LongType(), True),
        StructField("DP_MTSMS_COUNT", LongType(), True),
        StructField("DP_DATA_COUNT", LongType(), True),
        StructField("DP_DATA_VOLUME", DoubleType(), True),
        StructField("PSEUDO_CHURNED", IntegerType(), True),
    ]
)

# Raw usage column -> processed column.
USAGE_MAPPING: dict[str, str] = PROCESSED_NAMES
COUNT_FEATURES = (
    "M_Out_Call_Count",
    "M_In_Call_Count",
    "M_Out_SMS_Count",
    "M_In_SMS_Count",
    "M_Data_Count",
)
AMOUNT_FEATURES = ("M_Out_Call_Time", "M_In_Call_Time", "M_Data_Sum")
USAGE_FEATURES = tuple(USAGE_MAPPING.values())
LABEL = PROCESSED_LABEL
DATE = "Date"
USER = "User"

PROCESSED_SCHEMA = StructType(
    [
        StructField(DATE, DateType(), False),
        StructField(USER, StringType(), False),
        *(
            StructField(name, LongType() if name in COUNT_FEATURES else DoubleType(), False)
            for name in USAGE_FEATURES
        ),
        StructField("Record_Count", LongType(), False),
        StructField(LABEL, IntegerType(), True),
    ]
)
