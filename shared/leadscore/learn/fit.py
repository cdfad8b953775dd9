"""L2-penalised logistic regression with bounds on the coefficients.

Bounds are how the learner says what the domain dictates: a hard bounce never adds points (its
coefficient is at most 0), a count's thermometer steps all go one way (a monotone shape). The
penalty follows scikit-learn's `C` (loss summed over rows, 1/(2C) * ||w||^2; the intercept is not
penalised), so a grid of C values means the same thing in both.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit, log_expit


@dataclass
class Logistic:
    coef: np.ndarray
    intercept: float

    def decision_function(self, x: np.ndarray) -> np.ndarray:
        return x @ self.coef + self.intercept


def fit_logistic(
    x: np.ndarray,
    y: np.ndarray,
    c: float,
    lower: np.ndarray | None = None,
    upper: np.ndarray | None = None,
    start: np.ndarray | None = None,
) -> Logistic:
    """Minimise sum(logloss) + ||w||^2 / (2c) subject to lower <= w <= upper (per column;
    -inf/+inf for none). L-BFGS-B with the exact gradient."""
    columns = x.shape[1]
    y = y.astype(float)
    sign = 2.0 * y - 1.0

    def objective(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:columns], theta[columns]
        z = x @ w + b
        loss = -float(np.sum(log_expit(sign * z)))
        residual = expit(z) - y
        grad = np.empty(columns + 1)
        grad[:columns] = x.T @ residual + w / c
        grad[columns] = float(residual.sum())
        return loss + float(w @ w) / (2.0 * c), grad

    low = np.full(columns, -np.inf) if lower is None else np.asarray(lower, dtype=float)
    high = np.full(columns, np.inf) if upper is None else np.asarray(upper, dtype=float)
    bounds = [
        (None if np.isinf(lo) else lo, None if np.isinf(hi) else hi) for lo, hi in zip(low, high, strict=True)
    ]
    bounds.append((None, None))
    theta0 = np.zeros(columns + 1) if start is None else np.asarray(start, dtype=float).copy()
    if start is None:
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        theta0[columns] = np.log(rate / (1 - rate))
    theta0[:columns] = np.clip(theta0[:columns], low, high)
    result = minimize(
        objective,
        theta0,
        jac=True,
        method="L-BFGS-B",
        bounds=bounds,
        options={"maxiter": 2000, "gtol": 1e-7, "ftol": 1e-12},
    )
    theta = result.x
    return Logistic(coef=theta[:columns], intercept=float(theta[columns]))
