"""Statistics over replicates against hand arithmetic (pretrainflow.results.stats), config columns and selectors."""

import math

import pandas as pd
import pytest
from scipy import stats as scipy_stats

from pretrainflow.errors import PretrainflowError
from pretrainflow.results.columns import Selector, with_columns
from pretrainflow.results.stats import compare, describe, describe_values, paired_values, t_quantile

# Student t, df = 2: the CDF has a closed form, F(t) = 1/2 + t / (2 sqrt(2 + t^2)). F(t) = 0.975 gives
# t / sqrt(2 + t^2) = 0.95, t^2 = 2 * 0.95^2 / (1 - 0.95^2) = 1.805 / 0.0975 = 18.5128205..., t = 4.302652729749464.
# (The table value 4.302652729911275 often quoted is off by 1.6e-10, so it cannot match scipy within 1e-12.)
T_DF2 = math.sqrt(1.805 / 0.0975)
TOL = 1e-12


def test_t_quantile_df2_matches_the_closed_form():
    assert abs(t_quantile(3) - T_DF2) < TOL
    assert abs(float(scipy_stats.t.ppf(0.975, 2)) - T_DF2) < TOL


def _top1(described: pd.DataFrame, cell: str) -> pd.Series:
    rows = described[(described["cell"] == cell) & (described["metric"] == "top1")]
    assert len(rows) == 1
    return rows.iloc[0]


def test_describe_by_cell_matches_hand_arithmetic(frame):
    described = describe(frame, ["cell"])
    # one row per cell x metric: 3 cells x (top1, top5); metrics are never pooled
    assert len(described) == 6 and set(described["metric"]) == {"top1", "top5"}

    # vit-fdb: 88, 90, 95. mean = 273 / 3 = 91; deviations -3, -1, 4; squares 9 + 1 + 16 = 26;
    # sd = sqrt(26 / (3 - 1)) = sqrt(13) = 3.6055512754639896; half-width = t * sqrt(13) / sqrt(3)
    fdb = _top1(described, "vit-fdb")
    half = T_DF2 * math.sqrt(13.0) / math.sqrt(3.0)  # = 4.30265... * 2.08166... = 8.9566...
    assert fdb["n"] == 3
    assert abs(fdb["mean"] - 91.0) < TOL
    assert abs(fdb["std"] - math.sqrt(13.0)) < TOL
    assert abs(fdb["ci95_low"] - (91.0 - half)) < TOL and abs(fdb["ci95_high"] - (91.0 + half)) < TOL

    # scratch-vit: 80, 84, 85. mean = 249 / 3 = 83; deviations -3, 1, 2; squares 9 + 1 + 4 = 14; sd = sqrt(7)
    scratch = _top1(described, "scratch-vit")
    half = T_DF2 * math.sqrt(7.0) / math.sqrt(3.0)
    assert abs(scratch["mean"] - 83.0) < TOL and abs(scratch["std"] - math.sqrt(7.0)) < TOL
    assert abs(scratch["ci95_high"] - (83.0 + half)) < TOL


def test_one_replicate_gives_no_spread(frame):
    rcdb = _top1(describe(frame, ["cell"]), "vit-rcdb")
    assert rcdb["n"] == 1 and rcdb["mean"] == 77.5
    assert math.isnan(rcdb["std"]) and math.isnan(rcdb["ci95_low"]) and math.isnan(rcdb["ci95_high"])


def test_a_diverged_replicate_is_not_dropped():
    out = describe_values([1.0, math.nan, 3.0])
    assert out["n"] == 3 and math.isnan(out["mean"]) and math.isnan(out["std"])


def test_describe_by_a_config_key_pools_cells(frame):
    described = describe(with_columns(frame, ["config.optimizer.lr"]), ["config.optimizer.lr"])
    pooled = described[described["metric"] == "top1"].iloc[0]
    values = [88.0, 90.0, 95.0, 80.0, 84.0, 85.0, 77.5]  # every cell has lr 0.001
    assert pooled["n"] == 7 and abs(pooled["mean"] - sum(values) / 7) < TOL


def test_paired_comparison_matches_hand_arithmetic_and_scipy(frame):
    result = compare(frame, Selector.parse("vit-fdb", "A"), Selector.parse("scratch-vit", "B"))
    assert result.matched_on == ("task", "split", "metric") and result.unpaired == (0, 0)
    row = result.table[result.table["metric"] == "top1"].iloc[0]
    # differences by replicate: 88 - 80 = 8, 90 - 84 = 6, 95 - 85 = 10; mean 8; deviations 0, -2, 2;
    # sd = sqrt((0 + 4 + 4) / 2) = 2; standard error = 2 / sqrt(3); t = 8 / (2 / sqrt(3)) = 4 sqrt(3) = 6.928203...
    t = 4.0 * math.sqrt(3.0)
    # two-sided p for df = 2 from the closed-form CDF: p = 2 (1 - F(|t|)) = 1 - |t| / sqrt(2 + t^2)
    #   = 1 - 4 sqrt(3) / sqrt(50) = 1 - 2 sqrt(6) / 5 = 0.0202041028867288
    p = 1.0 - t / math.sqrt(2.0 + t * t)
    half = T_DF2 * 2.0 / math.sqrt(3.0)  # 95 % CI of the mean difference: 8 +- 4.9683
    assert row["n"] == 3 and row["mean_a"] == 91.0 and row["mean_b"] == 83.0
    assert abs(row["mean_diff"] - 8.0) < TOL and abs(row["std_diff"] - 2.0) < TOL
    assert abs(row["t"] - t) < TOL and abs(row["p_value"] - p) < TOL
    assert abs(row["ci95_low"] - (8.0 - half)) < TOL and abs(row["ci95_high"] - (8.0 + half)) < TOL
    reference = scipy_stats.ttest_rel([88.0, 90.0, 95.0], [80.0, 84.0, 85.0])
    assert abs(reference.statistic - t) < TOL and abs(reference.pvalue - p) < TOL


