"""Every indicator x area level x statistic on the chart pages renders
without an exception (widget state carried from one choice to the next, as
a user clicking through would)."""

from __future__ import annotations

import pytest


@pytest.mark.slow
@pytest.mark.parametrize("page", ["trends", "compare", "map"])
def test_every_indicator_level_and_statistic(make_app, page):
    at = make_app(page=page)
    seen = 0
    for ind in list(at.selectbox(key=f"{page}_indicator").options):
        at.selectbox(key=f"{page}_indicator").select(ind).run()
        assert not at.exception, (ind, [e.value for e in at.exception])
        for level in list(at.selectbox(key=f"{page}_level").options):
            at.selectbox(key=f"{page}_level").select(level).run()
            assert not at.exception, (ind, level, [e.value for e in at.exception])
            labels = {"Count": "count", "Rate per 100,000": "rate", "Proportion (%)": "proportion"}
            for stat in list(at.radio(key=f"{page}_statistic").options):
                at.radio(key=f"{page}_statistic").set_value(labels[stat]).run()
                assert not at.exception, (ind, level, stat, [e.value for e in at.exception])
                assert not at.error, (ind, level, stat, [e.value for e in at.error])
                seen += 1
    assert seen >= 10
