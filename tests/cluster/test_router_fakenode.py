"""The router against real etcd and protocol-faithful fake nodes.

A real `cairn router` process and a real etcd; the nodes are FakeNode
(clusterharness.py), which speak the cairn RPC exactly and can be told to
misbehave, so the router's rules are checked one by one: routing by range,
following NOT_LEADER hints, refreshing on STALE_EPOCH, in-order replies to
pipelined commands whose node replies come back out of order, -TIMEOUT for
a write whose outcome is unknown (never re-sent), -TRYAGAIN at the deadline,
limits and errors that leave the connection usable, scans across ranges.
"""
import socket
import struct
import subprocess
import threading
import time

import pytest
import redis

from clusterharness import (ERR, Etcd, FakeNode, Procs, Router, Workdir, RPC_GET,
                            RPC_PUT, RPC_SCAN, redis_benchmark, wait_for,
                            _reply)


@pytest.fixture(scope="module")
def cluster():
    procs, wd = Procs(), Workdir()
    nodes, router = [], None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = [FakeNode(etcd, i) for i in (1, 2, 3)]
        router = Router(procs, wd.path, etcd.url, deadline_ms=1500)
        yield {"etcd": etcd, "nodes": nodes, "router": router, "procs": procs,
               "dir": wd.path}
    finally:
        for n in nodes:
            n.close()
        if router is not None:
            router.stop()
        procs.stop_all()
        wd.cleanup()


@pytest.fixture
def r(cluster):
    for n in cluster["nodes"]:
        n.before = None
    c = cluster["router"].client()
    yield c
    c.close()


def node_of(cluster, node_id):
    return [n for n in cluster["nodes"] if n.id == node_id][0]


def table_ranges(r, name):
    info = r.execute_command("TABLE.INFO", name)
    d = dict(zip(info[0::2], info[1::2]))
    out = []
    for rg in d[b"ranges"]:
        out.append(dict(zip(rg[0::2], rg[1::2])))
    return d, out


def test_ping_echo_info_command(r):
    assert r.ping()
    assert r.echo("hi") == b"hi"
    assert r.info()["cairn_role"] == "router"
    assert r.execute_command("COMMAND COUNT") > 10
    assert r.execute_command("CONFIG", "GET", "save") == [b"save", b""]
    assert r.execute_command("SELECT", "0") is True


def test_table_lifecycle(r):
    assert r.execute_command("TABLE.CREATE", "life", "REPLICAS", "3") == b"OK"
    assert b"life" in r.execute_command("TABLE.LIST")
    with pytest.raises(redis.ResponseError, match="^EXISTS"):
        r.execute_command("TABLE.CREATE", "life")
    info, ranges = table_ranges(r, "life")
    assert info[b"engine"] == b"btree" and info[b"replicas"] == 3
    assert len(ranges) == 1 and ranges[0][b"leader"] == 1
    assert sorted(ranges[0][b"replicas"]) == [1, 2, 3]
    assert len(r.execute_command("KV.PUT", "life", "k", "v")) == 32
    assert r.execute_command("TABLE.DROP", "life") == b"OK"
    assert b"life" not in r.execute_command("TABLE.LIST")
    with pytest.raises(redis.ResponseError, match="^NOTABLE"):
        r.execute_command("KV.GET", "life", "k")
    with pytest.raises(redis.ResponseError, match="^NOTABLE"):
        r.execute_command("TABLE.DROP", "life")
    with pytest.raises(redis.ResponseError, match="^INVALID"):
        r.execute_command("TABLE.CREATE", "bad/name")


def test_put_get_delete(r):
    r.execute_command("TABLE.CREATE", "kv")
    s1 = r.execute_command("KV.PUT", "kv", "a", "1")
    assert len(s1) == 32
    assert r.execute_command("KV.GET", "kv", "a") == b"1"
    v, s = r.execute_command("KV.GET", "kv", "a", "WITHSEQ")
    assert (v, s) == (b"1", s1)
    with pytest.raises(redis.ResponseError, match="^CONDITION"):
        r.execute_command("KV.PUT", "kv", "a", "2", "IFABSENT")
    s2 = r.execute_command("KV.PUT", "kv", "a", "2", "IFSEQ", s1)
    assert s2 > s1
    with pytest.raises(redis.ResponseError, match="^CONDITION"):
        r.execute_command("KV.PUT", "kv", "a", "3", "IFSEQ", s1)
    assert r.execute_command("KV.DEL", "kv", "a") == 1
    assert r.execute_command("KV.DEL", "kv", "a") == 0
    assert r.execute_command("KV.GET", "kv", "a") is None
    assert r.execute_command("KV.PUT", "kv", "b", "", "IFABSENT")
    assert r.execute_command("KV.GET", "kv", "b") == b""


