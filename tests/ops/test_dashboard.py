#!/usr/bin/env python3
"""GET / serves the dashboard: a self-contained page (no resource from elsewhere,
forbidden by its Content-Security-Policy too) that draws what the API says."""
import os
import re
import socket
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import GpuEnv  # noqa: E402


def unix_get(path, sock_path):
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(sock_path)
        s.sendall(("GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), body


class Dashboard(GpuEnv):
    def setUp(self):
        super().setUp()
        self.start_coordinator()

    def get_page(self, path="/"):
        import urllib.request
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return r.status, dict(r.headers), r.read().decode()

    def test_get_root_is_the_page(self):
        st, headers, page = self.get_page()
        self.assertEqual(st, 200)
        self.assertEqual(headers["Content-Type"], "text/html; charset=utf-8")
        csp = headers["Content-Security-Policy"]
        self.assertIn("default-src 'none'", csp)
        self.assertIn("connect-src 'self'", csp)
        self.assertTrue(page.startswith("<!DOCTYPE html>"))
        for element in ['id="gpus"', 'id="residents"', 'id="leases"', 'id="queue"',
                        'id="events"', 'id="counters"']:
            self.assertIn(element, page)
        # Fed by the existing API, relative so a proxy prefix works.
        for api in ['"v1/status"', '"v1/events?since="']:
            self.assertIn(api, page)

    def test_page_is_self_contained(self):
        _, _, page = self.get_page()
        # No script, style sheet, image or font from anywhere: everything is inline.
        self.assertNotRegex(page, r"<script[^>]+src=")
        self.assertNotRegex(page, r"<link\b")
        self.assertNotRegex(page, r"<img\b")
        self.assertNotIn("@import", page)
        self.assertNotRegex(page, r"url\(")
        # The only absolute URL is the SVG namespace name, which is never fetched.
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", page))
        self.assertEqual(urls, {"http://www.w3.org/2000/svg"})

    def test_same_page_on_the_unix_socket(self):
        _, _, page = self.get_page()
        head, body = unix_get("/", self.socket)
        self.assertIn("200", head.split("\r\n")[0])
        self.assertEqual(body.decode(), page)

    def test_only_get(self):
        st, body = self.http.post("/", {})
        self.assertEqual(st, 405)
        self.assertEqual(body["error"], "method_not_allowed")
        # Unknown paths are still 404 JSON errors, not the page.
        st, body = self.http.get("/nope")
        self.assertEqual(st, 404)


if __name__ == "__main__":
    unittest.main(verbosity=2)
