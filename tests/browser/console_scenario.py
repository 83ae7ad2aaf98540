"""The web console in a real browser (Debian's chromium through Playwright), against a real
`spin up`: the README's first minutes done through the UI only, with a tracker and a call
tracker calling from outside the browser and a receiver on loopback.

Run by tests/tests/e2e/console.rs:
    python console_scenario.py --url http://127.0.0.1:PORT --token TOKEN --shots DIR

Exits non-zero (with the reason) when a step fails or the browser logged an error.
"""

import argparse
import http.server
import json
import re
import shutil
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

HOSTILE = '<img src=x onerror="window.__pwned=1">'

# Latin words a Russian screen may show: names of products, protocols and formats, the API's
# own words a marketer pastes (chat id, click id), and what this scenario named things.
LATIN_OK = """
api get post put patch delete http https url uri json html csv uuid utc sha
chat click username tid subid utm payout currency status start clickid webhook webhooks whsec
keitaro binom callkeeper telegram bothelp chatterfy spin redis sqlite spinkube funnelhooks
standard bearer token admin ingest pk_ ik_ fhk_ sub_id_ payload
casino funnel lead sale late crm shop example widget userbalance deposits revenue depositor
note omsk town source img src onerror window pwned unix google analytics yandex roistat
client sip ivr agent
""".split()


def walk_screens(page, base, screens, latin_ok, phone):
    """Opens each screen and fails on what a user should not see: English words on a Russian
    screen (when `latin_ok` is given), an API error code in the open, a page that broke, and
    (on a phone) a screen that scrolls sideways."""
    problems = []
    for screen in screens:
        page.goto(base + "/" + screen)
        page.wait_for_load_state("networkidle")
        page.wait_for_timeout(200)
        title = page.locator("h1").inner_text()
        if title in ("Something went wrong", "Что-то пошло не так"):
            problems.append(f"{screen}: {title}")
            continue
        # Words, not names: what stands in quotes or braces, and a token with digits, dots,
        # slashes, underscores or capitals inside (fields.userBalance, X-Ingest-Key, a UUID)
        # is a value or a name a marketer types as is, and so is the shown end of a key
        # ("…caeb": four random hex digits). A lower-case token joined by
        # underscores is an API code.
        found = page.evaluate("""(allowed) => {
          const words = new Set(allowed);
          const latin = [], codes = [];
          const walker = document.createTreeWalker(document.querySelector('main'), NodeFilter.SHOW_TEXT);
          for (let n = walker.nextNode(); n; n = walker.nextNode()) {
            const el = n.parentElement;
            if (!el || el.closest('.mono, pre, code, option, .detail')) continue;
            if (!el.getClientRects().length) continue;
            const text = n.textContent;
            // …and the end of a key shown as "…caeb": a value, whatever letters it has.
            const plain = text.replace(/«[^»]*»|"[^"]*"|\\{[^}]*\\}|…[A-Za-z0-9_-]+/g, ' ');
            for (const raw of plain.split(/[\\s,;()!…]+/)) {
              const w = raw.replace(/^[^A-Za-z0-9_]+|[^A-Za-z0-9_]+$/g, '');
              if (/^[a-z]+(_[a-z0-9]+)+$/.test(w)) codes.push(w + ' in ' + JSON.stringify(text.trim()));
              else if (allowed.length && /^[A-Za-z][a-z]{2,}$/.test(w) && !words.has(w.toLowerCase()))
                latin.push(w + ' in ' + JSON.stringify(text.trim()));
            }
          }
          return { latin, codes };
        }""", latin_ok or [])
        problems += [f"{screen}: untranslated {x}" for x in found["latin"]]
        problems += [f"{screen}: an API code shown: {x}" for x in found["codes"]]
        if phone:
            wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
            if wide > 1:
                problems.append(f"{screen}: scrolls sideways by {wide}px on a phone")
    return problems