def test_redis_commands_on_default(r):
    r.execute_command("TABLE.CREATE", "default", "SPLITS", "m")
    assert r.set("x", "1") is True
    assert r.get("x") == b"1"
    assert r.set("x", "2", nx=True) is None
    assert r.mset({"a": "A", "z": "Z"}) is True  # two ranges
    assert r.mget("a", "nope", "z", "x") == [b"A", None, b"Z", b"1"]
    assert r.exists("a", "z", "nope") == 2
    assert r.delete("a", "z", "nope") == 2
    assert r.get("a") is None


def test_limits_and_errors_keep_the_connection(r):
    r.execute_command("TABLE.CREATE", "lim")
    big = b"v" * (1024 * 1024)
    assert len(r.execute_command("KV.PUT", "lim", "k", big)) == 32
    assert r.execute_command("KV.GET", "lim", "k") == big
    with pytest.raises(redis.ResponseError,
                       match="^TOOBIG value is 1048577 bytes, limit 1048576"):
        r.execute_command("KV.PUT", "lim", "k", big + b"x")
    with pytest.raises(redis.ResponseError, match="^KEYTOOBIG"):
        r.execute_command("KV.GET", "lim", "k" * 1025)
    with pytest.raises(redis.ResponseError, match="^KEYEMPTY"):
        r.execute_command("KV.GET", "lim", "")
    with pytest.raises(redis.ResponseError, match="^unknown command 'NOPE'"):
        r.execute_command("NOPE")
    with pytest.raises(redis.ResponseError,
                       match="wrong number of arguments for 'get' command"):
        r.execute_command("GET")
    with pytest.raises(redis.ResponseError, match="^NOTABLE"):
        r.execute_command("KV.GET", "missing", "k")
    with pytest.raises(redis.ResponseError, match="^INVALID"):
        r.execute_command("KV.SCAN", "lim", "", "", "CURSOR", "garbage")
    assert r.execute_command("KV.SCAN", "lim", "x", "y") == [b"", []]
    assert r.execute_command("KV.SCAN", "lim", "y", "x") == [b"", []]
    assert r.ping()  # the same connection still works


def test_protocol_error_closes_after_reply(cluster):
    with socket.create_connection(("127.0.0.1", cluster["router"].port), 5) as s:
        s.sendall(b"*1\r\n$x\r\n")
        data = b""
        while True:
            d = s.recv(4096)
            if not d:
                break
            data += d
        assert data.startswith(b"-ERR Protocol error")


def scan_all(r, table, start, end, limit):
    cursor, seen, pages = b"", [], 0
    while True:
        args = ["KV.SCAN", table, start, end, "LIMIT", limit]
        if cursor:
            args += ["CURSOR", cursor]
        cursor, flat = r.execute_command(*args)
        assert len(flat) <= 2 * limit
        seen += [(flat[i], flat[i + 1]) for i in range(0, len(flat), 2)]
        pages += 1
        if not cursor:
            return seen, pages


