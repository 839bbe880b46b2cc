#!/usr/bin/env python3
"""The dashboard in a real browser (headless Chromium through Selenium) against a
coordinator on gpusim: residents, a lease and an eviction appear, the timeline is
stacked by owner with the budget and reserve lines and eviction marks, and the
page's own checks pass. Saves a screenshot ($GPUCOORD_DASHBOARD_PNG, by default
dashboard.png in the build folder; docs/dashboard.png is one of these).
Exits 77 (skipped) with the reason when Chromium or Selenium is not there."""
import os
import shutil
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from gctest import BUILD, GiB, GpuEnv, wait_until  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
# A stand-in generation server: waits for its grant, then allocates through a child.
GENERATION = """
import subprocess, sys
sys.stdin.readline()
subprocess.run([sys.argv[1], "--bytes", "12Gi"])
"""
SCREENSHOT = os.environ.get("GPUCOORD_DASHBOARD_PNG", os.path.join(BUILD, "dashboard.png"))


def skip(reason):
    print("skip: " + reason)
    sys.exit(77)


def new_browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        # python3-selenium is a Debian package: a python3 that is not Debian's
        # (pyenv, a venv first on PATH) does not see it, Debian's own does.
        if sys.executable != "/usr/bin/python3" and os.access("/usr/bin/python3", os.X_OK):
            os.execv("/usr/bin/python3", ["/usr/bin/python3"] + sys.argv)
        skip("python3-selenium is not installed (scripts/install-deps.sh)")
    if CHROMIUM is None or CHROMEDRIVER is None:
        skip("chromium or chromedriver is not installed (Debian: chromium chromium-driver)")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for a in ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
              "--window-size=1400,1250", "--hide-scrollbars", "--no-first-run",
              "--disable-extensions", "--disable-background-networking"]:
        opts.add_argument(a)
    try:
        drv = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    except Exception as e:  # noqa: BLE001 - any start failure means: cannot test here
        skip("chromium cannot start: %s" % str(e).strip().splitlines()[0][:300])
    drv.set_page_load_timeout(30)
    drv.set_script_timeout(30)
    return drv


