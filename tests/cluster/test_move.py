"""The node side of a live move (issue 10, DESIGN.md "Split and move"),
against real `cairn node` processes: the fence (step 2) and the copy's
"lands only if newer" writes (step 5, entry.h ENTRY_COND_IFNEWER, tested
in tests/unit/replication/test_entry.c).

The fence is an epoch entry that freezes the source: from the moment it
applies, every replica refuses every write - those proposed before it
too - and the answer names a sequencer above everything the range holds.
It is a Raft entry, so it survives the leader's kill -9 and a restart.
"""
import re
import threading

import pytest

from cairn_rpc import RpcError
from nodeharness import Cluster, wait_for

R = 11


def fence_of(reply):
    """(epoch, seq bytes) of a FENCE answer."""
    m = re.search(r"^fence: done, epoch (\d+), seq ([0-9a-f]{32})$", reply)
    assert m, reply
    return int(m.group(1)), bytes.fromhex(m.group(2))


class Writers:
    """Threads writing fresh keys to the leader at epoch 1 until refused;
    every acknowledged write is kept with its sequencer."""

    def __init__(self, node, threads=3):
        self.node, self.acked, self.refused = node, {}, {}
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, args=(t,),
                                         daemon=True) for t in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, t):
        with self.node.client(10) as c:
            for i in range(100000):
                key = b"w%d-%06d" % (t, i)
                try:
                    s = c.put(R, 1, key, b"v%d" % i)
                except RpcError as e:
                    with self.lock:
                        self.refused[key] = e.word
                    return
                with self.lock:
                    self.acked[key] = (b"v%d" % i, s)

    def join(self):
        for t in self.threads:
            t.join(30)
            assert not t.is_alive()


def test_fence_under_writes_freezes_the_range_for_good():
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        assert ld.metrics(R)["frozen"] is False
        w = Writers(ld)
        wait_for(lambda: len(w.acked) >= 300, 30, "300 acknowledged writes")
        with ld.client(20) as c:
            epoch, top = fence_of(c.fence(R, 0))
        w.join()
        assert epoch == 2
        # the writers stopped on the epoch (or a write proposed before the
        # fence and refused as it applied): never an unknown outcome
        assert set(w.refused.values()) <= {"STALE_EPOCH",
                                           "KEY_OUT_OF_RANGE"}, w.refused
        # the fence's sequencer is above every acknowledged write's
        assert all(s < top for _, s in w.acked.values())

        def frozen(node, epoch):
            """A write at the current epoch is refused, reads still go."""
            with node.client(10) as c:
                with pytest.raises(RpcError) as e:
                    c.put(R, epoch, b"after", b"x")
                assert e.value.word == "KEY_OUT_OF_RANGE", e.value
                with pytest.raises(RpcError) as e:
                    c.split(R, epoch, R + 1, b"w1")
                assert e.value.word == "INVALID", e.value
                got = {k: v for k, v, _ in c.scan_all(R, epoch)}
            lost = [k for k, (v, _) in w.acked.items() if got.get(k) != v]
            assert not lost, "%d acknowledged writes lost" % len(lost)
            assert b"after" not in got
            assert node.metrics(R)["frozen"] is True
        frozen(ld, epoch)

        # kill -9 the leader: the fence is in the log, the new leader is
        # frozen too; and the old one, restarted, replays it
        ld.kill()
        ld2 = cl.wait_leader(R, exclude=ld)
        frozen(ld2, epoch)
        ld.start()
        wait_for(lambda: ld.metrics(R)["epoch"] == epoch, 20,
                 "the restarted node at the fence's epoch")
        with ld2.client(20) as c:  # fencing again: idempotent, a new epoch
            epoch2, top2 = fence_of(c.fence(R, 0))
        assert epoch2 == epoch + 1 and top2 > top
        with ld2.client(20) as c:
            c.transfer_leader(R, ld.id)
        ld3 = cl.wait_leader(R)
        frozen(ld3, epoch2)


def test_fence_is_leader_only_and_moves_past_a_floor():
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        follower = next(n for n in cl.nodes if n is not ld)
        with follower.client(10) as c:
            with pytest.raises(RpcError) as e:
                c.fence(R, 0)
            assert e.value.word == "NOT_LEADER"
        with ld.client(20) as c:
            c.put(R, 1, b"k", b"v")
            # the metadata's epoch (9) got ahead: the fence goes above it
            epoch, _ = fence_of(c.fence(R, 9))
            assert epoch == 10
            assert c.get(R, 10, b"k")[0] == b"v"


