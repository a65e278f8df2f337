"""The points dashboard in the admin: a staff member sees its charts drawn."""

from pathlib import Path

import pytest

from tests.browser.pages import OpenVisitor, new_email, new_password
from tests.live_server import LiveServer, shell

pytestmark = pytest.mark.browser

# Run by `manage.py shell`: a staff member, and two users with chat turns.
SEED = """
from accounts.services import register_user
from points import services
from points.pricing import rates_for
from points.services import TokenCount
register_user(email=%(email)r, password=%(password)r, is_staff=True, is_superuser=True)
for n in range(2):
    user = register_user(email=f"dash{n}-" + %(email)r, password=%(password)r)
    account = services.account_of(user=user)
    services.grant(account=account, amount=10_000)
    for prompt in (30, 50 + n):
        reservation = services.reserve(
            account=account, model="eora-demo", rates=rates_for("eora-demo"),
            prompt_tokens=prompt, completion_tokens=20, minimum_completion_tokens=1,
        )
        services.settle(reservation=reservation, counted=TokenCount(prompt, 20))
"""
# Return, for each chart canvas: its name, whether Chart.js has it, how many
# non-zero values it holds, and whether anything is painted on it.
CHARTS_DRAWN = """() => Array.from(document.querySelectorAll("canvas[data-chart]")).map(
  (canvas) => {
    const chart = Chart.getChart(canvas);
    const points = chart ? chart.data.datasets.reduce(
      (sum, set) => sum + set.data.filter((v) => Number(v) !== 0).length, 0) : 0;
    const pixels = canvas.getContext("2d").getImageData(
      0, 0, canvas.width, canvas.height).data;
    let inked = false;
    for (let i = 3; i < pixels.length && !inked; i += 4) inked = pixels[i] > 0;
    return [canvas.dataset.chart, Boolean(chart), points, inked];
  })"""


def test_staff_sees_the_dashboard_charts_drawn_without_csp_violations(
    live: LiveServer, open_visitor: OpenVisitor, artifacts_dir: Path
) -> None:
    email, password = new_email(), new_password()
    shell(live.env, SEED % {"email": email, "password": password})
    visitor = open_visitor({"width": 1280, "height": 900}, locale="en-US")
    page = visitor.page

    page.goto("/admin/login/?next=/admin/points/dashboard/")
    page.fill("input[name=username]", email)
    page.fill("input[name=password]", password)
    page.click("input[type=submit]")
    page.wait_for_url("**/admin/points/dashboard/")
    page.wait_for_function(
        "() => document.querySelector('canvas[data-chart]') "
        "&& Chart.getChart(document.querySelector('canvas[data-chart]'))"
    )
    page.screenshot(path=artifacts_dir / "admin-dashboard.png", full_page=True)

    drawn = page.evaluate(CHARTS_DRAWN)
    assert {name for name, *_rest in drawn} == {
        "usage",
        "active",
        "refusals",
        "rates",
        "sales",
    }
    assert all(chart and inked for _name, chart, _points, inked in drawn)
    with_data = {name for name, _chart, points, _width in drawn if points}
    assert {"usage", "active", "rates"} <= with_data
    assert visitor.script_errors == []
    assert (artifacts_dir / "admin-dashboard.png").stat().st_size > 0
