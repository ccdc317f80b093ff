"""Issue 12: the dashboard in a real browser, and /metrics of every process,
against one `cairn dev` cluster.

test_dashboard_and_metrics: `cairn dev` prints the dashboard's URL; headless
Chromium (Debian `chromium` + `chromium-driver`, driven by Selenium) loads
it and the page lists the 3 nodes as live and every range of a table the
test creates with split keys (the ids TABLE.INFO gives), and nothing on
the page comes from anywhere but the controller. The node, router and
controller /metrics pages pass `promtool check metrics` and carry the
families the alerts use; the router counted the test's commands. Then
node 3 is killed with SIGKILL: the cluster keeps serving writes and the
page shows node 3 as not live. A screenshot is saved under the test's
temporary directory (pytest's tmp_path, kept after the run) and its path
printed.

Every process is ended by PID (devharness.Dev); the browser is quit in a
finally.
"""
import os
import shutil
import signal
import subprocess
import urllib.request

import pytest
import redis

from devharness import assert_clean_logs, dev  # noqa: F401 (fixture)
from harness import wait_for

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def http_get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def promtool_ok(text, what):
    """`promtool check metrics` on a page: the text format is valid and
    follows Prometheus's naming rules."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "%s: %s%s" % (what, p.stdout, p.stderr)


def sample(text, name, labels=""):
    """The value of the first sample of `name` whose labels contain
    `labels` (text), on a /metrics page."""
    for line in text.splitlines():
        if line.startswith("#") or not line:
            continue
        series, _, value = line.rpartition(" ")
        n, _, lab = series.partition("{")
        if n == name and labels in lab:
            return float(value)
    raise AssertionError("no sample %s{%s} in:\n%s" % (name, labels,
                                                       text[:3000]))


def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ("--headless=new", "--no-sandbox", "--disable-gpu",
              "--disable-dev-shm-usage", "--window-size=1400,1200",
              "--disable-extensions", "--no-first-run"):
        o.add_argument(a)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=o)


def nodes_on_page(drv):
    """{node id: state} as the page shows them."""
    return {int(e.get_attribute("data-node-id")): e.get_attribute("data-state")
            for e in drv.find_elements("css selector", "tr.node")}


def ranges_on_page(drv, table):
    return [int(e.get_attribute("data-range-id")) for e in
            drv.find_elements("css selector",
                              'tr.range[data-table="%s"]' % table)]


@pytest.mark.skipif(not os.path.exists(CHROMEDRIVER),
                    reason="chromium-driver is not installed (scripts/setup)")
def test_dashboard_and_metrics(dev, tmp_path):  # noqa: F811
    dev.start()
    url = dev.url("dashboard")
    assert url == "http://127.0.0.1:%d/" % (dev.port + 30)
    r = redis.Redis(host="127.0.0.1", port=dev.port, socket_timeout=20)
    assert r.execute_command("TABLE.CREATE", "dash", "SPLITS", "g", "n",
                             "t") == b"OK"
    info = r.execute_command("TABLE.INFO", "dash")
    ranges = info[info.index(b"ranges") + 1]
    ids = sorted(rg[rg.index(b"id") + 1] for rg in ranges)
    assert len(ids) == 4
    for i in range(40):
        r.execute_command("KV.PUT", "dash", "k%02d" % i, "v")
        assert r.execute_command("KV.GET", "dash", "k%02d" % i) == b"v"

    # /metrics of every process: valid, and with what the alerts use. The
    # pages are published once a second: wait for one that has the table.
    node_url = "http://127.0.0.1:%d/metrics" % (dev.port + 31)
    router_url = "http://127.0.0.1:%d/metrics" % (dev.port + 39)
    node1 = wait_for(lambda: (lambda t: 'table="2"' in t and t)(
        http_get(node_url)), 10, "node 1's page to show table dash", 0.2)
    router = wait_for(lambda: (lambda t: 'command="kv.get"' in t and t)(
        http_get(router_url)), 10, "the router's page to count KV.GET", 0.2)
    ctl = http_get(url + "metrics")
    for text, what in ((ctl, "controller"), (node1, "node"),
                       (router, "router")):
        promtool_ok(text, what)
    for name in ("cairn_node_ranges", "cairn_node_ranges_without_leader",
                 "cairn_node_follower_lag_seconds_max",
                 "cairn_node_disk_available_bytes", "cairn_raft_log_syncs_total",
                 "cairn_raft_log_entries_total", "cairn_range_term",
                 "cairn_range_applied_index"):
        sample(node1, name)
    assert sample(router, "cairn_router_requests_total",
                  'command="kv.put",result="OK"') >= 40
    assert sample(router, "cairn_router_request_duration_seconds_count",
                  'command="kv.get"') >= 40
    sample(router, "cairn_etcd_requests_total")
    wait_for(lambda: sample(http_get(url + "metrics"),
                            "cairn_controller_active") == 1,
             20, "the controller's page to say it is active", 0.2)
    wait_for(lambda: sample(http_get(url + "metrics"),
                            "cairn_controller_nodes", 'state="live"') == 3,
             20, "the controller to see 3 live nodes", 0.2)

    drv = browser()
    try:
        drv.get(url)
        wait_for(lambda: nodes_on_page(drv) == {1: "live", 2: "live",
                                                3: "live"},
                 30, "the page to list 3 live nodes", 0.2)
        wait_for(lambda: sorted(ranges_on_page(drv, "dash")) == ids, 30,
                 "the page to list every range of table dash", 0.2)
        # One page of our own: every resource it loaded came from the
        # controller itself.
        sources = drv.execute_script(
            "return [location.href].concat(performance.getEntriesByType("
            "'resource').map(e => e.name))")
        assert all(s.startswith(url) for s in sources), sources
        assert len(drv.find_elements("css selector",
                                     '.strip[data-table="dash"] .cell')) == 4

        # The heat strip follows the load: writes to the range [g, n) show
        # as its ops/s (a rate between two collections, 2 s apart).
        hot = ids[1]

        def hot_cell():
            for i in range(20):
                r.execute_command("KV.PUT", "dash", "h%02d" % i, "v")
            cell = drv.find_element(
                "css selector", '.strip[data-table="dash"] '
                '.cell[data-range-id="%d"]' % hot)
            return float(cell.get_attribute("data-ops")) > 0
        wait_for(hot_cell, 30, "the heat strip to show load on range %d"
                 % hot, 0.1)

        node3 = dev.child_pids()["node3"]
        os.kill(node3, signal.SIGKILL)
        wait_for(lambda: nodes_on_page(drv).get(3) not in (None, "live"),
                 30, "the page to show node 3 as not live", 0.2)
        assert nodes_on_page(drv)[1] == "live"
        # cairn dev keeps serving without it: a majority is left.
        r.execute_command("KV.PUT", "dash", "after-kill", "yes")
        assert r.execute_command("KV.GET", "dash", "after-kill") == b"yes"
        shot = str(tmp_path / "dashboard.png")
        assert drv.save_screenshot(shot)
        assert os.path.getsize(shot) > 10000
        print("dashboard screenshot: %s" % shot)
    finally:
        drv.quit()
    assert dev.proc.poll() is None, dev.logs()
    dev.stop()
    assert dev.proc.returncode == 0, dev.logs()
    assert_clean_logs(dev.dir)  # an ASan build's reports land there
