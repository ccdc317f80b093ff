"""The nemesis: a fault schedule drawn from a seeded RNG, and its execution
against a `cluster.Cluster`.

`make_schedule(seed, kinds, ...)` is a pure function of its arguments: the
same seed gives the same faults, in the same order, with the same gaps,
hold times, clock offsets and targets. A target is named by role ("the
leader of range #2", "node 3"), resolved when the fault is injected; which
node leads at that moment depends on timing, so a replay repeats the
schedule exactly and the targets by role.

Fault kinds (each is injected, held, then healed; one at a time):

    kill-leader       kill -9 the leader of a range, restart it
    kill-node         kill -9 a node, restart it
    pause-leader      SIGSTOP the leader of a range, SIGCONT
    pause-node        SIGSTOP a node, SIGCONT
    kill-all          kill -9 every node at once, restart them all
    kill-router       kill -9 a router, restart it on its port
    kill-controller   kill -9 the controller, restart it
    kill-etcd         kill -9 etcd, restart it on its ports and data
    partition-one     cut the leader of a range off from the other nodes
                      (routers still reach it: a stale leader must refuse)
    partition-split   majority/minority split of the nodes (the minority
                      holds the leader of a range)
    clock-jump        restart the leader of a range with its sequencer
                      clock shifted (cairn node --clock-offset-ms, +/- 5 min
                      or 1 h), then restart it back on the true clock: a
                      jump one way, then the other
    disk-full         make the tmpfs node lead a range, fill its disk,
                      hold, free the space (writes must fail cleanly, the
                      node must recover)
    split             TABLE.SPLIT of a range, under the clients' writes, at
                      a key their rotating slots reach during the run (so
                      writes go to both halves); nothing to heal
    move              TABLE.MOVE of a range to a new replica group (as many
                      nodes as its replicas, starting at a drawn node),
                      under the clients' reads and writes; the controller
                      carries it out while later faults strike; nothing to
                      heal

Every fault is logged as a JSON line (kind, inject and heal times on the
clients' clock, resolved targets, ranges the target led) for the failover
times and for the record.
"""
import json
import random
import threading
import time

import redis

ALL_KINDS = ["kill-leader", "kill-node", "pause-leader", "pause-node",
             "kill-all", "kill-router", "kill-controller", "kill-etcd",
             "partition-one", "partition-split", "clock-jump", "disk-full",
             "split", "move"]
# Kinds after which a range's leader changes: their failover is measured.
FAILOVER_KINDS = {"kill-leader", "pause-leader", "partition-one",
                  "partition-split", "kill-all"}
CLOCK_OFFSETS_MS = [-3600000, -300000, 300000, 3600000]


def make_schedule(seed, kinds, n_nodes, n_ranges, n_routers, gap=(1.0, 2.5),
                  hold=(2.0, 4.0)):
    """The fault schedule of one run: a list of dicts, in order."""
    rng = random.Random(seed * 7919 + 17)
    order = list(kinds)
    rng.shuffle(order)
    out = []
    for kind in order:
        f = {"kind": kind, "gap": round(rng.uniform(*gap), 2),
             "hold": round(rng.uniform(*hold), 2),
             "range": rng.randrange(n_ranges),
             "node": rng.randrange(n_nodes) + 1,
             "router": rng.randrange(n_routers) + 1}
        if kind == "clock-jump":
            f["offset_ms"] = rng.choice(CLOCK_OFFSETS_MS)
        if kind == "partition-split":
            f["minority_extra"] = rng.randrange(1000)
        if kind == "kill-all":
            f["hold"] = round(min(f["hold"], 2.0), 2)
        if kind == "disk-full":
            f["hold"] = round(f["hold"] + 2.0, 2)
        if kind == "split":
            f["split_at"] = rng.randrange(2, 20)
        out.append(f)
    return out


