import pytest


@pytest.fixture
def mid_hour(time_machine) -> None:
    """Hold the clock inside one hour: the test cache's windows start on the hour."""
    time_machine.move_to("2026-12-07T12:30:00+09:00", tick=False)