def test_copy_lands_only_newer_records_from_a_fenced_source():
    """SCAN_RECORDS of a fenced source (tombstones included) copied into a
    destination that already took newer writes: the destination ends with
    the newer of the two for every key, and copying again lands nothing."""
    D = R + 100
    with Cluster(3) as cl:
        src = cl.create_range(R)
        dst = cl.create_range(D)
        with src.client(10) as c:
            for i in range(50):
                c.put(R, 1, b"k%02d" % i, b"old%d" % i)
            for i in range(0, 50, 5):
                c.delete(R, 1, b"k%02d" % i)
            epoch, top = fence_of(c.fence(R, 0))
        # after the fence: new writes (and a delete) on the destination
        with dst.client(10) as c:
            for i in range(0, 50, 7):
                c.put(D, 1, b"k%02d" % i, b"new%d" % i)
            c.put(D, 1, b"k03", b"gone")
            c.delete(D, 1, b"k03")
        with src.client(10) as c:
            recs, more = c.scan_records(R, epoch, limit=1000)
        assert not more and len(recs) == 50
        assert sum(1 for r in recs if r[2]) == 10  # the tombstones
        assert all(s < top for _, s, _, _ in recs)
        with dst.client(10) as c:
            landed = int(c.copy(D, 1, recs).split()[1])
            # not over the 8 newer puts nor the newer delete of k03
            assert landed == 50 - 8 - 1
            assert dst.metrics(D)["copied"] == landed
            assert c.copy(D, 1, recs) == "copied 0 of 50"
            got = {k: v for k, v, _ in c.scan_all(D, 1)}
        want = {}
        for i in range(50):
            k = b"k%02d" % i
            if i % 7 == 0:
                want[k] = b"new%d" % i
            elif i % 5 != 0 and i != 3:
                want[k] = b"old%d" % i
        assert got == want
        # a copy at an epoch the destination is not at is refused
        with dst.client(10) as c:
            with pytest.raises(RpcError) as e:
                c.copy(D, 2, recs[:1])
            assert e.value.word in ("STALE_EPOCH", "TRYAGAIN")


def test_floor_keeps_new_writes_above_it_across_restarts():
    """FLOOR: the destination's clock moves past the source's fence
    sequencer - here one an hour ahead of the wall clock - on every
    replica, and stays past it after a kill -9 of every node (the floor is
    in the range's meta: a replayed log does not observe epoch entries)."""
    import struct
    import time
    ahead = struct.pack(">QII", time.time_ns() + 3600 * 10**9, 0, 99)
    with Cluster(3) as cl:
        ld = cl.create_range(R)
        with ld.client(10) as c:
            assert c.put(R, 1, b"before", b"x") < ahead
            m = re.search(r"^floor: done, epoch (\d+)$", c.floor(R, 0, ahead))
            assert m, "bad floor answer"
            epoch = int(m.group(1))
        # no write after the floor before the restart: a replayed write
        # above the floor would move the clocks too
        for n in cl.nodes:
            n.kill()
        for n in cl.nodes:
            n.start()
        ld = cl.wait_leader(R)
        for n in cl.nodes:  # every replica: any may lead next
            if n is not ld:
                with ld.client(10) as c:
                    c.transfer_leader(R, n.id)
                ld = cl.wait_leader(R)
                assert ld is n
            with ld.client(10) as c:
                assert c.put(R, epoch, b"k%d" % n.id, b"z") > ahead


# ---- TABLE.MOVE end to end: etcd, nodes, a controller, a router ----------

import json  # noqa: E402
import time  # noqa: E402

import redis  # noqa: E402

from harness import wait_for as wait  # noqa: E402
from healharness import Heal, Writer  # noqa: E402


def range_of(h, key):
    """The range record holding `key` in table t (keys are str)."""
    k = key.encode().hex()
    for rg in h.ranges().values():
        if rg["start"] <= k and (rg["end"] == "" or k < rg["end"]):
            return rg
    return None


def moved(h, src_id, nodes):
    """The move of `src_id` is over: no record, the keys' range is a new
    one on `nodes`, in state normal."""
    if h.relocations():
        return False
    rs = h.ranges()
    return src_id not in rs and any(
        rg.get("state") == "normal" and sorted(rg["replicas"]) == nodes
        for rg in rs.values())


