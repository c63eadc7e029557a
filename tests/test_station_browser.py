"""The station in a real headless Chromium (Debian's chromium, driven by chromedriver)."""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from camstream.config import Config
from camstream.local.ports import free_port
from helpers import ARTIFACTS, wait_until
from station_helpers import AnnotatedFramePublisher, served_station

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"

if not (os.path.exists(CHROMIUM) and os.path.exists(CHROMEDRIVER)):
    if os.environ.get("CI"):
        raise RuntimeError(
            "chromium and chromedriver are required in CI: `make setup` installs them"
        )
    pytest.skip(
        "no chromium/chromedriver (install: apt-get install chromium chromium-driver)",
        allow_module_level=True,
    )

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

FACE, NO_FACE = 0, 35  # sample frames with and without a face


@pytest.fixture
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="camstream-chromium-")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--user-data-dir={profile}", "--window-size=1400,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def test_the_wall_shows_every_camera_live(browser, cfg: Config) -> None:
    stop = threading.Event()
    shed = threading.Event()  # set: the job passes every other frame of cam-2 on unanalysed
    publisher = AnnotatedFramePublisher(cfg)

    def cameras_sending() -> None:  # three cameras at 5 frames/s; cam-2 never sees a face
        index = 0
        while not stop.is_set():
            publisher.send("cam-1", FACE + index % 20)
            skipped = "shed: over capacity" if shed.is_set() and index % 2 else None
            publisher.send("cam-2", NO_FACE, skipped=skipped)
            publisher.send("cam-3", FACE)
            publisher.flush()
            index += 1
            stop.wait(0.2)

    sender = threading.Thread(target=cameras_sending, daemon=True)
    sender.start()
    try:
        with served_station(cfg) as (address, _store):
            browser.get(f"http://{address}/")
            tiles = wait_until(
                lambda: len(t := browser.find_elements(By.CSS_SELECTOR, ".tile")) == 3 and t,
                30,
                what="three tiles",
            )
            assert [t.get_attribute("data-camera") for t in tiles] == ["cam-1", "cam-2", "cam-3"]

            def image_of(camera: str) -> str:
                img = browser.find_element(By.CSS_SELECTOR, f'.tile[data-camera="{camera}"] img')
                return img.get_attribute("src") or ""

            first = wait_until(
                lambda: image_of("cam-1").startswith("blob:") and image_of("cam-1"),
                30,
                what="a first image",
            )
            wait_until(lambda: image_of("cam-1") not in ("", first), 15, what="the image to update")
            # The image really rendered (a decoded JPEG has a size).
            width = browser.execute_script(
                "return document.querySelector('.tile[data-camera=\"cam-3\"] img').naturalWidth"
            )
            assert width == 640

            def caption(camera: str) -> str:
                return browser.find_element(
                    By.CSS_SELECTOR, f'.tile[data-camera="{camera}"] .caption'
                ).text

            wait_until(
                lambda: "fps" in caption("cam-3") and " ms" in caption("cam-3"),
                15,
                what="delay and fps in the caption",
            )

            # The tile, the stats API and the camera agree on its rate (within 10%).
            def rates() -> tuple[float, float, float] | None:
                tile = float(caption("cam-3").split(" fps")[0].split()[-1])
                stats = httpx.get(f"http://{address}/api/stats").json()["cameras"]
                api = next(c["fps"] for c in stats if c["camera_id"] == "cam-3")
                sent = publisher.rate("cam-3")
                close = abs(tile - sent) <= 0.1 * sent and abs(api - sent) <= 0.1 * sent
                return (tile, api, sent) if close else None

            wait_until(rates, 20, what="the tile and /api/stats to show the camera's rate")
            assert "faces 1" in caption("cam-3") and "faces 0" in caption("cam-2")

            def classes(camera: str) -> str:
                element = browser.find_element(By.CSS_SELECTOR, f'.tile[data-camera="{camera}"]')
                return element.get_attribute("class") or ""

            assert "alert" in classes("cam-3") and "alert" not in classes("cam-2")
            wait_until(
                lambda: browser.find_elements(By.CSS_SELECTOR, "#events li img"),
                15,
                what="a detection in the event list",
            )
            # Every frame analysed: no analysed rate beside frames/s, no shedding banner.
            banner = browser.find_element(By.ID, "shedding")
            assert not banner.is_displayed() and "analysed" not in caption("cam-2")
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "station.png"))

            # The job sheds load: half of cam-2's frames come without detection.
            shed.set()
            wait_until(
                lambda: banner.is_displayed() and "Shedding load" in banner.text,
                15,
                what="the shedding banner",
            )
            assert "% of frames shown without detection" in banner.text

            def analysed_rate() -> float | None:  # "5.0 fps · 2.5 analysed"
                text = browser.find_element(
                    By.CSS_SELECTOR, '.tile[data-camera="cam-2"] .analysed'
                ).text
                return float(text.split()[-2]) if text.endswith(" analysed") else None

            rate = wait_until(analysed_rate, 20, what="cam-2's analysed rate on its tile")
            assert 0 < rate < float(caption("cam-2").split(" fps")[0].split()[-1])
            assert "analysed" not in caption("cam-3")
            browser.save_screenshot(str(ARTIFACTS / "station-shedding.png"))
            shed.clear()

            # Clicking a tile opens that camera large.
            browser.find_element(By.CSS_SELECTOR, '.tile[data-camera="cam-3"]').click()
            wait_until(
                lambda: browser.find_element(By.ID, "focus").is_displayed(),
                5,
                what="the large view",
            )
            wait_until(
                lambda: "cam-3" in browser.find_element(By.ID, "focus-caption").text,
                5,
                what="the large view's caption",
            )
            browser.save_screenshot(str(ARTIFACTS / "station-focus.png"))
    finally:
        stop.set()
        sender.join(timeout=5)
        publisher.close()


