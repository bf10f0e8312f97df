"""What to monitor and how to cut it: the column mapping and the chunking, validated once.

Both models refuse unknown keys, so a typo in a mapping file or a request body is an error that
names the key rather than a silently ignored setting.
"""

from __future__ import annotations

from typing import Any, Literal, Self, get_args

from pydantic import BaseModel, ConfigDict, Field, model_validator

ChunkPeriod = Literal["D", "W", "M"]
ContinuousMethod = Literal["jensen_shannon", "kolmogorov_smirnov"]
CategoricalMethod = Literal["jensen_shannon", "chi2"]

CHUNK_PERIODS: tuple[str, ...] = get_args(ChunkPeriod)
CONTINUOUS_METHODS: tuple[str, ...] = get_args(ContinuousMethod)
CATEGORICAL_METHODS: tuple[str, ...] = get_args(CategoricalMethod)
DEFAULT_CHUNK_PERIOD: ChunkPeriod = "D"
DEFAULT_CONTINUOUS_METHOD: ContinuousMethod = "jensen_shannon"
DEFAULT_CATEGORICAL_METHOD: CategoricalMethod = "jensen_shannon"
# Below a few hundred rows the sampling error of ROC AUC exceeds 0.03 and drift statistics
# are mostly noise: such chunks are still reported, with a warning.
MIN_CHUNK_ROWS = 300

_Name = Field(min_length=1)


class ColumnMapping(BaseModel):
    """Which column of the prediction frames plays which role.

    Attributes:
        y_true: The label (0/1). Required in the reference; in the analysis a missing value means
            the label is not known yet.
        y_pred_proba: The model's score for class 1, in [0, 1].
        y_pred: The model's decision (0/1) that F1 and accuracy are computed on.
        timestamp: When the prediction was made; chunks are cut along it.
        id: Identifies a prediction; joins late-arriving labels onto the analysis.
        features: The model's inputs, in any order.
        categorical: The features to treat as categorical, a subset of ``features``; every other
            feature is continuous. Declared, never inferred from dtypes, so a numeric region code
            stays categorical.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    y_true: str = _Name
    y_pred_proba: str = _Name
    y_pred: str = _Name
    timestamp: str = _Name
    id: str | None = Field(default=None, min_length=1)
    features: list[str] = Field(min_length=1)
    categorical: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_roles(self) -> Self:
        roles = [self.y_true, self.y_pred_proba, self.y_pred, self.timestamp]
        if self.id is not None:
            roles.append(self.id)
        repeated_roles = _repeated(roles)
        if repeated_roles:
            raise ValueError(f"a column cannot play two roles: {repeated_roles}")
        repeated_features = _repeated(self.features)
        if repeated_features:
            raise ValueError(f"features lists {repeated_features} more than once")
        if any(not name for name in self.features):
            raise ValueError("features holds an empty column name")
        role_features = [name for name in self.features if name in roles]
        if role_features:
            raise ValueError(f"features {role_features} are also label, score, timestamp or id")
        repeated_categorical = _repeated(self.categorical)
        if repeated_categorical:
            raise ValueError(f"categorical lists {repeated_categorical} more than once")
        unknown = [name for name in self.categorical if name not in self.features]
        if unknown:
            raise ValueError(f"categorical {unknown} are not listed in features")
        return self

    @property
    def continuous(self) -> list[str]:
        """The features that are not categorical, in ``features`` order."""
        categorical = set(self.categorical)
        return [name for name in self.features if name not in categorical]


class Chunking(BaseModel):
    """How predictions are grouped into chunks: by calendar period or by a number of rows.

    Exactly one of ``period`` and ``size`` is set. Giving ``size`` alone drops the default period,
    so ``Chunking(size=5000)`` means chunks of 5,000 rows.

    Attributes:
        period: "D" (day), "W" (week, Monday to Sunday) or "M" (calendar month).
        size: Rows per chunk, in timestamp order; the last chunk holds the remainder.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    period: ChunkPeriod | None = DEFAULT_CHUNK_PERIOD
    size: int | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _size_replaces_default_period(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("size") is not None and "period" not in data:
            return {**data, "period": None}
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Self:
        if (self.period is None) == (self.size is None):
            raise ValueError("set exactly one of period and size")
        return self

    def describe(self) -> dict[str, str | int]:
        """The chunking as it appears in reports: ``{"period": "D"}`` or ``{"size": 5000}``."""
        if self.size is not None:
            return {"size": self.size}
        assert self.period is not None
        return {"period": self.period}


def _repeated(names: list[str]) -> list[str]:
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated


AlertDirection = Literal["lower", "both"]
ALERT_DIRECTIONS: tuple[str, ...] = get_args(AlertDirection)


class AlertPolicy(BaseModel):
    """How alert thresholds are set, and so how often a clean stream raises a false alarm.

    Every threshold comes from a bootstrap of the reference (see
    `monitoring.compute.thresholds`): ``bootstrap_samples`` chunk-sized resamples of the
    reference give each statistic's chunk-to-chunk spread on data that did not drift, and the
    threshold sits where a clean chunk crosses it with the stated probability.

    Attributes:
        direction: ``lower`` alerts on a performance drop only; ``both`` also on a rise.
        performance_rate: False-alarm rate per chunk of the performance thresholds, all
            metrics and the realized calibration together (split evenly between them,
            Bonferroni).
        univariate_rate: False-alarm rate per chunk of the univariate drift thresholds, all
            features together (each feature tested at ``univariate_rate / features``).
        multivariate_rate: False-alarm rate per chunk of the multivariate drift threshold.
        quality_rate: False-alarm rate per chunk of the zero-share thresholds, all continuous
            features together (Bonferroni, like ``univariate_rate``).
        bootstrap_samples: Resampled reference chunks.
        seed: Seed of the resampling, so a run is reproducible.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    direction: AlertDirection = "lower"
    performance_rate: float = Field(0.01, gt=0, lt=1)
    univariate_rate: float = Field(0.05, gt=0, lt=1)
    multivariate_rate: float = Field(0.01, gt=0, lt=1)
    quality_rate: float = Field(0.01, gt=0, lt=1)
    bootstrap_samples: int = Field(200, ge=20, le=5000)
    seed: int = Field(0, ge=0)
