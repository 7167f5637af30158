"""Model training: linear or logistic regression by batch gradient descent, in pure Python."""

import math
import random
from typing import Annotated

from ..parameters import Between, MaxItems
from .registry import job_task


def _predict(weights: list[float], bias: float, row: list[float], logistic: bool) -> float:
    z = bias + sum(w * x for w, x in zip(weights, row, strict=True))
    if not logistic:
        return z
    return 1 / (1 + math.exp(-z)) if z >= 0 else math.exp(z) / (1 + math.exp(z))


def _loss(weights, bias, features, targets, logistic: bool) -> float:
    total = 0.0
    for row, target in zip(features, targets, strict=True):
        prediction = _predict(weights, bias, row, logistic)
        if logistic:
            p = min(max(prediction, 1e-12), 1 - 1e-12)
            total -= target * math.log(p) + (1 - target) * math.log(1 - p)
        else:
            total += (prediction - target) ** 2
    return total / len(features)


@job_task(
    name="jobs.tasks.model_tasks.train_model",
    aliases=("app.tasks.model_tasks.train_model", "train_model"),
    time_limit=3600,
)
def train_model(
    self,
    features: Annotated[list[list], MaxItems(50_000)],
    targets: Annotated[list, MaxItems(50_000)],
    kind: str = "linear",
    epochs: Annotated[int, Between(1, 100_000)] = 100,
    learning_rate: Annotated[float, Between(1e-9, 10)] = 0.1,
    seed: int = 0,
) -> dict:
    """Train linear (`kind="linear"`, squared loss) or logistic (`kind="logistic"`, log loss)
    regression by gradient descent. Reports progress and loss every epoch; returns the weights,
    bias, final loss and the loss curve."""
    if kind not in ("linear", "logistic"):
        raise ValueError(f"kind must be 'linear' or 'logistic', got {kind!r}")
    if not features or len(features) != len(targets):
        raise ValueError("features and targets must be non-empty and of the same length")
    width = len(features[0])
    if width == 0 or any(len(row) != width for row in features):
        raise ValueError("every feature row must have the same, non-zero length")
    rows = [[float(x) for x in row] for row in features]
    ys = [float(y) for y in targets]
    logistic = kind == "logistic"
    if logistic and any(y not in (0.0, 1.0) for y in ys):
        raise ValueError("logistic regression needs targets of 0 or 1")

    rng = random.Random(seed)
    weights = [rng.uniform(-0.01, 0.01) for _ in range(width)]
    bias, n, history = 0.0, len(rows), []
    for epoch in range(1, epochs + 1):
        grad_w, grad_b = [0.0] * width, 0.0
        for row, target in zip(rows, ys, strict=True):
            error = _predict(weights, bias, row, logistic) - target
            for j, x in enumerate(row):
                grad_w[j] += error * x
            grad_b += error
        scale = (2.0 if not logistic else 1.0) * learning_rate / n
        weights = [w - scale * g for w, g in zip(weights, grad_w, strict=True)]
        bias -= scale * grad_b
        loss = _loss(weights, bias, rows, ys, logistic)
        if not math.isfinite(loss):
            raise ArithmeticError(f"training diverged at epoch {epoch}: lower the learning rate")
        history.append(round(loss, 8))
        self.progress(epoch * 100 // epochs, f"epoch {epoch}/{epochs} loss {loss:.6f}", epoch=epoch, loss=loss)
    result = {
        "kind": kind,
        "weights": weights,
        "bias": bias,
        "loss": history[-1],
        "epochs": epochs,
        "loss_history": history if len(history) <= 1000 else history[:: len(history) // 1000],
    }
    if logistic:
        correct = sum(
            (_predict(weights, bias, row, True) >= 0.5) == (y == 1.0) for row, y in zip(rows, ys, strict=True)
        )
        result["accuracy"] = correct / n
    return result
