"""BG/NBD model of repeat buying, fitted by maximum likelihood (churn baseline and CLV input).

Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "'Counting Your Customers' the Easy Way:
An Alternative to the Pareto/NBD Model". Marketing Science 24(2), 275-284.

The model describes a customer by three numbers counted from their first purchase: the number of
repeat purchases ``x`` (frequency), the time of the last one ``t_x`` (recency) and the length of
observation ``T``. :func:`rfm_summary` builds them point-in-time from a purchases table;
:class:`BGNBD` fits the four population parameters and gives, per customer, the probability of
still being active and the expected number of purchases in a coming period.

The ``lifetimes`` package implements the same model but is unmaintained (pandas < 2.3,
numpy < 2); this is a small independent implementation with the same conventions for the
summary (whole calendar days, distinct purchase days) so that its results are comparable.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import duckdb
import numpy as np
import pandas as pd
from scipy import optimize, special

from churnlens.errors import ChurnlensError

__all__ = ["BGNBD", "rfm_summary"]

PARAM_NAMES = ("r", "alpha", "a", "b")

# Parameters are optimised as logs inside these bounds (about 2e-9 .. 5e8). A fit that ends on a
# bound means the data do not identify that parameter, which is reported instead of returned.
_LOG_BOUND = 20.0
# Convergence is judged on the gradient of the mean negative log-likelihood with respect to the
# log-parameters, not on the optimiser's status flag (BFGS in lifetimes stops with "precision
# loss" at the optimum of CDNOW).
_GRAD_TOL = 1e-5
_RUNAWAY_LOG = 9.0  # e^9 ~ 8,100: no plausible BG/NBD parameter in any time unit


class BGNBD:
    """Beta-geometric / negative binomial distribution (BG/NBD) model of repeat purchases.

    Assumptions (Fader, Hardie & Lee 2005):

    1. While active, a customer buys according to a Poisson process with rate ``lambda``.
    2. ``lambda`` varies across customers as a gamma distribution with shape ``r`` and rate
       ``alpha``.
    3. After each repeat purchase a customer becomes inactive for good with probability ``p``;
       the dropout point is geometric over purchases. Customers are active at their first
       purchase, so someone with no repeat purchase is certainly still active under the model.
    4. ``p`` varies across customers as a beta distribution with parameters ``a`` and ``b``.
    5. ``lambda`` and ``p`` are independent of each other and across customers.

    Time is counted from each customer's first purchase in whatever unit the inputs use (weeks
    with :func:`rfm_summary`'s default); ``alpha`` is in that unit.

    Parameters
    ----------
    penalizer : float, default 0.0
        L2 penalty on the parameters, added to the mean negative log-likelihood as
        ``penalizer * (r**2 + alpha**2 + a**2 + b**2)`` (the same form as ``lifetimes``). Zero
        gives the plain maximum-likelihood estimate; a small positive value keeps the fit
        finite on data that do not identify every parameter.

    Attributes
    ----------
    params_ : dict of str to float
        Fitted ``r``, ``alpha``, ``a`` and ``b``.
    log_likelihood_ : float
        Total (unpenalised) log-likelihood of the training data at ``params_``.
    n_ : int
        Number of customers the model was fitted on.
    n_iter_ : int
        Optimiser iterations used.

    References
    ----------
    Fader, P. S., Hardie, B. G. S. and Lee, K. L. (2005). "'Counting Your Customers' the Easy
    Way: An Alternative to the Pareto/NBD Model". Marketing Science 24(2), 275-284.

    Examples
    --------
    >>> s = rfm_summary(purchases, cutoff="2024-07-01")  # doctest: +SKIP
    >>> model = BGNBD().fit(s["frequency"], s["recency"], s["T"])  # doctest: +SKIP
    >>> model.p_alive(s["frequency"], s["recency"], s["T"])  # doctest: +SKIP
    """

    def __init__(self, penalizer: float = 0.0):
        self.penalizer = penalizer

    def __repr__(self) -> str:
        return f"BGNBD(penalizer={self.penalizer!r})"

    # ----------------------------------------------------------------------------------------
    def fit(self, frequency: Any, recency: Any, T: Any) -> BGNBD:
        """Estimate ``r``, ``alpha``, ``a`` and ``b`` by maximum likelihood.

        Parameters
        ----------
        frequency : array-like of int
            Repeat purchases per customer (``x``), non-negative integers.
        recency : array-like of float
            Time from first to last purchase (``t_x``); 0 when ``frequency`` is 0.
        T : array-like of float
            Time from first purchase to the end of observation, at least ``recency``.

        Returns
        -------
        BGNBD
            The fitted model (``self``).

        Raises
        ------
        ChurnlensError
            On invalid inputs, on data without any repeat purchase, or when the optimiser does
            not reach a point where the gradient vanishes.
        """
        penalizer = float(self.penalizer)
        if not np.isfinite(penalizer) or penalizer < 0:
            raise ChurnlensError(f"BGNBD penalizer must be a finite number >= 0, got {penalizer!r}")
        x, tx, T_ = _check_rfm(frequency, recency, T)
        x, tx, T_ = x.ravel(), tx.ravel(), T_.ravel()
        if x.size == 0:
            raise ChurnlensError("BGNBD.fit needs at least one customer; got empty inputs")
        if not np.any(x > 0):
            raise ChurnlensError(
                "BGNBD.fit needs customers with repeat purchases: every frequency is 0, so the "
                "purchase rate and dropout parameters cannot be estimated"
            )

        def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
            return _objective(log_params, x, tx, T_, penalizer)

        bounds = [(-_LOG_BOUND, _LOG_BOUND)] * 4
        start = np.zeros(4)  # r = alpha = a = b = 1, as lifetimes starts
        result = optimize.minimize(
            objective,
            start,
            jac=True,
            method="L-BFGS-B",
            bounds=bounds,
            options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
        )
        n_iter = int(result.nit)
        log_params = np.asarray(result.x, dtype=float)
        if not _is_converged(objective, log_params):
            # A line search that gives up short of the optimum: restart from a simplex search,
            # which needs no gradient, then polish again with L-BFGS-B.
            simplex = optimize.minimize(
                lambda p: objective(p)[0],
                log_params,
                method="Nelder-Mead",
                bounds=bounds,
                options={"maxiter": 4000, "xatol": 1e-10, "fatol": 1e-14},
            )
            polished = optimize.minimize(
                objective,
                simplex.x,
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": 2000, "ftol": 1e-14, "gtol": 1e-9},
            )
            n_iter += int(simplex.nit) + int(polished.nit)
            log_params = np.asarray(polished.x, dtype=float)

        value, grad = objective(log_params)
        converged = np.isfinite(value) and np.max(np.abs(grad)) <= _GRAD_TOL
        # Parameters at the box, or beyond e^±9 while the optimiser still climbs: running away.
        at_bound = np.abs(np.abs(log_params) - _LOG_BOUND) < 1e-6
        if not converged:
            at_bound |= np.abs(log_params) >= _RUNAWAY_LOG
        if np.any(at_bound):
            names = ", ".join(
                f"{name} -> {'inf' if v > 0 else '0'} ({np.exp(v):.3g})"
                for name, v, hit in zip(PARAM_NAMES, log_params, at_bound, strict=True)
                if hit
            )
            hint = (
                "; a small penalizer (e.g. 0.001) keeps parameters from growing without bound"
                if np.any(log_params[at_bound] > 0)
                else ""
            )
            raise ChurnlensError(
                f"BGNBD fit did not converge: the likelihood keeps improving as {names}, so the "
                "data do not identify the model (a -> 0 or b -> inf: no sign of dropout; r and "
                f"alpha -> inf: no spread in purchase rates){hint}"
            )
        if not converged:
            raise ChurnlensError(
                "BGNBD fit did not converge: the likelihood gradient is still "
                f"{np.max(np.abs(grad)):.2g} (tolerance {_GRAD_TOL:g}) after {n_iter} "
                "iterations; check the inputs' time unit and scale, or try a small penalizer"
            )

        params = np.exp(log_params)
        self.params_ = {name: float(v) for name, v in zip(PARAM_NAMES, params, strict=True)}
        self.log_likelihood_ = float(np.sum(_log_likelihood(params, x, tx, T_)[0]))
        self.n_ = int(x.size)
        self.n_iter_ = n_iter
        return self

    # ----------------------------------------------------------------------------------------
    def p_alive(self, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability that each customer is still active at the end of observation.

        ``P(alive | x, t_x, T) = 1 / (1 + [x > 0] a / (b + x - 1) ((alpha + T) / (alpha + t_x))
        ** (r + x))`` (Fader, Hardie & Lee 2005, eq. 13), evaluated on the log scale.

        Parameters
        ----------
        frequency, recency, T : array-like
            As in :meth:`fit`; broadcast against each other.

        Returns
        -------
        numpy.ndarray
            Probabilities in (0, 1]; exactly 1 for customers without a repeat purchase.
        """
        params = self._fitted_params()
        x, tx, T_ = _check_rfm(frequency, recency, T)
        return _p_alive(params, x, tx, T_)

    def expected_purchases(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Expected number of purchases in the next ``t`` time units, given each history.

        ``E[Y(t) | x, t_x, T]`` of Fader, Hardie & Lee (2005, eq. 10):
        ``(a + b + x - 1) / (a - 1) * [1 - ((alpha + T) / (alpha + T + t)) ** (r + x)
        * 2F1(r + x, b + x; a + b + x - 1; t / (alpha + T + t))] * P(alive | x, t_x, T)``,
        with ``2F1`` the Gaussian hypergeometric function.

        Parameters
        ----------
        t : float or array-like
            Length of the future period, in the unit of ``recency`` and ``T``; >= 0.
        frequency, recency, T : array-like
            As in :meth:`fit`; broadcast against each other and ``t``.

        Returns
        -------
        numpy.ndarray
            Expected purchases, >= 0.
        """
        r, alpha, a, b = self._fitted_params()
        x, tx, T_ = _check_rfm(frequency, recency, T)
        t_ = _as_float_array(t, "t")
        if np.any(t_ < 0):
            raise ChurnlensError("t (the future period length) must be >= 0")
        if abs(a - 1.0) < 1e-9:
            # The closed form has a removable singularity at a = 1; step around it.
            a = 1.0 + 1e-7
        t_, x, tx, T_ = np.broadcast_arrays(t_, x, tx, T_)
        first = (a + b + x - 1.0) / (a - 1.0)
        z = t_ / (alpha + T_ + t_)
        log_ratio = (r + x) * (np.log(alpha + T_) - np.log(alpha + T_ + t_))
        second = 1.0 - np.exp(log_ratio) * special.hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        expected = first * second * _p_alive((r, alpha, a, b), x, tx, T_)
        if not np.all(np.isfinite(expected)):
            raise ChurnlensError(
                "BGNBD expected_purchases is not finite for some inputs (hypergeometric function "
                "out of range); shorten t or check the inputs' time unit"
            )
        return np.maximum(expected, 0.0)

    def p_no_purchase(self, t: Any, frequency: Any, recency: Any, T: Any) -> np.ndarray:
        """Probability of no purchase in the next ``t`` time units: the churn label's event.

        ``(1 - P(alive)) + P(alive) * ((alpha + T) / (alpha + T + t)) ** (r + x)``: a dead
        customer never buys; an active one buys at a gamma-distributed rate whose posterior
        given ``x`` purchases in ``T`` is gamma(r + x, alpha + T), so no arrival in ``t`` has
        that negative-binomial zero probability. Unlike ``1 - P(alive)``, which is 0 for every
        one-order customer, it falls with the customer's own rate and grows with ``t``.
        """
        r, alpha, _, _ = self._fitted_params()
        x, tx, T_ = _check_rfm(frequency, recency, T)
        t_ = _as_float_array(t, "t")
        if np.any(t_ < 0):
            raise ChurnlensError("t (the future period length) must be >= 0")
        alive = _p_alive(self._fitted_params(), x, tx, T_)
        quiet = np.exp((r + x) * (np.log(alpha + T_) - np.log(alpha + T_ + t_)))
        return (1.0 - alive) + alive * quiet

    # ----------------------------------------------------------------------------------------
    def _fitted_params(self) -> tuple[float, float, float, float]:
        if not hasattr(self, "params_"):
            raise ChurnlensError(
                "This BGNBD instance is not fitted yet: call fit(frequency, recency, T) first"
            )
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]


# BTYD parameters (BG/NBD's and Gamma-Gamma's) describe the population, not a customer: a
# fixed sample of this many customers estimates them about as well as all of them would (see
# benchmarks/results/btyd_fit.md) at a tenth of the cost at a million. Every customer is scored.
FIT_CUSTOMERS = 100_000


def fit_sample_sql(relation: str, columns: list[str], size: int = FIT_CUSTOMERS, by=None) -> str:
    """SQL (DuckDB's dialect; Spark runs it transpiled) selecting `columns` of the rows of
    `relation` (one per customer_id, or per customer_id and `by`) that a BTYD fit sees: per
    `by`, all of them up to `size`, else the `size` first by the md5 of the id as text — a
    fixed sample that any engine draws alike, from the rows in any order."""
    within = f"PARTITION BY {by} " if by else ""
    draw = f"row_number() OVER ({within}ORDER BY md5(CAST(customer_id AS VARCHAR)), customer_id)"
    kept = ", ".join(columns)
    return f"SELECT {kept} FROM (SELECT {kept}, {draw} AS _draw FROM {relation}) AS _drawn " + (
        f"WHERE _draw <= {int(size)}"
    )


def fit_sample(summary: pd.DataFrame, size: int = FIT_CUSTOMERS) -> pd.DataFrame:
    """The rows of a per-customer summary (indexed by customer) that a BTYD fit sees
    (`fit_sample_sql`): all of them up to `size`, else a fixed sample of `size`, sorted."""
    if len(summary) <= size:
        return summary
    keys = pd.DataFrame({"customer_id": summary.index, "_at": np.arange(len(summary))})
    with duckdb.connect() as con:
        con.register("keys_in", keys)
        found = con.sql(fit_sample_sql("keys_in", ["_at"], size)).fetchnumpy()["_at"]
    return summary.iloc[np.sort(found)].sort_index()


# ------------------------------------------------------------------------------------------------
# Summary of a purchases table
# ------------------------------------------------------------------------------------------------
def rfm_sql(unit_days: float, cutoffs: str, completed: str = "TRUE", monetary: bool = False) -> str:
    """The summary's one definition (see `rfm_summary`), as SQL in DuckDB's dialect that Spark
    runs transpiled: one row per cutoff of the relation `cutoffs` (column `cutoff`) and
    customer with a purchase in `purchases_in` before it for which `completed` (a condition
    over `p` and `c.cutoff`) holds. Calendar days are those of the session's time zone. With
    `monetary`, also Gamma-Gamma's input: the mean spend per repeat purchase day (NULL
    without one), summed as DECIMAL(18, 4) so that every engine gets the same sums."""
    spend = ", sum(CAST(p.amount AS DECIMAL(18, 4))) AS spend" if monetary else ""
    mean = (
        ", CASE WHEN count(*) > 1 THEN CAST(sum(spend) - arg_min(spend, day) AS DOUBLE) "
        "/ (count(*) - 1) END AS monetary"
        if monetary
        else ""
    )
    unit = float(unit_days)
    return f"""WITH _days AS (
    SELECT c.cutoff, p.customer_id, CAST(p.ordered_at AS DATE) AS day{spend}
    FROM purchases_in p JOIN {cutoffs} c ON p.ordered_at < c.cutoff AND {completed}
    GROUP BY c.cutoff, p.customer_id, CAST(p.ordered_at AS DATE))
SELECT cutoff, customer_id,
    CAST(count(*) - 1 AS DOUBLE) AS frequency,
    date_diff('day', min(day), max(day)) / {unit} AS recency,
    date_diff('day', min(day), CAST(cutoff - INTERVAL 1 MICROSECOND AS DATE)) / {unit} AS T{mean}
FROM _days GROUP BY cutoff, customer_id"""


def rfm_summary(
    purchases: pd.DataFrame,
    cutoff: Any,
    unit_days: float = 7.0,
    customer_ids: Iterable[Hashable] | None = None,
) -> pd.DataFrame:
    """Frequency, recency and age per customer from purchases strictly before ``cutoff``.

    Follows ``lifetimes.utils.summary_data_from_transaction_data`` with daily periods: each
    purchase is placed on its calendar day, and

    - ``frequency`` = number of distinct purchase days - 1 (repeat purchase days);
    - ``recency`` = days from the first to the last purchase day, divided by ``unit_days``;
    - ``T`` = days from the first purchase day to the last observed day, divided by
      ``unit_days``. The last observed day is the calendar day of the last instant before the
      cutoff, i.e. the day before a midnight cutoff. A cutoff of 1997-10-01 therefore matches
      ``lifetimes``' ``observation_period_end="1997-09-30"``: purchases on 09-30 count and T is
      measured to the start of 09-30, so ``recency <= T`` holds for every customer.

    Calendar days are those of ``ordered_at``'s time zone (wall-clock dates, so a
    daylight-saving change does not turn a day into 23 or 25 hours). The definition is SQL
    (`rfm_sql`), run here by DuckDB; the BTYD features run the same on DuckDB or Spark.

    Parameters
    ----------
    purchases : pandas.DataFrame
        Completed purchases with columns ``customer_id`` and ``ordered_at`` (datetime64).
    cutoff : datetime-like
        Point in time; only rows with ``ordered_at < cutoff`` are used.
    unit_days : float, default 7.0
        Length of the time unit in days (7 gives weeks).
    customer_ids : iterable, optional
        Customers to report, in this order; customers without purchases before the cutoff get
        NaN rows. By default every customer with a purchase before the cutoff, sorted.

    Returns
    -------
    pandas.DataFrame
        Index ``customer_id``; float columns ``frequency``, ``recency``, ``T``.
    """
    missing = [c for c in ("customer_id", "ordered_at") if c not in purchases.columns]
    if missing:
        raise ChurnlensError(f"rfm_summary: purchases table lacks column(s) {missing}")
    if not pd.api.types.is_datetime64_any_dtype(purchases["ordered_at"]):
        raise ChurnlensError(
            "rfm_summary: purchases.ordered_at must be datetime64, got "
            f"{purchases['ordered_at'].dtype}; parse it with pandas.to_datetime first"
        )
    unit = float(unit_days)
    if not np.isfinite(unit) or unit <= 0:
        raise ChurnlensError(f"rfm_summary: unit_days must be a positive number, got {unit_days!r}")
    try:
        cutoff_ts = pd.Timestamp(cutoff)
    except (TypeError, ValueError) as exc:
        raise ChurnlensError(f"rfm_summary: cutoff {cutoff!r} is not a point in time") from exc
    if pd.isna(cutoff_ts):
        raise ChurnlensError("rfm_summary: cutoff is missing (NaT)")
    ordered_at = purchases["ordered_at"]
    n_missing = int(ordered_at.isna().sum())
    if n_missing:
        raise ChurnlensError(
            f"rfm_summary: {n_missing} purchase(s) have no ordered_at, so they cannot be placed "
            "before or after the cutoff"
        )
    zone = ordered_at.dt.tz
    if (zone is None) != (cutoff_ts.tz is None):
        raise ChurnlensError(
            "rfm_summary: cutoff and ordered_at must both be timezone-aware or both naive "
            f"(cutoff {cutoff_ts}, ordered_at {ordered_at.dtype})"
        )
    with duckdb.connect() as con:
        con.execute(f"SET TimeZone = '{zone or 'UTC'}'")
        con.register("purchases_in", purchases[["customer_id", "ordered_at"]])
        con.register("cutoffs_in", pd.DataFrame({"cutoff": [cutoff_ts]}))
        found = con.sql(rfm_sql(unit, "cutoffs_in")).df()
    summary = found.set_index("customer_id").sort_index()[["frequency", "recency", "T"]]
    summary = summary.astype(float)
    summary.index.name = "customer_id"
    if customer_ids is not None:
        summary = summary.reindex(pd.Index(list(customer_ids), name="customer_id"))
    return summary


# ------------------------------------------------------------------------------------------------
# Private helpers: validation, likelihood, simulation
# ------------------------------------------------------------------------------------------------
def _as_float_array(values: Any, name: str) -> np.ndarray:
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError) as exc:
        raise ChurnlensError(f"{name} must be numeric") from exc
    bad = ~np.isfinite(arr)
    if np.any(bad):
        raise ChurnlensError(
            f"{name} has {int(bad.sum())} missing or infinite value(s); drop customers without "
            "purchases (NaN rows from rfm_summary) before using the model"
        )
    return arr


def _check_rfm(frequency: Any, recency: Any, T: Any) -> tuple[np.ndarray, ...]:
    """Validate and broadcast (x, t_x, T) with the checks of lifetimes' ``_check_inputs``."""
    x = _as_float_array(frequency, "frequency")
    tx = _as_float_array(recency, "recency")
    T_ = _as_float_array(T, "T")
    try:
        x, tx, T_ = np.broadcast_arrays(x, tx, T_)
    except ValueError as exc:
        raise ChurnlensError(
            f"frequency, recency and T have incompatible shapes {x.shape}, {tx.shape}, {T_.shape}"
        ) from exc
    for name, arr in (("frequency", x), ("recency", tx), ("T", T_)):
        if np.any(arr < 0):
            raise ChurnlensError(f"{name} has {int((arr < 0).sum())} negative value(s)")
    if np.any(x != np.round(x)):
        raise ChurnlensError("frequency must be whole numbers (repeat purchase counts)")
    too_late = tx - T_ > 1e-9 * np.maximum(1.0, T_)
    if np.any(too_late):
        raise ChurnlensError(
            f"recency is larger than T for {int(too_late.sum())} customer(s): the last purchase "
            "cannot come after the end of observation"
        )
    stray = (x == 0) & (tx != 0)
    if np.any(stray):
        raise ChurnlensError(
            f"recency must be 0 when frequency is 0; {int(stray.sum())} customer(s) have a "
            "non-zero recency without repeat purchases"
        )
    return x, tx, T_


