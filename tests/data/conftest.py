"""Fixtures shared by the data tests: slow mirrors on the loopback interface."""

from __future__ import annotations

import http.server
import socket
import threading
import time

import pytest


class _TrickleHandler(http.server.BaseHTTPRequestHandler):
    """Announces a large file and sends one byte every 50 ms (bounded: about 10 s at most):
    every read returns before any per-read timeout, so only a total deadline stops it."""

    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "9912422")
        self.end_headers()
        try:
            for _ in range(200):
                self.wfile.write(b"\x1f")
                self.wfile.flush()
                time.sleep(0.05)
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture(params=["trickle", "stalled"])
def slow_server(request):
    """The base URL of a server on 127.0.0.1 that is slow in one of two ways: it trickles
    bytes, or it accepts connections and never answers. Stopped (threads ended, sockets closed)
    afterwards."""
    if request.param == "trickle":
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _TrickleHandler)
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        port = server.server_address[1]
        stop, close = server.shutdown, server.server_close
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        done = threading.Event()
        held: list[socket.socket] = []

        def accept_and_hold():
            while not done.is_set():
                try:
                    conn, _ = listener.accept()
                    held.append(conn)  # never read, never answered
                except OSError:
                    continue

        thread = threading.Thread(target=accept_and_hold, daemon=True)
        stop = done.set

        def close():
            for c in held:
                c.close()
            listener.close()

    thread.start()
    yield f"http://127.0.0.1:{port}/"
    stop()
    thread.join(5)
    close()
