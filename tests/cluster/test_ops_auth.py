"""Issue 12, AUTH: the router's password and the cluster secret, with a real
etcd, real nodes and real routers.

test_router_requirepass: a router started with --requirepass answers every
command but AUTH, HELLO and QUIT with -NOAUTH until the client
authenticates; redis-py's password (AUTH password) and username + password
(AUTH default password) work, a wrong one is WRONGPASS and counted in
/metrics; CAIRN_PASSWORD does the same as the flag; redis-cli -a works.

test_cluster_secret: three nodes and a router share --cluster-secret-file;
tables are created and written (the router's and the nodes' Raft links
carry the secret: an RF 3 write commits only over them). A router with a
wrong secret and a raw client without one are refused - nothing they sent
is applied - and the nodes log and count the refusals. Node 3 restarted
with a wrong secret is cut off (its links are refused both ways, logged)
while writes go on through the other two; restarted with the right one it
catches up.
"""
import os
import socket
import struct
import subprocess
import urllib.request

import pytest
import redis

from cairn_rpc import Client
import nodeharness
from clusterharness import (Etcd, Procs, Router, Workdir, cairn_bin,
                            free_port, real_nodes, wait_for, wait_live)

PASSWORD = "s3cret-pw"


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port,
                                timeout=5) as r:
        return r.read().decode()


def sample(text, name, labels=""):
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            n, _, lab = series.partition("{")
            if n == name and labels in lab:
                return float(value)
    return None


@pytest.fixture(scope="module")
def one_node():
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = real_nodes(etcd, 1)
        yield {"etcd": etcd, "procs": procs, "dir": wd.path}
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()


