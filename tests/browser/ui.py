#!/usr/bin/env python3
"""The web UI in a real browser (Debian's Chromium through Playwright).

Usage: tests/browser/ui.py BASE_URL [--screenshot FILE]
Expects a server whose DAGs folder holds `talk` (prints `line 1..3` slowly) and `slow`
(sleeps). Opens the DAG list, starts `talk` with params from its page, follows its live
log until it succeeds and opens its whole log, then starts `slow` and stops it from its
run page (confirming), finds both runs on the Runs page, and edits a DAG's YAML (checked
as it is typed).
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

        page.fill("input[name='p.WHO']", "chromium")
        page.get_by_role("button", name="Start").click()
        log = page.locator("pre[data-step=say]")
        # The live log fills while the step runs.
        expect(log).to_contain_text("line 2 chromium", timeout=15000)
        expect(page.locator("p .st")).to_have_text("succeeded", timeout=20000)
        expect(page.locator("pre[data-step=say]")).to_contain_text("line 3 chromium")
        expect(page.locator("code", has_text="WHO=chromium")).to_have_count(1)
        expect(page.get_by_text("Succeeded: nothing to retry.")).to_have_count(1)
        whole = page.get_by_role("link", name="whole log").first
        href = whole.get_attribute("href")
        text = page.request.get(href if href.startswith("http") else base.split("/", 3)[0] + "//" + base.split("/", 3)[2] + href).text()
        assert "line 1 chromium" in text and "line 3 chromium" in text, text
        if shot:
            page.goto(base + "/dags/talk")
            page.screenshot(path=shot, full_page=True)

        page.goto(base + "/dags/slow")
        page.get_by_role("button", name="Start").click()
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.get_by_role("button", name="Stop").click()
        expect(page.locator("p .st")).to_have_text("aborted", timeout=20000)
        assert asked and asked[0].startswith("Stop run "), asked

        # The DAG list follows a run without being reloaded.
        page.goto(base + "/dags/slow")
        page.get_by_role("button", name="Start").click()
        expect(page.locator("p .st")).to_have_text("running", timeout=10000)
        page.goto(base + "/")
        expect(page.locator("tr", has_text="slow").locator(".st")).to_have_text("running")
        page.evaluate("window.marker = 1")
        stopped = page.request.post(base + "/api/v2/dags/slow/stop-all")
        assert stopped.ok, stopped.text()
        expect(page.locator("tr", has_text="slow").locator(".st")).to_have_text("aborted", timeout=15000)
        assert page.evaluate("window.marker") == 1, "the page was reloaded"
        expect(page.locator("tr", has_text="talk").locator(".st")).to_have_text("succeeded")
        page.get_by_role("link", name="Runs", exact=True).click()
        expect(page.locator("h1")).to_have_text("Runs")
        expect(page.locator("tr", has_text="slow").locator(".st")).to_have_text(["aborted", "aborted"])
        page.select_option("select[name=status]", "succeeded")
        page.get_by_role("button", name="Filter").click()
        expect(page.locator("tr", has_text="talk")).to_have_count(1)
        expect(page.locator("tr", has_text="slow")).to_have_count(0)
        page.goto(base + "/")
        page.get_by_role("link", name="Queues", exact=True).click()
        expect(page.locator("h1")).to_have_text("Queues")

        # The YAML is checked as it is typed.
        page.goto(base + "/dags/talk")
        area = page.locator("textarea[name=spec]")
        text = area.input_value()
        area.fill(text + "  - name: broken\n    depends: nowhere\n")
        expect(page.locator(".check")).to_contain_text("nowhere", timeout=10000)
        area.fill(text)
        expect(page.locator(".check")).to_have_text("valid", timeout=10000)
        browser.close()
    print("ok")


if __name__ == "__main__":
    main()
