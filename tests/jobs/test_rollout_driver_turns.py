"""One thread advances a worker's rollouts at a time, and no request to advance is ever lost.

A worker thread that finishes a rollout's job while another thread of the
process is advancing leaves its request with that thread and goes back to
running jobs.  Whatever the interleaving: passes never overlap, and every
request is served by a pass that started after it was made (a pass already
under way might have read the rollout before the job ended).
"""

from __future__ import annotations

import threading
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from migdash.jobs.rollout_driver import RolloutDriver


class RecordingDriver(RolloutDriver):
    """A driver whose passes only record when they ran (no database)."""

    def __init__(self, pass_seconds: list[float]) -> None:
        super().__init__(services=None)  # type: ignore[arg-type]
        self.passes: list[tuple[int, float, float]] = []
        self.running = 0
        self.overlaps = 0
        self.durations = pass_seconds

    def _advance_one(self, rollout_id: int) -> list[str]:
        started = time.monotonic()
        self.running += 1
        if self.running > 1:
            self.overlaps += 1
        time.sleep(self.durations[len(self.passes) % len(self.durations)])
        self.running -= 1
        self.passes.append((rollout_id, started, time.monotonic()))
        return [f"advanced {rollout_id}"]


requests = st.lists(st.tuples(st.integers(0, 2), st.floats(0, 0.004)), min_size=1, max_size=12)


@settings(max_examples=30, deadline=None)
@given(asked=requests, pass_seconds=st.lists(st.floats(0, 0.003), min_size=1, max_size=4))
def test_every_request_is_served_by_a_later_pass_and_passes_never_overlap(
    asked: list[tuple[int, float]], pass_seconds: list[float]
) -> None:
    driver = RecordingDriver(pass_seconds)
    made: list[tuple[int, float]] = []
    lock = threading.Lock()

    def ask(rollout_id: int, delay: float) -> None:
        time.sleep(delay)
        with lock:
            made.append((rollout_id, time.monotonic()))
        driver.advance([rollout_id])

    threads = [threading.Thread(target=ask, args=request) for request in asked]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)

    assert driver.overlaps == 0, "two passes ran at once"
    for rollout_id, when in made:
        assert any(r == rollout_id and started >= when for r, started, _ in driver.passes), (
            f"the request for rollout {rollout_id} at {when} was never served",
            driver.passes,
        )
    assert driver._busy is False


def test_a_caller_that_finds_another_advancing_returns_at_once() -> None:
    gate = threading.Event()
    entered = threading.Event()

    class Blocking(RecordingDriver):
        def _advance_one(self, rollout_id: int) -> list[str]:
            if not self.passes:
                entered.set()
                gate.wait(10)
            return super()._advance_one(rollout_id)

    driver = Blocking([0.0])
    first = threading.Thread(target=driver.advance, args=([1],))
    first.start()
    assert entered.wait(10)
    started = time.monotonic()
    assert driver.advance([2]) == [], "left with the thread that is advancing"
    assert driver.advance([1]) == []
    assert time.monotonic() - started < 1, "did not wait for the other thread's pass"
    gate.set()
    first.join(10)
    assert [r for r, _, _ in driver.passes] == [1, 1, 2], "one more pass for each request"


def test_a_failing_pass_gives_the_turn_up() -> None:
    class FailsOnce(RecordingDriver):
        def _advance_one(self, rollout_id: int) -> list[str]:
            if rollout_id == 1:
                raise RuntimeError("the metadata DB went away")
            return super()._advance_one(rollout_id)

    driver = FailsOnce([0.0])
    with pytest.raises(RuntimeError):
        driver.advance([1])
    assert driver.advance([3]) == ["advanced 3"], "the next caller advances, not a stuck turn"
