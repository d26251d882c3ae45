"""``/docs`` in a real browser: Swagger UI renders every operation of the document.

Headless Chromium loads the page from the test API; Swagger UI's files come
from the API itself (the ``swagger-ui-bundle`` package), never from a CDN.
"""

from __future__ import annotations

import contextlib

from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver

from tests.support.browser import resource_urls, wait_for
from tests.support.farm import ApiClient


def operation_ids(document: dict) -> set[str]:
    return {operation["operationId"] for item in document["paths"].values()
            for method, operation in item.items() if method != "parameters"}


def shown_operation_ids(browser: WebDriver) -> set[str]:
    return {element.text.strip() for element in
            browser.find_elements(By.CSS_SELECTOR, ".opblock-summary-operation-id")}


def test_docs_page_shows_every_operation(api: ApiClient, browser: WebDriver) -> None:
    document = api.request("GET", "/openapi.json", auth=False).json()
    expected = operation_ids(document)
    assert len(expected) >= 10, expected
    browser.get(f"{api.url}/docs")
    with contextlib.suppress(TimeoutException):  # the assertion below says what is missing
        wait_for(browser, lambda driver: shown_operation_ids(driver) >= expected)
    assert shown_operation_ids(browser) == expected
    # Each operation is shown with its method and path.
    shown = {(element.find_element(By.CSS_SELECTOR, ".opblock-summary-method").text.lower(),
              element.find_element(By.CSS_SELECTOR, ".opblock-summary-path").text
              .replace("\u200b", ""))
             for element in browser.find_elements(By.CSS_SELECTOR, ".opblock-summary")}
    assert shown == {(method, path) for path, item in document["paths"].items()
                     for method in item if method != "parameters"}
    assert browser.title == document["info"]["title"]


def test_docs_page_loads_nothing_from_elsewhere(api: ApiClient, browser: WebDriver) -> None:
    browser.get(f"{api.url}/docs")
    wait_for(browser, shown_operation_ids)
    urls = resource_urls(browser)
    assert any(url.endswith("/swagger-ui-bundle.js") for url in urls), urls
    assert any(url.endswith("/openapi.json") for url in urls), urls
    assert all(url.startswith(f"{api.url}/") for url in urls), urls
