"""The usage page in Chromium: Chart.js draws its three charts from our own
origin, under the site's CSP, on a desktop and on a phone."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.pages import (
    BOTH_SIZES,
    PHONE,
    OpenVisitor,
    api,
    assert_fits_the_screen,
    fetch_from_page,
    open_size,
    send,
    sign_up,
    wait_for_answer,
)

pytestmark = pytest.mark.browser

CHARTS = ("chart-points-by-model", "chart-tokens", "chart-points-by-key")
# Record what the CSP refuses, before any of the page's scripts run.
WATCH_CSP = """
window.cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.cspViolations.push(event.violatedDirective + " " + event.blockedURI);
});
"""
# Return, per chart, its Chart.js datasets' sums and how many of its pixels are
# painted (not transparent).
CHART_STATE = """(ids) => ids.map((id) => {
  const canvas = document.getElementById(id);
  const chart = window.Chart && window.Chart.getChart(canvas);
  const pixels = canvas.getContext("2d")
    .getImageData(0, 0, canvas.width, canvas.height).data;
  let painted = 0;
  for (let i = 3; i < pixels.length; i += 4) {
    if (pixels[i] !== 0) painted++;
  }
  return {
    id: id,
    drawn: Boolean(chart),
    labels: chart ? chart.data.labels.length : 0,
    sums: chart
      ? chart.data.datasets.map((d) => d.data.reduce((a, b) => a + b, 0))
      : [],
    painted: painted,
  };
})"""


@pytest.fixture(scope="module")
def server_settings() -> dict[str, str]:
    return {
        "LLM_PROVIDER": "demo",
        "LLM_MODELS": "eora-demo",
        "DEMO_STREAM_DELAY_MS": "0",
    }


def make_turns(page: Page) -> None:
    """Two turns on the chat page and one through an API key."""
    page.goto("/chat/new/")
    send(page, "안녕하세요!")
    wait_for_answer(page)
    send(page, "오늘 날씨는 어때요?")
    wait_for_answer(page, 2)
    secret = fetch_from_page(page, "POST", "/api/keys", {"name": "노트북"})["secret"]
    response = page.request.post(
        "/api/chat",
        headers={"Authorization": f"Bearer {secret}"},
        data={"message": "Hello from a script"},
    )
    assert response.status == 200, response.text()


@pytest.mark.parametrize(*BOTH_SIZES)
def test_usage_page_draws_its_charts(
    open_visitor: OpenVisitor, size: str, artifacts_dir: Path
) -> None:
    # Given a person with turns on the page and through a key
    visitor = open_size(open_visitor, size)
    page = visitor.page
    page.add_init_script(WATCH_CSP)
    sign_up(page)
    make_turns(page)
    usage = api(page, "GET", "/api/user/usage")
    by_key = api(page, "GET", "/api/user/usage?group_by=api_key")

    # When they open the usage page from the menu
    page.goto("/points/")
    page.click("#usage-link")
    expect(page).to_have_url(re.compile(r"/points/usage/$"))
    page.wait_for_function(
        "ids => ids.every((id) => window.Chart && window.Chart.getChart("
        "document.getElementById(id)))",
        arg=list(CHARTS),
    )

    # Then each chart is drawn from the figures the API gives, and painted
    charts = {state["id"]: state for state in page.evaluate(CHART_STATE, list(CHARTS))}
    points = usage["totals"]["points"]
    assert sum(charts["chart-points-by-model"]["sums"]) == points
    assert sum(charts["chart-points-by-key"]["sums"]) == points
    assert len(charts["chart-points-by-key"]["sums"]) == len(by_key["groups"]) == 2
    assert charts["chart-tokens"]["sums"] == [
        usage["totals"]["prompt_tokens"],
        usage["totals"]["completion_tokens"],
    ]
    for state in charts.values():
        assert state["labels"] == 30, state
        assert state["painted"] > 1000, state
    expect(page.locator('[data-figure="turns"]')).to_have_text("3")

    # And nothing was refused or failed
    assert page.evaluate("window.cspViolations") == []
    assert visitor.script_errors == []
    page.screenshot(path=artifacts_dir / f"usage-{size}.png", full_page=True)
    assert_fits_the_screen(page, f"/points/usage/ ({size})")
    if size == "phone":
        box = page.locator("#chart-tokens").bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]


def test_usage_page_without_turns_shows_the_empty_state(
    open_visitor: OpenVisitor, artifacts_dir: Path
) -> None:
    visitor = open_size(open_visitor, "phone")
    page = visitor.page
    sign_up(page)

    page.goto("/points/usage/?days=7")

    expect(page.locator("#usage-empty")).to_be_visible()
    expect(page.locator("canvas")).to_have_count(0)
    page.screenshot(path=artifacts_dir / "usage-empty-phone.png", full_page=True)
    assert visitor.script_errors == []
