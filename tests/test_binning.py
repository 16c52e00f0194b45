"""EqualCountBinner: the one equal-count binner (tie rule, boundary rule, refit invariants)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.exceptions import NotFittedError

from calib_harness.binning import EqualCountBinner
from calib_harness.records import load_records_jsonl


@pytest.fixture(scope="module")
def saturated(fixtures_dir) -> np.ndarray:
    """Real ARC-Easy confidences of SmolLM2 plus as many again at exactly 1.0 (a third of the whole):
    the shape of a strong model that is certain on a third of the questions."""
    conf = load_records_jsonl(fixtures_dir / "records" / "arc_easy_dev_smollm2.jsonl").confidences()
    assert (conf < 1.0).all()
    ones = np.ones(conf.size // 2)
    x = np.r_[conf, ones]
    np.random.default_rng(0).shuffle(x)
    assert (x == 1.0).mean() == pytest.approx(1 / 3)
    return x


def test_third_of_values_at_one_get_one_bin(saturated):
    b = EqualCountBinner(15).fit(saturated)
    labels = b.labels_
    top = labels[saturated == 1.0]
    # every 1.0 sits in the same, last, bin and nothing else does
    assert np.unique(top).tolist() == [b.n_bins_ - 1]
    assert (labels[saturated < 1.0] < b.n_bins_ - 1).all()
    assert b.counts_[-1] == (saturated == 1.0).sum()
    # the other values keep (near) equal-count bins: 200 values in 10 bins of 20
    assert b.n_bins_ == 11
    assert b.counts_[:-1].tolist() == [20] * 10
    # equal values never straddle a boundary
    for v in np.unique(saturated):
        assert np.unique(labels[saturated == v]).size == 1
    assert np.array_equal(b.transform(saturated), labels)


def test_boundary_rule_and_out_of_range():
    b = EqualCountBinner(2).fit([0.1, 0.2, 0.3, 0.4])
    assert b.edges_.tolist() == [0.1, pytest.approx(0.25), 0.4]
    # right-closed bins: a value equal to the inner edge goes to the lower bin
    assert b.transform([0.25, 0.2500001, -3.0, 7.0]).tolist() == [0, 1, 0, 1]
    # adjacent floats: the midpoint rounds onto one of them; the lower one still goes low
    a = 0.5
    nxt = np.nextafter(a, 1.0)
    b2 = EqualCountBinner(2).fit([a, nxt])
    assert b2.n_bins_ == 2 and b2.transform([a, nxt]).tolist() == [0, 1]


def test_degenerate_inputs():
    assert EqualCountBinner(15).fit([0.7] * 9).n_bins_ == 1
    b = EqualCountBinner(15).fit([0.3, 0.1])
    assert b.n_bins_ == 2 and b.labels_.tolist() == [1, 0]
    assert EqualCountBinner(15).fit([0.4]).transform([0.0, 1.0]).tolist() == [0, 0]
    with pytest.raises(ValueError, match="n_bins must be >= 1"):
        EqualCountBinner(0).fit([0.2])
    with pytest.raises(ValueError, match="no values"):
        EqualCountBinner().fit([])
    with pytest.raises(ValueError, match="NaN"):
        EqualCountBinner().fit([0.1, np.nan])
    with pytest.raises(NotFittedError):
        EqualCountBinner().transform([0.1])


def test_json_round_trip(saturated):
    b = EqualCountBinner(15).fit(saturated)
    back = EqualCountBinner.from_dict(b.to_dict())
    new = np.linspace(-0.1, 1.1, 301)
    assert np.array_equal(back.transform(new), b.transform(new))
    assert back.n_bins_ == b.n_bins_


# values from a small pool so that ties are common, including exact 0.0 and 1.0
_pool = st.sampled_from([0.0, 1.0, 0.5, 0.25, 0.9999, 1e-9]) | st.floats(0.0, 1.0, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(x=arrays(np.float64, st.integers(1, 400), elements=_pool), n_bins=st.integers(1, 30))
def test_each_calibration_point_goes_back_to_its_bin(x, n_bins):
    b = EqualCountBinner(n_bins).fit(x)
    assert np.array_equal(b.transform(x), b.labels_)
    assert b.n_bins_ >= 1 and b.n_bins_ <= min(n_bins, np.unique(x).size)
    assert b.counts_.sum() == x.size and (b.counts_ > 0).all()
    # monotone: a higher bin never holds a smaller value, and ties share a bin
    order = np.argsort(x, kind="stable")
    assert (np.diff(b.labels_[order]) >= 0).all()
    xs = x[order]
    same = np.diff(xs) == 0
    assert (np.diff(b.labels_[order])[same] == 0).all()
    # order of the input does not matter
    perm = np.random.default_rng(0).permutation(x.size)
    b2 = EqualCountBinner(n_bins).fit(x[perm])
    assert np.array_equal(b2.edges_, b.edges_)


@settings(max_examples=200, deadline=None)
@given(x=arrays(np.float64, st.integers(1, 300), elements=st.floats(0.0, 1.0), unique=True), n_bins=st.integers(1, 30))
def test_distinct_values_give_array_split_sizes(x, n_bins):
    """Without ties the bins are np.array_split's: sizes differ by at most one, larger ones first."""
    b = EqualCountBinner(n_bins).fit(x)
    k = min(n_bins, x.size)
    assert b.counts_.tolist() == [len(c) for c in np.array_split(np.arange(x.size), k)]