def test_compare_by_column_selectors_equals_cell_selectors(frame):
    by_cell = compare(frame, Selector.parse("vit-fdb", "A"), Selector.parse("scratch-vit", "B")).table
    by_source = compare(
        frame, Selector.parse("pretrain_source=fdb_1k", "A"), Selector.parse("pretrain_source=scratch", "B")
    ).table
    pd.testing.assert_frame_equal(by_cell, by_source)


def test_grouping_columns_a_selector_uses_are_not_matched_on(frame):
    # --by cell model with cell selectors: pairs cannot agree on cell, so cell is left out of the match
    result = compare(frame, Selector.parse("vit-fdb", "A"), Selector.parse("scratch-vit", "B"), ["cell", "model"])
    assert result.matched_on == ("task", "split", "metric", "model")
    assert list(result.table["n"]) == [3, 3]


def test_one_pair_has_no_interval_or_test():
    out = paired_values([91.0], [83.0])
    assert out["n"] == 1 and out["mean_diff"] == 8.0
    assert all(math.isnan(out[key]) for key in ("std_diff", "ci95_low", "ci95_high", "t", "p_value"))


def test_compare_counts_replicates_without_partner(frame):
    result = compare(frame, Selector.parse("vit-rcdb", "A"), Selector.parse("scratch-vit", "B"))
    top1 = result.table[result.table["metric"] == "top1"].iloc[0]
    assert top1["n"] == 1 and top1["mean_diff"] == 77.5 - 80.0  # replicate 0 of each
    assert result.unpaired == (0, 4)  # scratch-vit replicates 1 and 2, top1 and top5


def test_compare_errors_name_the_selectors(frame):
    a, b = Selector.parse("vit-fdb", "A"), Selector.parse("scratch-vit", "B")
    with pytest.raises(
        PretrainflowError, match=r"--compare A 'pretrain_source=nope'.*present: fdb_1k, rcdb&50%, scratch"
    ):
        compare(frame, Selector.parse("pretrain_source=nope", "A"), b)
    with pytest.raises(PretrainflowError, match=r"--compare B 'no-such-cell': no row has cell = 'no-such-cell'"):
        compare(frame, a, Selector.parse("no-such-cell", "B"))
    only0 = Selector.parse("cell=vit-fdb,replicate=0", "A")
    only1 = Selector.parse("cell=scratch-vit,replicate=1", "B")
    with pytest.raises(
        PretrainflowError, match=r"'cell=vit-fdb,replicate=0' 'cell=scratch-vit,replicate=1': no replicate"
    ):
        compare(frame, only0, only1)
    # model=vit_micro picks three cells: two rows for replicate 0; the message says which column tells them apart
    with pytest.raises(PretrainflowError, match=r"--compare A 'model=vit_micro': several rows .* differ in .*cell"):
        compare(frame, Selector.parse("model=vit_micro", "A"), b)


def test_selector_syntax():
    assert Selector.parse("pretrain_source=fdb, model=vit_micro", "A").terms == (
        ("pretrain_source", "fdb"),
        ("model", "vit_micro"),
    )
    with pytest.raises(PretrainflowError, match=r"--compare A 'a=1,b': 'b' is not KEY=VALUE"):
        Selector.parse("a=1,b", "--compare A")


def test_config_selector_compares_numbers(frame):
    framed = with_columns(frame, ["config.dataset.num_classes"])
    picked = Selector.parse("config.dataset.num_classes=16.0", "A").mask(framed, "A")
    assert set(framed[picked]["cell"]) == {"vit-fdb"}
    nulls = Selector.parse("config.dataset.num_classes=null", "A").mask(framed, "A")
    assert set(framed[nulls]["cell"]) == {"scratch-vit"}


def test_unknown_columns_and_config_keys_are_named(frame):
    with pytest.raises(PretrainflowError, match=r"'colour': not a results column"):
        with_columns(frame, ["colour"])
    with pytest.raises(PretrainflowError, match=r"no row's config has 'optimizer.nmae'.*'optimizer'"):
        with_columns(frame, ["config.optimizer.nmae"])
