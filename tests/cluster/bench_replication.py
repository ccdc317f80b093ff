#!/usr/bin/python3
"""Benchmark of replicated writes and reads (docs/BENCHMARKS.md, section
"Replicated writes and reads"). Not a test: nothing asserts a number.

    CAIRN_BIN=build/cairn /usr/bin/python3 tests/cluster/bench_replication.py \
        [--seconds 10] [--procs 4] [--window 32] [--etcd] [--idle-ranges 200]

1. One range, 3 replicas on loopback. `procs` client processes, each with
   one connection keeping `window` requests in flight (pipelined), write
   100-byte values for `seconds`; then the same for linearizable gets.
   Reports ops/s, p50/p99 latency (send to reply, per request), client
   writes per Raft entry (leader metrics) and client writes per log disk
   write on the leader (perf counts of its syscalls while the load runs:
   libraft writes its log with io_submit (kernel AIO, O_DSYNC), one durable
   write per io_submit; LMDB writes pages with pwrite64 + fdatasync).
2. --etcd: a 3-member etcd on the same machine, `etcdctl check perf
   --load xl` (60 s at a 15,000 writes/s target; it reports the throughput
   it reached), as the reference.
3. --idle-ranges N: 3 nodes hosting N ranges of 3 replicas each (default
   timeouts), CPU used by the idle nodes over 10 s.
"""
import argparse
import multiprocessing as mp
import os
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from nodeharness import Cluster, free_port, wait_for  # noqa: E402

R = 1
PUT, GET = 2, 4


def _s(b):
    return struct.pack(">I", len(b)) + b


def client_proc(addr, kind, seconds, window, tid, q, rng=R):
    host, port = addr.rsplit(":", 1)
    sock = socket.create_connection((host, int(port)))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.sendall(b"CRN1\x01")
    value = b"x" * 100
    sent = {}
    lat = []
    buf = b""
    rid = 0
    errors = {}
    end = time.monotonic() + seconds

    def frame(i):
        key = b"p%d-%08d" % (tid, i % 20000 if kind == GET else i)
        body = struct.pack(">QQ", rng, 1) + _s(key)
        if kind == PUT:
            body += _s(value) + b"\0" + b"\0" * 16
        f = struct.pack(">BQ", kind, i) + body
        return struct.pack(">I", len(f)) + f

    while True:
        now = time.monotonic()
        out = []
        while len(sent) < window and now < end:
            rid += 1
            sent[rid] = now
            out.append(frame(rid))
        if out:
            sock.sendall(b"".join(out))
        if not sent:
            break
        chunk = sock.recv(1 << 20)
        if not chunk:
            break
        buf += chunk
        t = time.monotonic()
        while len(buf) >= 4:
            n = struct.unpack(">I", buf[:4])[0] + 4
            if len(buf) < n:
                break
            f, buf = buf[:n], buf[n:]
            i = struct.unpack(">Q", f[5:13])[0]
            status = struct.unpack(">i", f[13:17])[0]
            if status != 0 and not (kind == GET and status == -4):
                errors[status] = errors.get(status, 0) + 1
            lat.append(t - sent.pop(i))
    sock.close()
    q.put((lat, errors))


