"""Issue 12, multi-host: three nodes on three "hosts" - network namespaces
joined by veth pairs to a bridge - with etcd and a router in a fourth, and
no address outside those namespaces used (no loopback between them).

Each node listens on 0.0.0.0:7000 inside its namespace and advertises its
own address (--advertise), reads its flags from a --config file, and
serves /metrics on its address. Then: a table is created (RF 3, two
ranges), written and read through the router; node 1's link is cut (`ip
link set eth0 down` in its namespace) while a client keeps writing -
writes go on (after at most an election) and every acknowledged one is
readable; the link comes back and node 1 catches up on every range.

Needs root and `ip netns` (CI runs as root); skipped otherwise. Every
process is ended by PID and every namespace deleted on every exit path
(a finally, SIGTERM turned into an exception while the test runs, and
namespaces left by an earlier run that was SIGKILLed are deleted at the
start: their names carry the PID of the run that made them).
"""
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from harness import ROOT, alive, cairn_bin, wait_for

NET = "10.231.7"            # inside the namespaces only
HUB = NET + ".254"          # etcd and the router
NODE_PORT, HTTP_PORT = 7000, 9100
CLIENT = os.path.join(ROOT, "tests", "cluster", "netns_client.py")
PREFIX = "cairnt"           # namespace names: cairnt<pid>-<what>


def can_netns():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return False
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    ok = subprocess.run(["ip", "netns", "add", probe],
                        capture_output=True).returncode == 0
    if ok:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return ok


def sh(*argv):
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, "%s: %s" % (" ".join(argv), p.stderr)
    return p.stdout


