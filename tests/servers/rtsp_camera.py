"""A real RTSP camera for the tests: GStreamer's RTSP server, serving MJPEG over RTP.

Run with Debian's Python (it has the GObject bindings): /usr/bin/python3 rtsp_camera.py PORT
It serves rtsp://127.0.0.1:PORT/camera: a moving test pattern at 10 frames/s, 320x240,
JPEG-encoded, as IP cameras serve it. Prints "ready" once it listens.
"""

import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

Gst.init(None)
port = sys.argv[1]
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
factory = GstRtspServer.RTSPMediaFactory()
factory.set_launch(
    "( videotestsrc is-live=true pattern=ball"
    " ! video/x-raw,format=I420,width=320,height=240,framerate=10/1"
    " ! jpegenc quality=80 ! rtpjpegpay name=pay0 pt=26 )"
)
factory.set_shared(True)
server.get_mount_points().add_factory("/camera", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