def run_load(addr, kind, seconds, procs, window, targets=None):
    """targets: list of (address, range) the processes take in turn."""
    q = mp.Queue()
    targets = targets or [(addr, R)]
    ps = [mp.Process(target=client_proc,
                     args=(targets[t % len(targets)][0], kind, seconds,
                           window, t, q, targets[t % len(targets)][1]))
          for t in range(procs)]
    t0 = time.monotonic()
    for p in ps:
        p.start()
    res = [q.get(timeout=seconds + 60) for _ in ps]
    for p in ps:
        p.join()
    wall = time.monotonic() - t0
    lat = sorted(x for r in res for x in r[0])
    errors = {}
    for r in res:
        for k, v in r[1].items():
            errors[k] = errors.get(k, 0) + v
    return {"ops": len(lat), "ops_s": len(lat) / seconds, "errors": errors,
            "p50_ms": lat[len(lat) // 2] * 1e3 if lat else 0,
            "p99_ms": lat[int(len(lat) * 0.99)] * 1e3 if lat else 0,
            "wall": wall}


SYSCALLS = ["io_submit", "pwritev2", "pwritev", "pwrite64", "fdatasync",
            "fsync", "write"]


def perf_start(pid):
    ev = ",".join("syscalls:sys_enter_%s" % s for s in SYSCALLS)
    out = tempfile.NamedTemporaryFile(delete=False, suffix=".perf")
    p = subprocess.Popen(["perf", "stat", "-x", ",", "-o", out.name, "-e",
                          ev, "-p", str(pid)], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    return p, out.name


def perf_stop(handle):
    p, path = handle
    p.send_signal(2)
    p.wait(10)
    counts = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and "sys_enter_" in parts[2]:
                try:
                    counts[parts[2].split("sys_enter_")[1]] = int(parts[0])
                except ValueError:
                    pass
    os.unlink(path)
    return counts


def bench_range(args):
    node_args = ["--election-ms", "1000", "--heartbeat-ms", "100"]
    cl = Cluster(3, node_args=[])
    cl.node_args = node_args
    try:
        cl.start()
        ld = cl.create_range(R)
        before = ld.metrics(R)
        perf = perf_start(ld.proc.pid)
        w = run_load(ld.addr, PUT, args.seconds, args.procs, args.window)
        counts = perf_stop(perf)
        after = ld.metrics(R)
        writes = after["writes"] - before["writes"]
        entries = after["entries"] - before["entries"]
        r = run_load(ld.addr, GET, args.seconds, args.procs, args.window)
        after_r = ld.metrics(R)
        rounds = after_r["read_rounds"] - after["read_rounds"]
        reads = after_r["reads"] - after["reads"]
        return w, r, writes, entries, counts, rounds, reads
    finally:
        cl.close()


def bench_etcd(load):
    tmp = tempfile.mkdtemp(prefix="cairn-etcd-bench-")
    ports = [(free_port(), free_port()) for _ in range(3)]
    initial = ",".join("e%d=http://127.0.0.1:%d" % (i, p[1])
                       for i, p in enumerate(ports))
    procs = []
    try:
        for i, (cport, pport) in enumerate(ports):
            logf = open(os.path.join(tmp, "e%d.log" % i), "wb")
            procs.append(subprocess.Popen([
                "etcd", "--name", "e%d" % i, "--data-dir",
                os.path.join(tmp, "e%d" % i),
                "--listen-client-urls", "http://127.0.0.1:%d" % cport,
                "--advertise-client-urls", "http://127.0.0.1:%d" % cport,
                "--listen-peer-urls", "http://127.0.0.1:%d" % pport,
                "--initial-advertise-peer-urls", "http://127.0.0.1:%d" % pport,
                "--initial-cluster", initial, "--initial-cluster-state",
                "new"], stdout=logf, stderr=logf))
        eps = ",".join("127.0.0.1:%d" % c for c, _ in ports)

        def healthy():
            return subprocess.run(["etcdctl", "--endpoints", eps,
                                   "endpoint", "health"],
                                  capture_output=True).returncode == 0
        wait_for(healthy, 30, "etcd cluster", interval=0.3)
        out = subprocess.run(["etcdctl", "--endpoints", eps, "check", "perf",
                              "--load", load], capture_output=True, text=True,
                             timeout=180)
        text = (out.stdout + out.stderr).replace("\r", "\n")
        return "\n".join(line.strip() for line in text.splitlines()
                         if line.strip().startswith(("PASS", "FAIL")))
    finally:
        for p in procs:
            p.kill()
            p.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


def bench_ranges(args):
    """args.ranges ranges on 3 nodes, the client processes spread over
    them: the node-wide shared apply batch at work."""
    cl = Cluster(3, node_args=[])
    cl.node_args = ["--election-ms", "1000", "--heartbeat-ms", "100"]
    try:
        cl.start()
        targets = []
        for rng in range(1, args.ranges + 1):
            targets.append((cl.create_range(rng).addr, rng))
        w = run_load(None, PUT, args.seconds, args.procs, args.window,
                     targets)
        entries = writes = 0
        for m in cl.nodes:
            with m.client() as c:
                for r in c.metrics(0)["ranges"]:
                    if r["role"] == "leader":
                        writes += r["writes"]
                        entries += r["entries"]
        return w, writes, entries
    finally:
        cl.close()


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_idle(n):
    cl = Cluster(3, node_args=[])
    cl.node_args = ["--segment-size", str(512 * 1024)]
    try:
        cl.start()
        peers = [(m.id, m.addr) for m in cl.nodes]
        t0 = time.monotonic()
        for rng in range(1, n + 1):
            for m in cl.nodes:
                with m.client() as c:
                    c.create_replica(rng, peers)

        def all_led():
            with cl.nodes[0].client() as c:
                ms = c.metrics(0)["ranges"]
            return all(m["leader"] != 0 for m in ms) and len(ms) == n
        wait_for(all_led, 120, "leaders of %d ranges" % n, interval=0.5)
        setup = time.monotonic() - t0
        time.sleep(3)  # let elections and first barriers settle
        c0 = [cpu_seconds(m.proc.pid) for m in cl.nodes]
        time.sleep(10)
        c1 = [cpu_seconds(m.proc.pid) for m in cl.nodes]
        leaders = {}
        for m in cl.nodes:
            with m.client() as c:
                for r in c.metrics(0)["ranges"]:
                    if r["role"] == "leader":
                        leaders[m.id] = leaders.get(m.id, 0) + 1
        return setup, [(b - a) / 10 * 100 for a, b in zip(c0, c1)], leaders
    finally:
        cl.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10)
    ap.add_argument("--procs", type=int, default=4)
    ap.add_argument("--window", type=int, default=32)
    ap.add_argument("--etcd", action="store_true")
    ap.add_argument("--etcd-load", default="xl",
                    help="etcdctl check perf load: s m l xl (150, 1000, "
                    "8000, 15000 writes/s targets)")
    ap.add_argument("--idle-ranges", type=int, default=0)
    ap.add_argument("--skip-range", action="store_true")
    ap.add_argument("--ranges", type=int, default=0,
                    help="also write to this many ranges at once")
    args = ap.parse_args()
    if not args.skip_range:
        w, r, writes, entries, counts, rounds, reads = bench_range(args)
        log_writes = counts.get("io_submit", 0)
        print("writes: %d ops in %.0fs = %.0f ops/s, p50 %.2f ms, p99 %.2f ms,"
              " errors %s" % (w["ops"], args.seconds, w["ops_s"], w["p50_ms"],
                              w["p99_ms"], w["errors"]))
        print("  leader: %d client writes in %d entries = %.1f writes/entry"
              % (writes, entries, writes / max(entries, 1)))
        print("  leader syscalls during writes: %s" % counts)
        print("  Raft log disk writes (io_submit, O_DSYNC): %d = %.1f client "
              "writes per log write (fsync); index store fdatasync: %d" % (
                  log_writes, writes / max(log_writes, 1),
                  counts.get("fdatasync", 0)))
        print("reads: %d ops = %.0f ops/s, p50 %.2f ms, p99 %.2f ms, errors %s"
              % (r["ops"], r["ops_s"], r["p50_ms"], r["p99_ms"], r["errors"]))
        print("  leader: %d reads confirmed by %d ReadIndex rounds = "
              "%.1f reads/round"
              % (reads, rounds, reads / max(rounds, 1)))
    if args.ranges:
        w, writes, entries = bench_ranges(args)
        print("writes over %d ranges: %d ops = %.0f ops/s, p50 %.2f ms, "
              "p99 %.2f ms, errors %s; %.1f writes/entry" % (
                  args.ranges, w["ops"], w["ops_s"], w["p50_ms"],
                  w["p99_ms"], w["errors"], writes / max(entries, 1)))
    if args.etcd:
        print("etcd 3 members, etcdctl check perf --load %s:" % args.etcd_load)
        print(bench_etcd(args.etcd_load))
    if args.idle_ranges:
        setup, cpu, leaders = bench_idle(args.idle_ranges)
        print("idle: %d ranges x 3 replicas on 3 nodes (created in %.1fs), "
              "leaders per node %s, CPU per node over 10 s: %s %%" % (
                  args.idle_ranges, setup, leaders,
                  ", ".join("%.1f" % c for c in cpu)))


if __name__ == "__main__":
    main()