def delete_stale():
    """Namespaces of earlier runs whose process is gone (SIGKILLed)."""
    out = subprocess.run(["ip", "netns", "list"], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        m = re.match(r"(%s(\d+)-\S+)" % PREFIX, line)
        if m and not alive(int(m.group(2))):
            subprocess.run(["ip", "netns", "del", m.group(1)],
                           capture_output=True)


class Net:
    """Four namespaces: hub (bridge br0, etcd, router) and n1..n3 (one
    node each, eth0 = a veth whose peer is on the bridge)."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.tag = "%s%d" % (PREFIX, os.getpid())
        self.hub = self.tag + "-hub"
        self.names = []
        self.procs = []

    def ns(self, i):
        return "%s-n%d" % (self.tag, i)

    def build(self):
        for name in [self.hub] + [self.ns(i) for i in (1, 2, 3)]:
            sh("ip", "netns", "add", name)
            self.names.append(name)
            sh("ip", "-n", name, "link", "set", "lo", "up")
        sh("ip", "-n", self.hub, "link", "add", "br0", "type", "bridge")
        sh("ip", "-n", self.hub, "addr", "add", HUB + "/24", "dev", "br0")
        sh("ip", "-n", self.hub, "link", "set", "br0", "up")
        for i in (1, 2, 3):
            sh("ip", "-n", self.hub, "link", "add", "v%d" % i, "type", "veth",
               "peer", "name", "eth0", "netns", self.ns(i))
            sh("ip", "-n", self.hub, "link", "set", "v%d" % i, "master", "br0")
            sh("ip", "-n", self.hub, "link", "set", "v%d" % i, "up")
            sh("ip", "-n", self.ns(i), "addr", "add", "%s.%d/24" % (NET, i),
               "dev", "eth0")
            sh("ip", "-n", self.ns(i), "link", "set", "eth0", "up")

    def start(self, ns, argv, name):
        log = open(os.path.join(self.tmp, name + ".log"), "ab")
        # `ip netns exec` execs the command: the PID is the process's own.
        p = subprocess.Popen(["ip", "netns", "exec", ns] + argv, stdout=log,
                             stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL)
        log.close()
        self.procs.append(p)
        return p

    def run(self, ns, argv, timeout=60, check=True):
        """Run argv in namespace `ns`; its output. With check=False a
        failure returns None (for waits: wait_for takes an
        AssertionError as final)."""
        p = subprocess.run(["ip", "netns", "exec", ns] + argv,
                           capture_output=True, text=True, timeout=timeout)
        if not check and p.returncode != 0:
            return None
        assert p.returncode == 0, "%s: %s%s" % (argv, p.stdout, p.stderr)
        return p.stdout

    def teardown(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(10)
        self.procs = []
        for name in reversed(self.names):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
        self.names = []


@pytest.fixture
def net():
    if not can_netns():
        pytest.skip("needs root and ip netns")
    delete_stale()
    tmp = tempfile.mkdtemp(prefix="cairn-netns-")
    n = Net(tmp)

    def on_term(sig, frame):
        raise KeyboardInterrupt("SIGTERM")
    old = signal.signal(signal.SIGTERM, on_term)
    try:
        n.build()
        yield n
    finally:
        signal.signal(signal.SIGTERM, old)
        n.teardown()
        leftover = subprocess.run(["ip", "netns", "list"],
                                  capture_output=True, text=True).stdout
        if not os.environ.get("CAIRN_KEEP_TMP"):
            shutil.rmtree(tmp, ignore_errors=True)
        assert n.tag not in leftover, leftover


def write_config(path, i, etcd):
    """Every flag of the node from a file (--config)."""
    with open(path, "w") as f:
        f.write("# node %d of the netns test\n"
                "id %d\n"
                "listen 0.0.0.0:%d\n"
                "--advertise %s.%d:%d\n"
                "dir=%s\n"
                "etcd %s\n"
                "http %s.%d:%d\n"
                "election-ms 1000\n"
                "log-level info\n" % (i, i, NODE_PORT, NET, i, NODE_PORT,
                                       os.path.join(os.path.dirname(path),
                                                    "n%d" % i),
                                       etcd, NET, i, HTTP_PORT))


def node_metrics(net, i, rng):
    """A range's METRICS from node i (cairn admin, from the hub); None if
    the node does not answer."""
    out = net.run(net.hub, [cairn_bin(), "admin", "--node",
                            "%s.%d:%d" % (NET, i, NODE_PORT), "metrics",
                            str(rng)], check=False)
    return json.loads(out) if out else None


def test_three_hosts_link_cut_and_rejoin(net):
    cairn = cairn_bin()
    etcd_url = "http://%s:2379" % HUB
    net.start(net.hub, [
        "etcd", "--name", "hub", "--data-dir", os.path.join(net.tmp, "etcd"),
        "--listen-client-urls", etcd_url, "--advertise-client-urls", etcd_url,
        "--listen-peer-urls", "http://127.0.0.1:2380",
        "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
        "--initial-cluster", "hub=http://127.0.0.1:2380"], "etcd")
    etcdctl = ["etcdctl", "--endpoints", etcd_url]
    wait_for(lambda: net.run(net.hub, etcdctl + ["endpoint", "health"],
                             check=False) is not None, 60,
             "etcd in the hub namespace", 0.2)
    for i in (1, 2, 3):
        conf = os.path.join(net.tmp, "node%d.conf" % i)
        write_config(conf, i, etcd_url)
        net.start(net.ns(i), [cairn, "node", "--config", conf], "node%d" % i)
    router = "%s:6380" % HUB
    net.start(net.hub, [cairn, "router", "--listen", router, "--etcd",
                        etcd_url], "router")

    def redis_cli(*args, check=True):
        out = net.run(net.hub, ["redis-cli", "-h", HUB, "-p", "6380"] +
                      list(args), check=check)
        return out.strip() if out is not None else None
    wait_for(lambda: redis_cli("PING", check=False) == "PONG", 30,
             "the router", 0.2)
    wait_for(lambda: len((net.run(net.hub, etcdctl + [
        "get", "--prefix", "--keys-only", "/cairn/live/"], check=False) or
        "").split()) == 3, 30, "3 nodes live in etcd", 0.2)
    assert redis_cli("TABLE.CREATE", "hosts", "REPLICAS", "3", "SPLITS",
                     "m") == "OK"
    # Registered under their advertised addresses, never 0.0.0.0.
    nodes_txt = net.run(net.hub, etcdctl + ["get", "--prefix",
                                            "/cairn/nodes/"])
    for i in (1, 2, 3):
        assert '"%s.%d:%d"' % (NET, i, NODE_PORT) in nodes_txt, nodes_txt
    assert "0.0.0.0" not in nodes_txt
    # /metrics on each node's own address, reached from the hub.
    page = net.run(net.hub, ["curl", "-sf", "http://%s.1:%d/metrics" %
                             (NET, HTTP_PORT)]) if shutil.which("curl") else \
        net.run(net.hub, ["/usr/bin/python3", "-c",
                          "import urllib.request;print(urllib.request."
                          "urlopen('http://%s.1:%d/metrics').read().decode())"
                          % (NET, HTTP_PORT)])
    assert 'cairn_node_info{node="1",address="%s.1:%d"' % (NET, NODE_PORT) \
        in page

    for k in ("a", "k", "n", "z"):
        assert len(redis_cli("KV.PUT", "hosts", k, "v-" + k)) == 32
    assert redis_cli("KV.GET", "hosts", "z") == "v-z"
    info = redis_cli("TABLE.INFO", "hosts")
    ranges = [int(x) for x in re.findall(r"^id\n(\d+)$", info, re.M)][1:]
    assert len(ranges) == 2, info

    # Cut node 1 off while a client writes for 12 s.
    writer = subprocess.Popen(
        ["ip", "netns", "exec", net.hub, "/usr/bin/python3", CLIENT, "write",
         router, "hosts", "w", "12"], stdout=subprocess.PIPE, text=True)
    net.procs.append(writer)
    time.sleep(2)  # writes before the cut
    cut_at = 2.0
    sh("ip", "-n", net.ns(1), "link", "set", "eth0", "down")
    out, _ = writer.communicate(timeout=120)
    res = json.loads(out)
    acked = res["acked"]
    print("netns: %d writes acknowledged in 12 s, node 1 cut at 2 s; "
          "errors %s" % (len(acked), res["errors"]))
    after = [t for _, t in acked if t > cut_at + 6]
    # Writes continue: within 6 s of the cut (an election, the router's
    # retries) they succeed again, and keep succeeding.
    assert len(after) >= 20, (len(acked), res["errors"])
    # Every acknowledged write is there.
    keys = [k for k, _ in acked]
    got = json.loads(net.run(net.hub, ["/usr/bin/python3", CLIENT, "read",
                                       router, "hosts"] + keys,
                             timeout=120))["values"]
    missing = [k for k in keys if got[k] != str(int(k[1:]))]
    assert not missing, missing[:10]

    # The link back: node 1 catches up on every range.
    sh("ip", "-n", net.ns(1), "link", "set", "eth0", "up")

    def caught_up():
        for rng in ranges:
            leader = None
            for i in (2, 3, 1):
                m = node_metrics(net, i, rng)
                if m is None:
                    return False
                if m["role"] == "leader":
                    leader = m
                    break
            if leader is None:
                return False
            m1 = node_metrics(net, 1, rng)
            if m1 is None or m1["applied_index"] < leader["commit_index"]:
                return False
        return True
    wait_for(caught_up, 60, "node 1 to catch up after its link came back",
             0.5)
    assert redis_cli("KV.GET", "hosts", keys[-1]) == str(int(keys[-1][1:]))
    net.teardown()  # SIGTERM: an ASan build reports leaks in the logs
    for name in ("node1", "node2", "node3", "router"):
        with open(os.path.join(net.tmp, name + ".log"),
                  errors="replace") as f:
            text = f.read()
        assert "Sanitizer" not in text and "runtime error" not in text, \
            "%s:\n%s" % (name, text[-3000:])
