"""Start and stop real `cairn node` processes on loopback for the tests.

Each node gets a free port and its own directory under a temporary
directory; every process started here is ended by PID when the cluster is
closed. Waits are on conditions with deadlines, never plain sleeps.
"""
import os
import signal
import subprocess
import tempfile
import shutil

from cairn_rpc import Client, RpcError
# The shared helpers, also imported from here by the replication tests.
from harness import cairn_bin, free_port, wait_for  # noqa: F401


class Node:
    def __init__(self, cluster, nid, port):
        self.cluster = cluster
        self.id = nid
        self.port = port
        self.addr = "127.0.0.1:%d" % port
        self.dir = os.path.join(cluster.tmp, "n%d" % nid)
        self.proc = None
        self.log = os.path.join(cluster.tmp, "n%d.log" % nid)
        self.extra = []
        self.secret = cluster.secret  # the cluster secret it requires

    def start(self, extra=(), env=None):
        args = [cairn_bin(), "node", "--id", str(self.id), "--listen",
                self.addr, "--dir", self.dir] + self.cluster.node_args + \
            list(self.extra) + list(extra)
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen(args, stdout=logf, stderr=logf,
                                     env=dict(os.environ, **(env or {})))
        logf.close()
        wait_for(self.ping, 10, "node %d to listen" % self.id)

    def ping(self):
        if self.proc.poll() is not None:
            raise AssertionError("node %d exited: %s" % (self.id,
                                                          self.tail()))
        with Client(self.addr, timeout=1, secret=self.secret) as c:
            c.ping()
        return True

    def tail(self, n=2000):
        try:
            with open(self.log, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def kill(self):
        """kill -9."""
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self):
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def pause(self):
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self):
        self.proc.send_signal(signal.SIGCONT)

    def client(self, timeout=5.0):
        return Client(self.addr, timeout=timeout, secret=self.secret)

    def metrics(self, rng):
        with self.client(2) as c:
            return c.metrics(rng)

    def logged(self):
        """The ranges with records in this node's Raft log."""
        return set(self.metrics(0)["logged_ranges"])


class Cluster:
    """n nodes; ranges are created on them with create_range()."""

    def __init__(self, n, node_args=(), secret=None):
        self.tmp = tempfile.mkdtemp(prefix="cairn-nodes-")
        self.secret = secret  # bytes: test clients send it (--cluster-secret-file)
        self.node_args = ["--election-ms", "300", "--heartbeat-ms", "50"] + \
            list(node_args)
        self.nodes = [Node(self, i + 1, free_port()) for i in range(n)]

    def start(self):
        for nd in self.nodes:
            nd.start()
        return self

    def close(self):
        for nd in self.nodes:
            if nd.alive():
                nd.resume()
                nd.kill()
        if os.environ.get("CAIRN_KEEP_TMP"):
            return
        shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.close()

    def node(self, nid):
        return self.nodes[nid - 1]

    def create_range(self, rng, members=None, engine=1):
        members = members or self.nodes
        peers = [(m.id, m.addr) for m in members]
        for m in members:
            with m.client() as c:
                c.create_replica(rng, peers, engine=engine)
        return self.wait_leader(rng, members)

    def leader(self, rng, members=None):
        """The live node that says it leads rng, if exactly one says so
        in the highest term seen."""
        best = None
        for m in members or self.nodes:
            if not m.alive():
                continue
            try:
                mt = m.metrics(rng)
            except (OSError, RpcError, ConnectionError):
                continue
            if mt["role"] == "leader" and (best is None or
                                          mt["term"] > best[1]):
                best = (m, mt["term"])
        return best[0] if best else None

    def wait_leader(self, rng, members=None, timeout=30, exclude=None):
        def ready():
            ld = self.leader(rng, members)
            if ld is None or ld is exclude:
                return None
            # a leader is usable once a read goes through (own-term entry),
            # at the range's current epoch (a membership change bumps it)
            epoch = ld.metrics(rng)["epoch"]
            with ld.client(2) as c:
                c.scan(rng, epoch, limit=1)
            return ld
        return wait_for(ready, timeout, "a leader of range %d" % rng)
