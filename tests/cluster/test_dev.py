"""`cairn dev` end to end, and controller failover (issue 4).

test_dev_cluster: the README's first command. `cairn dev --dir D --port P`
on free ports in a temporary directory reaches "ready"; redis-cli style
commands work through its router (Redis commands on `default`, a pre-split
table, KV.PUT, KV.SCAN); SIGTERM stops every child listed in D/*.pid; a
restart on the same directory and port serves the same data.

test_controller_failover: two `cairn controller` candidates on a real etcd;
killing the active one (SIGKILL: no resignation) hands the election to the
other within the lease TTL, seen in etcd (P/controller) and in its log.

Binary: $CAIRN_BIN, default the first build found (harness.py). Every
process is ended by PID.
"""
import json
import signal
import os
import subprocess
import tempfile
import time

import redis

from devharness import (CAIRN, STOP_DEADLINE, assert_clean_logs,  # noqa: F401
                        dev)
from harness import Etcd, Procs, alive, wait_for

def client(port):
    return redis.Redis(host="127.0.0.1", port=port, socket_timeout=10)


def serves(r, table, key):
    """Whether the range of `key` answers a read (it has a leader)."""
    try:
        r.execute_command("KV.GET", table, key)
        return True
    except redis.exceptions.ResponseError as e:
        if str(e).startswith(("NOQUORUM", "TRYAGAIN")):
            return False
        raise


def test_dev_cluster(dev):
    dev.start()
    r = client(dev.port)
    assert r.ping()
    assert r.set("a", "1") is True
    assert r.get("a") == b"1"
    assert r.execute_command("TABLE.CREATE", "t", "SPLITS", "m") == b"OK"
    for k, v in ((b"k", b"v"), (b"z", b"w"), (b"b", b"x")):
        seq = r.execute_command("KV.PUT", "t", k, v)
        assert len(seq) == 32
    cursor, items = r.execute_command("KV.SCAN", "t", "", "", "LIMIT", 10)
    assert cursor == b""
    assert items == [b"b", b"x", b"k", b"v", b"z", b"w"]  # across both ranges

    pids = dev.child_pids()
    assert set(pids) == {"etcd", "node1", "node2", "node3", "controller",
                         "router"}, pids
    assert all(alive(p) for p in pids.values())
    dev.stop()
    assert dev.proc.returncode == 0, dev.logs()
    wait_for(lambda: not any(alive(p) for p in pids.values()), STOP_DEADLINE,
             "every child of cairn dev to exit")

    dev.start()  # same directory, same port
    r = client(dev.port)
    assert r.get("a") == b"1"
    # "ready" means `default` serves; the ranges of t may still be electing
    # (longer than the router's retry deadline on a loaded machine).
    wait_for(lambda: serves(r, "t", b"k") and serves(r, "t", b"z"), 30,
             "both ranges of t to elect a leader after the restart", 0.2)
    assert r.execute_command("KV.GET", "t", "k") == b"v"
    cursor, items = r.execute_command("KV.SCAN", "t", "", "", "LIMIT", 10)
    assert items == [b"b", b"x", b"k", b"v", b"z", b"w"]
    assert r.set("after-restart", "yes") is True
    assert r.get("after-restart") == b"yes"
    pids = dev.child_pids()
    dev.stop()
    wait_for(lambda: not any(alive(p) for p in pids.values()), STOP_DEADLINE,
             "every child of the restarted cairn dev to exit")
    assert dev.proc.returncode == 0, dev.logs()
    assert_clean_logs(dev.dir)