def _log_likelihood(
    params: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray, *, gradient: bool = False
) -> tuple[np.ndarray, np.ndarray | None]:
    """Per-customer log-likelihood (Fader, Hardie & Lee 2005, eq. 6) and its parameter gradient.

    ``log L = A1 + A2 + log(exp(A3) + [x > 0] exp(A4))`` with
    ``A1 = lnG(r + x) - lnG(r) + r ln(alpha)``,
    ``A2 = lnG(a + b) + lnG(b + x) - lnG(b) - lnG(a + b + x)``,
    ``A3 = -(r + x) ln(alpha + T)`` and
    ``A4 = ln(a) - ln(b + x - 1) - (r + x) ln(alpha + t_x)``; the last sum is a log-sum-exp.
    The gradient, if asked for, is with respect to (r, alpha, a, b), shape (4, n).
    """
    r, alpha, a, b = params
    rx = r + x
    repeat = x > 0
    log_alpha_T = np.log(alpha + T)
    log_alpha_tx = np.log(alpha + tx)
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)  # only used where x > 0
    a1 = special.gammaln(rx) - special.gammaln(r) + r * np.log(alpha)
    a2 = (
        special.gammaln(a + b)
        + special.gammaln(b + x)
        - special.gammaln(b)
        - special.gammaln(a + b + x)
    )
    a3 = -rx * log_alpha_T
    a4 = np.where(repeat, np.log(a) - np.log(b_x1) - rx * log_alpha_tx, -np.inf)
    log_mix = np.logaddexp(a3, a4)
    ll = a1 + a2 + log_mix
    if not gradient:
        return ll, None

    w3 = np.exp(a3 - log_mix)  # weights of the two mixture terms, sum to 1
    w4 = np.exp(a4 - log_mix)
    psi = special.digamma
    d_r = psi(rx) - psi(r) + np.log(alpha) - w3 * log_alpha_T - w4 * log_alpha_tx
    d_alpha = r / alpha - w3 * rx / (alpha + T) - w4 * rx / (alpha + tx)
    d_a = psi(a + b) - psi(a + b + x) + w4 / a
    d_b = psi(a + b) + psi(b + x) - psi(b) - psi(a + b + x) - w4 / b_x1
    return ll, np.vstack([d_r, d_alpha, d_a, d_b])


