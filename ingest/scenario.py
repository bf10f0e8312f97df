"""Drift scenarios shared by the history generator and the streaming simulator.

Each knob applies from a *step* on: for the generator a day index (0 = the first generated
day), for a stream a batch index (0 = the first batch). Knobs left out change nothing.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Knob(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    from_step: int = Field(0, ge=0, description="first day (generator) or batch (stream) affected")

    def active(self, step: int) -> bool:
        """Whether the knob applies at ``step``."""
        return step >= self.from_step


class CovariateDrift(_Knob):
    """The usage mix shifts: voice, SMS and data usage are scaled by these factors."""

    voice_factor: float = Field(0.6, gt=0, le=100)
    sms_factor: float = Field(1.0, gt=0, le=100)
    data_factor: float = Field(1.8, gt=0, le=100)


class ConceptDrift(_Knob):
    """The usage-to-churn relation changes.

    With probability ``strength`` a churn no longer shows in usage beforehand (and, in the
    generator, a non-churner shows the decline instead); in a stream, a row's label is
    redrawn independently of its usage.
    """

    strength: float = Field(1.0, gt=0, le=1)


class ChurnRateChange(_Knob):
    """The churn rate is multiplied by ``factor``."""

    factor: float = Field(2.0, gt=0, le=100)


class Scenario(BaseModel):
    """The drift knobs of one generated history or one stream."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    covariate_drift: CovariateDrift | None = None
    concept_drift: ConceptDrift | None = None
    churn_rate_change: ChurnRateChange | None = None