def test_scan_across_ranges_with_writers(cluster, r):
    r.execute_command("TABLE.CREATE", "sc", "SPLITS", "k030", "k060", "k090")
    keys = [b"k%03d" % i for i in range(120)]
    for k in keys:
        r.execute_command("KV.PUT", "sc", k, b"v" + k)
    stop = threading.Event()

    def writer():  # rewrites existing keys and adds keys outside the scan
        w = cluster["router"].client()
        i = 0
        while not stop.is_set():
            w.execute_command("KV.PUT", "sc", keys[i % 120], b"v" + keys[i % 120])
            w.execute_command("KV.PUT", "sc", b"z%05d" % i, b"x")
            i += 1
        w.close()

    t = threading.Thread(target=writer)
    t.start()
    try:
        seen, pages = scan_all(r, "sc", "", "k999", 7)
    finally:
        stop.set()
        t.join(10)
    assert [k for k, _ in seen] == keys  # every key once, in order
    assert all(v == b"v" + k for k, v in seen)
    assert pages == 18  # 120 / 7 rounded up
    sub, _ = scan_all(r, "sc", "k025", "k065", 4)
    assert [k for k, _ in sub] == keys[25:65]
    cursor, flat = r.execute_command("KV.SCAN", "sc", "k119", "", "LIMIT", 1)
    assert flat[0] == b"k119" and cursor  # the next key is z00000...
    with pytest.raises(redis.ResponseError, match="another table"):
        r.execute_command("TABLE.CREATE", "sc2")
        r.execute_command("KV.SCAN", "sc2", "", "", "CURSOR", cursor)


def test_follows_not_leader_hint(cluster, r):
    r.execute_command("TABLE.CREATE", "nl")
    _, ranges = table_ranges(r, "nl")
    rid = ranges[0][b"id"]
    r.execute_command("KV.PUT", "nl", "k", "v1")
    # Leadership moves to node 2; etcd is not told: only the hint helps.
    for n in cluster["nodes"]:
        n.set_leader(rid, 2, write_meta=False)
    n2 = node_of(cluster, 2)
    before = len(n2.requests)
    n2.ranges[rid].data = dict(node_of(cluster, 1).ranges[rid].data)
    assert r.execute_command("KV.GET", "nl", "k") == b"v1"
    assert r.execute_command("KV.PUT", "nl", "k", "v2")
    assert len(n2.requests) == before + 2
    # The router remembers the hint: node 1 sees no further requests.
    n1_before = len(node_of(cluster, 1).requests)
    assert r.execute_command("KV.GET", "nl", "k") == b"v2"
    assert len(node_of(cluster, 1).requests) == n1_before


def test_refreshes_on_stale_epoch(cluster, r):
    r.execute_command("TABLE.CREATE", "ep")
    _, ranges = table_ranges(r, "ep")
    rid = ranges[0][b"id"]
    r.execute_command("KV.PUT", "ep", "k", "v")
    # Bump the epoch on the nodes first, then in etcd a little later: the
    # router is rejected, re-reads, retries, and succeeds.
    for n in cluster["nodes"]:
        n.ranges[rid].epoch += 1
    etcd = cluster["etcd"]
    key = [k for k in etcd.get_prefix(b"/cairn/ranges/") if k.endswith(b"%016x" % rid)][0]

    def bump():
        time.sleep(0.2)
        import json
        rec = json.loads(etcd.get(key))
        rec["epoch"] += 1
        etcd.put(key, json.dumps(rec).encode())

    t = threading.Thread(target=bump)
    t.start()
    assert r.execute_command("KV.GET", "ep", "k") == b"v"
    t.join()
    assert r.info()["meta_refreshes"] >= 1


def test_pipelined_replies_stay_in_order(cluster, r):
    r.execute_command("TABLE.CREATE", "po", "SPLITS", "m")
    _, ranges = table_ranges(r, "po")
    upper = [g for g in ranges if g[b"start"] == b"m"][0][b"id"]
    for n in cluster["nodes"]:  # [m, inf) is led by node 2
        n.set_leader(upper, 2)
    r.execute_command("KV.PUT", "po", "a", "A")
    n2 = node_of(cluster, 2)
    n2.ranges[upper].data = {}
    r.execute_command("KV.PUT", "po", "z", "Z")

    delayed = []

    def slow(node, req):  # node 1 answers its first GETs late
        if req["type"] == RPC_GET and len(delayed) < 3:
            delayed.append(req["id"])
            time.sleep(0.2)
        return None

    node_of(cluster, 1).before = slow
    p = r.pipeline(transaction=False)
    for i in range(20):
        p.execute_command("KV.GET", "po", "a" if i % 2 == 0 else "z")
    out = p.execute()
    assert out == [b"A" if i % 2 == 0 else b"Z" for i in range(20)]
    assert len(delayed) == 3