class Readers:
    """Threads reading keys whose acknowledged values are known, through
    the router, during a move: every read must return that value (a key
    the destination has not copied yet is read from the source)."""

    def __init__(self, port, known, threads=2):
        self.known, self.port = dict(known), port
        self.bad, self.reads, self.errors = [], 0, {}
        self.stop_ev = threading.Event()
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(threads)]
        for t in self.threads:
            t.start()

    def run(self):
        r = redis.Redis(port=self.port, socket_timeout=30)
        keys = sorted(self.known)
        i = 0
        while not self.stop_ev.is_set():
            k = keys[i % len(keys)]
            i += 1
            try:
                v = r.execute_command("KV.GET", "t", k)
            except redis.RedisError as e:
                word = str(e).split()[0]
                with self.lock:
                    self.errors[word] = self.errors.get(word, 0) + 1
                continue
            with self.lock:
                self.reads += 1
                if v is None or v.decode() != self.known[k]:
                    self.bad.append((k, v))

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join(30)


def scan_all(r):
    """Every key of table t, paging; each key must come once."""
    got, cursor = {}, b""
    while True:
        cursor, flat = r.execute_command("KV.SCAN", "t", "", "", "LIMIT",
                                         97, "CURSOR", cursor)
        for k, v in zip(flat[0::2], flat[1::2]):
            assert k not in got, "key %r returned twice" % k
            got[k.decode()] = v.decode()
        if not cursor:
            return got


PAUSE = {"CAIRN_TEST_RELOCATE_PAUSE_MS": "300"}


def preload(h, prefix, n):
    """n keys prefix%05d = p%d, pipelined."""
    r = h.client()
    for i in range(0, n, 500):
        p = r.pipeline(transaction=False)
        for k in range(i, min(n, i + 500)):
            p.execute_command("KV.PUT", "t", "%s%05d" % (prefix, k),
                              "p%d" % k)
        p.execute()


def start_move(h, key, nodes):
    r = h.client()
    assert r.execute_command("TABLE.MOVE", "t", key,
                             ",".join(map(str, nodes))) == b"OK"


def test_move_under_writes_reads_and_scans():
    """4 nodes; a range on nodes 1,2,3 (or any three) moves to a group that
    includes node 4 while writers write new keys into it, readers read
    keys written before the move and a scanner pages over the table. No
    read misses a value, no scan returns a key twice or misses one, every
    acknowledged write reads back, the source's replicas are dropped."""
    h = Heal(4, controllers=0)
    # each recorded step holds 300 ms: the readers meet every state
    h.ctls = [h.start_controller("c0", env=PAUSE)]
    try:
        r = h.client()
        assert r.execute_command("TABLE.CREATE", "t", "REPLICAS", 3,
                                 "SPLITS", "w1", "w2") == b"OK"
        # two pages of the copy (10,000 records each)
        preload(h, "w1-pre-", 12000)
        w = Writer(h.router.port).start()
        h.wait_writes(w, 300)
        src = range_of(h, "w1-000000")
        nodes = sorted(set([1, 2, 3, 4]) - {src["replicas"][0]})
        with w.lock:
            known = {k: v for k, v in w.acked.items()
                     if k.startswith("w1-")}
        known.update(("w1-pre-%05d" % i, "p%d" % i) for i in range(12000))
        rd = Readers(h.router.port, known)
        scans = []

        def scanner():
            while not rd.stop_ev.is_set():
                got = scan_all(redis.Redis(port=h.router.port,
                                           socket_timeout=30))
                scans.append(got)
        st = threading.Thread(target=scanner, daemon=True)
        st.start()
        start_move(h, "w1-000000", nodes)

        def info_steps():
            """TABLE.INFO shows the move's step on the range."""
            info = r.execute_command("TABLE.INFO", "t")
            d = dict(zip(info[0::2], info[1::2]))
            for rg in d[b"ranges"]:
                m = dict(zip(rg[0::2], rg[1::2]))
                if m[b"move"]:
                    mv = dict(zip(m[b"move"][0::2], m[b"move"][1::2]))
                    steps.add(mv[b"step"].decode())
            return "copy" in steps
        steps = set()
        wait(info_steps, 30, "TABLE.INFO showing the copy", 0.02)
        wait(lambda: moved(h, src["id"], nodes), 60, "the move done", 0.1)
        h.wait_writes(w, 200)
        rd.stop()
        st.join(60)
        w.stop()
        assert not rd.bad, "reads that missed: %r" % rd.bad[:5]
        assert rd.reads > 50
        assert scans
        for got in scans:  # every scan saw every key known before
            missing = [k for k in known if got.get(k) != known[k]]
            assert not missing, "a scan missed %d keys" % len(missing)
        w.check(r)
        errors = {k: v for k, v in w.errors.items() if k != "TIMEOUT"}
        assert not errors, w.errors
        assert not rd.errors, rd.errors
        # the source is gone from its nodes
        for n in h.nodes.nodes:
            ids = [x["range"] for x in n.metrics(0)["ranges"]]
            assert src["id"] not in ids, (n.id, ids)
        log = h.controller_log()
        assert "copied into range" in log
        print("\n".join(l for l in log.splitlines() if "move" in l))
        print("reads %d, scans %d" % (rd.reads, len(scans)))
    finally:
        h.close()


