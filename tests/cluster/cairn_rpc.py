"""A small blocking Python client of the cairn RPC (src/proto/rpc.h).

Used by the cluster tests to talk to `cairn node` directly: data requests
(put, delete, get, scan) and admin requests (create replica, add, remove,
transfer leadership, metrics). Frames: length (4) | type (1) | request id (8)
| body, big-endian; strings are length (4) | bytes.
"""
import json
import socket
import struct

PING, PUT, DEL, GET, SCAN = 1, 2, 3, 4, 5
CREATE_REPLICA, ADD_REPLICA, REMOVE_REPLICA, TRANSFER_LEADER, METRICS = (
    16, 17, 18, 19, 20)
DROP_REPLICA = 21
CREATE_REPLICAS = 22
SPLIT_RANGE = 23
CATCH_UP, BUMP_EPOCH, FENCE, SCAN_RECORDS, COPY, FLOOR = (
    24, 25, 26, 27, 28, 29)
COND_NONE, COND_IFSEQ, COND_IFABSENT = 0, 1, 2
BTREE, LSM = 1, 2

# cairn_err codes (src/common/err.h): -(position in the list)
ERR_WORDS = ["OK", "NOMEM", "IO", "INVALID", "NOTFOUND", "EXISTS", "KEYEMPTY",
             "KEYTOOBIG", "TOOBIG", "CORRUPT", "ENGINE", "PROTO", "NOT_LEADER",
             "STALE_EPOCH", "KEY_OUT_OF_RANGE", "RANGE_NOT_FOUND", "NOQUORUM",
             "TIMEOUT", "TRYAGAIN", "CONDITION", "SHUTDOWN", "BUSY",
             "UNSUPPORTED", "META", "NOTABLE", "SNAPTOOBIG", "NOAUTH",
             "NOSPACE"]


def err_word(code):
    return ERR_WORDS[-code] if -len(ERR_WORDS) < code <= 0 else "ERR"


class RpcError(Exception):
    """A reply with a non-zero status. `word` is the stable code word."""

    def __init__(self, status, message, leader_id=0, leader_addr=""):
        self.status = status
        self.word = err_word(status)
        self.leader_id = leader_id
        self.leader_addr = leader_addr
        super().__init__("%s %s%s" % (
            self.word, message,
            " (leader %d %s)" % (leader_id, leader_addr) if leader_id else ""))


def _s(b):
    if isinstance(b, str):
        b = b.encode()
    return struct.pack(">I", len(b)) + b


class _Reader:
    def __init__(self, data, pos=0):
        self.d, self.p = data, pos

    def take(self, n):
        v = self.d[self.p:self.p + n]
        if len(v) != n:
            raise ValueError("short frame")
        self.p += n
        return v

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack(">I", self.take(4))[0]

    def i32(self):
        return struct.unpack(">i", self.take(4))[0]

    def u64(self):
        return struct.unpack(">Q", self.take(8))[0]

    def str(self):
        return self.take(self.u32())


def hello_client(secret=None):
    """The handshake of a client connection (src/proto/rpc.h), with the
    cluster secret (bytes) if one is given."""
    if not secret:
        return b"CRN1\x01"
    return b"CRN1\x81" + struct.pack(">H", len(secret)) + secret


