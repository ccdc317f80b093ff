"""Process helpers for the router's cluster tests (tests/cluster/test_router*.py).

Everything here runs on loopback with free ports and temporary directories,
and every process started is remembered and killed by PID at the end:

  - Etcd, Procs, wait_for, free_port: from harness.py (shared by every
    cluster test).
  - Router: a real `cairn router` process.
  - FakeNode: an in-process stand-in for `cairn node` that speaks the cairn
    RPC byte for byte (src/proto/rpc.h) over an in-memory map, registers in
    etcd as a node does, and can be told to misbehave (reject as not leader,
    as a stale epoch, delay or drop replies, die). It lets the router's
    routing, retry and ordering rules be tested exactly, independent of Raft.
    Tests that need real replication use real `cairn node` processes.
"""
import contextlib
import json
import os
import re
import shutil
import socket
import struct
import subprocess
import tempfile
import threading
import time

import nodeharness
# The shared helpers, also imported from here by the router's tests.
from harness import (ROOT, Etcd, ProcessExited, Procs, cairn_bin,  # noqa: F401
                     free_port, wait_for)


def _err_codes():
    """cairn error codes by enum name (NOT_FOUND for CAIRN_ERR_NOT_FOUND),
    read from src/common/err.h."""
    text = open(os.path.join(ROOT, "src", "common", "err.h")).read()
    words = re.findall(r'X\(\s*CAIRN_(?:ERR_)?(\w+),', text)
    return {w: -i for i, w in enumerate(words)}


ERR = _err_codes()


class Router:
    """A real `cairn router` process."""

    def __init__(self, procs, workdir, etcd_url, prefix="/cairn", deadline_ms=None,
                 name="router", extra=(), env=None):
        self.port = free_port()
        # CAIRN_ROUTER_BIN: a separate (e.g. sanitizer) build for the router.
        argv = [os.environ.get("CAIRN_ROUTER_BIN") or cairn_bin(), "router", "--listen", "127.0.0.1:%d" % self.port,
                "--etcd", etcd_url, "--prefix", prefix]
        if deadline_ms:
            argv += ["--deadline-ms", str(deadline_ms)]
        argv += list(extra)
        self.log = os.path.join(workdir, name + ".log")
        self.procs = procs
        self.proc = procs.start(argv, self.log, env=env)
        wait_for(self._pong, 20, "router to answer PING")

    def _pong(self):
        if self.proc.poll() is not None:
            raise ProcessExited("router exited: " + open(self.log).read())
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            # A router with --requirepass answers NOAUTH: it serves.
            return s.recv(16).startswith((b"+PONG", b"-NOAUTH"))

    def stop(self):
        """SIGTERM, then fail if the process reported a sanitizer error."""
        self.procs.stop(self.proc)
        log = open(self.log, errors="replace").read()
        for bad in ("AddressSanitizer", "LeakSanitizer", "runtime error:"):
            assert bad not in log, log[-4000:]

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        return 0

    def client(self, **kw):
        import redis
        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=20, **kw)


def wait_live(etcd, n):
    """Wait until `n` nodes hold a liveness key in etcd (default prefix)."""
    wait_for(lambda: len(etcd.get_prefix(b"/cairn/live/")) >= n, 20,
             "%d nodes registered in etcd" % n)


def real_nodes(etcd, n=3):
    """`n` real `cairn node` processes registered in `etcd` (--etcd), once
    all are live. The caller closes them (Cluster.close)."""
    nodes = nodeharness.Cluster(n, node_args=["--etcd", etcd.url]).start()
    try:
        wait_live(etcd, n)
    except BaseException:
        nodes.close()
        raise
    return nodes


def redis_benchmark(port):
    """A short redis-benchmark run (SET and GET, 2000 requests) against the
    router on `port`, unchanged: asserts it ran with zero errors and
    returns its output."""
    out = subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", "2000",
         "-q"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    text = out.stdout + out.stderr
    print(text)
    assert "rror" not in text, text
    assert "SET:" in text and "GET:" in text
    return text


class Workdir:
    """A temporary directory removed at the end (kept if CAIRN_KEEP is set)."""

    def __init__(self):
        self.path = tempfile.mkdtemp(prefix="cairn-router-test-")

    def cleanup(self):
        if not os.environ.get("CAIRN_KEEP"):
            shutil.rmtree(self.path, ignore_errors=True)