def test_conditional_writes_racing_a_move_see_both_groups():
    """While a range moves, IFSEQ and IFABSENT are judged on the merged
    state of source and destination: a compare-and-set counter loses no
    increment and counts none twice, IFABSENT fails on a key only the
    source holds yet, and of two racers for a fresh key exactly one
    wins."""
    h = Heal(4, controllers=0)
    h.ctls = [h.start_controller("c0", env=PAUSE)]
    try:
        r = h.client()
        assert r.execute_command("TABLE.CREATE", "t", "REPLICAS", 3,
                                 "SPLITS", "w1", "w2") == b"OK"
        preload(h, "w1-pre-", 400)
        r.execute_command("KV.PUT", "t", "w1-counter", "0")
        src = range_of(h, "w1-counter")
        nodes = sorted(set([1, 2, 3, 4]) - {src["replicas"][0]})
        stop = threading.Event()
        wins, taken, refused, problems = [0], {}, [], []
        lock = threading.Lock()

        def incrementer():
            c = redis.Redis(port=h.router.port, socket_timeout=30)
            while not stop.is_set():
                try:
                    v, s = c.execute_command("KV.GET", "t", "w1-counter",
                                             "WITHSEQ")
                    c.execute_command("KV.PUT", "t", "w1-counter",
                                      str(int(v) + 1), "IFSEQ", s)
                    with lock:
                        wins[0] += 1
                except redis.ResponseError as e:
                    expect(e)

        def expect(e):
            if str(e).split()[0] not in ("CONDITION", "TRYAGAIN"):
                problems.append(str(e))

        def absent(me):
            c = redis.Redis(port=h.router.port, socket_timeout=30)
            i = 0
            while not stop.is_set():
                i += 1
                key = "w1-fresh-%05d" % i
                try:
                    c.execute_command("KV.PUT", "t", key, me, "IFABSENT")
                    with lock:
                        if key in taken:
                            problems.append("two winners for " + key)
                        taken[key] = me
                except redis.ResponseError as e:
                    expect(e)
                # a key only the source holds (until copied) is not absent
                k = "w1-pre-%05d" % (i % 400)
                try:
                    c.execute_command("KV.PUT", "t", k, "x", "IFABSENT")
                    refused.append(k)
                except redis.ResponseError as e:
                    expect(e)

        ts = [threading.Thread(target=incrementer, daemon=True)
              for _ in range(3)]
        ts += [threading.Thread(target=absent, args=(m,), daemon=True)
               for m in ("a", "b")]
        for t in ts:
            t.start()
        wait(lambda: wins[0] > 20, 30, "some increments")
        start_move(h, "w1-counter", nodes)
        wait(lambda: moved(h, src["id"], nodes), 60, "the move done", 0.1)
        n0 = wins[0]
        wait(lambda: wins[0] > n0 + 20, 30, "increments after the move")
        stop.set()
        for t in ts:
            t.join(60)
        assert int(r.execute_command("KV.GET", "t", "w1-counter")) == wins[0]
        assert not problems, problems[:5]
        assert not refused, "IFABSENT succeeded on existing keys: %r" % (
            refused[:5],)
        for key, me in taken.items():
            assert r.execute_command("KV.GET", "t", key).decode() == me
        print("increments %d, fresh keys %d" % (wins[0], len(taken)))
    finally:
        h.close()