class Receiver:
    """A webhook receiver on loopback that records every request and answers 200."""

    def __init__(self, status=200):
        self.requests = []
        self.status = status
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def _any(self):
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length).decode() if length else ""
                outer.requests.append((self.command, self.path, body))
                self.send_response(outer.status)
                self.send_header("content-type", "text/plain")
                self.end_headers()
                self.wfile.write(b"ok from the receiver")

            do_GET = do_POST = do_PUT = _any

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def paths(self):
        return [p for (_, p, _) in self.requests]


def call(url, body=None, headers=None):
    """A request from outside the browser (the tracker, the call tracker)."""
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as res:
        return json.loads(res.read() or b"null")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--shots", required=True)
    ap.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    args = ap.parse_args()
    base = args.url.rstrip("/")
    rx = Receiver()
    errors = []
    expected_errors = []

    def on_console(msg):
        if msg.type == "error":
            text = msg.text
            for i, pattern in enumerate(expected_errors):
                if pattern in text:
                    expected_errors.pop(i)
                    return
            errors.append(text)

    def shot(page, name):
        page.wait_for_timeout(150)
        page.screenshot(path=f"{args.shots}/{name}.png", full_page=True)

    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=args.chromium,
            # Root in a container: no sandbox, and a small /dev/shm must not crash it.
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        context = browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-GB")
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        page.on("console", on_console)
        page.on("pageerror", lambda e: errors.append(f"page error: {e}"))
        urls_seen = []
        page.on("framenavigated", lambda f: urls_seen.append(f.url))
        page.set_default_timeout(15000)

        # Sign in, with the keyboard only.
        page.goto(base + "/")
        expect(page.locator("h1")).to_have_text("Sign in")
        shot(page, "01-sign-in")
        page.keyboard.press("Tab")  # skip link
        page.get_by_label("Admin token").focus()
        page.keyboard.type(args.token)
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Bots")

        # A bot.
        page.get_by_label("New bot name").fill("Casino funnel")
        page.get_by_role("button", name="Create bot").click()
        expect(page.locator("h1")).to_have_text("Casino funnel")
        bot_id = re.search(r"#/bots/([^/]+)", page.url).group(1)

        # A number field ("Bot Settings").
        page.get_by_role("link", name="Custom fields").click()
        page.get_by_label("Key", exact=True).fill("userBalance")
        page.get_by_label("Type").select_option("number")
        page.get_by_label("Description").fill("баланс после депозита")
        page.get_by_role("button", name="Save field").click()
        expect(page.locator("#fields")).to_contain_text("userBalance")

        # A postback link, copied with one click.
        page.get_by_role("link", name="Postback links").click()
        page.get_by_role("button", name="Add postback link").click()
        link_cell = page.locator("#links .link-url").first
        expect(link_cell).to_contain_text("/updateDialog")
        link = link_cell.inner_text()
        page.locator("#links").get_by_role("button", name="Copy").click()
        copied = page.evaluate("navigator.clipboard.readText()")
        assert copied == link, f"copied {copied!r}, the link is {link!r}"
        # Moving from Chatterfy: the whole old postback URL pasted, its id imported.
        old_id = "b7Qw9Zk2Lp4Xv8Rt6Ny3Mc5Hd1Js0Fg"
        page.locator("#import-link").locator("xpath=ancestor::details").locator("summary").click()
        page.get_by_label("Link id").fill(
            f"https://api.chatterfy.ai/api/bots/webhooks/{old_id}/updateDialog?chatId={{subid}}&stepId=1")
        page.get_by_role("button", name="Import").click()
        expect(page.locator("#links")).to_contain_text(old_id)
        shot(page, "02-postback-links")

        # The tracker fires the postback, hostile values and all.
        answer = call(link + "?" + urllib.parse.urlencode({
            "chatId": "1227280", "userBalance": "5000", "tracker.clickid": "abc123",
            "addTag": "depositor", "note": HOSTILE, "tracker.utm_source": HOSTILE,
        }))
        assert answer["ok"] and answer["created"], answer
        # A postback with a balance written the way people write it is refused; the
        # marketer sees it, and why, under the bot's links.
        try:
            call(link + "?chatId=1227280&userBalance=5%2C000")
            raise AssertionError("userBalance=5,000 was taken for a number")
        except urllib.error.HTTPError as e:
            assert e.code == 422, e.code
        for _ in range(20):  # kept just after the tracker's answer
            page.reload()
            expect(page.locator("#refused")).to_be_visible()
            if "userBalance" in page.locator("#refused").inner_text():
                break
            time.sleep(0.1)
        expect(page.locator("#refused")).to_contain_text("userBalance")
        expect(page.locator("#refused")).to_contain_text("userBalance=5,000")

        # The dialog, found by its click id, every value written as text.
        page.get_by_role("link", name="Dialogs").click()
        page.get_by_label("Chat id, username, name or click id").fill("abc123")
        page.get_by_role("button", name="Find").click()
        expect(page.locator("#search-note")).to_contain_text("abc123")
        expect(page.locator("#dialogs tbody tr")).to_have_count(1)
        page.locator("#dialogs").get_by_role("link", name="1227280").click()
        expect(page.locator("h1")).to_have_text("Dialog 1227280")
        expect(page.locator("#dialog-fields")).to_contain_text("5000")
        expect(page.locator("#dialog-fields")).to_contain_text(HOSTILE)
        expect(page.locator("#dialog-tracker")).to_contain_text(HOSTILE)
        expect(page.locator("#dialog")).to_contain_text("pending")
        assert page.locator("main img").count() == 0, "a value became an element"
        assert page.evaluate("window.__pwned") is None, "a value ran as script"
        # Its story: the postback that made it, by the link it came through.
        expect(page.locator("#timeline li").first).to_contain_text("Postback")
        expect(page.locator("#timeline")).to_contain_text("fields.userBalance")
        expect(page.locator("#timeline")).to_contain_text("tracker.clickid")
        shot(page, "03-dialog")

        # A send-webhook step built with the variables panel; the preview renders the URL.
        page.get_by_role("link", name="Casino funnel").click()
        page.get_by_role("link", name="Steps").click()
        page.get_by_role("link", name="Create step").click()
        expect(page.locator("h1")).to_have_text("New step")
        page.get_by_label("Step key").fill("lead")
        url_input = page.get_by_label("URL", exact=True)
        url_input.fill(f"http://127.0.0.1:{rx.port}/postback?subid=")
        page.locator("[data-var='tracker.clickid']").click()
        url_input.press("End")
        url_input.type("&status=lead&balance=")
        page.locator("[data-var='fields.userBalance']").click()
        page.get_by_label("Preview against chat id").fill("1227280")
        preview = page.locator("#preview .preview-output").first
        expect(preview).to_have_text(
            f"http://127.0.0.1:{rx.port}/postback?subid=abc123&status=lead&balance=5000")
        # An unknown name is marked where it stands.
        url_input.press("End")
        url_input.type("&x={nosuch}")
        expect(page.locator("#preview mark.lint")).to_have_text("nosuch")
        expect(page.locator("#preview .lints")).to_contain_text("unknown_name")
        for _ in range(len("&x={nosuch}")):
            url_input.press("Backspace")
        expect(page.locator("#preview mark.lint")).to_have_count(0)
        shot(page, "04-step-editor")
        # A brace that opens no variable is refused in plain words, next to the URL, by the
        # preview and the save (each a 422 the browser logs).
        good_url = url_input.input_value()
        expected_errors.extend(["status of 422", "status of 422"])
        url_input.fill(good_url + "&click={tracker.clickid")
        page.wait_for_timeout(600)
        page.get_by_role("button", name="Save step").click()
        expect(page.locator("#step-form .error").first).to_contain_text("brace")
        expect(page.locator("#step-form .error").first).not_to_contain_text("malformed_template")
        url_input.fill(good_url)
        page.get_by_role("button", name="Save step").click()
        expect(page.locator("h1")).to_have_text("Step lead")
        # Its id, for a tracker's stepId=, with Copy.
        step_id = re.search(r"/steps/([^/?]+)", page.url).group(1)
        expect(page.locator("#step-id")).to_have_text(step_id)
        # The URL a tracker calls to move a dialog into this step, its macros left as written.
        page.get_by_label("Fields (name = value, one a line)").fill("userBalance = {payout}")
        built = page.locator("#postback-url")
        expect(built).to_contain_text(f"/updateDialog?chatId={{sub_id_1}}&stepId={step_id}")
        expect(built).to_contain_text("&userBalance={payout}")

        # Test-send to the receiver; the receiver's answer is shown.
        page.get_by_label("Chat id (empty: a sample dialog)", exact=True).fill("1227280")
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.get_by_role("button", name="Send a test").click()
        expect(page.locator("#test-result")).to_contain_text("delivered")
        expect(page.locator("#test-result")).to_contain_text("ok from the receiver")
        assert asked and "1227280" in asked[0], f"no confirmation before a real chat's test: {asked}"
        assert any("subid=abc123" in p and "balance=5000" in p for p in rx.paths()), rx.paths()
        shot(page, "05-test-send")

        # The delivery with its attempt; replay it.
        page.get_by_role("link", name="Open delivery").click()
        expect(page.locator("h1")).to_have_text("Delivery")
        expect(page.locator("#attempts")).to_contain_text("HTTP 200")
        expect(page.locator("#delivery")).to_contain_text("Casino funnel / step lead")
        first_delivery = page.url
        before = len(rx.requests)
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.get_by_role("button", name="Replay").click()
        expect(page.locator("#delivery")).to_contain_text("Replay of")
        assert page.url != first_delivery
        expect(page.locator("#attempts")).to_contain_text("HTTP 200")
        assert len(rx.requests) == before + 1, "the replay reached the receiver"
        assert asked and "/postback" in asked[0], f"no confirmation before a replay: {asked}"
        shot(page, "06-delivery")
        page.goto(f"{base}/#/deliveries?botId={bot_id}")
        expect(page.locator("#deliveries tbody tr")).to_have_count(2)
        # Filtered by names, not ids: the bot and its step chosen from lists.
        filters = page.locator("#delivery-filters")
        expect(filters.get_by_label("Bot", exact=True)).to_have_value(bot_id)
        filters.get_by_label("Step", exact=True).select_option(label="lead")
        expect(page).to_have_url(re.compile(f"stepId={step_id}"))
        expect(page.locator("#deliveries")).to_contain_text("Casino funnel / lead")
        shot(page, "07-deliveries")

        # From the dialog: move it into the webhook step (asked first, naming where the
        # webhook goes), then send that step's webhook again without moving it.
        page.goto(f"{base}/#/bots/{bot_id}/dialogs/1227280")
        before = len(rx.requests)
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.locator("#move-dialog").get_by_label("Move to step").select_option(label="lead ↗")
        page.locator("#move-dialog").get_by_role("button", name="Move").click()
        expect(page.locator("#dialog-action-result")).to_contain_text("handed over")
        assert asked and f"127.0.0.1:{rx.port}/postback" in asked[0], f"no confirmation naming the receiver: {asked}"
        expect(page.locator("#dialog")).to_contain_text("lead")
        deadline = time.time() + 15
        while len(rx.requests) == before and time.time() < deadline:
            time.sleep(0.1)
        assert len(rx.requests) == before + 1, "the move sent the step's webhook once"
        page.reload()
        expect(page.locator("#timeline")).to_contain_text("Webhook of step lead")
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.locator("#send-step").get_by_role("button", name="Send now").click()
        expect(page.locator("#dialog-action-result .delivery-summary")).to_contain_text("delivered")
        assert len(rx.requests) == before + 2
        # Asked first, with the request as it goes and that it went already.
        assert asked and "subid=abc123" in asked[0] and "delivered already" in asked[0], asked
        page.reload()
        expect(page.locator("#timeline")).to_contain_text("Changed in the console or API")
        expect(page.locator("#timeline")).to_contain_text("Webhook of step lead")
        shot(page, "07-dialog-story")

        # Call tracking: a service (its key shown once) and a hook in CallKeeper's form.
        page.locator("#nav").get_by_role("link", name="Call tracking").click()
        page.get_by_label("New service name").fill("shop.example widget")
        page.get_by_role("button", name="Create service").click()
        expect(page.locator("#ingest-once")).to_contain_text("ik_")
        ingest = page.locator("#ingest-once #ingest-url").inner_text()
        assert "/events/pk_" in ingest, ingest
        ingest_key = re.search(r"ik_\w+", page.locator("#ingest-once").inner_text()).group(0)
        service_id = re.search(r"#/calls/([^/?]+)", page.url).group(1)
        # CallKeeper's four fields, each to copy.
        once = page.locator("#callkeeper-once")
        expect(once).to_contain_text("127.0.0.1")
        expect(once).to_contain_text(urllib.parse.urlparse(ingest).path)
        once.get_by_role("button", name="Copy").nth(3).click()
        assert page.evaluate("navigator.clipboard.readText()") == urllib.parse.urlparse(ingest).path
        page.get_by_role("link", name="+ Address").click()
        page.get_by_label("Name", exact=True).fill("CRM")
        page.get_by_label("Protocol").select_option("http")
        page.get_by_label("Host").fill("127.0.0.1")
        page.get_by_label("Port").fill(str(rx.port))
        page.get_by_label("Path").fill("/calls")
        for name, kind, value in [("call", "param", "id"), ("town", "param", "city"),
                                  ("source", "value", "callkeeper")]:
            page.get_by_role("button", name="+ Parameter").click()
            row = page.locator("#parameters .param-row").last
            row.get_by_label("Parameter name").fill(name)
            row.get_by_label("Value kind").select_option(kind)
            if kind == "param":
                row.get_by_label("Call parameter").select_option(value)
            else:
                row.get_by_label("Value", exact=True).fill(value)
        expect(page.locator("#parameters")).to_contain_text("city")
        page.get_by_label("Event").select_option("end")
        # A host the API refuses: the error appears next to the host field, nothing is saved.
        page.get_by_label("Host").fill("foo.123")
        expected_errors.append("status of 422")
        page.get_by_role("button", name="Save hook").click()
        expect(page.locator("#hook-form .error")).to_be_visible()
        assert page.get_by_label("Host").get_attribute("aria-invalid") == "true"
        shot(page, "08-hook-form-error")
        page.get_by_label("Host").fill("127.0.0.1")
        expect(page.locator("#hook-form .error")).to_have_count(0)
        shot(page, "08-hook-form")
        page.get_by_role("button", name="Save hook").click()
        expect(page.locator("#hooks")).to_contain_text("CRM")
        shot(page, "09-service")

        # The call tracker reports a finished call from outside; its delivery shows up.
        event = call(ingest, {"id": 88412, "hook_event": "Call is over", "city": "Omsk"},
                     {"content-type": "application/json"})
        assert event["matched"] == 1, event
        page.locator("#hooks").get_by_role("link", name="Deliveries").click()
        for _ in range(20):
            if page.locator("#deliveries .badge.delivered").count():
                break
            page.wait_for_timeout(500)
            page.reload()
        expect(page.locator("#deliveries")).to_contain_text("call 88412")
        expect(page.locator("#deliveries .badge.delivered")).to_have_count(1)
        assert "/calls?call=88412&town=Omsk&source=callkeeper" in rx.paths(), rx.paths()
        shot(page, "10-call-deliveries")
        # A call event without its call id is refused; the service's page says so, and
        # never shows the key a telephony side put in the query.
        plain = ingest.split("/events/")[0] + "/events?key=" + ingest_key + "&hook_event=Call+is+over"
        try:
            call(plain)
            raise AssertionError("an event without a call id was taken")
        except urllib.error.HTTPError as e:
            assert e.code in (400, 422), e.code
        page.goto(f"{base}/#/calls/{service_id}")
        for _ in range(20):  # kept just after the answer
            if "hook_event" in page.locator("#refused-events").inner_text():
                break
            page.wait_for_timeout(100)
            page.reload()
        expect(page.locator("#refused-events")).to_contain_text("hook_event=Call is over")
        assert ingest_key not in page.locator("#refused-events").inner_text(), "the key was shown"

        # Hook test-send and disable from the service screen.
        page.go_back()
        page.locator("#nav").get_by_role("link", name="Call tracking").click()
        page.get_by_role("link", name="shop.example widget").click()
        page.locator("#hooks").get_by_role("button", name="Test-send").click()
        expect(page.locator("#hook-test-result .delivery-summary")).to_contain_text("delivered")
        page.locator("#hooks").get_by_role("checkbox").uncheck()
        expect(page.locator("#toast")).to_have_text("Disabled")

        # A form names its empty required field before sending anything.
        page.locator("#nav").get_by_role("link", name="Bots").click()
        expect(page.locator("h1")).to_have_text("Bots")
        bots_before = page.locator("tbody tr").count()
        page.get_by_role("button", name="Create bot").click()
        expect(page.locator("#create-bot .error")).to_contain_text("Required")
        assert page.get_by_label("New bot name").get_attribute("aria-invalid") == "true"
        assert page.locator("tbody tr").count() == bots_before

        # A tracker that is down: its step fails, and "Needs attention" shows it.
        admin = {"Authorization": "Bearer " + args.token, "content-type": "application/json"}
        down = Receiver(status=500)
        step = call(f"{base}/api/bots/{bot_id}/steps", {
            "key": "sale", "kind": "send-webhook",
            "webhook": {"url": f"http://127.0.0.1:{down.port}/sale?chat={{chatId}}",
                        "retry": {"maxAttempts": 1}}}, admin)
        answer = call(link + "?" + urllib.parse.urlencode({"chatId": "1227280", "stepId": step["id"]}))
        assert answer["webhookQueued"], answer
        for _ in range(40):
            if down.requests:
                break
            page.wait_for_timeout(250)
        page.locator("#nav").get_by_role("link", name="Needs attention").click()
        expect(page.locator("h1")).to_have_text("Needs attention")
        row = page.locator("#attention tbody tr", has_text="sale")
        expect(row).to_contain_text("failing")
        expect(row).to_contain_text("HTTP 500")
        expect(row.locator("svg.day-chart rect").first).to_be_attached()
        shot(page, "13-needs-attention")
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        row.get_by_role("button", name="Pause sending").click()
        expect(page.locator("#attention tbody tr", has_text="sale")).to_contain_text("paused")
        # The tracker is fixed: resume and send again what failed, once, in one click.
        down.status = 200
        assert asked and "held" in asked[0], f"no confirmation before a pause: {asked}"
        page.once("dialog", lambda d: d.accept())
        page.locator("#attention tbody tr", has_text="sale").get_by_role("button", name="Resume and recover").click()
        expect(page.locator("#toast")).to_contain_text("Queued to be sent again: 1")
        expect(page.locator("#all-well")).to_be_visible()
        before = len(down.requests)
        for _ in range(20):
            call(f"{base}/api/deliveries/retry-due", {}, admin)
            if len(down.requests) > before:
                break
            page.wait_for_timeout(250)
        assert len(down.requests) == before + 1, down.paths()
        assert down.paths()[-1] == "/sale?chat=1227280", down.paths()

        # A retrying delivery made at once with "Retry now" once the receiver is fixed.
        down.status = 500
        late = call(f"{base}/api/bots/{bot_id}/steps", {
            "key": "late", "kind": "send-webhook",
            "webhook": {"url": f"http://127.0.0.1:{down.port}/late?chat={{chatId}}",
                        "retry": {"maxAttempts": 5}}}, admin)
        call(link + "?" + urllib.parse.urlencode({"chatId": "1227280", "stepId": late["id"]}))
        # Its first retry comes in seconds (the sweep's); the next one minutes later.
        deadline = time.time() + 30
        while time.time() < deadline:
            listed = call(f"{base}/api/deliveries?stepId={late['id']}&botId={bot_id}", None, admin)["items"]
            if listed and listed[0]["attemptCount"] >= 2:
                break
            time.sleep(1)
            call(f"{base}/api/deliveries/retry-due", {}, admin)
        assert listed and listed[0]["attemptCount"] >= 2 and listed[0]["status"] == "retrying", listed
        down.status = 200
        page.goto(f"{base}/#/deliveries/{listed[0]['id']}")
        asked = []
        page.once("dialog", lambda d: (asked.append(d.message), d.accept()))
        page.get_by_role("button", name="Retry now").click()
        expect(page.locator("#delivery")).to_contain_text("delivered")
        assert asked and "/late?chat=1227280" in asked[0], asked
        assert down.paths()[-1] == "/late?chat=1227280", down.paths()
        page.locator("#nav").get_by_role("link", name="Needs attention").click()

        # An alert endpoint: its secret shown once, a test alert delivered.
        ops = Receiver()
        page.get_by_label("Alert URL").fill(f"http://127.0.0.1:{ops.port}/alerts")
        page.get_by_label("Description").fill("дежурному")
        page.get_by_role("button", name="Add alert endpoint").click()
        expect(page.locator("#alert-secret-value")).to_contain_text("whsec_")
        page.locator("#alert-list").get_by_role("button", name="Test-send").click()
        expect(page.locator("#alert-endpoints .delivery-summary")).to_contain_text("delivered")
        assert ops.requests and '"alert.test"' in ops.requests[-1][2], ops.requests
        shot(page, "14-alert-endpoints")

        # Auto actions: a conversion link, an action for "sale", the start payload's rule
        # previewed live; then a Keitaro-style conversion by click id moves the dialog (its
        # click id came before Auto Actions were set up: saving them indexed it).
        page.goto(f"{base}/#/bots/{bot_id}/auto")
        page.get_by_role("button", name="Create conversion link").click()
        conv_cell = page.locator("#conversion-links .link-url").first
        expect(conv_cell).to_contain_text("/api/bots/conversions/")
        conv = conv_cell.inner_text()
        page.get_by_role("button", name="Add action").click()
        page.get_by_label("Event type", exact=True).fill("sale")
        page.get_by_label("Move to step").select_option(label="lead ↗")
        page.get_by_label("Add to fields").fill("deposits = 1\nrevenue = {payout}")
        page.get_by_label("Form", exact=True).select_option("pattern")
        page.get_by_label("Pattern", exact=True).fill("CODE-{clickid}")
        page.get_by_label("Sample payload").fill("CODE-9f8e7d")
        expect(page.locator("#payload-fields")).to_contain_text("9f8e7d")
        shot(page, "15-auto-actions")
        page.get_by_role("button", name="Save auto actions").click()
        expect(page.locator("#toast")).to_contain_text("Saved")
        before = len(rx.requests)
        answer = call(conv + "?" + urllib.parse.urlencode(
            {"subid": "abc123", "status": "sale", "payout": "50", "tid": "T-1"}))
        assert answer["outcome"] == "applied", answer
        page.goto(f"{base}/#/bots/{bot_id}/dialogs/1227280")
        expect(page.locator("#dialog-conversions")).to_contain_text("sale")
        expect(page.locator("#dialog-fields")).to_contain_text("deposits")
        deadline = time.time() + 15
        while len(rx.requests) == before and time.time() < deadline:
            time.sleep(0.1)
        assert len(rx.requests) > before, "the step's webhook never left for the conversion"
        page.locator("#dialog-conversions").get_by_role("link", name="Delivery").click()
        expect(page.locator("#delivery-cause")).to_contain_text("sale")
        expect(page.locator("#delivery-cause")).to_contain_text("T-1")

        # Russian, remembered across a reload; usable on a phone.
        page.locator("#lang").select_option("ru")
        expect(page.locator("#nav")).to_contain_text("Коллтрекинг")
        page.reload()
        expect(page.locator("#nav")).to_contain_text("Боты")
        page.goto(f"{base}/#/bots/{bot_id}/steps")
        shot(page, "11-ru-steps")
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{base}/#/bots/{bot_id}/dialogs/1227280")
        expect(page.locator("#dialog")).to_be_visible()
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, f"the dialog screen scrolls sideways on a phone by {wide}px"
        shot(page, "12-phone-dialog")

        # Scoped access, in Russian: an admin makes a viewer's key for this bot; signed in with
        # it, the console shows the bot and nothing to change; the audit trail has the key.
        page.set_viewport_size({"width": 1280, "height": 860})
        page.goto(f"{base}/#/keys")
        expect(page.locator("h1")).to_have_text("API-ключи")
        page.get_by_label("Название").fill("Клиент A")
        page.get_by_label("Роль").select_option("viewer")
        page.locator("[data-scope=bots]").get_by_label("Casino funnel").check()
        page.get_by_role("button", name="Создать ключ").click()
        key_box = page.locator("#new-key-value")
        expect(key_box).to_contain_text("fhk_")
        viewer_key = key_box.inner_text().strip()
        expect(page.locator("#keys")).to_contain_text("Клиент A")
        shot(page, "16-ru-keys")
        page.locator("#signout").click()
        page.get_by_label("Токен администратора или API-ключ").fill(viewer_key)
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Боты")
        expect(page.locator("#whoami")).to_have_text("Клиент A, наблюдатель")
        expect(page.locator("#nav")).not_to_contain_text("API-ключи")
        expect(page.locator("#create-bot")).to_be_hidden()
        expect(page.get_by_role("link", name="Casino funnel")).to_be_visible()
        page.goto(f"{base}/#/bots/{bot_id}/dialogs/1227280")
        expect(page.locator("#dialog")).to_be_visible()
        expect(page.get_by_role("button", name="Стереть диалог")).to_have_count(0)
        page.goto(f"{base}/#/bots/{bot_id}/fields")
        expect(page.locator("#fields")).to_contain_text("userBalance")
        expect(page.locator("#add-field")).to_be_hidden()
        shot(page, "17-ru-viewer")
        page.locator("#signout").click()
        page.get_by_label("Токен администратора или API-ключ").fill(args.token)
        page.keyboard.press("Enter")
        expect(page.locator("h1")).to_have_text("Боты")
        page.goto(f"{base}/#/audit")
        expect(page.locator("#audit")).to_contain_text("createApiKey")
        shot(page, "18-ru-audit")

        # Every screen, in Russian on a desktop and a phone and in English on a phone:
        # nothing left in English, no raw API code, nothing broken or wider than the phone.
        page.goto(f"{base}/#/calls/{service_id}")
        hook_page = page.locator("#hooks tbody a").first.get_attribute("href")
        screens = ["#/bots", f"#/bots/{bot_id}", f"#/bots/{bot_id}/fields", f"#/bots/{bot_id}/steps",
                   f"#/bots/{bot_id}/steps/{step_id}", f"#/bots/{bot_id}/steps/new", f"#/bots/{bot_id}/dialogs",
                   f"#/bots/{bot_id}/dialogs?q=abc123", f"#/bots/{bot_id}/dialogs/1227280", f"#/bots/{bot_id}/auto",
                   "#/deliveries", f"#/deliveries?botId={bot_id}", first_delivery.split("/", 3)[3].lstrip("/"),
                   "#/calls", f"#/calls/{service_id}", hook_page, f"#/calls/{service_id}/hooks/new",
                   "#/attention", "#/keys", "#/audit"]
        problems = walk_screens(page, base, screens, LATIN_OK, phone=False)
        page.set_viewport_size({"width": 390, "height": 844})
        problems += walk_screens(page, base, screens, LATIN_OK, phone=True)
        shot(page, "19-ru-phone-dialogs")
        page.locator("#lang").select_option("en")
        problems += walk_screens(page, base, screens, None, phone=True)
        page.set_viewport_size({"width": 1280, "height": 860})
        assert not problems, "\n".join(problems)

        # Signing out forgets the token; it never appeared in a URL.
        page.locator("#signout").click()
        expect(page.locator("#lang")).to_be_visible()
        assert page.evaluate("sessionStorage.getItem('fh.token')") is None
        assert not any(args.token in u or viewer_key in u for u in urls_seen), urls_seen
        browser.close()

    if expected_errors:
        errors.append(f"expected browser errors that never came: {expected_errors}")
    if errors:
        print("browser console errors:\n" + "\n".join(errors), file=sys.stderr)
        sys.exit(1)
    print("console scenario passed")


if __name__ == "__main__":
    main()
