"""BTYD features: point in time on real purchases, NaN with a warning when a fit fails."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from churnlens.data.tables import Tables, result_frame
from churnlens.datasets import load_cdnow
from churnlens.features.btyd import BTYD_FEATURES, add_btyd_features, summaries, summary_sql
from churnlens.modeling.bgnbd import BGNBD, rfm_summary
from churnlens.modeling.gammagamma import GammaGamma
from shops import make_tables


@pytest.fixture(scope="module")
def sample() -> Tables:
    tables = load_cdnow("sample")
    return Tables(customers=tables["customers"], purchases=tables["purchases"])


def _frame(tables: Tables, cutoffs: list[str]) -> pd.DataFrame:
    ids = sorted(tables.customers["customer_id"])[:400]
    return pd.DataFrame(
        {
            "customer_id": ids * len(cutoffs),
            "cutoff": pd.to_datetime(np.repeat(cutoffs, len(ids))).astype("datetime64[us]"),
        }
    )


def test_features_are_those_of_a_fit_on_the_purchases_before_the_cutoff(sample):
    frame = add_btyd_features(sample, _frame(sample, ["1997-07-01"]), 90)
    summary = rfm_summary(sample.purchases, "1997-07-01")
    model = BGNBD(0.001).fit(summary["frequency"], summary["recency"], summary["T"])
    own = summary.reindex(frame["customer_id"])
    known = own["frequency"].notna().to_numpy()
    x, tx, T = (own[c].to_numpy()[known] for c in ("frequency", "recency", "T"))
    np.testing.assert_allclose(frame["bgnbd_p_alive"][known], model.p_alive(x, tx, T))
    np.testing.assert_allclose(
        frame["bgnbd_p_no_purchase"][known], model.p_no_purchase(90 / 7, x, tx, T)
    )
    assert frame.loc[~known, list(BTYD_FEATURES)].isna().all().all()
    assert known.mean() > 0.9  # CDNOW's cohort all bought in the first quarter of 1997


@settings(max_examples=8, deadline=None)
@given(
    cutoff=st.sampled_from(["1997-04-15", "1997-09-01", "1998-01-01"]),
    seed=st.integers(0, 2**32 - 1),
    drop=st.floats(0, 1),
    shift_days=st.integers(0, 200),
)
def test_rows_at_or_after_the_cutoff_never_change_btyd_features(
    sample, cutoff, seed, drop, shift_days
):
    frame = _frame(sample, [cutoff])
    original = add_btyd_features(sample, frame, 90)
    rng = np.random.default_rng(seed)
    purchases = sample.purchases
    late = purchases["ordered_at"] >= pd.Timestamp(cutoff)
    kept = purchases[~late | (rng.random(len(purchases)) > drop)].copy()
    moved = kept["ordered_at"] >= pd.Timestamp(cutoff)
    kept.loc[moved, "ordered_at"] += pd.Timedelta(days=shift_days)
    extra = purchases.sample(50, random_state=seed % 1000).assign(
        ordered_at=pd.Timestamp(cutoff) + pd.Timedelta(days=int(rng.integers(0, 300)))
    )
    changed = pd.concat([kept, extra], ignore_index=True)
    # a refund at or after the cutoff: the purchase was still completed at it
    refund = (changed["ordered_at"] < pd.Timestamp(cutoff)) & (rng.random(len(changed)) < 0.2)
    changed["status"] = np.where(refund, "refunded", "completed")
    refunded_at = pd.Timestamp(cutoff) + pd.Timedelta(days=shift_days)
    changed["refunded_at"] = pd.Series(refunded_at, index=changed.index).where(refund)
    changed = Tables(sample.customers, changed)
    pd.testing.assert_frame_equal(original, add_btyd_features(changed, frame, 90))


@pytest.mark.parametrize(
    "cutoff",
    [
        pd.Timestamp("1997-07-01") + pd.Timedelta(nanoseconds=1),
        pd.Timestamp("1997-07-01 02:00", tz="Europe/Berlin"),
    ],
    ids=["nanoseconds", "time zone"],
)
def test_a_cutoff_of_any_pandas_type_finds_the_summary_the_spines_own_cutoff_does(sample, cutoff):
    """`summaries` joins the summary over the cutoffs written as literals (`cutoffs_sql`) to
    the spine. A cutoff with nanoseconds or a time zone (DuckDB keeps both) written as a plain
    TIMESTAMP joined nothing: every customer lost their BTYD features. It must find what the
    summary over the spine's own cutoffs (Spark's call) finds."""
    frame = _frame(sample, ["1997-07-01"])
    frame["cutoff"] = cutoff
    with sample.connect() as con:
        _, rows = summaries(con, frame)
    with sample.connect() as con:
        con.register("spine_in", frame)
        own = result_frame(
            con.sql(
                "SELECT b.frequency, b.recency, b.T FROM spine_in s LEFT JOIN "
                f"({summary_sql([])}) b USING (customer_id, cutoff) ORDER BY s.customer_id"
            )
        )
    assert rows["frequency"].notna().mean() > 0.9
    np.testing.assert_array_equal(rows[["frequency", "recency", "T"]], own)


def test_a_failed_fit_gives_missing_features_and_a_warning(caplog):
    tables = make_tables(
        customers={"customer_id": ["a", "b"], "signup_at": ["2024-01-01"] * 2},
        purchases={
            "order_id": ["o1", "o2"],
            "customer_id": ["a", "b"],
            "ordered_at": ["2024-01-05", "2024-02-01"],
            "amount": [1.0, 1.0],
        },
    )
    frame = pd.DataFrame({"customer_id": ["a", "b"], "cutoff": pd.to_datetime(["2024-03-01"] * 2)})
    with caplog.at_level(logging.WARNING):
        out = add_btyd_features(tables, frame, 30)
    assert out[list(BTYD_FEATURES)].isna().all().all()
    assert "BTYD features at cutoff 2024-03-01 are missing" in caplog.text
    assert "repeat purchases" in caplog.text


def _repeat_spend(purchases: pd.DataFrame, cutoff: str) -> pd.DataFrame:
    """Repeat purchase days and their mean spend per customer, as lifetimes summarises them."""
    before = purchases[purchases["ordered_at"] < pd.Timestamp(cutoff)]
    daily = before.groupby(["customer_id", before["ordered_at"].dt.normalize()])["amount"].sum()
    daily = daily.reset_index()
    repeat = daily[daily.groupby("customer_id").cumcount() > 0]
    spend = repeat.groupby("customer_id")["amount"].agg(["count", "mean"])
    return spend.reindex(daily["customer_id"].unique()).fillna({"count": 0})


def test_gamma_gamma_reproduces_the_published_cdnow_fit(sample):
    # lifetimes' GammaGammaFitter on the CDNOW sample's 39 calibration weeks (946 customers
    # with repeats): p 6.25, q 3.74, v 15.45
    spend = _repeat_spend(sample.purchases, "1997-10-01")
    params = GammaGamma().fit(spend["count"], spend["mean"]).params_
    assert (spend["count"] > 0).sum() == 946
    assert params["p"] == pytest.approx(6.25, abs=0.01)
    assert params["q"] == pytest.approx(3.74, abs=0.01)
    assert params["v"] == pytest.approx(15.45, abs=0.02)


def test_expected_spend_is_a_gamma_gamma_fit_before_the_cutoff(sample):
    frame = add_btyd_features(sample, _frame(sample, ["1997-07-01"]), 90)
    spend = _repeat_spend(sample.purchases, "1997-07-01")
    model = GammaGamma().fit(spend["count"], spend["mean"])
    own = spend.reindex(frame["customer_id"])
    bought = own["count"].notna().to_numpy()
    expected = model.expected_spend(own["count"][bought], own["mean"][bought])
    np.testing.assert_allclose(frame["gg_expected_spend"][bought], expected)
    p, q, v = (model.params_[k] for k in ("p", "q", "v"))
    no_repeat = bought & (own["count"] == 0).to_numpy()
    assert no_repeat.any()
    np.testing.assert_allclose(frame["gg_expected_spend"][no_repeat], p * v / (q - 1))
    assert frame.loc[~bought, "gg_expected_spend"].isna().all()
