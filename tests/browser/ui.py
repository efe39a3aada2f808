#!/usr/bin/env python3
"""The web UI in a real browser (Debian's Chromium through Playwright).

Usage: tests/browser/ui.py BASE_URL SCREENSHOT_DIR
Expects a server whose DAGs folder holds `talk` (prints `line 1..3` slowly), `slow`
(sleeps) and `flaky` (its step `check` fails until the file named by its param MARK
exists). Opens the DAG list, starts `talk` with params from its page, follows its live
log until it succeeds and opens its whole log, then starts `slow` and stops it from its
run page (confirming), runs `flaky`, fixes its cause and retries the failed step from
the run page, finds the runs on the Runs page, edits a DAG's YAML (an error shown as it
is typed, saved once fixed), and photographs every page at 1400x900 and 390x844, light
and dark, into SCREENSHOT_DIR, checking that no page is wider than a phone's screen.
"""
import os
import sys

from playwright.sync_api import expect, sync_playwright

SIZES = {"wide": (1400, 900), "phone": (390, 844)}


def photograph(browser, base, pages, into):
    """Each page at each size in each colour scheme; fails when a page overflows sideways."""
    os.makedirs(into, exist_ok=True)
    wide = []
    for scheme in ("light", "dark"):
        for size, (w, h) in SIZES.items():
            ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)
            page = ctx.new_page()
            for name, path in pages:
                page.goto(base + path)
                page.wait_for_load_state("networkidle")
                over = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                if over > 0:
                    wide.append(f"{path} at {w}px is {over}px too wide")
                page.screenshot(path=os.path.join(into, f"{name}-{size}-{scheme}.png"))
            ctx.close()
    assert not wide, "\n".join(wide)


def main():
    base = sys.argv[1].rstrip("/")
    shots = sys.argv[2]
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
        talk_run = page.url.split("/runs/")[1].split("?")[0].split("#")[0]

        # A failed action says why on the page it came from.
        page.goto(base + "/dags/talk")
        page.fill("input[name=run_id]", talk_run)
        page.get_by_role("button", name="Start").click()
        expect(page.locator("p[data-said]")).to_contain_text(talk_run)
        assert page.url.rstrip("/").endswith("/dags/talk"), page.url

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

        # A failed step is run again from the run page once its cause is fixed.
        page.goto(base + "/dags/flaky")
        page.get_by_role("button", name="Start").click()
        expect(page.locator("p .st")).to_have_text("failed", timeout=15000)
        flaky_run = page.url.split("/runs/")[1].split("?")[0].split("#")[0]
        mark = page.locator("code", has_text="MARK=").first.inner_text().split("=", 1)[1]
        open(mark, "w").close()
        page.select_option("select[name=step]", "check")
        page.get_by_role("button", name="Retry from this step").click()
        expect(page.locator("p .st")).to_have_text("succeeded", timeout=15000)
        expect(page.locator("pre[data-step=after]")).to_contain_text("after")
        # A step's status set by hand, which the next retry goes by.
        page.select_option("select[name=step]", "after")
        page.get_by_role("button", name="Mark failed").click()
        expect(page.locator("tr", has_text="after").locator(".st")).to_have_text("failed")

        # The YAML is checked as it is typed, and saved once it is valid.
        page.goto(base + "/dags/talk")
        area = page.locator("textarea[name=spec]")
        text = area.input_value()
        area.fill(text + "  - name: broken\n    depends: nowhere\n")
        expect(page.locator(".check")).to_contain_text("nowhere", timeout=10000)
        area.fill(text + "  - name: extra\n    depends: [done]\n    command: echo extra\n")
        expect(page.locator(".check")).to_have_text("valid", timeout=10000)
        page.get_by_role("button", name="Save").click()
        expect(page.locator("svg title", has_text="extra")).to_have_count(1)

        # A new DAG is created from the list and opened in the editor.
        page.goto(base + "/")
        page.get_by_label("new DAG's name").fill("fresh")
        page.get_by_role("button", name="New DAG").click()
        expect(page.locator("textarea[name=spec]")).to_be_visible()
        assert "fresh" in page.url, page.url

        # Keyboard: the first control reached by Tab is in the navigation bar.
        page.goto(base + "/")
        page.keyboard.press("Tab")
        assert page.evaluate("document.activeElement.closest('header') !== null")

        photograph(browser, base, [
            ("dashboard", "/dashboard"),
            ("dags", "/"),
            ("dag", "/dags/talk"),
            ("run", f"/dags/talk/runs/{talk_run}"),
            ("retried", f"/dags/flaky/runs/{flaky_run}"),
            ("runs", "/runs"),
            ("queues", "/queues"),
            ("system", "/system"),
        ], shots)
        browser.close()
    print("ok")


if __name__ == "__main__":
    main()