@contextlib.contextmanager
def real_cluster(n=3, **router_kw):
    """A real etcd, `n` real nodes and a real router (Router's keyword
    arguments) in one temporary directory; everything is stopped and
    removed when the block ends. Yields {"etcd", "nodes", "procs",
    "router"}."""
    procs, wd = Procs(), Workdir()
    nodes = None
    try:
        etcd = Etcd(wd.path, procs).start()
        nodes = real_nodes(etcd, n)
        yield {"etcd": etcd, "nodes": nodes, "procs": procs,
               "router": Router(procs, wd.path, etcd.url, **router_kw)}
    finally:
        if nodes:
            nodes.close()
        procs.stop_all()
        wd.cleanup()


# ---- the fake node -------------------------------------------------------

RPC_REPLY, RPC_PING, RPC_PUT, RPC_DEL, RPC_GET, RPC_SCAN = 0, 1, 2, 3, 4, 5
RPC_CREATE_REPLICA = 16
RPC_CREATE_REPLICAS = 22


class _Reader:
    def __init__(self, b, pos):
        self.b, self.pos = b, pos

    def u8(self):
        v = self.b[self.pos]
        self.pos += 1
        return v

    def u32(self):
        v = struct.unpack_from(">I", self.b, self.pos)[0]
        self.pos += 4
        return v

    def u64(self):
        v = struct.unpack_from(">Q", self.b, self.pos)[0]
        self.pos += 8
        return v

    def bytes(self, n=None):
        if n is None:
            n = self.u32()
        v = bytes(self.b[self.pos:self.pos + n])
        self.pos += n
        return v


def _s(b):
    return struct.pack(">I", len(b)) + b


def _frame(rid, body):
    return struct.pack(">IBQ", 1 + 8 + len(body), RPC_REPLY, rid) + body


def _reply(rid, status, msg=b"", rest=b""):
    return _frame(rid, struct.pack(">i", status) + _s(msg) + rest)


class FakeRange:
    def __init__(self, rid, epoch, start, end, peers):
        self.id, self.epoch, self.start, self.end = rid, epoch, start, end
        self.peers = peers  # [(id, addr)]
        self.data = {}      # key -> (seq bytes, value or None for a tombstone)

    def contains(self, key):
        return key >= self.start and (not self.end or key < self.end)


