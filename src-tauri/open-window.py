#!/usr/bin/env python3
""""Open in window", end to end, as a person does it in the desktop app.

WebKitWebDriver (Debian's webkit2gtk-driver) starts the app with its
webview under automation; this script, a plain W3C WebDriver client, signs
in on the console's own login page, clicks "Open in window" next to a
desktop, and then looks for the native viewer's window on the X display
and reads its pixels: the scripted desktop's pattern must be there.

  DISPLAY=:N python3 src-tauri/open-window.py WEBDRIVER_URL RAP_DESKTOP CONSOLE_URL APPLIANCE_DATA_DIR [SCREENSHOT]

CONSOLE_URL is the console the app shows: its own appliance's (which runs
with the scripted worker runtime, from the environment WebKitWebDriver was
started with) or, in client-only mode, another appliance's over HTTPS;
then RAP_CA_FILE is that appliance's CA (for this script's own calls) and
RAP_APP_ARGS the app's arguments (`--connect … --fingerprint …`).
APPLIANCE_DATA_DIR holds the set-up code of the appliance behind the
console. RAP_RESTART_APPLIANCE, when set, is a command that restarts the
appliance behind the console (client-only mode: the office one), to see
the window reconnect by itself. Stdlib only.
"""

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import ssl

WEBDRIVER, BINARY, BASE, DATA = sys.argv[1:5]
BASE = BASE.rstrip("/")
SHOT = sys.argv[5] if len(sys.argv) > 5 else None
CA_FILE = os.environ.get("RAP_CA_FILE")
APP_ARGS = os.environ.get("RAP_APP_ARGS", "").split()
TLS = ssl.create_default_context(cafile=CA_FILE) if CA_FILE else None
EMAIL, PASSWORD = "owner@example.com", "owner password 1"
XPATH = "xpath"
CSS = "css selector"


def call(method, url, body=None, token=None):
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    if token:
        request.add_header("authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=60, context=TLS if url.startswith("https:") else None) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        raise SystemExit(f"open-window: {method} {url} answered {error.code}: {error.read().decode()[:500]}")
    return json.loads(text) if text else None


def until(what, check, seconds=30):
    deadline = time.time() + seconds
    while time.time() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.3)
    raise SystemExit(f"open-window: timed out waiting for {what}")


class Browser:
    def __init__(self):
        capabilities = {"alwaysMatch": {"webkitgtk:browserOptions": {"binary": BINARY, "args": APP_ARGS}}}
        self.session = call("POST", f"{WEBDRIVER}/session", {"capabilities": capabilities})["value"]["sessionId"]

    def command(self, method, path, body=None):
        return call(method, f"{WEBDRIVER}/session/{self.session}{path}", body)["value"]

    def find(self, using, value):
        def look():
            found = self.command("POST", "/elements", {"using": using, "value": value})
            return found[0] if found else None

        element = until(f"{using} {value!r} on the page", look)
        return next(iter(element.values()))

    def type_into(self, css, text):
        element = self.find(CSS, css)
        self.command("POST", f"/element/{element}/value", {"text": text})

    def click(self, using, value):
        self.command("POST", f"/element/{self.find(using, value)}/click", {})

    def quit(self):
        call("DELETE", f"{WEBDRIVER}/session/{self.session}")


def ready():
    try:
        with urllib.request.urlopen(f"{BASE}/readyz", timeout=5, context=TLS) as response:
            return response.status == 200
    except OSError:
        return False


def pixel(window, x, y):
    """The (r, g, b) of one pixel of an X window."""
    path = SHOT or os.path.join(DATA, "viewer-window.png")
    subprocess.run(["/usr/bin/import", "-window", window, path], check=True, capture_output=True)
    fx = "%[fx:int(255*p{X,Y}.r)],%[fx:int(255*p{X,Y}.g)],%[fx:int(255*p{X,Y}.b)]".replace("X", str(x)).replace("Y", str(y))
    text = subprocess.run(["/usr/bin/convert", path, "-format", fx, "info:"], check=True, capture_output=True, text=True)
    return tuple(int(part) for part in text.stdout.split(","))


def title_with(window, words):
    """The window's title, if it has `words` in it."""
    name = subprocess.run(["xdotool", "getwindowname", window], capture_output=True, text=True).stdout.strip()
    return name if words in name else None


def shot(name, window="root"):
    """A screenshot beside SHOT, named `name`."""
    if SHOT:
        path = SHOT[: -len(".png")] + f"-{name}.png" if SHOT.endswith(".png") else f"{SHOT}-{name}.png"
        subprocess.run(["/usr/bin/import", "-window", window, path], check=True, capture_output=True)