def _objective(
    log_params: np.ndarray, x: np.ndarray, tx: np.ndarray, T: np.ndarray, penalizer: float
) -> tuple[float, np.ndarray]:
    """Mean negative log-likelihood plus L2 penalty, and its gradient in log-parameters."""
    params = np.exp(log_params)
    ll, grad = _log_likelihood(params, x, tx, T, gradient=True)
    value = -np.mean(ll) + penalizer * np.sum(params**2)
    d_params = -grad.mean(axis=1) + 2.0 * penalizer * params
    if not np.isfinite(value):
        return np.inf, np.zeros(4)
    return float(value), d_params * params  # chain rule: d/d log(theta) = theta * d/d theta


def _is_converged(objective: Any, log_params: np.ndarray) -> bool:
    value, grad = objective(log_params)
    at_bound = np.any(np.abs(np.abs(log_params) - _LOG_BOUND) < 1e-6)
    return bool(at_bound or (np.isfinite(value) and np.max(np.abs(grad)) <= _GRAD_TOL))


def _p_alive(params: Any, x: np.ndarray, tx: np.ndarray, T: np.ndarray) -> np.ndarray:
    r, alpha, a, b = params
    repeat = x > 0
    b_x1 = np.where(repeat, b + x - 1.0, 1.0)
    log_odds_dead = np.log(a) - np.log(b_x1) + (r + x) * (np.log(alpha + T) - np.log(alpha + tx))
    return np.where(repeat, special.expit(-log_odds_dead), 1.0)