class FakeNode:
    """An RPC server on a thread. `behaviour` hooks let a test inject faults:
    before(req) may return a reply (bytes) or "drop" to answer nothing."""

    def __init__(self, etcd, node_id, prefix="/cairn", register=True,
                 rcvbuf=None):
        self.etcd, self.id, self.prefix = etcd, node_id, prefix
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if rcvbuf:
            # Inherited by accepted sockets; a fixed size also stops the
            # kernel growing it, so a node that stops reading (reading)
            # soon makes the router's writes to it block.
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.ranges = {}
        self.lock = threading.Lock()
        self.counter = 0
        self.requests = []   # (type, range id, key) of every request seen
        self.before = None   # fault injection hook
        self.conns = []
        self.closed = False
        self.leader_of = {}  # range id -> leader node id (who this node thinks)
        self.peers_addr = {}
        # Cleared: connections stop reading (the router's writes pile up in
        # the socket buffers, then in the router); set again to resume.
        self.reading = threading.Event()
        self.reading.set()
        threading.Thread(target=self._accept, daemon=True).start()
        if register:
            self.register()

    def register(self):
        p = self.prefix.encode()
        self.etcd.put(p + b"/nodes/%016x" % self.id,
                      json.dumps({"addr": self.addr, "capacity": 1 << 40}).encode())
        self.etcd.put(p + b"/live/%016x" % self.id, b"1")

    def set_leader(self, range_id, node_id, term=1, write_meta=True):
        """Make every fake node agree on a leader (tests call it on each)."""
        self.leader_of[range_id] = node_id
        if write_meta:
            self.etcd.put(self.prefix.encode() + b"/leaders/%016x" % range_id,
                          json.dumps({"node": node_id, "term": term}).encode())

    def unread_bytes(self):
        """Bytes waiting in the kernel on this node's connections."""
        import fcntl
        import termios
        total = 0
        for c in list(self.conns):
            try:
                total += struct.unpack("i", fcntl.ioctl(
                    c.fileno(), termios.FIONREAD, b"\0\0\0\0"))[0]
            except OSError:
                pass
        return total

    def close(self):
        self.closed = True
        self.reading.set()
        try:
            self.sock.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        hello = False
        try:
            while not self.closed:
                self.reading.wait()
                d = c.recv(1 << 16)
                if not d:
                    return
                buf += d
                if not hello:
                    if len(buf) < 5:
                        continue
                    assert buf[:4] == b"CRN1" and buf[4] == 1, buf[:5]
                    buf = buf[5:]
                    hello = True
                while len(buf) >= 4:
                    n = struct.unpack_from(">I", buf)[0] + 4
                    if len(buf) < n:
                        break
                    frame, buf = buf[:n], buf[n:]
                    out = self._handle(frame)
                    if out:
                        c.sendall(out)
        except OSError:
            return

    def _next_seq(self):
        self.counter += 1
        return struct.pack(">QII", time.time_ns(), self.counter, self.id)

    def _handle(self, frame):
        typ = frame[4]
        rid = struct.unpack_from(">Q", frame, 5)[0]
        r = _Reader(frame, 13)
        if typ == RPC_CREATE_REPLICA:
            return self._create(rid, r)
        if typ == RPC_CREATE_REPLICAS:
            for _ in range(r.u32()):
                self._create(rid, r)
            # status 0, no message, no failed creation
            return _reply(rid, 0, rest=struct.pack(">I", 0))
        range_id, epoch, key = r.u64(), r.u64(), r.bytes()
        req = {"type": typ, "id": rid, "range": range_id, "epoch": epoch, "key": key}
        if typ == RPC_PUT:
            req["value"], req["cond"], req["seq"] = r.bytes(), r.u8(), r.bytes(16)
        elif typ == RPC_SCAN:
            req["end"], req["limit"] = r.bytes(), r.u32()
        with self.lock:
            self.requests.append((typ, range_id, key))
        if self.before:
            out = self.before(self, req)
            if out == "drop":
                return None
            if out is not None:
                return out
        with self.lock:
            return self._apply(req)

    def _create(self, rid, r):
        range_id, epoch, start = r.u64(), r.u64(), r.bytes()
        end, _table, _engine, _boot = r.bytes(), r.u64(), r.u8(), r.u8()
        peers = [(r.u64(), r.bytes().decode()) for _ in range(r.u8())]
        with self.lock:
            self.ranges[range_id] = FakeRange(range_id, epoch, start, end, peers)
            for pid, addr in peers:
                self.peers_addr[pid] = addr
            leader = min(p[0] for p in peers)
        # The lowest id leads, like an election everybody agrees on.
        self.set_leader(range_id, leader, write_meta=(leader == self.id))
        return _reply(rid, 0, rest=_s(b""))

    def _apply(self, q):
        rid, rg = q["id"], self.ranges.get(q["range"])
        if rg is None:
            return _reply(rid, ERR["RANGE_NOT_FOUND"], b"no such range")
        if q["epoch"] != rg.epoch:
            return _reply(rid, ERR["STALE_EPOCH"], b"epoch")
        leader = self.leader_of.get(rg.id, self.id)
        if leader != self.id:
            addr = self.peers_addr.get(leader, "").encode()
            return _reply(rid, ERR["NOT_LEADER"], b"not leader",
                          struct.pack(">Q", leader) + _s(addr))
        key = q["key"]
        if q["type"] != RPC_SCAN and not rg.contains(key):
            return _reply(rid, ERR["KEY_OUT_OF_RANGE"], b"key out of range")
        if q["type"] == RPC_SCAN:
            return self._scan(rid, rg, q)
        cur = rg.data.get(key)
        live = cur is not None and cur[1] is not None
        if q["type"] == RPC_GET:
            if not live:
                return _reply(rid, ERR["NOT_FOUND"])
            return _reply(rid, 0, rest=cur[0] + _s(cur[1]))
        if q["type"] == RPC_DEL:
            s = self._next_seq()
            rg.data[key] = (s, None)
            return _reply(rid, 0 if live else ERR["NOT_FOUND"], rest=s if live else b"")
        if q["cond"] == 2 and live:
            return _reply(rid, ERR["CONDITION"], b"key exists")
        if q["cond"] == 1 and (not live or cur[0] != q["seq"]):
            return _reply(rid, ERR["CONDITION"], b"sequencer differs")
        s = self._next_seq()
        rg.data[key] = (s, q["value"])
        return _reply(rid, 0, rest=s)

    def _scan(self, rid, rg, q):
        start = max(q["key"], rg.start)
        end = q["end"]
        if rg.end and (not end or rg.end < end):
            end = rg.end
        keys = sorted(k for k, v in rg.data.items()
                      if v[1] is not None and k >= start and (not end or k < end))
        out = b""
        n = 0
        for k in keys[:q["limit"]]:
            s, v = rg.data[k]
            out += _s(k) + s + _s(v)
            n += 1
        return _reply(rid, 0, rest=struct.pack(">IB", n, 0) + out)