def test_a_camera_the_station_forgets_leaves_the_page(browser, cfg: Config) -> None:
    """The station keeps at most 2 cameras here: a third one arriving forgets the least
    recently seen, and the page drops its tile (from the wall and from its own maps)."""
    publisher = AnnotatedFramePublisher(cfg)
    try:
        with served_station(cfg.replace(station_max_cameras=2)) as (address, store):
            publisher.send("cam-a", NO_FACE)  # no face: no detection event to see it again
            publisher.flush()
            browser.get(f"http://{address}/")
            image_of_a = '.tile[data-camera="cam-a"] img[src^=blob]'
            wait_until(
                lambda: browser.find_elements(By.CSS_SELECTOR, image_of_a),
                30,
                what="cam-a's tile with its image",
            )
            publisher.send("cam-b", NO_FACE)
            publisher.send("cam-c", NO_FACE)
            publisher.flush()

            def shown() -> list[str]:
                tiles = browser.find_elements(By.CSS_SELECTOR, ".tile")
                return [t.get_attribute("data-camera") or "" for t in tiles]

            wait_until(lambda: shown() == ["cam-b", "cam-c"], 30, what="cam-a's tile to go")
            assert store.camera_count() == 2 and store.latest("cam-a") is None
            held = browser.execute_script(
                "return [[...cameras.keys()].sort(), [...tiles.keys()].sort()]"
            )
            assert held == [["cam-b", "cam-c"], ["cam-b", "cam-c"]]
            assert browser.find_element(By.ID, "summary").text.startswith("2 cameras")
    finally:
        publisher.close()


HOSTILE_ID = '<img src=x onerror="window.pwned=1">cam'


def test_camera_ids_are_text_never_markup(browser, cfg: Config) -> None:
    publisher = AnnotatedFramePublisher(cfg)
    publisher.send(HOSTILE_ID, FACE)
    publisher.flush()
    try:
        with served_station(cfg) as (address, _store):
            browser.get(f"http://{address}/")
            tile = wait_until(
                lambda: browser.find_elements(By.CSS_SELECTOR, ".tile"), 30, what="the tile"
            )[0]
            assert tile.get_attribute("data-camera") == HOSTILE_ID
            wait_until(lambda: HOSTILE_ID in tile.text, 15, what="the id in the caption")
            assert browser.execute_script("return window.pwned === undefined")
            assert not browser.find_elements(By.CSS_SELECTOR, 'img[src="x"]')
    finally:
        publisher.close()


