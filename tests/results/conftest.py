"""Fixtures of the results tests: the fixed replicate table of results_helpers as a DataFrame."""

import pandas as pd
import pytest
from results_helpers import replicate_rows

from pretrainflow.results.rows import rows_table


@pytest.fixture
def frame() -> pd.DataFrame:
    """The table as the summary reads it (a DataFrame with every row column)."""
    return rows_table(replicate_rows()).to_pandas()
