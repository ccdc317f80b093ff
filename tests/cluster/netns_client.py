"""A small redis-py client that test_netns.py runs inside a network
namespace (`ip netns exec NS /usr/bin/python3 netns_client.py ...`), since
the router's address exists only there. Prints one JSON document.

    write HOST:PORT TABLE PREFIX SECONDS
        KV.PUT PREFIX<n> <n> one after the other for SECONDS; prints
        {"acked": [[key, t], ...], "errors": {"WORD": count}} where t is
        the time of the acknowledgement since the start.
    read HOST:PORT TABLE KEY...
        KV.GET each key; prints {"values": {key: value or null}}.
"""
import json
import sys
import time

import redis


def client(addr):
    host, port = addr.rsplit(":", 1)
    return redis.Redis(host=host, port=int(port), socket_timeout=10)


def write(addr, table, prefix, seconds):
    r = client(addr)
    acked, errors = [], {}
    t0 = time.monotonic()
    n = 0
    while time.monotonic() - t0 < seconds:
        key = "%s%06d" % (prefix, n)
        try:
            r.execute_command("KV.PUT", table, key, str(n))
            acked.append([key, round(time.monotonic() - t0, 3)])
        except redis.exceptions.ResponseError as e:
            word = str(e).split(" ", 1)[0]
            errors[word] = errors.get(word, 0) + 1
        except redis.exceptions.ConnectionError:
            errors["CONNECTION"] = errors.get("CONNECTION", 0) + 1
            time.sleep(0.05)
            r = client(addr)
        n += 1
    print(json.dumps({"acked": acked, "errors": errors}))


def read(addr, table, keys):
    r = client(addr)
    out = {}
    for k in keys:
        v = r.execute_command("KV.GET", table, k)
        out[k] = v.decode() if v is not None else None
    print(json.dumps({"values": out}))


if __name__ == "__main__":
    cmd, addr, table = sys.argv[1:4]
    if cmd == "write":
        write(addr, table, sys.argv[4], float(sys.argv[5]))
    else:
        read(addr, table, sys.argv[4:])