@contextmanager
def page_of_another_site(html: str) -> Iterator[int]:
    """A web server on 127.0.0.1 that serves `html` on every path; yields its port."""
    body = html.encode()

    class AttackerPage(http.server.BaseHTTPRequestHandler):
        timeout = 5  # a connection the browser opened ahead and left idle

        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    # One thread per connection: the browser's idle preconnection must not hold the page.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), AttackerPage)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()


def test_a_page_of_another_site_cannot_watch_the_cameras(browser, cfg: Config) -> None:
    """A page the operator visits (here on another port: another origin) opens a WebSocket
    to the station on localhost, and shows a camera's latest frame in an <img>. Browsers
    allow both; the station must refuse them."""
    publisher = AnnotatedFramePublisher(cfg)
    publisher.send("cam-1", FACE)
    publisher.flush()
    try:
        with served_station(cfg) as (address, _store):
            frame_url = f"http://{address}/api/frame/cam-1"
            wait_until(lambda: httpx.get(frame_url).status_code == 200, 30, what="cam-1's frame")
            page = (
                f"<img src='{frame_url}' onload=\"window.probe = 'loaded'\""
                " onerror=\"window.probe = 'blocked'\">"
                "<script>window.result = 'pending';"
                f"const ws = new WebSocket('ws://{address}/ws');"
                "ws.binaryType = 'arraybuffer';"
                "ws.onopen = () => {"
                " window.result = 'opened'; ws.send('{\"subscribe\": \"*\"}'); };"
                "ws.onmessage = () => { window.result = 'received'; };"
                "ws.onerror = () => {"
                " if (window.result === 'pending') window.result = 'refused'; };"
                "</script>"
            )
            with page_of_another_site(page) as port:
                browser.get(f"http://127.0.0.1:{port}/")  # another port: another origin
                result = wait_until(
                    lambda: (
                        (r := browser.execute_script("return window.result")) != "pending" and r
                    ),
                    15,
                    what="the foreign page's WebSocket to settle",
                )
                assert result == "refused"
                probe = wait_until(
                    lambda: browser.execute_script("return window.probe"),
                    15,
                    what="the foreign page's <img> of a frame to settle",
                )
                assert probe == "blocked"
            # The station's own page, in the same browser, still connects.
            browser.get(f"http://{address}/")
            wait_until(
                lambda: browser.find_elements(By.CSS_SELECTOR, ".tile img[src^=blob]"),
                30,
                what="the station's own page to show frames",
            )
    finally:
        publisher.close()


def test_a_link_with_the_token_leaves_it_in_a_cookie_only(browser, cfg: Config) -> None:
    token = "t0ken-for-the-browser-test"
    publisher = AnnotatedFramePublisher(cfg)
    publisher.send("cam-1", FACE)
    publisher.flush()

    def frames_shown() -> list:
        return browser.find_elements(By.CSS_SELECTOR, ".tile img[src^=blob]")

    try:
        with served_station(cfg, token=token) as (address, _store):
            # Typed in: the redirect drops the token, and the cookie alone lets the page load
            # its assets and open the WebSocket.
            browser.get(f"http://{address}/?token={token}")
            assert browser.current_url == f"http://{address}/"
            wait_until(frames_shown, 30, what="frames on the page")
            cookie = browser.get_cookie("camstream_token")
            assert cookie and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
            assert browser.execute_script("return document.cookie") == ""  # not for scripts
            # A link on another site's page (a chat, a wiki): its redirect began elsewhere,
            # so the browser holds the cookie back, and the page says where to click.
            browser.delete_all_cookies()
            link = f"<a id='go' href='http://{address}/?token={token}'>the wall</a>"
            with page_of_another_site(link) as port:
                browser.get(f"http://localhost:{port}/")  # localhost: another site
                browser.find_element(By.ID, "go").click()
                wait_until(
                    lambda: browser.current_url == f"http://{address}/",
                    15,
                    what="the redirect without the token",
                )
                hint = wait_until(
                    lambda: (
                        frames_shown() or browser.find_elements(By.LINK_TEXT, "open the station")
                    ),
                    30,
                    what="the wall, or the page that says where to click",
                )[0]
                if hint.tag_name == "a":  # (a browser that sends the cookie shows the wall)
                    hint.click()
                wait_until(frames_shown, 30, what="frames after a link from another site")
    finally:
        publisher.close()