def _simulate(
    params: Any, T: Any, rng: np.random.Generator | int | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Draw (frequency, recency) for customers observed for ``T`` under the BG/NBD process.

    Each customer gets ``lambda ~ Gamma(r, rate=alpha)`` and ``p ~ Beta(a, b)``; repeat purchases
    arrive as a Poisson process with rate ``lambda`` and the customer drops out right after the
    ``D``-th repeat purchase, ``D ~ Geometric(p)`` on 1, 2, .... With ``N ~ Poisson(lambda T)``
    arrivals in ``(0, T]``, ``x = min(N, D)``, and the ``x``-th of ``N`` uniform arrival times
    is ``T * Beta(x, N - x + 1)``.
    """
    r, alpha, a, b = params
    rng = np.random.default_rng(rng)
    T_ = np.asarray(T, dtype=float)
    lam = rng.gamma(shape=r, scale=1.0 / alpha, size=T_.shape)
    p = rng.beta(a, b, size=T_.shape)
    n_arrivals = rng.poisson(lam * T_)
    dropout_at = rng.geometric(np.clip(p, 1e-300, 1.0))
    x = np.minimum(n_arrivals, dropout_at)
    repeat = x > 0
    shape_a = np.where(repeat, x, 1)
    shape_b = np.where(repeat, n_arrivals - x + 1, 1)
    tx = np.where(repeat, T_ * rng.beta(shape_a, shape_b), 0.0)
    return x.astype(float), tx