class Browser(GpuEnv):
    @classmethod
    def setUpClass(cls):
        cls.drv = new_browser()

    @classmethod
    def tearDownClass(cls):
        cls.drv.quit()

    @staticmethod
    def kill_group(p):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait(timeout=10)

    def js(self, script, *args):
        return self.drv.execute_script(script, *args)

    def wait_js(self, script, what, timeout=20):
        return wait_until(lambda: self.js(script), timeout=timeout, interval=0.2, what=what)

    def polls(self):
        return int(self.js("return document.body.dataset.polls || '0'"))

    def test_residents_lease_eviction(self):
        self.start_coordinator()
        self.start_resident("validation", "4.7Gi")
        self.start_resident("embedder", "2Gi")
        self.start_holder("1.5Gi", name="foreign")
        self.drv.get(self.url + "/")
        self.assertEqual(self.drv.title, "gpucoord")
        self.assertEqual(self.js("return window.gcDashboardSelfTest()"), [])
        self.wait_js("return document.querySelector('#residents tr[data-resident=validation]')"
                     " && document.querySelector('#residents tr[data-resident=embedder]')",
                     "both residents listed")
        self.assertEqual(self.js("return document.querySelector("
                                 "'#residents tr[data-resident=validation]').dataset.state"),
                         "loaded")
        n = self.polls()
        wait_until(lambda: self.polls() >= n + 3, timeout=20, what="a few polls")

        # A first generation that holds its lease without a process: evicted,
        # then restored once it is released.
        st, first = self.http.post("/v1/leases", {"holder": "generation",
                                                  "bytes": int(19.6 * GiB), "ttl_s": 60,
                                                  "wait_s": 20})
        self.assertEqual(st, 201, first)
        n = self.polls()
        wait_until(lambda: self.polls() >= n + 3, timeout=20, what="polls while granted")
        self.assertEqual(self.http.delete("/v1/leases/" + first["id"])[0], 200)
        self.wait_js("return document.querySelector('#timeline-0 [data-mark=resident_reloaded]')",
                     "a restore mark")
        self.wait_js("return document.querySelector("
                     "'#residents tr[data-resident=validation]').dataset.state == 'loaded'",
                     "validation shown loaded again")
        n = self.polls()
        wait_until(lambda: self.polls() >= n + 3, timeout=20, what="polls after the restore")

        # A generation takes 19.6Gi for its process: the coordinator evicts, the
        # page shows it. The process allocates part of it through a child (which
        # counts for it) once granted.
        gen = subprocess.Popen(
            [sys.executable, "-c", GENERATION, os.path.join(BUILD, "src", "tools", "gpu-hold")],
            env=self.env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        self.addCleanup(self.kill_group, gen)
        st, lease = self.http.post("/v1/leases", {"holder": "generation",
                                                  "bytes": int(19.6 * GiB), "ttl_s": 120,
                                                  "wait_s": 20, "pid": gen.pid})
        self.assertEqual(st, 201, lease)
        self.assertIn("validation", lease["evicted"])
        gen.stdin.write(b"go\n")
        gen.stdin.flush()
        self.wait_js("return document.querySelector('#leases tr[data-lease=\"%s\"]')" %
                     lease["id"], "the lease listed")
        self.wait_js("return document.querySelector("
                     "'#residents tr[data-resident=validation]').dataset.state == 'unloaded'",
                     "validation shown unloaded")
        self.wait_js("return document.querySelector('#events tr[data-kind=resident_unloaded]')",
                     "the eviction in the events")
        self.wait_js("return document.querySelector("
                     "'#timeline-0 [data-mark=resident_unloaded]')", "an eviction mark")
        self.wait_js("return document.querySelector('#timeline-0 [data-mark=resident_unloading]')",
                     "an unload mark")
        self.wait_js("return document.querySelector("
                     "'#timeline-0 path[data-owner=\"generation\"]')",
                     "the holder's own usage in the timeline")
        owners = self.js("return [...document.querySelectorAll('#timeline-0 path')]"
                         ".map(p => p.dataset.owner + ':' + p.dataset.kind)")
        self.assertIn("validation:resident", owners)
        self.assertIn("generation (leased):holder", owners)
        self.assertTrue(any(o.startswith("pid ") and o.endswith(":foreign") for o in owners),
                        owners)
        lines = self.js("return [...document.querySelectorAll('#timeline-0 [data-line]')]"
                        ".map(l => l.dataset.line)")
        self.assertEqual(sorted(lines), ["budget", "reserve"])
        n = self.polls()
        wait_until(lambda: self.polls() >= n + 4, timeout=20, what="the timeline to fill")
        os.makedirs(os.path.dirname(SCREENSHOT) or ".", exist_ok=True)
        self.assertTrue(self.drv.save_screenshot(SCREENSHOT), SCREENSHOT)
        self.assertGreater(os.path.getsize(SCREENSHOT), 10000)
        print("screenshot: " + SCREENSHOT)

        # Released: the resident is restored and the page shows that too.
        # The generation ends: its lease ends with its process, the resident returns.
        self.kill_group(gen)
        self.wait_js("return document.querySelector("
                     "'#events tr[data-kind=lease_expired], #events tr[data-kind=lease_released]')"
                     " && !document.querySelector('#leases tr[data-lease=\"%s\"]')" % lease["id"],
                     "the lease gone")
        self.wait_js("return document.querySelector("
                     "'#residents tr[data-resident=validation]').dataset.state == 'loaded'",
                     "validation shown loaded again")
        self.assertEqual(self.js("return document.getElementById('conn').className"), "ok")


if __name__ == "__main__":
    unittest.main(verbosity=2)