def test_unknown_write_outcome_is_timeout_not_retried(cluster, r):
    r.execute_command("TABLE.CREATE", "to")
    r.execute_command("KV.PUT", "to", "k", "v0")
    n1 = node_of(cluster, 1)
    puts = []

    def drop_puts(node, req):
        if req["type"] == RPC_PUT and req["key"] == b"k":
            puts.append(req["id"])
            return "drop"  # applied or not: the router cannot know
        return None

    n1.before = drop_puts
    t0 = time.monotonic()
    with pytest.raises(redis.ResponseError, match="^TIMEOUT"):
        r.execute_command("KV.PUT", "to", "k", "v1")
    assert time.monotonic() - t0 < 5
    assert len(puts) == 1  # sent once, never re-sent
    # A read that gets no answer is retried and then gives up: TRYAGAIN.
    n1.before = lambda node, req: "drop" if req["type"] == RPC_GET else None
    with pytest.raises(redis.ResponseError, match="^TRYAGAIN"):
        r.execute_command("KV.GET", "to", "k")
    n1.before = None
    assert r.execute_command("KV.GET", "to", "k") == b"v0"


def test_dead_connection_fails_sent_write_as_timeout(cluster, r):
    r.execute_command("TABLE.CREATE", "dc")
    n1 = node_of(cluster, 1)

    def kill_conn(node, req):
        if req["type"] == RPC_PUT:
            for c in list(node.conns):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            return "drop"
        return None

    n1.before = kill_conn
    with pytest.raises(redis.ResponseError, match="^TIMEOUT .*outcome unknown"):
        r.execute_command("KV.PUT", "dc", "k", "v")
    n1.before = None
    # The router reconnects for the next request.
    assert r.execute_command("KV.PUT", "dc", "k", "v2")
    assert r.execute_command("KV.GET", "dc", "k") == b"v2"


def test_redis_benchmark(cluster, r):
    try:
        r.execute_command("TABLE.CREATE", "default")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS")
    redis_benchmark(cluster["router"].port)
    assert len(r.get("key:__rand_int__")) == 3  # -d 3, the default


def test_slow_reader_is_bounded(cluster, r):
    """A client that sends a lot and reads nothing is not read any more once
    its replies pile up: the router's memory stays bounded, and every
    command is still answered, in order, when the client reads again."""
    r.execute_command("TABLE.CREATE", "bp")
    big = b"b" * (1024 * 1024)
    r.execute_command("KV.PUT", "bp", "k", big)
    router = cluster["router"]
    base = router.rss_kb()
    n = 200  # 200 MiB of replies
    cmd = b"*3\r\n$6\r\nKV.GET\r\n$2\r\nbp\r\n$1\r\nk\r\n"
    s = socket.create_connection(("127.0.0.1", router.port), 10)
    sender = threading.Thread(target=lambda: s.sendall(cmd * n))
    sender.start()
    peak = base
    t_end = time.monotonic() + 1.5
    while time.monotonic() < t_end:  # the client reads nothing meanwhile
        peak = max(peak, router.rss_kb())
        time.sleep(0.05)
    print("router RSS %d KiB -> peak %d KiB" % (base, peak))
    assert peak - base < 96 * 1024, (base, peak)
    want = b"$1048576\r\n" + big + b"\r\n"
    got = 0
    pending = b""
    s.settimeout(20)
    while got < n:
        d = s.recv(1 << 20)
        assert d
        pending += d
        while len(pending) >= len(want):
            assert pending[:len(want)] == want
            pending = pending[len(want):]
            got += 1
    sender.join(10)
    s.close()


