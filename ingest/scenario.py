"""Drift scenarios shared by the history generator and the streaming simulator.

Each knob applies from a *step* on: a day index. For the generator, 0 is the first generated
day; for a stream, 0 is the first streamed day (whatever the batch size, a streamed day is
emitted whole before the next begins). Knobs left out change nothing.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

UsageColumn = Literal[
    "DP_MOC_COUNT",
    "DP_MOC_DURATION",
    "DP_MTC_COUNT",
    "DP_MTC_DURATION",
    "DP_MOSMS_COUNT",
    "DP_MTSMS_COUNT",
    "DP_DATA_COUNT",
    "DP_DATA_VOLUME",
]


class _Knob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    from_step: int = Field(
        0, ge=0, description="first day affected (0 = first generated or streamed day)"
    )

    def active(self, step: int) -> bool:
        """Whether the knob applies at ``step``."""
        return step >= self.from_step


class CovariateDrift(_Knob):
    """The usage mix shifts: voice, SMS and data usage are scaled by these factors.

    With ``ramp_steps`` > 0 the drift is gradual: the factors grow geometrically from 1 and
    reach their full value on day ``from_step + ramp_steps - 1``.
    """

    voice_factor: float = Field(0.6, gt=0, le=100)
    sms_factor: float = Field(1.0, gt=0, le=100)
    data_factor: float = Field(1.8, gt=0, le=100)
    ramp_steps: int = Field(0, ge=0, le=3660, description="days to reach the full factors")

    def progress(self, step: int) -> float:
        """Share of the full (log) drift applied at ``step``: 0 before, 1 once ramped up."""
        if step < self.from_step:
            return 0.0
        if self.ramp_steps == 0:
            return 1.0
        return min(1.0, (step - self.from_step + 1) / self.ramp_steps)


class ConceptDrift(_Knob):
    """The usage-to-churn relation changes.

    With probability ``strength`` a churn no longer shows in usage beforehand, and as many
    subscribers who do not churn show a churner's decline instead (and then recover), so
    usage and the churn rate keep their distributions while usage stops predicting churn.
    """

    strength: float = Field(1.0, gt=0, le=1)


class ChurnRateChange(_Knob):
    """The churn hazard is multiplied by ``factor``; arrivals stay as they were."""

    factor: float = Field(2.0, gt=0, le=100)


class BrokenFeed(_Knob):
    """One usage column stops arriving: it reads all zero or all NULL."""

    column: UsageColumn = "DP_DATA_VOLUME"
    value: Literal["zero", "null"] = "null"


class Scenario(BaseModel):
    """The drift knobs of one generated history or one stream."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    covariate_drift: CovariateDrift | None = None
    concept_drift: ConceptDrift | None = None
    churn_rate_change: ChurnRateChange | None = None
    broken_feed: BrokenFeed | None = None

    def shifted(self, offset: int) -> Scenario:
        """The same knobs with every ``from_step`` moved ``offset`` days later."""
        updates = {
            name: knob.model_copy(update={"from_step": knob.from_step + offset})
            for name, knob in self
            if knob is not None
        }
        return self.model_copy(update=updates)

    def over(self, earlier: Scenario) -> Scenario:
        """These knobs, falling back to ``earlier``'s for the knobs this one leaves out."""
        updates = {name: knob for name, knob in self if knob is not None}
        return earlier.model_copy(update=updates)
