"""Ground truth: a late label joined to the prediction a version made, and what labels add up to.

Pure. The router remembers, per request id, the first prediction of each answer
(a class label as text, or a regression value as a float); when the true label
arrives (``POST /admin/feedback``) ``score`` says whether the prediction was right
(classifiers) or how far off it was (regressors), and a ``LabelTally`` per variant adds
those up over the feedback window into an accuracy and a mean absolute error.

``parse_feedback`` checks a feedback document: one object ``{"request_id": ID,
"label": VALUE}`` or a list of them; anything else is a ``FeedbackError`` naming
the item and field at fault.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strategies.units import Duration

__all__ = [
    "MAX_LABEL_CHARS",
    "FeedbackError",
    "FeedbackItem",
    "FeedbackSpec",
    "Label",
    "LabelTally",
    "Prediction",
    "Score",
    "accuracy_line",
    "parse_feedback",
    "score",
]

MAX_LABEL_CHARS = 64  # as the inspector cuts predicted labels
MAX_REQUEST_ID_CHARS = 1024  # as the proxy keeps an X-Request-Id (router.proxy.entry)

Prediction = str | float
"""What an answer predicted: a class label (text) or a regression value."""

Label = str | int | float | bool
"""A true label as sent: text, integer or boolean for classifiers, a number for regressors."""

Score = Literal["correct", "wrong", "scored"]
"""``correct``/``wrong`` for a class label; ``scored`` for a regression value (see its error)."""


class FeedbackSpec(BaseModel):
    """A route's ``feedback`` section: how many predictions to remember, and the accuracy window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    keep: Annotated[int, Field(ge=1, le=10_000_000)] = 100_000
    window: Annotated[Duration, Field(gt=0)] = 3600.0


class FeedbackError(ValueError):
    """A malformed feedback document; the message names the item and field at fault."""


@dataclass(frozen=True, slots=True)
class FeedbackItem:
    """One true label for the prediction answered to ``request_id``."""

    request_id: str
    label: Label


def _item(doc: Any, where: str) -> FeedbackItem:
    if type(doc) is not dict:
        raise FeedbackError(f"{where}: must be an object with request_id and label")
    request_id = doc.get("request_id")
    if type(request_id) is not str or not request_id:
        raise FeedbackError(f"{where}request_id: must be a non-empty string")
    if len(request_id) > MAX_REQUEST_ID_CHARS:
        raise FeedbackError(f"{where}request_id: longer than {MAX_REQUEST_ID_CHARS} characters")
    if "label" not in doc:
        raise FeedbackError(f"{where}label: missing")
    label = doc["label"]
    if type(label) not in (str, int, float, bool):
        raise FeedbackError(f"{where}label: must be a string, number or boolean")
    if type(label) is float and not math.isfinite(label):
        raise FeedbackError(f"{where}label: must be a finite number")
    unknown = doc.keys() - {"request_id", "label"}
    if unknown:
        raise FeedbackError(f"{where}{sorted(unknown)[0]}: unknown field")
    return FeedbackItem(request_id, label)


def parse_feedback(doc: Any) -> list[FeedbackItem]:
    """The items of a feedback document (an object or a non-empty list of objects)."""
    if type(doc) is dict:
        return [_item(doc, "")]
    if type(doc) is not list:
        raise FeedbackError("body: must be an object or a list of objects")
    if not doc:
        raise FeedbackError("body: the list is empty")
    return [_item(entry, f"[{i}].") for i, entry in enumerate(doc)]


def _as_text(label: Label) -> str:
    """A label written the way the inspector writes predicted labels."""
    if type(label) is bool:
        return "true" if label else "false"
    if type(label) is float and label.is_integer():
        return str(int(label))
    return str(label)[:MAX_LABEL_CHARS]


def score(prediction: Prediction, label: Label) -> tuple[Score, float]:
    """Judge ``prediction`` against the true ``label``: the verdict and the absolute error.

    A class label is ``correct`` when the texts agree (``1``, ``1.0`` and ``"1"``
    are the same class), else ``wrong``; the error is 0 or 1. A regression value
    is ``scored`` with ``|prediction - label|``; a label that is not a number
    cannot be close to one, so that is ``wrong``.
    """
    if type(prediction) is str:
        right = prediction == _as_text(label)
        return ("correct" if right else "wrong"), (0.0 if right else 1.0)
    if type(label) in (int, float):
        return "scored", abs(float(prediction) - float(label))
    return "wrong", 1.0


@dataclass(frozen=True, slots=True)
class LabelTally:
    """Labels joined to one variant's predictions over a window, and what they say."""

    correct: int = 0
    wrong: int = 0
    scored: int = 0
    abs_error: float = 0.0  # sum over the scored labels

    @property
    def labels(self) -> int:
        """Labels joined: classified plus scored."""
        return self.correct + self.wrong + self.scored

    @property
    def accuracy(self) -> float | None:
        """Correct over classified labels; ``None`` with none."""
        judged = self.correct + self.wrong
        return self.correct / judged if judged else None

    @property
    def mae(self) -> float | None:
        """Mean absolute error of the scored (regression) labels; ``None`` with none."""
        return self.abs_error / self.scored if self.scored else None

    def plus(self, other: LabelTally) -> LabelTally:
        """The sum of two tallies."""
        return LabelTally(
            self.correct + other.correct,
            self.wrong + other.wrong,
            self.scored + other.scored,
            self.abs_error + other.abs_error,
        )

    def render(self) -> dict[str, Any]:
        """The status's view: counts, accuracy and MAE."""
        return {
            "labels": self.labels,
            "correct": self.correct,
            "wrong": self.wrong,
            "scored": self.scored,
            "accuracy": self.accuracy,
            "mae": self.mae,
        }


def accuracy_line(feedback: Any) -> str:
    """``candidate 72.6% (388) · stable 94.0% (412)`` from a status's ``feedback``, or ''.

    Regressors show their mean absolute error instead: ``default MAE 2.5 (40)``.
    """
    variants = feedback.get("variants") if isinstance(feedback, Mapping) else None
    if not isinstance(variants, Mapping):
        return ""
    parts = []
    for variant, tally in variants.items():
        if not isinstance(tally, Mapping):
            continue
        accuracy, mae, labels = tally.get("accuracy"), tally.get("mae"), tally.get("labels", 0)
        if isinstance(accuracy, float | int):
            parts.append(f"{variant} {accuracy * 100:.1f}% ({labels})")
        elif isinstance(mae, float | int):
            parts.append(f"{variant} MAE {mae:.4g} ({labels})")
    return " · ".join(parts)
