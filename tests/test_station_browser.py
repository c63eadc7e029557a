"""The station in a real headless Chromium (Debian's chromium, driven by chromedriver)."""

from __future__ import annotations

import http.server
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest

from camstream.config import Config
from camstream.core.jpeg import decode_jpeg, encode_jpeg
from camstream.kafka.recorder import frame_recording
from camstream.local.ports import free_port
from helpers import ARTIFACTS, wait_until
from station_helpers import AnnotatedFramePublisher, annotated_sample_frames, served_station

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
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402

FACE, NO_FACE = 0, 35  # sample frames with and without a face


@pytest.fixture
def downloads(tmp_path: Path) -> Path:
    """Where the browser saves what it downloads."""
    folder = tmp_path / "downloads"
    folder.mkdir()
    return folder


@pytest.fixture
def browser(downloads: Path):
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
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

            # The page keeps the delays of the frames it showed (capture to the decoded
            # image, by its own clock): what the bench reads off the wall. This machine's
            # clock is the cameras': each is positive and a few seconds at most.
            def shown_delays() -> list[float] | None:
                text = browser.find_element(
                    By.CSS_SELECTOR, '.tile[data-camera="cam-1"]'
                ).get_attribute("data-shown-delays-ms")
                delays = [float(v) for v in (text or "").split(",") if v]
                return delays if len(delays) >= 3 else None

            delays = wait_until(shown_delays, 15, what="the page's shown delays")
            assert all(0 <= delay < 5000 for delay in delays), delays

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


def test_a_page_of_another_site_cannot_watch_the_cameras(
    browser, cfg: Config, caplog: pytest.LogCaptureFixture
) -> None:
    """A page the operator visits (here on another port: another origin) opens a WebSocket
    to the station on localhost, shows a camera's latest frame in an <img>, and asks for its
    timeline and a clip of it. Browsers allow all that; the station must refuse them."""
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
                f"fetch('http://{address}/api/timeline/cam-1', {{mode: 'no-cors'}})"
                ".finally(() => { window.timeline = 'settled'; });"
                "</script>"
                f"<video src='http://{address}/api/clip/cam-1?from_ns=1&to_ns={2 * 10**18}'"
                " onerror=\"window.clip = 'blocked'\"></video>"
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
                # The timeline and the clip: opaque to the page whatever the answer, so the
                # station's log says whether it refused them.
                wait_until(
                    lambda: browser.execute_script("return window.timeline && window.clip"),
                    15,
                    what="the foreign page's timeline and clip requests to settle",
                )
                refused = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
                for path in ("/api/timeline/cam-1", "/api/clip/cam-1"):
                    assert any(f"refused http {path}: " in line for line in refused), refused
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


S = 1_000_000_000
INTERVAL_NS = 250_000_000  # 4 frames/s
PLAIN_S, FACES_S = 20, 10  # the recorded past: 20 s without a face, then 10 s with one
GAP_AT, GAP_S = 8, 6  # and no frames for 6 s after its 8th


def numbered_frames(count: int) -> list[tuple[bytes, list[list[int]]]]:
    """(annotated JPEG, face boxes): `count` frames without a face, then the sample's frames
    with one (every 7th), each with its number drawn large, so that each differs clearly
    from every other (the sample video holds still stretches)."""
    samples = annotated_sample_frames()
    with_faces = [index for index, (_, boxes) in enumerate(samples) if boxes]
    frames = []
    for number in range(count):
        if number < PLAIN_S * 4:
            jpeg, boxes = samples[NO_FACE]
        else:
            jpeg, boxes = samples[with_faces[number * 7 % len(with_faces)]]
        image = decode_jpeg(jpeg)
        corner = (20 + number * 37 % 420, 90 + number * 53 % 330)
        cv2.putText(image, str(number), corner, cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 255, 255), 5)
        frames.append((encode_jpeg(image, 80), boxes))
    return frames


def small_grey(image: np.ndarray) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (80, 60), interpolation=cv2.INTER_AREA).astype(np.float32)


