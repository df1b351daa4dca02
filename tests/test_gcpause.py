"""The cyclic collector's pause: nested, failing and concurrent blocks restore it as it was."""

from __future__ import annotations

import gc
import threading

import pytest

from kubesweep.gcpause import collector_paused


def test_a_pause_restores_the_collector_as_it_was() -> None:
    assert gc.isenabled()
    try:
        with collector_paused():
            assert not gc.isenabled()
            with collector_paused():
                assert not gc.isenabled()
            assert not gc.isenabled()  # the inner pause leaves the outer one as it was
        assert gc.isenabled()
        with pytest.raises(RuntimeError), collector_paused():
            raise RuntimeError("a read that fails")
        assert gc.isenabled()
        gc.disable()
        with collector_paused():
            pass
        assert not gc.isenabled()  # off before, off after
    finally:
        gc.enable()


def test_the_collector_resumes_when_the_last_of_two_threads_ends_its_pause() -> None:
    first_in, second_in, first_out = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, bool] = {}

    def first() -> None:
        with collector_paused():
            first_in.set()
            assert second_in.wait(10), "the second thread never paused the collector"
        first_out.set()

    def second() -> None:
        assert first_in.wait(10), "the first thread never paused the collector"
        with collector_paused():
            second_in.set()
            assert first_out.wait(10), "the first thread never ended its pause"
            seen["after the first ended"] = gc.isenabled()

    try:
        threads = [threading.Thread(target=first), threading.Thread(target=second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
            assert not thread.is_alive(), "a pausing thread did not finish within 20 s"
        assert seen == {"after the first ended": False}
        assert gc.isenabled()
    finally:
        gc.enable()