def test_router_requirepass(one_node):
    cl = one_node
    http = free_port()
    rt = Router(cl["procs"], cl["dir"], cl["etcd"].url, name="r-auth",
                extra=["--requirepass", PASSWORD, "--http",
                       "127.0.0.1:%d" % http])
    anon = redis.Redis(host="127.0.0.1", port=rt.port, socket_timeout=10)
    for cmd in (("PING",), ("GET", "k"), ("TABLE.LIST",), ("NOSUCH", "x")):
        with pytest.raises(redis.exceptions.AuthenticationError,
                           match="Authentication required"):
            anon.execute_command(*cmd)
    with pytest.raises(redis.exceptions.ResponseError,
                       match="^NOPROTO unsupported protocol version"):
        anon.execute_command("HELLO", "3")
    with pytest.raises(redis.exceptions.AuthenticationError):
        anon.execute_command("HELLO", "2")  # no AUTH option: NOAUTH
    with pytest.raises(redis.exceptions.ResponseError, match="^WRONGPASS"):
        anon.execute_command("AUTH", "wrong")
    anon.close()

    r = rt.client(password=PASSWORD)
    assert r.ping()
    assert r.execute_command("TABLE.CREATE", "authed") == b"OK"
    assert r.execute_command("KV.PUT", "authed", "k", "v")
    r.close()
    r = rt.client(username="default", password=PASSWORD)
    assert r.execute_command("KV.GET", "authed", "k") == b"v"
    r.close()
    refused = (redis.exceptions.AuthenticationError,
               redis.exceptions.ResponseError)  # by redis-py's version
    with pytest.raises(refused, match="WRONGPASS|Invalid"):
        rt.client(password="nope").ping()
    with pytest.raises(refused, match="WRONGPASS|Invalid"):
        rt.client(username="admin", password=PASSWORD).ping()
    # HELLO 2 AUTH authenticates as it selects RESP2.
    with socket.create_connection(("127.0.0.1", rt.port), timeout=5) as s:
        s.sendall(b"HELLO 2 AUTH default %s\r\nKV.GET authed none\r\n"
                  % PASSWORD.encode())
        got = b""
        while b"$-1\r\n" not in got:
            got += s.recv(4096)
        assert got.startswith(b"*14\r\n") and b"proto" in got, got

    # Failures are counted (the page is published once a second).
    wait_for(lambda: (sample(metrics(http), "cairn_router_auth_failures_total")
                      or 0) >= 3, 10, "the failures in /metrics", 0.2)
    text = metrics(http)
    assert sample(text, "cairn_router_requests_total",
                  'command="get",result="NOAUTH"') >= 1
    rt.stop()
    assert "AUTH with a wrong password" in open(rt.log).read()

    # CAIRN_PASSWORD instead of the flag, and redis-cli -a.
    rt = Router(cl["procs"], cl["dir"], cl["etcd"].url, name="r-env",
                env={"CAIRN_PASSWORD": PASSWORD})
    out = subprocess.run(["redis-cli", "-p", str(rt.port), "GET", "x"],
                         capture_output=True, text=True, timeout=30)
    assert "NOAUTH" in out.stdout + out.stderr
    out = subprocess.run(["redis-cli", "-p", str(rt.port), "-a", PASSWORD,
                          "--no-auth-warning", "KV.GET", "authed", "k"],
                         capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "v", out
    rt.stop()


def write_secret(path, text):
    with open(path, "w") as f:
        f.write(text + "\n")
    os.chmod(path, 0o600)
    return path


def raw_put(addr, secret, range_id, epoch, key, value):
    """A PUT frame sent on a fresh connection, as a router would; returns
    (request id, message) of the reply that came back, or None when the
    node closed without one."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=5) as s:
        hello = b"CRN1\x01" if secret is None else \
            b"CRN1\x81" + struct.pack(">H", len(secret)) + secret
        body = struct.pack(">QQ", range_id, epoch) + \
            struct.pack(">I", len(key)) + key + \
            struct.pack(">I", len(value)) + value + b"\x00" + b"\x00" * 16
        frame = struct.pack(">BQ", 2, 1) + body
        s.sendall(hello + struct.pack(">I", len(frame)) + frame)
        got = b""
        try:
            while len(got) < 4 or len(got) < 4 + struct.unpack(
                    ">I", got[:4])[0]:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pass
        if len(got) < 21:
            return None
        rid = struct.unpack(">Q", got[5:13])[0]
        n = struct.unpack(">I", got[17:21])[0]
        return rid, got[21:21 + n].decode()


def test_cluster_secret():
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        good = write_secret(os.path.join(wd.path, "secret"), "cluster-1")
        bad = write_secret(os.path.join(wd.path, "other"), "cluster-2")
        etcd = Etcd(wd.path, procs).start()
        nodes = nodeharness.Cluster(
            3, node_args=["--etcd", etcd.url, "--cluster-secret-file", good],
            secret=b"cluster-1")
        http = {}
        for nd in nodes.nodes:
            http[nd.id] = free_port()
            nd.extra = ["--http", "127.0.0.1:%d" % http[nd.id]]
        nodes.start()
        wait_live(etcd, 3)
        rt = Router(procs, wd.path, etcd.url, name="r-good",
                    extra=["--cluster-secret-file", good])
        r = rt.client()
        assert r.execute_command("TABLE.CREATE", "sec", "REPLICAS", "3",
                                 "SPLITS", "m") == b"OK"
        for i in range(20):
            r.execute_command("KV.PUT", "sec", "k%02d" % i, "v%d" % i)
        assert r.execute_command("KV.GET", "sec", "k07") == b"v7"
        for nd in nodes.nodes:
            assert "cluster secret required" in nd.tail(100000)

        # A router with another secret: refused, nothing applied.
        wrong = Router(procs, wd.path, etcd.url, name="r-wrong",
                       deadline_ms=800, extra=["--cluster-secret-file", bad])
        w = wrong.client()
        # The node answers the refusal before closing: the router knows
        # nothing was applied, retries, and says why at the deadline.
        with pytest.raises(redis.exceptions.ResponseError,
                           match="^TRYAGAIN .*refused the connection"):
            w.execute_command("KV.PUT", "sec", "intruder", "x")
        w.close()
        wrong.stop()
        assert "refused the connection: NOAUTH wrong cluster secret" in \
            open(wrong.log).read()
        # So does `cairn admin` (rpc_sync), with the right secret or none.
        out = subprocess.run([cairn_bin(), "admin", "--node",
                              nodes.node(1).addr, "metrics"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode != 0 and "NOAUTH" in out.stdout + out.stderr
        out = subprocess.run([cairn_bin(), "admin", "--node",
                              nodes.node(1).addr, "--cluster-secret-file",
                              good, "metrics"],
                             capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stdout + out.stderr
        # A raw client without any secret, straight at a leader.
        info = r.execute_command("TABLE.INFO", "sec")
        rg = dict(zip(*[iter(info[info.index(b"ranges") + 1][0])] * 2))
        # The node answers the connection (id 0), never the request.
        for nd in nodes.nodes:
            rid, msg = raw_put(nd.addr, None, rg[b"id"], rg[b"epoch"],
                               b"intruder2", b"x")
            assert rid == 0 and "requires the cluster secret" in msg, msg
            rid, msg = raw_put(nd.addr, b"cluster-2", rg[b"id"], rg[b"epoch"],
                               b"intruder3", b"x")
            assert rid == 0 and "wrong cluster secret" in msg, msg
        for k in ("intruder", "intruder2", "intruder3"):
            assert r.execute_command("KV.GET", "sec", k) is None
        # The same frame with the right secret is answered (by the leader:
        # applied; by the others: NOT_LEADER): the refusals above are the
        # secret's doing, not a malformed frame's.
        for nd in nodes.nodes:
            assert raw_put(nd.addr, b"cluster-1", rg[b"id"], rg[b"epoch"],
                           b"control", b"x")[0] == 1
        assert r.execute_command("KV.GET", "sec", "control") == b"x"
        # Logged (at most a line a second per node) and counted.
        logs = "".join(nd.tail(200000) for nd in nodes.nodes)
        assert "cluster secret on a client connection" in logs
        for nd in nodes.nodes:
            wait_for(lambda: (sample(metrics(http[nd.id]),
                                     "cairn_node_connections_refused_total",
                                     'reason="secret"') or 0) >= 2, 10,
                     "node %d to count its refusals" % nd.id, 0.2)

        # Node 3 with another secret: its links are refused both ways.
        n3 = nodes.node(3)
        n3.stop()
        n3.secret = b"cluster-2"
        n3.start(extra=["--cluster-secret-file", bad])
        for i in range(20, 40):
            r.execute_command("KV.PUT", "sec", "k%02d" % i, "v%d" % i)
        wait_for(lambda: "wrong cluster secret on a link from node 3" in
                 nodes.node(1).tail(200000) + nodes.node(2).tail(200000),
                 15, "a node to refuse node 3's link", 0.2)
        wait_for(lambda: "wrong cluster secret on a link from node" in
                 n3.tail(200000), 15, "node 3 to refuse the others' links",
                 0.2)
        with n3.client() as c:
            behind = c.metrics(rg[b"id"])["applied_index"]
        with nodes.node(1).client() as c:
            ahead = c.metrics(rg[b"id"])["commit_index"]
        assert behind < ahead, (behind, ahead)

        # The right secret again: node 3 catches up.
        n3.stop()
        n3.secret = b"cluster-1"
        n3.start()

        def caught_up():
            with nodes.node(1).client() as c:
                want = c.metrics(rg[b"id"])["commit_index"]
            with n3.client() as c:
                return c.metrics(rg[b"id"])["applied_index"] >= want
        wait_for(caught_up, 30, "node 3 to catch up", 0.2)
        assert r.execute_command("KV.GET", "sec", "k39") == b"v39"
        r.close()
        rt.stop()
        for nd in nodes.nodes:
            nd.stop()
            text = nd.tail(1 << 20)  # an ASan build's reports land here
            assert "Sanitizer" not in text and "runtime error" not in text, \
                text[-3000:]
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()
