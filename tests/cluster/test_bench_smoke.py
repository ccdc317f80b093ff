"""Smoke test of `cairn bench` against a real redis-server.

CI runs this for a few seconds: the load generator must finish with zero
errors and a non-empty report, count error replies instead of hiding them,
and report a refused connection. No timing assertion, ever: throughput on a
shared CI machine says nothing about correctness.
"""
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time

import pytest
import redis

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def cairn_bin():
    path = os.environ.get("CAIRN_BIN") or os.path.join(ROOT, "build", "cairn")
    if not os.access(path, os.X_OK):
        pytest.skip(f"no cairn binary at {path} (set CAIRN_BIN)")
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_port():
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed")
    d = tempfile.mkdtemp(prefix="cairn-bench-smoke-")
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--dir", d, "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        client = redis.Redis(port=port, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        shutil.rmtree(d, ignore_errors=True)


def bench(*args):
    return subprocess.run([cairn_bin(), "bench", *args], capture_output=True,
                          text=True, timeout=60)


def test_bench_load_and_run_without_errors(redis_port):
    r = bench("--port", str(redis_port), "--records", "500", "--duration", "2",
              "--clients", "4", "--pipeline", "4", "--workload", "A",
              "--phase", "both", "--json")
    assert r.returncode == 0, r.stdout + r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert [p["phase"] for p in lines] == ["load", "run"]
    load, run = lines
    assert load["ops"] == 500 and load["errors"] == 0
    assert load["by_op"]["INSERT"]["count"] == 500
    assert run["errors"] == 0 and run["misses"] == 0
    assert run["ops"] > 0 and run["TOTAL"]["count"] == run["ops"]
    assert set(run["by_op"]) == {"READ", "UPDATE"}
    for op in run["by_op"].values():
        assert 0 < op["p50_us"] <= op["p99_us"] <= op["max_us"]
    assert run["cpu"]["user_s"] + run["cpu"]["sys_s"] > 0
    # What the load phase wrote is really there.
    assert redis.Redis(port=redis_port).dbsize() == 500


def test_bench_load_in_parts(redis_port):
    """--load-from loads a part of the records: two parts are the whole,
    each key once; a part past the end is a usage error."""
    for first, last in ((0, 300), (300, 700)):
        r = bench("--port", str(redis_port), "--records", str(last),
                  "--load-from", str(first), "--phase", "load",
                  "--clients", "3", "--json")
        assert r.returncode == 0, r.stdout + r.stderr
        assert json.loads(r.stdout)["ops"] == last - first
    c = redis.Redis(port=redis_port)
    assert c.dbsize() == 700
    r = bench("--port", str(redis_port), "--records", "5", "--load-from",
              "5")
    assert r.returncode == 2 and "--load-from" in r.stderr


def test_bench_text_report(redis_port):
    r = bench("--port", str(redis_port), "--records", "100", "--ops", "300",
              "--clients", "2", "--workload", "C", "--no-progress")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "run C: 300 ops" in r.stdout
    assert "READ" in r.stdout and "p99 ms" in r.stdout
    assert r.stderr == ""


def test_bench_counts_error_replies(redis_port):
    # Redis has no KV.SCAN: every scan is an error reply, counted by its
    # first word, and the exit status says so.
    r = bench("--port", str(redis_port), "--records", "100", "--ops", "200",
              "--clients", "2", "--workload", "E", "--json")
    assert r.returncode == 1
    load, run = [json.loads(line) for line in r.stdout.splitlines()]
    assert load["errors"] == 0
    scans = run["by_op"]["SCAN"]
    assert scans["errors"] > 0 and scans["count"] == 0
    assert run["error_words"]["ERR"] == run["errors"] == scans["errors"]


def test_bench_reports_refused_connection():
    r = bench("--port", str(free_port()), "--ops", "10", "--phase", "run",
              "--clients", "2", "--records", "10", "--json")
    assert r.returncode == 1
    run = json.loads(r.stdout)
    assert run["aborted"] is True
    assert run["error_words"].get("ECONNREFUSED") == 2
