"""benchlib - what the cluster benchmarks (bench/ranges, bench/split)
share: a real cluster on loopback (etcd, three nodes, a controller, a
router) and one `cairn bench` run read back as JSON."""
import json
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "cluster"))

from harness import Etcd, Procs, cairn_bin, wait_for  # noqa: E402,F401
from clusterharness import Router  # noqa: E402
import nodeharness  # noqa: E402

CLK_TCK = os.sysconf("SC_CLK_TCK")


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def key(i):
    return "user%012d" % i


def cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return 0.0


def du(path):
    total = 0
    for d, _, files in os.walk(path):
        for f in files:
            try:
                total += os.path.getsize(os.path.join(d, f))
            except OSError:
                pass
    return total


class Setup:
    """etcd, 3 nodes, a controller and a router."""

    def __init__(self, root, ctl_args=(), node_args=()):
        self.root = root
        self.procs = Procs()
        self.etcd = Etcd(root, self.procs).start()
        self.nodes = nodeharness.Cluster(3, node_args=["--etcd",
                                                       self.etcd.url])
        # default timings
        self.nodes.node_args = ["--etcd", self.etcd.url] + list(node_args)
        self.nodes.start()
        wait_for(lambda: len(self.etcd.get_prefix(b"/cairn/live/")) >= 3,
                 30, "3 live nodes")
        self.ctl_log = os.path.join(root, "controller.log")
        self.ctl = self.procs.start([cairn_bin(), "controller", "--etcd",
                                     self.etcd.url] + list(ctl_args),
                                    self.ctl_log)
        self.router = Router(self.procs, root, self.etcd.url)
        self.r = self.router.client()

    def close(self):
        self.nodes.close()
        self.procs.stop_all()

    def create(self, name, splits, engine):
        t0 = time.monotonic()
        args = ["TABLE.CREATE", name, "ENGINE", engine, "REPLICAS", "3"]
        if splits:
            args += ["SPLITS"] + splits
        reply = self.r.execute_command(*args)
        assert reply in (b"OK", "OK"), reply
        return time.monotonic() - t0

    def node_metrics(self, nd):
        return nd.metrics(0)

    def log_syncs(self):
        return [self.node_metrics(nd)["replication"]["log_syncs"]
                for nd in self.nodes.nodes]

    def repl(self):
        """The replication counters of every node."""
        return [self.node_metrics(nd)["replication"]
                for nd in self.nodes.nodes]


def bench_argv(binary, port, table, phase, args, duration=None,
               workload="W", extra=(), value_size=100):
    """The command line of one `cairn bench` phase on `table` (None: plain
    GET/SET, as to Redis): args.records, args.clients, 100-byte values,
    uniform keys, JSON out, and `extra` arguments."""
    argv = [binary, "bench", "--port", str(port)]
    if table:
        argv += ["--table", table]
    argv += ["--phase", phase, "--workload", workload,
             "--distribution", "uniform",
             "--records", str(args.records), "--clients", str(args.clients),
             "--value-size", str(value_size), "--json",
             "--no-progress"] + list(extra)
    if duration:
        argv += ["--duration", str(duration)]
    return argv


def bench_result(stdout, stderr):
    """The last JSON result a `cairn bench` run printed."""
    lines = [json.loads(x) for x in stdout.splitlines() if x.startswith("{")]
    if not lines:
        raise RuntimeError("cairn bench failed: " + stderr[-500:])
    return lines[-1]


def bench(binary, port, table, phase, args, duration=None, workload="W",
          extra=(), value_size=100):
    """One `cairn bench` phase (bench_argv); its JSON, with "p99_ms"
    added."""
    argv = bench_argv(binary, port, table, phase, args, duration, workload,
                      extra, value_size)
    out = subprocess.run(argv, capture_output=True, text=True,
                         timeout=(duration or 0) + 600)
    res = bench_result(out.stdout, out.stderr)
    total = res.get("TOTAL") or {}
    res["p99_ms"] = total.get("p99_us", 0) / 1000.0
    return res