def move_with_writes(h, crash_env=None):
    """Table t, 800 keys preloaded into w1-, writers running; TABLE.MOVE of
    the w1 range to a group with node 4. Returns (writer, source record,
    nodes, preloaded keys)."""
    r = h.client()
    assert r.execute_command("TABLE.CREATE", "t", "REPLICAS", 3,
                             "SPLITS", "w1", "w2") == b"OK"
    preload(h, "w1-pre-", 800)
    w = Writer(h.router.port).start()
    h.wait_writes(w, 100)
    src = range_of(h, "w1-000000")
    nodes = sorted(set([1, 2, 3, 4]) - {src["replicas"][0]})
    start_move(h, "w1-000000", nodes)
    known = {"w1-pre-%05d" % i: "p%d" % i for i in range(800)}
    return w, src, nodes, known


def check_after(h, w, known):
    r = h.client()
    for k, v in known.items():
        assert r.execute_command("KV.GET", "t", k).decode() == v, k
    w.check(r)
    # only the documented retries: writes refused while the source was
    # fenced and no controller went on (TRYAGAIN), or an unknown outcome
    errors = {k: v for k, v in w.errors.items()
              if k not in ("TIMEOUT", "TRYAGAIN")}
    assert not errors, w.errors


@pytest.mark.parametrize("step", ["create", "fence", "switch", "copy"])
def test_controller_killed_after_each_step_is_followed(step):
    """The controller dies (abort) right after recording each step; a new
    one finishes the move from the record, and every acknowledged write
    and every preloaded key reads back."""
    h = Heal(4, controllers=0)
    h.ctls = [h.start_controller("c0", env={
        "CAIRN_TEST_CRASH": "relocate-" + step})]
    try:
        w, src, nodes, known = move_with_writes(h)
        wait(lambda: h.ctls[0].poll() is not None, 30,
             "controller c0 dead after step " + step)
        after = {"create": "fence", "fence": "switch", "switch": "copy",
                 "copy": "drop"}[step]
        assert h.relocations()[src["id"]]["step"] == after
        h.ctls.append(h.start_controller("c1"))
        wait(lambda: moved(h, src["id"], nodes), 60, "the move done", 0.1)
        h.wait_writes(w, 100)
        w.stop()
        check_after(h, w, known)
        with open(h.ctls[1].log) as f:  # the new one went on from there
            assert "move to a new group: at step " + after in f.read()
    finally:
        h.close()


def test_leaders_killed_during_a_move():
    """kill -9 of the source's leader while the move starts and of the
    destination's leader while it copies: the move still finishes, no
    acknowledged write is lost, the killed nodes come back."""
    h = Heal(4, controllers=0)
    h.ctls = [h.start_controller("c0", env=PAUSE)]
    try:
        w, src, nodes, known = move_with_writes(h)
        lead = h.leaders().get(src["id"])
        victim = h.nodes.node(lead)
        victim.kill()
        victim.start()
        wait(lambda: h.relocations().get(src["id"], {}).get("step")
             in ("copy", None), 60, "the copy under way")
        rl = h.relocations().get(src["id"])
        if rl:
            dl = h.leaders().get(rl["dest"])
            if dl:
                d = h.nodes.node(dl)
                d.kill()
                d.start()
        wait(lambda: moved(h, src["id"], nodes), 90, "the move done", 0.1)
        h.wait_writes(w, 100)
        w.stop()
        check_after(h, w, known)
    finally:
        h.close()


def test_table_dropped_during_a_move():
    """TABLE.DROP while a move is under way (each step held 1 s): the move
    is given up, its record goes, and no node keeps a replica of the
    table - neither the source's nor the new group's."""
    h = Heal(4, controllers=0)
    h.ctls = [h.start_controller(
        "c0", env={"CAIRN_TEST_RELOCATE_PAUSE_MS": "1000"})]
    try:
        r = h.client()
        assert r.execute_command("TABLE.CREATE", "t", "REPLICAS", 3,
                                 "SPLITS", "w1", "w2") == b"OK"
        preload(h, "w1-pre-", 200)
        tid = json.loads(next(iter(
            h.etcd.get_prefix(b"/cairn/tables/t").values())))["id"]
        src = range_of(h, "w1-pre-00000")
        start_move(h, "w1-pre-00000", [2, 3, 4])
        wait(lambda: h.relocations().get(src["id"], {}).get("step")
             in ("fence", "switch", "copy"), 30, "the move under way")
        assert r.execute_command("TABLE.DROP", "t") == b"OK"

        def gone():
            if h.relocations():
                return False
            for n in h.nodes.nodes:
                if any(x["table"] == tid for x in n.metrics(0)["ranges"]):
                    return False
            return True
        wait(gone, 60, "the move given up and every replica dropped", 0.2)
        assert "move given up: its table is dropped" in h.controller_log()
    finally:
        h.close()