def test_bench_smoke_against_dev_cluster(dev):
    """CI's `cairn bench` smoke run against a real cairn cluster: a short
    load and mixed run (W, A, E) through the router with zero errors and
    every read finding its key. Never a timing assertion."""
    dev.start()
    r = client(dev.port)
    assert r.execute_command("TABLE.CREATE", "bench", "SPLITS", "user5") \
        == b"OK"
    wait_for(lambda: serves(r, "bench", b"user1") and
             serves(r, "bench", b"user9"), 30, "both ranges of bench to serve",
             0.2)
    for workload, phase in (("W", "both"), ("A", "run"), ("E", "run")):
        out = subprocess.run(
            [CAIRN, "bench", "--port", str(dev.port), "--table", "bench",
             "--records", "300", "--clients", "4", "--pipeline", "2",
             "--duration", "2", "--workload", workload, "--phase", phase,
             "--json"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stdout + out.stderr
        reports = [json.loads(line) for line in out.stdout.splitlines()]
        for rep in reports:
            assert rep["errors"] == 0 and rep["misses"] == 0, rep
            assert rep["ops"] > 0, rep
    # The load phase really wrote through the router.
    cursor, items = r.execute_command("KV.SCAN", "bench", "", "", "LIMIT",
                                      1000)
    assert len(items) // 2 >= 300
    dev.stop()
    assert dev.proc.returncode == 0, dev.logs()


def test_dev_killed_leaves_no_children(dev):
    """SIGKILL of `cairn dev` itself cannot be caught; its children must
    still stop (PR_SET_PDEATHSIG) instead of holding the ports, and a new
    `cairn dev` on the same directory and port comes up with the data."""
    dev.start()
    r = client(dev.port)
    assert r.set("survives", "yes") is True
    pids = dev.child_pids()
    dev.proc.kill()
    dev.proc.wait(STOP_DEADLINE)
    wait_for(lambda: not any(alive(p) for p in pids.values()), STOP_DEADLINE,
             "every child of a SIGKILLed cairn dev to exit")
    dev.start()
    assert client(dev.port).get("survives") == b"yes"
    dev.stop()
    assert dev.proc.returncode == 0, dev.logs()


def dev_status(dev):
    out = subprocess.run([CAIRN, "status", "--dir", dev.dir, "--json"],
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_dev_keeps_serving_heals_and_adds_a_node(dev):
    """`cairn dev --nodes 4`: a node killed is reported, the cluster keeps
    serving and re-replicates its range on the spare node; `cairn dev
    add-node` starts node 5 into the running cluster (DIR/node5.pid), and
    a restart starts all five."""
    dev.start(["--nodes", "4", "--dead-after", "2"])
    r = client(dev.port)
    assert r.set("before", "1") is True
    st = dev_status(dev)
    assert st["summary"]["nodes"] == 4

    def holders_now():
        return [n["id"] for n in dev_status(dev)["nodes"]
                if n["replicas"] > 0]
    # `default` gets REPLICAS 3 once three nodes are live (cmd_dev.c); the
    # etcd records of its replicas may trail the first write a moment
    wait_for(lambda: len(holders_now()) == 3, 30,
             "the default range on three nodes", 0.2)
    holders = holders_now()
    victim = holders[0]
    pids = dev.child_pids()
    os.kill(pids["node%d" % victim], signal.SIGKILL)

    def healed():
        s = dev_status(dev)
        nodes = {n["id"]: n for n in s["nodes"]}
        return (nodes[victim]["state"] == "dead" and
                nodes[victim]["replicas"] == 0 and
                s["summary"]["under_replicated"] == 0 and not s["moves"])
    wait_for(healed, 60, "the dead node's range re-replicated", 0.2)
    assert dev.proc.poll() is None, dev.logs()
    assert "keeps serving without node%d" % victim in dev.logs()
    assert r.get("before") == b"1"
    assert r.set("after", "2") is True

    out = subprocess.run([CAIRN, "dev", "add-node", "--dir", dev.dir],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "node 5 started" in out.stdout
    assert "node5" in dev.child_pids()
    wait_for(lambda: {n["id"]: n["state"] for n in dev_status(dev)["nodes"]}
             .get(5) == "live", 30, "node 5 live", 0.2)
    dev.stop()
    assert dev.proc.returncode == 0, dev.logs()
    dev.start()  # all five again, node 1..5
    assert "5 nodes" in open(dev.out).read()
    assert client(dev.port).get("after") == b"2"
    dev.stop()
    assert_clean_logs(dev.dir)


# ---- controller failover -------------------------------------------------

def log_text(tmp, name):
    with open(os.path.join(tmp, name), errors="replace") as f:
        return f.read()


def test_controller_failover():
    ttl = 2
    with tempfile.TemporaryDirectory(prefix="cairn-ctl-") as tmp:
        procs = Procs()
        try:
            etcd = Etcd(tmp, procs).start()

            def controller(name):
                return procs.start([CAIRN, "controller", "--etcd", etcd.url,
                                    "--id", name, "--lease-ttl", str(ttl),
                                    "--interval-ms", "200"],
                                   os.path.join(tmp, name + ".log"))
            a = controller("A")
            wait_for(lambda: etcd.get(b"/cairn/controller") == b"A", 15,
                     "A to be elected")
            wait_for(lambda: "A: active" in log_text(tmp, "A.log"), 10,
                     "A to say it is active")
            b = controller("B")
            wait_for(lambda: "B: started" in log_text(tmp, "B.log"), 10,
                     "B to start")
            assert etcd.get(b"/cairn/controller") == b"A"
            assert "B: active" not in log_text(tmp, "B.log")

            a.kill()  # no resignation: B must wait out A's lease
            a.wait(10)
            t0 = time.monotonic()
            wait_for(lambda: etcd.get(b"/cairn/controller") == b"B",
                     ttl * 3 + 5, "B to take over")
            wait_for(lambda: "B: active" in log_text(tmp, "B.log"), 10,
                     "B to say it is active")
            assert time.monotonic() - t0 < ttl * 3 + 5
            assert b.poll() is None
        finally:
            procs.stop_all()
