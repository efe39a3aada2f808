#!/usr/bin/env python3
"""Signing in to the web UI in a real browser (Debian's Chromium through Playwright).

Usage: tests/browser/signin.py BASE_URL ADMIN_PASSWORD SCREENSHOT_DIR
Expects a server with built-in users whose admin is `admin` with ADMIN_PASSWORD, and a DAG
`talk` in its DAGs folder. Opens a DAG's page without a session (and lands on the sign-in
page), signs in as the admin (and lands back on that page), makes a viewer on the users
page, makes an API key (shown once), signs out, signs in as the viewer (who is offered no
Start and no editor, and no users page), and photographs the sign-in, users and account
pages at 1400x900 and 390x844, light and dark, checking that none is wider than a phone.
"""
import os
import sys

from playwright.sync_api import expect, sync_playwright

SIZES = {"wide": (1400, 900), "phone": (390, 844)}


def sign_in(page, user, password):
    page.get_by_label("Username").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def main():
    base = sys.argv[1].rstrip("/")
    password = sys.argv[2]
    shots = sys.argv[3]
    os.makedirs(shots, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.goto(base + "/dags/talk")
        expect(page.locator("h1")).to_have_text("Sign in")
        sign_in(page, "admin", "not the password")
        expect(page.get_by_role("alert")).to_contain_text("not right")
        sign_in(page, "admin", password)
        expect(page.locator("h1")).to_have_text("talk")
        expect(page.locator("header .who")).to_contain_text("admin")
        expect(page.get_by_role("button", name="Start")).to_be_visible()

        page.get_by_role("link", name="Users").click()
        expect(page.locator("h1")).to_have_text("Users")
        page.get_by_label("Username").fill("vera")
        page.locator("form:has(input[value=create])").get_by_label("Password").fill("veras-password")
        page.locator("form:has(input[value=create])").get_by_label("Role").select_option("viewer")
        page.get_by_role("button", name="Make the user").click()
        expect(page.get_by_role("status")).to_contain_text("vera")
        expect(page.locator("table").first).to_contain_text("vera")
        page.locator("form:has(input[value=key-create])").get_by_label("Name").fill("deploy")
        page.get_by_role("button", name="Make an API key").click()
        expect(page.locator("code.token")).to_contain_text("wharf_ak_")
        context = page.context
        # The other pages, photographed while signed in.
        for scheme in ("light", "dark"):
            for size, (w, h) in SIZES.items():
                ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme,
                                          storage_state=context.storage_state())
                shot = ctx.new_page()
                for name, path in (("users", "/users"), ("account", "/account")):
                    shot.goto(base + path)
                    over = shot.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                    assert over <= 0, f"{path} at {w}px is {over}px too wide"
                    shot.screenshot(path=os.path.join(shots, f"{name}-{size}-{scheme}.png"))
                ctx.close()
                ctx = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)
                shot = ctx.new_page()
                shot.goto(base + "/login")
                over = shot.evaluate("document.documentElement.scrollWidth - window.innerWidth")
                assert over <= 0, f"/login at {w}px is {over}px too wide"
                shot.screenshot(path=os.path.join(shots, f"login-{size}-{scheme}.png"))
                ctx.close()

        page.get_by_role("button", name="Sign out").click()
        expect(page.locator("h1")).to_have_text("Sign in")
        page.goto(base + "/dags/talk")
        expect(page.locator("h1")).to_have_text("Sign in")
        sign_in(page, "vera", "veras-password")
        expect(page.locator("h1")).to_have_text("talk")
        expect(page.locator("header .who")).to_contain_text("vera")
        expect(page.get_by_role("button", name="Start")).to_have_count(0)
        expect(page.locator("textarea[name=spec]")).to_have_count(0)
        expect(page.get_by_role("link", name="Users")).to_have_count(0)
        page.goto(base + "/users")
        expect(page.locator("body")).to_contain_text("only an admin")
        browser.close()
    print("ok")


if __name__ == "__main__":
    main()
