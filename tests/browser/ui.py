#!/usr/bin/env python3
"""The web UI in a real browser (Debian's Chromium through Playwright).

Usage: tests/browser/ui.py BASE_URL [--screenshot FILE]
Expects a server whose DAGs folder holds `talk` (prints `line 1..3` slowly) and `slow`
(sleeps). Opens the DAG list, starts `talk` with params from its page, follows its live
log until it succeeds, then starts `slow` and stops it from its run page.
"""
import sys

from playwright.sync_api import expect, sync_playwright


def main():
    base = sys.argv[1].rstrip("/")
    shot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(base + "/")
        expect(page.locator("h1")).to_have_text("DAGs")
        page.get_by_role("link", name="talk", exact=True).click()
        expect(page.locator("h1")).to_have_text("talk")
        expect(page.locator("svg title", has_text="say")).to_have_count(1)

        page.fill("input[name=params]", "WHO=chromium")
        page.get_by_role("button", name="Start").click()
        log = page.locator("pre[data-step=say]")
        # The live log fills while the step runs.
        expect(log).to_contain_text("line 2 chromium", timeout=15000)
        expect(page.locator("p .st")).to_have_text("succeeded", timeout=20000)
        expect(page.locator("pre[data-step=say]")).to_contain_text("line 3 chromium")
        if shot:
            page.goto(base + "/dags/talk")
            page.screenshot(path=shot, full_page=True)

        page.goto(base + "/dags/slow")
        page.get_by_role("button", name="Start").click()
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("p .st")).to_have_text("aborted", timeout=20000)

        page.goto(base + "/")
        expect(page.locator("tr", has_text="slow").locator(".st")).to_have_text("aborted")
        expect(page.locator("tr", has_text="talk").locator(".st")).to_have_text("succeeded")
        browser.close()
    print("ok")


if __name__ == "__main__":
    main()