def main():
    browser = Browser()
    if os.environ.get("RAP_EXPECT_REFUSAL") == "1":
        # A wrong fingerprint: the app must show why, and never the console.
        try:
            heading = browser.find(XPATH, "//h1[contains(., 'not trusted')]")
            text = browser.command("GET", f"/element/{heading}/text")
            if browser.command("POST", "/elements", {"using": CSS, "value": "input[name=password]"}):
                raise SystemExit("open-window: the console of an untrusted appliance is showing")
            if SHOT:
                time.sleep(1.5)  # found in the page; give it time to be painted
                subprocess.run(["/usr/bin/import", "-window", "root", SHOT], check=True, capture_output=True)
            print(f"open-window ({BASE}): a wrong CA fingerprint is refused: {text!r}")
        finally:
            browser.quit()
        return
    try:
        until("the appliance in the app", ready)
        # The first run through the API: the owner (with the set-up code
        # the app's appliance wrote), a desktop to open.
        code = until("the set-up code", lambda: os.path.exists(os.path.join(DATA, "setup-code")))
        with open(os.path.join(DATA, "setup-code")) as file:
            code = file.read().strip()
        call("POST", f"{BASE}/api/v1/installation/bootstrap-owner",
             {"email": EMAIL, "password": PASSWORD, "display_name": "Owner", "setup_code": code})
        token = call("POST", f"{BASE}/api/v1/auth/login", {"email": EMAIL, "password": PASSWORD})["access_token"]
        org = call("GET", f"{BASE}/api/v1/auth/me", token=token)["memberships"][0]["organization_id"]
        call("POST", f"{BASE}/api/v1/resources",
             {"organization_id": org, "name": "Front desk PC", "protocol": "rdp", "host": "pc.scripted"}, token)

        # Then as a person: sign in on the console, open the desktop in a window.
        browser.command("POST", "/url", {"url": f"{BASE}/#/login"})
        browser.type_into("input[name=email]", EMAIL)
        browser.type_into("input[name=password]", PASSWORD)
        browser.click(CSS, "form button[type=submit]")
        browser.find(XPATH, "//button[normalize-space()='Open in window']")
        shot("console")  # as the person sees it, the button next to Connect
        browser.click(XPATH, "//button[normalize-space()='Open in window']")

        def viewer_window():
            found = subprocess.run(["xdotool", "search", "--name", "Front desk PC"], capture_output=True, text=True)
            return found.stdout.split()[0] if found.stdout.split() else None

        window = until("the native viewer's window", viewer_window)
        title = until("the viewer in control", lambda: title_with(window, "in control"))
        # The scripted desktop's pattern: red = x mod 256, green = y mod 256, blue 128.
        until("the remote desktop's pixels in the window", lambda: pixel(window, 100, 50) == (100, 50, 128))
        print(f"open-window ({BASE}): the console opened the desktop in a native window titled {title!r}, painting its pixels")
        session = call("GET", f"{BASE}/api/v1/sessions", token=token)["items"][0]
        if session["state"] != "active":
            raise SystemExit(f"open-window: the session is not active: {session}")
        # The console lists the new session at once, with this device in control.
        browser.find(XPATH, "//td[normalize-space()='this device']")

        # Taken over by the console's own viewer: the window says so, dimmed,
        # and Enter there takes control back through the console.
        browser.click(XPATH, "//button[normalize-space()='Take over']")
        title = until("the takeover in the window", lambda: title_with(window, "Press Enter to take back control"))
        # The window hears of the takeover as it is asked for; the console's
        # viewer attaches a moment later (once its frame decoder says what
        # it decodes). Taking control back before that would be a race the
        # older request wins.
        browser.find(CSS, "#connection-state[data-state='connected']")
        shot("taken-over", window)
        subprocess.run(["xdotool", "windowfocus", "--sync", window], check=True, capture_output=True)
        subprocess.run(["xdotool", "key", "Return"], check=True, capture_output=True)
        until("control back in the window", lambda: title_with(window, "in control"))
        browser.find(CSS, "#taken-over")  # the console's viewer is the one taken over now
        until("the pixels again", lambda: pixel(window, 100, 50) == (100, 50, 128))
        print(f"open-window ({BASE}): taken over ({title!r}), Enter took control back in the window")

        restart = os.environ.get("RAP_RESTART_APPLIANCE")
        if restart:
            # The appliance restarts under the window: it reconnects by itself.
            subprocess.run(restart.split(), check=True)
            until("the window reconnected", lambda: title_with(window, "in control"), seconds=90)
            until("the pixels after the restart", lambda: pixel(window, 100, 50) == (100, 50, 128))
            print(f"open-window ({BASE}): the appliance restarted; the window reconnected by itself")
        subprocess.run(["xdotool", "windowkill", window], capture_output=True)

        # A request the app refuses (a malformed token) is said in the console.
        browser.command("POST", "/execute/sync", {"script": "location.assign('/desktop-app/open-window#token=not%20a%20token')", "args": []})
        notice = browser.find(XPATH, "//p[contains(@class, 'toast') and contains(., 'refused to open a window')]")
        if SHOT:
            time.sleep(0.5)  # found in the page; give it time to be painted
        shot("notice")
        print(f"open-window ({BASE}): a refused request is said in the console: {browser.command('GET', f'/element/{notice}/text')!r}")
    finally:
        browser.quit()


if __name__ == "__main__":
    main()
