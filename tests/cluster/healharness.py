"""A whole cluster for the self-healing tests (issue 9): real etcd, real
`cairn node` processes registered in it (short leases, so a death is seen
in seconds), a real router and one or two real controllers with short
thresholds; plus a writer that keeps writing through the router and
remembers every acknowledged write, and helpers that read what the
controller records in etcd.

Every process is ended by PID; every wait is a condition with a deadline.
"""
import json
import os
import threading
import time

import redis

from clusterharness import Router, Workdir, wait_live
from harness import Etcd, Procs, cairn_bin, wait_for
from nodeharness import Cluster

# Fast thresholds: a node without its lease (2 s) and silent for 2 s more
# is dead; the controller looks every 0.5 s.
CTL_ARGS = ["--interval-ms", "200", "--poll-ms", "500", "--dead-after", "2",
            "--lease-ttl", "2"]


class Heal:
    def __init__(self, n, zones=None, ctl_args=(), controllers=1,
                 node_args=()):
        self.procs, self.wd = Procs(), Workdir()
        self.etcd = Etcd(self.wd.path, self.procs).start()
        self.zones = zones
        self.nodes = Cluster(n, node_args=["--etcd", self.etcd.url,
                                           "--lease-ttl", "2"] +
                             list(node_args))
        for i, nd in enumerate(self.nodes.nodes):
            if zones:
                nd.extra = ["--zone", zones[i]]
        self.nodes.start()
        wait_live(self.etcd, n)
        self.router = Router(self.procs, self.wd.path, self.etcd.url)
        self.ctl_args = list(CTL_ARGS) + list(ctl_args)
        self.ctls = [self.start_controller("c%d" % i)
                     for i in range(controllers)]

    def start_controller(self, name, env=None):
        log = os.path.join(self.wd.path, name + ".log")
        p = self.procs.start([cairn_bin(), "controller", "--etcd",
                              self.etcd.url, "--id", name] + self.ctl_args,
                             log, env=env)
        p.name, p.log = name, log
        return p

    def controller_log(self):
        out = ""
        for p in self.ctls:
            with open(p.log, errors="replace") as f:
                out += f.read()
        return out

    def client(self):
        return redis.Redis(port=self.router.port, socket_timeout=30)

    def add_node(self, zone=None):
        """A new node (next id) joining the running cluster."""
        from nodeharness import Node, free_port
        nd = Node(self.nodes, len(self.nodes.nodes) + 1, free_port())
        if zone:
            nd.extra = ["--zone", zone]
        self.nodes.nodes.append(nd)
        nd.start()
        return nd

    def close(self):
        try:
            for p in self.ctls:
                self.procs.stop(p)
            for nd in self.nodes.nodes:
                nd.stop()
            text = self.controller_log()
            for nd in self.nodes.nodes:
                text += nd.tail(1 << 20)
            assert "Sanitizer" not in text and "runtime error" not in text, \
                text[-3000:]
        finally:
            self.nodes.close()
            self.procs.stop_all()
            self.wd.cleanup()

    def wait_writes(self, w, n, timeout=30):
        """w.wait_more(n), and on a timeout the tails of the controller's,
        the router's and the live nodes' logs in the error, so that a
        failure seen only in CI says what the cluster was doing."""
        try:
            w.wait_more(n, timeout)
        except TimeoutError as e:
            parts = [str(e), "--- controller", self.controller_log()[-3000:]]
            with open(self.router.log, errors="replace") as f:
                parts += ["--- router", f.read()[-2000:]]
            for nd in self.nodes.nodes:
                if nd.alive():
                    parts += ["--- node %d" % nd.id, nd.tail(1500)]
            raise TimeoutError("\n".join(parts)) from None

    # ---- what etcd says -------------------------------------------------

    def ranges(self):
        """{range id: record} of every range."""
        return {json.loads(v)["id"]: json.loads(v) for v in
                self.etcd.get_prefix(b"/cairn/ranges/").values()}

    def health(self):
        """{node id: health record}."""
        return {int(k.rsplit(b"/", 1)[1], 16): json.loads(v) for k, v in
                self.etcd.get_prefix(b"/cairn/health/").items()}

    def relocations(self):
        """{source range id: record} of the moves to new groups."""
        return {int(k.rsplit(b"/", 1)[1], 16): json.loads(v) for k, v in
                self.etcd.get_prefix(b"/cairn/relocations/").items()}

    def moves(self):
        return {int(k.rsplit(b"/", 1)[1], 16): json.loads(v) for k, v in
                self.etcd.get_prefix(b"/cairn/moves/").items()}

    def leaders(self):
        """{range id: node id} as the nodes report (METRICS)."""
        out = {}
        for nd in self.nodes.nodes:
            if not nd.alive():
                continue
            try:
                for r in nd.metrics(0)["ranges"]:
                    if r["role"] == "leader":
                        out[r["range"]] = nd.id
            except Exception:
                pass
        return out

    def replicated(self, live, rf):
        """Every range has `rf` replicas, all on nodes in `live`, its
        nodes' leader agrees, and no move is under way."""
        if self.moves():
            return False
        rs = self.ranges()
        return rs and all(len(r["replicas"]) == rf and
                          set(r["replicas"]) <= set(live)
                          for r in rs.values())

    def state_of(self, nid):
        h = self.health().get(nid)
        return h and h["state"]


