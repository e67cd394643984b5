"""Without the launch token the page says plainly how to open the app."""

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


@pytest.mark.parametrize("suffix", ["/", "/#token=not-the-secret"])
def test_page_without_token_explains_what_to_do(context, app, suffix):
    page = context.new_page()
    page.goto(app.origin + suffix)
    message = page.get_by_test_id("no-access")
    expect(message).to_be_visible()
    expect(message).to_contain_text("Open the app through the URL it printed")
    expect(page.locator('[role="tablist"]')).to_be_hidden()
    expect(page.locator("body")).not_to_have_attribute("data-ready", "1")
    assert "not-the-secret" not in page.url  # the token never stays in the visible address


def test_token_leaves_the_address_bar(page, app):
    assert "token" not in page.url
    assert page.evaluate("sessionStorage.getItem('cllm-token')") == app.token