class Prober(threading.Thread):
    """Failover time: from a fault's injection until a read of every range
    the target led is answered again. The suite's clients cannot measure
    it: each has one request outstanding, so soon after a leader hangs
    every client is waiting on it and none starts a new request. The prober
    reads `probe_keys` (one per range, outside the checked history) through
    the routers, each attempt on a fresh connection with a short timeout,
    so an attempt stuck on a dead leader is abandoned, not waited for."""

    def __init__(self, ports, table, probe_keys, t_inject, now, limit_s=30):
        super().__init__(name="prober", daemon=True)
        self.ports, self.table, self.keys = ports, table, list(probe_keys)
        self.t_inject, self.now, self.limit_s = t_inject, now, limit_s
        self.answered = {}        # key -> seconds after injection
        self.stop = threading.Event()
        self.start()

    def run(self):
        i, end = 0, time.monotonic() + self.limit_s
        while not self.stop.is_set() and time.monotonic() < end and \
                len(self.answered) < len(self.keys):
            for k in self.keys:
                if k in self.answered:
                    continue
                i += 1
                r = redis.Redis(host="127.0.0.1",
                                port=self.ports[i % len(self.ports)],
                                socket_timeout=0.3, socket_connect_timeout=0.3)
                try:
                    r.execute_command("KV.GET", self.table, k)
                    self.answered[k] = round(self.now() - self.t_inject, 3)
                except redis.RedisError:
                    pass
                finally:
                    r.close()
            self.stop.wait(0.02)

    def result(self):
        """Seconds until every probed range answered, or None."""
        self.stop.set()
        self.join(5)
        if len(self.answered) < len(self.keys):
            return None
        return max(self.answered.values())