class Client:
    """One connection to one node. Not thread-safe: one per thread.
    `secret`: the cluster secret the nodes require (bytes), if any."""

    def __init__(self, addr, timeout=5.0, secret=None):
        host, port = addr.rsplit(":", 1)
        self.addr = addr
        self.sock = socket.create_connection((host, int(port)), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock.sendall(hello_client(secret))
        self.next_id = 1
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def _recv_frame(self):
        while True:
            if len(self.buf) >= 4:
                n = struct.unpack(">I", self.buf[:4])[0] + 4
                if len(self.buf) >= n:
                    f, self.buf = self.buf[:n], self.buf[n:]
                    return f
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("connection closed by " + self.addr)
            self.buf += chunk

    def call(self, typ, body):
        rid = self.next_id
        self.next_id += 1
        frame = struct.pack(">BQ", typ, rid) + body
        self.sock.sendall(struct.pack(">I", len(frame)) + frame)
        f = self._recv_frame()
        r = _Reader(f, 4)
        if r.u8() != 0 or r.u64() != rid:
            raise ValueError("unexpected reply frame")
        status = r.i32()
        msg = r.str().decode(errors="replace")
        if status == -12:  # NOT_LEADER
            lid = r.u64()
            raise RpcError(status, msg, lid, r.str().decode())
        if status != 0:
            raise RpcError(status, msg)
        return r

    # ---- data --------------------------------------------------------
    def put(self, rng, epoch, key, value, cond=COND_NONE, cond_seq=b"\0" * 16):
        """Returns the 16-byte sequencer of the write."""
        body = struct.pack(">QQ", rng, epoch) + _s(key) + _s(value) + \
            bytes([cond]) + cond_seq
        return self.call(PUT, body).take(16)

    def delete(self, rng, epoch, key):
        return self.call(DEL, struct.pack(">QQ", rng, epoch) + _s(key)).take(16)

    def get(self, rng, epoch, key):
        """(value, seq), or None if absent (NOTFOUND)."""
        try:
            r = self.call(GET, struct.pack(">QQ", rng, epoch) + _s(key))
        except RpcError as e:
            if e.word == "NOTFOUND":
                return None
            raise
        s = r.take(16)
        return r.str(), s

    def scan(self, rng, epoch, start=b"", end=b"", limit=0):
        """(list of (key, value, seq), more)."""
        r = self.call(SCAN, struct.pack(">QQ", rng, epoch) + _s(start) +
                      _s(end) + struct.pack(">I", limit))
        count, more = r.u32(), r.u8()
        out = []
        for _ in range(count):
            k = r.str()
            s = r.take(16)
            out.append((k, r.str(), s))
        return out, bool(more)

    def scan_records(self, rng, epoch, start=b"", end=b"", limit=0):
        """(list of (key, seq, tombstone, value), more): tombstones
        included, as a move copies them."""
        r = self.call(SCAN_RECORDS, struct.pack(">QQ", rng, epoch) +
                      _s(start) + _s(end) + struct.pack(">I", limit))
        count, more = r.u32(), r.u8()
        out = []
        for _ in range(count):
            k = r.str()
            s = r.take(16)
            tomb = r.u8()
            out.append((k, s, bool(tomb), r.str()))
        return out, bool(more)

    def copy(self, rng, epoch, records):
        """Land records (key, seq, tombstone, value) on the leader, each
        only if newer than what the key holds; the answer text."""
        body = struct.pack(">QQI", rng, epoch, len(records))
        for k, s, tomb, v in records:
            body += _s(k) + s + bytes([1 if tomb else 0]) + _s(v)
        return self.call(COPY, body).str().decode()

    def scan_all(self, rng, epoch):
        """Every live key of the range, paging with scan."""
        out, start = [], b""
        while True:
            page, _ = self.scan(rng, epoch, start, b"", 1000)
            out += page
            if len(page) < 1000:
                return out
            start = page[-1][0] + b"\0"

    def ping(self):
        self.call(PING, b"")

    # ---- admin -------------------------------------------------------
    def create_replica(self, rng, peers, epoch=1, table=1, engine=BTREE,
                       start=b"", end=b"", bootstrap=True):
        """peers: list of (node id, "host:port")."""
        body = struct.pack(">QQ", rng, epoch) + _s(start) + _s(end) + \
            struct.pack(">QBBB", table, engine, 1 if bootstrap else 0,
                        len(peers))
        for pid, addr in peers:
            body += struct.pack(">Q", pid) + _s(addr)
        return self.call(CREATE_REPLICA, body).str().decode()

    @staticmethod
    def creation(rng, peers, epoch=1, table=1, engine=BTREE, start=b"",
                 end=b"", bootstrap=True):
        """One creation of a CREATE_REPLICAS request: the body of a
        CREATE_REPLICA request."""
        body = struct.pack(">QQ", rng, epoch) + _s(start) + _s(end) + \
            struct.pack(">QBBB", table, engine, 1 if bootstrap else 0,
                        len(peers))
        for pid, addr in peers:
            body += struct.pack(">Q", pid) + _s(addr)
        return body

    def create_replicas(self, creations):
        """Many creations (bytes from creation()) in one frame. Returns
        the ones that did not succeed: [(range id, code word, message)]."""
        r = self.call(CREATE_REPLICAS, struct.pack(">I", len(creations)) +
                      b"".join(creations))
        out = []
        for _ in range(r.u32()):
            rng = r.u64()
            word = err_word(r.i32())
            out.append((rng, word, r.str().decode(errors="replace")))
        return out

    def add_replica(self, rng, node_id, addr, epoch=0):
        """`epoch`: the metadata's; the change's new epoch is above it."""
        return self.call(ADD_REPLICA, struct.pack(">QQ", rng, node_id) +
                         _s(addr) + struct.pack(">Q", epoch)).str().decode()

    def remove_replica(self, rng, node_id, epoch=0):
        return self.call(REMOVE_REPLICA, struct.pack(">QQQ", rng, node_id,
                                                     epoch)).str().decode()

    def bump_epoch(self, rng, epoch=0):
        """An epoch entry above the range's and `epoch`; the answer text."""
        return self.call(BUMP_EPOCH,
                         struct.pack(">QQ", rng, epoch)).str().decode()

    def fence(self, rng, epoch=0):
        """Fence the range for a move; the answer text ("fence: done,
        epoch E, seq S")."""
        return self.call(FENCE, struct.pack(">QQ", rng, epoch)).str().decode()

    def floor(self, rng, epoch, seq):
        """Every replica's clock past `seq` (16 bytes) for good; the answer
        text ("floor: done, epoch E")."""
        return self.call(FLOOR, struct.pack(">QQ", rng, epoch) +
                         seq).str().decode()

    def transfer_leader(self, rng, node_id=0):
        return self.call(TRANSFER_LEADER,
                         struct.pack(">QQ", rng, node_id)).str().decode()

    def split(self, rng, epoch, new_range, key=b""):
        """Split range `rng` at `key` (b"": the leader picks the median);
        the upper half becomes `new_range`. The leader's answer text."""
        return self.call(SPLIT_RANGE, struct.pack(">QQQ", rng, epoch,
                                                  new_range) + _s(key)
                         ).str().decode()

    def drop_replica(self, rng):
        return self.call(DROP_REPLICA, struct.pack(">Q", rng)).str().decode()

    def metrics(self, rng=0):
        return json.loads(self.call(METRICS, struct.pack(">Q", rng)).str())