def video_frames(path: Path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    try:
        while True:
            ok, image = capture.read()
            if not ok:
                return frames
            frames.append(image)
    finally:
        capture.release()


# Every image the focus view shows, as it is shown: its seq, capture time and mode.
RECORD_SHOWN = """
window.shown = [];
const img = document.getElementById('focus-img');
new MutationObserver((changes) => {
  if (!changes.some((c) => c.attributeName === 'src')) return;
  window.shown.push({seq: Number(img.dataset.seq), capture_ns: img.dataset.captureNs,
                     mode: img.dataset.mode, at: performance.now()});
}).observe(img, {attributes: true});
"""


def test_detection_clips_and_the_timeline_replay_in_the_focus_view(
    browser, downloads: Path, cfg: Config
) -> None:
    """A recorded past with detections, and the camera live now: a detection's clip plays
    in the focus view (its own frame among those shown) and downloads as a video of exactly
    the frames of its span, in order; the timeline replays from a moment picked on it, over
    a gap, at 4x, and Live shows live frames again."""
    cfg = cfg.replace(clip_before_s=2.0, clip_after_s=2.0)
    camera = "cam-v"
    publisher = AnnotatedFramePublisher(cfg)
    publisher.frames = numbered_frames((PLAIN_S + FACES_S) * 4)
    start_ns = time.time_ns() - 5 * 60 * S
    for index in range(len(publisher.frames)):
        gap_ns = GAP_S * S if index >= GAP_AT else 0
        publisher.send(camera, index, capture_ns=start_ns + index * INTERVAL_NS + gap_ns)
    publisher.flush()
    captured = list(publisher.captured_ns[camera])
    detection = PLAIN_S * 4  # the first frame with a face, and so the detection listed
    stop = threading.Event()

    def live() -> None:  # the camera now, without faces
        index = 0
        while not stop.wait(0.25):
            publisher.send(camera, index % (PLAIN_S * 4))
            publisher.flush()
            index += 1

    sender = threading.Thread(target=live, daemon=True)
    try:
        with served_station(cfg) as (address, _store):
            sender.start()
            browser.get(f"http://{address}/")
            browser.execute_script(RECORD_SHOWN)
            item = wait_until(
                lambda: browser.find_elements(
                    By.CSS_SELECTOR, f'#events li[data-seq="{detection}"]'
                ),
                30,
                what="the detection in the list",
            )[0]
            item.click()

            # Its clip plays at 1x: 2 s before the detection to 2 s after, then ends.
            badge = browser.find_element(By.ID, "focus-badge")
            wait_until(lambda: badge.text == "END OF CLIP", 20, what="the clip to play to its end")
            shown = browser.execute_script("return window.shown")
            replayed = [f["seq"] for f in shown if f["mode"] == "replay"]
            clip_span = range(detection - 8, detection + 9)  # its frames, 250 ms apart
            assert replayed == list(clip_span), replayed
            times = [f["at"] for f in shown if f["mode"] == "replay"]
            assert 3.5 < (times[-1] - times[0]) / 1000 < 5.5  # 4 s of capture at 1x
            assert browser.find_element(By.ID, "replay-again").is_displayed()
            # The detection's own frame, paused on it.
            browser.find_element(By.ID, "detection-frame").click()
            image = browser.find_element(By.ID, "focus-img")
            wait_until(
                lambda: (
                    image.get_attribute("data-seq") == str(detection)
                    and image.get_attribute("data-mode") == "replay"
                ),
                10,
                what="the detection's frame",
            )
            caption = browser.find_element(By.ID, "focus-caption").text
            assert "the detection" in caption and _clock(captured[detection]) in caption
            assert badge.text == "REPLAY · paused"
            ARTIFACTS.mkdir(exist_ok=True)
            browser.save_screenshot(str(ARTIFACTS / "station-replay.png"))

            # Download the clip: a video of exactly the span's frames in the topic, in order.
            browser.find_element(By.ID, "download-clip").click()
            stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(captured[detection - 8] // S))
            saved = downloads / f"{camera}_{stamp}.webm"
            wait_until(saved.exists, 30, what=f"{saved.name} to download")
            from_ns, to_ns = captured[detection] - 2 * S, captured[detection] + 2 * S
            with frame_recording(cfg, camera) as recording:
                _, frames = recording.between(from_ns, to_ns)
                in_topic = [decode_jpeg(f.jpeg) for f in frames]
            decoded = video_frames(saved)
            assert len(decoded) == len(in_topic) == len(clip_span)
            sources = [small_grey(f) for f in in_topic]
            for index, frame in enumerate(decoded):
                distances = [float(np.abs(small_grey(frame) - s).mean()) for s in sources]
                assert int(np.argmin(distances)) == index, (index, distances)

            # The timeline: a moment picked on it replays from about there, its time shown.
            bar = browser.find_element(By.ID, "timeline")
            start_ms = float(bar.get_attribute("data-start-ms"))
            end_ms = float(bar.get_attribute("data-end-ms"))
            target_ms = captured[3] / 1e6
            width = bar.size["width"]
            offset = (target_ms - start_ms) / (end_ms - start_ms) * width - width / 2
            clicked = browser.execute_script("return window.shown.length")
            ActionChains(browser).move_to_element_with_offset(
                bar, round(offset), 0
            ).click().perform()

            def first_replayed() -> dict | None:
                since = browser.execute_script("return window.shown")[clicked:]
                return next((f for f in since if f["mode"] == "replay"), None)

            first = wait_until(first_replayed, 10, what="frames replayed from the moment picked")
            ms_per_pixel = (end_ms - start_ms) / width
            assert abs(int(first["capture_ns"]) / 1e6 - target_ms) < ms_per_pixel + 1000, first
            shown_ns, caption = browser.execute_script(
                "return [document.getElementById('focus-img').dataset.captureNs,"
                " document.getElementById('focus-caption').textContent]"
            )
            assert _clock(int(shown_ns)) in caption
            # The camera's gap: said over the dimmed image for about a second, not waited out.
            notice = browser.find_element(By.ID, "focus-notice")
            wait_until(
                lambda: notice.is_displayed() and notice.text.startswith("no frames"),
                10,
                what="the gap's notice",
            )
            span = f"{_clock(captured[GAP_AT - 1])[:8]} - {_clock(captured[GAP_AT])[:8]}"
            assert notice.text == f"no frames for {GAP_S} s ({span})"
            assert "dimmed" in (
                browser.find_element(By.ID, "focus-stage").get_attribute("class") or ""
            )
            browser.save_screenshot(str(ARTIFACTS / "station-replay-gap.png"))
            wait_until(
                lambda: (
                    int(image.get_attribute("data-seq")) >= GAP_AT and not notice.is_displayed()
                ),
                5,
                what="the frames after the gap",
            )
            # 4x: the capture time shown runs four times as fast as the clock.
            browser.find_element(By.CSS_SELECTOR, '#replay-controls [data-speed="4"]').click()
            wait_until(lambda: badge.text == "REPLAY · 4x", 5, what="4x")
            before = (time.monotonic(), int(image.get_attribute("data-capture-ns")))
            time.sleep(1.5)
            after = (time.monotonic(), int(image.get_attribute("data-capture-ns")))
            rate = (after[1] - before[1]) / 1e9 / (after[0] - before[0])
            assert 2.5 < rate < 5, rate
            browser.save_screenshot(str(ARTIFACTS / "station-replay-timeline.png"))
            # Live: the camera's frames of now again.
            browser.find_element(By.ID, "go-live").click()
            wait_until(lambda: badge.text == "LIVE", 5, what="the live badge")
            wait_until(
                lambda: (
                    image.get_attribute("data-mode") == "live"
                    and time.time_ns() - int(image.get_attribute("data-capture-ns") or 0) < 5 * S
                ),
                10,
                what="live frames in the focus view",
            )
    finally:
        stop.set()
        if sender.is_alive():
            sender.join(timeout=5)
        publisher.close()


def _clock(capture_ns: int) -> str:
    """A capture time as the page shows it: local time with milliseconds."""
    seconds, ns = divmod(capture_ns, S)
    return time.strftime("%H:%M:%S", time.localtime(seconds)) + f".{ns // 1_000_000:03d}"