def test_redis_cli(cluster, r):
    try:
        r.execute_command("TABLE.CREATE", "default")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS")
    port = str(cluster["router"].port)

    def cli(*args, stdin=None):
        out = subprocess.run(["redis-cli", "-p", port] + list(args), input=stdin,
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
        return out.stdout.strip()

    assert cli("SET", "cli-key", "hello") == "OK"
    assert cli("GET", "cli-key") == "hello"
    assert cli("KV.GET", "default", "cli-key") == "hello"
    assert "default" in cli("TABLE.LIST").split()
    assert cli("KV.GET", "nosuch", "k") == "NOTABLE no such table 'nosuch'"
    # A session read from stdin, as a user would type it.
    assert cli(stdin="PING\nSET a 1\nGET a\n").split() == ["PONG", "OK", "1"]


def test_idle_clients_are_cheap(cluster):
    """An idle client holds no input buffer: 500 of them, each having sent
    one command, cost the router little memory."""
    router = cluster["router"]
    base = router.rss_kb()
    socks = []
    try:
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", router.port), 5)
            s.sendall(b"PING\r\n")
            socks.append(s)
        for s in socks:
            assert s.recv(16) == b"+PONG\r\n"
        grown = router.rss_kb() - base
        print("500 idle clients: +%d KiB" % grown)
        assert grown < 500 * 16  # under 16 KiB each
    finally:
        for s in socks:
            s.close()


def test_range_split_behind_the_routers_back(cluster, r):
    """A range splits on the nodes first (the old range now ends at "m" and
    has a new epoch; a new range on another leader holds [m, +inf)); etcd
    learns it a little later. The router is rejected (STALE_EPOCH,
    KEY_OUT_OF_RANGE), refreshes, and answers every key correctly."""
    import json
    r.execute_command("TABLE.CREATE", "sp")
    _, ranges = table_ranges(r, "sp")
    old = ranges[0][b"id"]
    keys = [bytes([c]) * 3 for c in range(ord("a"), ord("z") + 1)]
    for k in keys:
        r.execute_command("KV.PUT", "sp", k, k)
    etcd = cluster["etcd"]
    key_old = [k for k in etcd.get_prefix(b"/cairn/ranges/")
               if k.endswith(b"%016x" % old)][0]
    rec = json.loads(etcd.get(key_old))
    new = old + 1000
    for n in cluster["nodes"]:
        src = n.ranges[old]
        src.end, src.epoch = b"m", src.epoch + 1
        n.ranges[new] = type(src)(new, 1, b"m", b"", src.peers)
        n.ranges[new].data = {k: v for k, v in node_of(cluster, 1).ranges[old]
                              .data.items() if k >= b"m"}
        n.set_leader(new, 2, write_meta=(n.id == 2))

    def publish():
        time.sleep(0.2)
        rec_old = dict(rec, end=b"m".hex(), epoch=rec["epoch"] + 1)
        rec_new = dict(rec, id=new, start=b"m".hex(), end="", epoch=1)
        etcd.put(key_old, json.dumps(rec_old).encode())
        etcd.put(key_old[:-16] + b"%016x" % new, json.dumps(rec_new).encode())

    t = threading.Thread(target=publish)
    t.start()
    try:
        for k in keys:
            assert r.execute_command("KV.GET", "sp", k) == k
    finally:
        t.join()
    wait_for(lambda: len(table_ranges(r, "sp")[1]) == 2, 10, "the split")
    seen, _ = scan_all(r, "sp", "", "", 5)
    assert [k for k, _ in seen] == keys
    n2 = node_of(cluster, 2)
    assert any(q[1] == new for q in n2.requests)


def test_election_and_shutdown_answers(cluster, r):
    """NOQUORUM (no leader known: an election) is retried until a leader
    answers; SHUTDOWN is retried for a read, but a write the closing replica
    may have proposed is -TIMEOUT (outcome unknown), sent once."""
    r.execute_command("TABLE.CREATE", "el")
    r.execute_command("KV.PUT", "el", "k", "v")
    n1 = node_of(cluster, 1)
    until = time.monotonic() + 0.3
    seen = []

    def election(node, req):
        if time.monotonic() < until:
            seen.append(req["type"])
            return _reply(req["id"], ERR["NO_QUORUM"], b"election")
        return None

    n1.before = election
    assert r.execute_command("KV.GET", "el", "k") == b"v"
    assert len(seen) >= 2
    puts = []

    def shutting_down(node, req):
        if req["type"] == RPC_PUT:
            puts.append(req["id"])
        return _reply(req["id"], ERR["SHUTDOWN"], b"closing")

    n1.before = shutting_down
    with pytest.raises(redis.ResponseError, match="^TIMEOUT .*outcome unknown"):
        r.execute_command("KV.PUT", "el", "k", "v2")
    assert len(puts) == 1
    until = time.monotonic() + 0.2
    n1.before = lambda node, req: (_reply(req["id"], ERR["SHUTDOWN"], b"closing")
                                   if time.monotonic() < until else None)
    assert r.execute_command("KV.GET", "el", "k") == b"v"


def test_large_fan_out(r):
    """MSET/MGET/EXISTS/DEL with many more keys than the router keeps in
    flight per command: every key is answered, in argument order."""
    try:
        r.execute_command("TABLE.CREATE", "default")
    except redis.ResponseError as e:
        assert str(e).startswith("EXISTS")
    pairs = {"fan%04d" % i: "v%04d" % i for i in range(0, 1000, 2)}
    assert r.mset(pairs) is True
    keys = ["fan%04d" % i for i in range(1000)]
    got = r.mget(keys)
    assert got == [("v%04d" % i).encode() if i % 2 == 0 else None
                   for i in range(1000)]
    assert r.exists(*keys) == 500
    assert r.delete(*keys) == 500
    assert r.exists(*keys) == 0


def test_client_gone_mid_reply(cluster, r):
    """Clients that vanish while their replies are being written (reset
    connections) cost the router nothing: it keeps serving."""
    r.execute_command("TABLE.CREATE", "gone")
    r.execute_command("KV.PUT", "gone", "k", b"g" * (1024 * 1024))
    cmd = b"*3\r\n$6\r\nKV.GET\r\n$4\r\ngone\r\n$1\r\nk\r\n"
    for _ in range(20):
        s = socket.create_connection(("127.0.0.1", cluster["router"].port), 5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.sendall(cmd * 4)
        s.recv(1)  # the reply has started
        s.close()  # reset, with most of the reply unwritten
    assert cluster["router"].proc.poll() is None
    assert r.ping()
    assert len(r.execute_command("KV.GET", "gone", "k")) == 1024 * 1024


def _wait_stalled(node):
    """Until the node's socket holds unread bytes that stop growing: the
    router's writes to it are blocked, later frames stay in the router."""
    seen = []

    def stalled():
        seen.append(node.unread_bytes())
        return len(seen) >= 4 and seen[-1] > 0 and len(set(seen[-4:])) == 1

    wait_for(stalled, 15, "the router's writes to block", interval=0.1)


def test_write_queued_at_deadline_is_tryagain_and_never_sent(cluster):
    """-TRYAGAIN promises nothing was written: a write still queued in the
    router when its deadline passes is cut out of the connection's output,
    while a write whose bytes went to the socket is -TIMEOUT."""
    etcd, procs = cluster["etcd"], cluster["procs"]
    node = FakeNode(etcd, 7, prefix="/stall", rcvbuf=64 << 10)
    router = None
    try:
        router = Router(procs, cluster["dir"], etcd.url, prefix="/stall",
                        deadline_ms=2000, name="router-stall")
        c = router.client()
        c.execute_command("TABLE.CREATE", "st", "REPLICAS", "1")
        assert c.execute_command("KV.PUT", "st", "warm", "x")  # connected
        node.reading.clear()
        results = {}

        def pipeline(prefix, n, value):
            cl = router.client()
            p = cl.pipeline(transaction=False)
            for i in range(n):
                p.execute_command("KV.PUT", "st", "%s%02d" % (prefix, i), value)
            for i, out in enumerate(p.execute(raise_on_error=False)):
                results[("%s%02d" % (prefix, i)).encode()] = out
            cl.close()

        # 8 MiB: more than the socket buffers hold, so a write blocks.
        big = threading.Thread(target=pipeline, args=("big", 16, b"v" * (512 << 10)))
        big.start()
        _wait_stalled(node)
        small = threading.Thread(target=pipeline, args=("small", 4, b"s"))
        small.start()
        big.join(30)
        small.join(30)
        assert len(results) == 20
        words = {k: str(v).split()[0] for k, v in results.items()}
        assert set(words.values()) <= {"TIMEOUT", "TRYAGAIN"}, results
        tryagain = {k for k, w in words.items() if w == "TRYAGAIN"}
        timeout = {k for k, w in words.items() if w == "TIMEOUT"}
        assert {b"small%02d" % i for i in range(4)} <= tryagain
        assert timeout  # the first writes were handed to the socket

        node.reading.set()

        def received():
            with node.lock:
                return {k for t, _, k in node.requests if t == RPC_PUT}

        wait_for(lambda: timeout <= received(), 20, "the sent writes to arrive")
        # The connection is in order: once this read is answered, the node
        # has read everything the router ever wrote before it.
        assert c.execute_command("KV.GET", "st", "warm") == b"x"
        assert not tryagain & received(), sorted(tryagain & received())
        c.close()
    finally:
        node.close()
        if router is not None:
            router.stop()


def test_mget_client_gone_mid_command_frees_values(cluster):
    """A client that leaves while its MGET waits for one key: the values
    already fetched for the other keys are freed with the command (with an
    ASan build, Router.stop fails on a LeakSanitizer report)."""
    etcd, procs = cluster["etcd"], cluster["procs"]
    node = FakeNode(etcd, 8, prefix="/mleak")
    router = None
    try:
        router = Router(procs, cluster["dir"], etcd.url, prefix="/mleak",
                        deadline_ms=1500, name="router-mleak")
        c = router.client()
        c.execute_command("TABLE.CREATE", "default", "REPLICAS", "1")
        keys = ["got%d" % i for i in range(8)]
        assert c.mset({k: "v" * 1000 for k in keys}) is True
        asked = threading.Event()

        def hold_last(n, req):
            if req["type"] == RPC_GET and req["key"] == b"held":
                asked.set()
                return "drop"
            return None

        node.before = hold_last
        s = socket.create_connection(("127.0.0.1", router.port), 5)
        args = [b"MGET"] + [k.encode() for k in keys] + [b"held"]
        s.sendall(b"*%d\r\n" % len(args) +
                  b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        wait_for(asked.is_set, 10, "the MGET to reach the held key")
        with node.lock:
            got = {k for t, _, k in node.requests if t == RPC_GET}
        assert {k.encode() for k in keys} <= got
        s.close()
        node.before = None
        # The router dropped the command and serves on.
        assert c.mget(keys) == [b"v" * 1000] * 8
        c.close()
    finally:
        node.close()
        if router is not None:
            router.stop()


def _refuse_puts(key):
    """A `before` hook: the first PUT of each value of `key` is refused as
    by a node that knows no leader (NOT_LEADER without a hint: retry
    later), so every write is retried once."""
    refused = []

    def hook(node, req):
        if (req["type"] == RPC_PUT and req["key"] == key and
                req["value"] not in refused):
            refused.append(req["value"])
            return _reply(req["id"], ERR["NOT_LEADER"], b"election",
                          struct.pack(">Q", 0) + struct.pack(">I", 0))
        return None
    return hook, refused


def test_pipelined_writes_keep_their_order_through_retries(cluster, r):
    """Writes of one connection keep their order even when every one of
    them is refused and retried: the last pipelined value wins."""
    r.execute_command("TABLE.CREATE", "ord")
    n1 = node_of(cluster, 1)
    for rnd in range(5):
        n1.before, refused = _refuse_puts(b"k")
        p = r.pipeline(transaction=False)
        for i in range(50):
            p.execute_command("KV.PUT", "ord", "k", "r%d-v%02d" % (rnd, i))
        out = p.execute()
        assert all(len(s) == 32 for s in out), out
        assert len(refused) == 50
        n1.before = None
        assert r.execute_command("KV.GET", "ord", "k") == b"r%d-v49" % rnd
    # Deletes too: each is a read, then a tombstone, between the writes.
    n1.before, refused = _refuse_puts(b"d")
    p = r.pipeline(transaction=False)
    p.execute_command("KV.PUT", "ord", "d", "1")
    p.execute_command("KV.DEL", "ord", "d")
    p.execute_command("KV.PUT", "ord", "d", "2")
    p.execute_command("KV.DEL", "ord", "d")
    p.execute_command("KV.PUT", "ord", "d", "3")
    out = p.execute()
    assert out[1] == 1 and out[3] == 1, out
    assert r.execute_command("KV.GET", "ord", "d") == b"3"