class Nemesis:
    """Runs a schedule against a cluster. `now()` is the clients' clock.
    probe_keys: range id -> a key of that range for the failover prober."""

    def __init__(self, cluster, range_ids, now, log, table=None,
                 probe_keys=None, prefixes=None, replicas=3):
        self.c = cluster
        self.replicas = replicas  # the table's: a move names as many nodes
        self.range_ids = range_ids
        self.prefixes = prefixes  # the key prefix of each of range_ids
        self.now = now
        self.log = log            # list of fault records (dicts)
        self.table, self.probe_keys = table, probe_keys or {}

    # -- waiting, with crash checks ------------------------------------
    def idle(self, seconds):
        end = time.monotonic() + seconds
        while True:
            self.c.check_crashes()
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(0.1, left))

    # -- targets ---------------------------------------------------------
    def _leader_or_node(self, f):
        rid = self.range_ids[f["range"]]
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            ld = self.c.leader(rid)
            if ld is not None:
                return ld, "leader of range %d" % rid
            time.sleep(0.05)
        return self.c.nodes[f["node"] - 1], "node %d (range %d had no " \
            "leader)" % (f["node"], rid)

    def _led_by(self, nd):
        led = []
        for rid in self.range_ids:
            try:
                if nd.alive() and not nd.paused and \
                        nd.metrics(rid).get("role") == "leader":
                    led.append(rid)
            except Exception:  # noqa: BLE001 - not a leader we can see
                pass
        return led

    # -- the faults -------------------------------------------------------
    def run(self, schedule):
        for f in schedule:
            self.idle(f["gap"])
            rec = {"kind": f["kind"], "spec": f}
            self.c.last_fault = f["kind"]
            heal = self.inject(f, rec)
            rec["inject"] = self.now()
            prober = None
            if f["kind"] in FAILOVER_KINDS and rec.get("ranges") and \
                    self.probe_keys:
                prober = Prober([r.port for r in self.c.routers], self.table,
                                [self.probe_keys[r] for r in rec["ranges"]],
                                rec["inject"], self.now)
            print("  nemesis %7.2fs %-16s %s" % (rec["inject"], f["kind"],
                                                 rec.get("target", "")),
                  flush=True)
            self.idle(f["hold"])
            rec["heal_start"] = self.now()
            heal()
            rec["healed"] = self.now()
            if prober is not None:
                # a range may only come back with the heal: wait for it
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and prober.is_alive() and \
                        len(prober.answered) < len(prober.keys):
                    self.idle(0.05)
                rec["failover_s"] = prober.result()
            self.log.append(rec)

    def inject(self, f, rec):
        """Inject fault `f`; fill `rec`; return the function that heals."""
        c, kind = self.c, f["kind"]
        if kind in ("kill-leader", "kill-node", "pause-leader", "pause-node",
                    "partition-one", "clock-jump"):
            if kind.endswith("-node"):
                nd, why = c.nodes[f["node"] - 1], "node %d" % f["node"]
            else:
                nd, why = self._leader_or_node(f)
            rec["target"] = "node %d (%s)" % (nd.id, why)
            rec["ranges"] = self._led_by(nd)
            if kind.startswith("kill"):
                nd.kill()
                return lambda: nd.start()
            if kind.startswith("pause"):
                nd.pause()
                return nd.resume
            if kind == "partition-one":
                c.net.partition([[nd], [n for n in c.nodes if n is not nd]])
                return c.net.heal
            # clock-jump: restart on a shifted clock and lead again (so the
            # shifted clock assigns sequencers), later back on the true one
            # and lead again (a jump the other way)
            rec["offset_ms"] = f["offset_ms"]
            ranges = rec["ranges"] or [self.range_ids[f["range"]]]
            nd.term()
            nd.clock_offset_ms = f["offset_ms"]
            nd.start()
            rec["led_shifted"] = [r for r in ranges
                                  if c.transfer_leader(r, nd)]

            def back():
                nd.term()
                nd.clock_offset_ms = 0
                nd.start()
                rec["led_after"] = [r for r in ranges
                                    if c.transfer_leader(r, nd)]
            return back
        if kind == "kill-all":
            rec["ranges"] = list(self.range_ids)
            for nd in c.nodes:
                nd.kill()
            rec["target"] = "every node"

            def restart_all():
                for nd in c.nodes:
                    nd.start()
            return restart_all
        if kind == "kill-router":
            r = c.routers[(f["router"] - 1) % len(c.routers)]
            rec["target"] = r.name
            r.kill()
            return lambda: r.start()
        if kind == "kill-controller":
            rec["target"] = "controller"
            c.ctl.kill()
            return lambda: c.ctl.start()
        if kind == "kill-etcd":
            rec["target"] = "etcd"
            c.etcd.want_up = False
            c.etcd.kill()

            def restart_etcd():
                c.etcd.start()
                c.etcd.want_up = True
            return restart_etcd
        if kind == "split":
            key = "%s-%06d" % (self.prefixes[f["range"]], f["split_at"])
            r = redis.Redis(port=c.routers[0].port, socket_timeout=30)
            try:
                r.execute_command("TABLE.SPLIT", self.table, key)
                rec["target"] = "range %d at %s" % (
                    self.range_ids[f["range"]], key)
            except redis.RedisError as e:  # a documented refusal: go on
                rec["target"] = "split at %s refused: %s" % (key, e)
            finally:
                r.close()
            return lambda: None
        if kind == "move":
            key = "%s-%06d" % (self.prefixes[f["range"]], 0)
            n = len(c.nodes)
            k = self.replicas
            ids = sorted((f["node"] - 1 + i) % n + 1 for i in range(k))
            r = redis.Redis(port=c.routers[0].port, socket_timeout=30)
            try:
                r.execute_command("TABLE.MOVE", self.table, key,
                                  ",".join(map(str, ids)))
                rec["target"] = "range of %s to nodes %s" % (key, ids)
            except redis.RedisError as e:  # a documented refusal: go on
                rec["target"] = "move of %s refused: %s" % (key, e)
            finally:
                r.close()
            return lambda: None
        if kind == "partition-split":
            ld, why = self._leader_or_node(f)
            others = [n for n in c.nodes if n is not ld]
            k = (len(c.nodes) - 1) // 2          # minority size
            minority = [ld]
            for i in range(k - 1):
                minority.append(others.pop(
                    (f["minority_extra"] + i) % len(others)))
            majority = [n for n in c.nodes if n not in minority]
            rec["target"] = "minority %s (with the %s) | majority %s" % (
                [n.id for n in minority], why, [n.id for n in majority])
            rec["ranges"] = sorted(set(sum((self._led_by(n) for n in minority),
                                           [])))
            c.net.partition([minority, majority])
            return c.net.heal
        if kind == "disk-full":
            nd = c.tmpfs_node()
            rid = self.range_ids[f["range"]]
            moved = c.transfer_leader(rid, nd)
            rec["target"] = "node %d (tmpfs; %s range %d)" % (
                nd.id, "leads" if moved else "could not be made to lead", rid)
            rec["ranges"] = self._led_by(nd)
            c.disk_full = True
            rec["filled_bytes"] = c.fill_disk()

            def free():
                c.free_disk()
                c.disk_full = False
                rec["node_alive_when_freed"] = nd.alive()
                if not nd.alive():
                    rec["node_exited"] = nd.proc.returncode
                    if not nd.want_up:
                        nd.start()
            return free
        raise ValueError("unknown fault kind %r" % kind)


def write_log(path, log):
    with open(path, "w") as f:
        for rec in log:
            f.write(json.dumps(rec) + "\n")