class Writer:
    """Writes key i = value i through the router, one client per thread,
    and keeps what was acknowledged; errors are counted by code word."""

    def __init__(self, port, table="t", threads=2, prefix="w"):
        self.port, self.table, self.prefix = port, table, prefix
        self.acked = {}
        self.errors = {}
        self.stop_ev = threading.Event()
        self.n = 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(i,),
                                         daemon=True)
                        for i in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def run(self, k):
        r = redis.Redis(port=self.port, socket_timeout=30)
        i = 0
        while not self.stop_ev.is_set():
            key = "%s%d-%06d" % (self.prefix, k, i)
            val = "v%d" % i
            try:
                r.execute_command("KV.PUT", self.table, key, val)
                with self.lock:
                    self.acked[key] = val
                    self.n += 1
            except redis.ResponseError as e:
                word = str(e).split()[0]
                with self.lock:
                    self.errors[word] = self.errors.get(word, 0) + 1
            except redis.ConnectionError:
                with self.lock:
                    self.errors["CONN"] = self.errors.get("CONN", 0) + 1
                time.sleep(0.05)
            except redis.RedisError as e:
                # a client-side timeout, or anything else: counted by its
                # class, and the writer goes on (a thread that died here
                # showed only as "no more acknowledged writes")
                word = type(e).__name__
                with self.lock:
                    self.errors[word] = self.errors.get(word, 0) + 1
            i += 1

    def wait_more(self, n, timeout=30):
        start, errs = self.n, dict(self.errors)
        try:
            wait_for(lambda: self.n >= start + n, timeout,
                     "%d more acknowledged writes" % n, 0.05)
        except TimeoutError as e:
            # say what the writers got instead of acknowledgements
            new = {k: v - errs.get(k, 0) for k, v in self.errors.items()
                   if v != errs.get(k, 0)}
            raise TimeoutError("%s; %d acknowledged, errors meanwhile: %r" %
                               (e, self.n - start, new)) from None

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)

    def check(self, r):
        """Every acknowledged write reads back (scan, so it is fast)."""
        got = {}
        cursor = b""
        while True:
            cursor, flat = r.execute_command("KV.SCAN", self.table, "", "",
                                             "LIMIT", 5000, "CURSOR", cursor)
            for k, v in zip(flat[0::2], flat[1::2]):
                got[k.decode()] = v.decode()
            if not cursor:
                break
        missing = [k for k, v in self.acked.items() if got.get(k) != v]
        assert not missing, "%d acknowledged writes lost, e.g. %s" % (
            len(missing), missing[:5])
        return len(self.acked)
