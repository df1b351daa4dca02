"""Prometheus text format: samples, labels, the step gauge and the scrape count."""

from __future__ import annotations

import contextlib
import math

from hypothesis import given
from hypothesis import strategies as st

from kubesweep.metrics import Observation, parse_prometheus

SCRAPE = """\
# HELP loss Training loss.
# TYPE loss gauge
loss 0.25
accuracy{split="val"} 0.9 1700000000000
accuracy{split="train",model="a\\"b"} 0.95
step 12
broken{ 1
nan_metric NaN
inf_metric +Inf
"""


def test_samples_step_labels_and_timestamps() -> None:
    parsed = parse_prometheus(SCRAPE, scrape_index=4, timestamp=5.0)
    assert parsed.observations == (
        Observation("loss", 0.25, 12, 5.0),
        Observation('accuracy{split="val"}', 0.9, 12, 1700000000.0),
        Observation('accuracy{model="a\\"b",split="train"}', 0.95, 12, 5.0),
    )
    assert parsed.dropped == 2


def test_scrape_count_is_the_step_without_a_gauge() -> None:
    parsed = parse_prometheus("loss 1\n", scrape_index=7)
    assert parsed.observations == (Observation("loss", 1.0, 7),)


def test_custom_step_gauge_and_name_filter() -> None:
    text = "trainer_global_step 40\nloss 1\nother 2\n"
    parsed = parse_prometheus(text, step_metric="trainer_global_step", names={"loss"})
    assert parsed.observations == (Observation("loss", 1.0, 40),)


@given(st.text())
def test_garbage_never_raises_and_never_invents(text: str) -> None:
    parsed = parse_prometheus(text)
    tokens = set()
    for token in text.split():
        with contextlib.suppress(ValueError, OverflowError):
            tokens.add(float(token))
    for observation in parsed.observations:
        assert math.isfinite(observation.value)
        assert observation.value in tokens
