"""Ranks, crowding and hypervolume on fronts small enough to check by hand."""

from __future__ import annotations

import numpy as np
import pytest

from kubesweep.suggestion.algorithms._pareto import crowding, hypervolume, pareto_ranks


def test_ranks_peel_fronts_in_order() -> None:
    losses = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [3.0, 3.0], [1.0, 2.0]])
    assert pareto_ranks(losses).tolist() == [0, 0, 1, 2, 0]


def test_hypervolume_of_a_staircase() -> None:
    # (1,3) (2,2) (3,1) against (4,4): 3*1 + 2*1 + 1*1 = 6
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    # a dominated point and one outside the reference change nothing
    assert hypervolume([[1, 3], [2, 2], [3, 1], [3, 3], [5, 0]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume([[5, 5]], [4, 4]) == 0.0


def test_hypervolume_in_three_dimensions() -> None:
    # two boxes of 2x2x2 and 3x1x1 overlapping in 2x1x1: 8 + 3 - 2 = 9
    assert hypervolume([[1, 1, 1], [0, 2, 2]], [3, 3, 3]) == pytest.approx(9.0)


def test_crowding_of_a_line() -> None:
    losses = np.array([[0.0, 4.0], [1.0, 3.0], [3.0, 1.0], [4.0, 0.0]])
    assert crowding(losses).tolist() == [np.inf, 1.5, 1.5, np.inf]
