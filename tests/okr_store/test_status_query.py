"""The status query's light table descriptions agree with the ORM models.

:mod:`okr_store.status_query` names the columns it reads without importing the models;
each must exist in the model's table with the same type, or a value would come back
unconverted (text for a decimal, a naive time) or the query would fail.
"""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from okr_pipeline.okr_store import status_query
from okr_pipeline.okr_store.models import Base

TABLES = [
    status_query.CYCLES,
    status_query.OBJECTIVES,
    status_query.KEY_RESULTS,
    status_query.EVALUATIONS,
    status_query.MEASUREMENTS,
]


@pytest.mark.parametrize("table", TABLES, ids=lambda table: table.name)
def test_columns_have_the_models_types(table: sa.TableClause) -> None:
    model = Base.metadata.tables[table.name]
    for column in table.columns:
        assert column.name in model.columns, f"{table.name}.{column.name} is not in the model"
        declared = model.columns[column.name].type
        # The status query's decimals and times are subclasses that remember conversions.
        assert isinstance(column.type, type(declared)), (
            f"{table.name}.{column.name}: {type(column.type).__name__} in the status query, "
            f"{type(declared).__name__} in the model"
        )
        if isinstance(declared, sa.String) and declared.__class__ is sa.String:
            assert column.type.__class__ is sa.String
