"""The kvstore as the Python `redis` client (redis-py) sees it.

Run by tests/kvstore_python.rs against a kvstore on 127.0.0.1:PORT:

    python tests/kvstore/python_client.py PORT

Covers a connection pool shared by threads, pipelines with and without a
transaction (redis-py's default pipeline() is MULTI/EXEC), WATCH with
retries, binary values, expiry, and the commands of a string store. Exits
non-zero on the first mismatch.
"""

import sys
import threading

import redis


def main(port):
    pool = redis.ConnectionPool(host="127.0.0.1", port=port, db=0)
    r = redis.Redis(connection_pool=pool)
    assert r.ping()
    r.flushdb()

    # Binary values, every byte.
    blob = bytes(range(256)) * 64 + b"\r\n\x00"
    assert r.set("blob", blob)
    assert r.get("blob") == blob
    assert r.strlen("blob") == len(blob)
    assert r.getrange("blob", 0, 3) == b"\x00\x01\x02\x03"

    # Strings and counters.
    assert r.set("s", "hello", nx=True)
    assert r.set("s", "nope", nx=True) is None
    assert r.append("s", " world") == 11
    assert r.setrange("s", 6, "WORLD") == 11
    assert r.get("s") == b"hello WORLD"
    assert r.getset("s", "new") == b"hello WORLD"
    assert r.getdel("s") == b"new"
    assert r.incr("n") == 1
    assert r.incrby("n", 41) == 42
    assert r.decrby("n", 2) == 40
    assert r.incrbyfloat("f", 1.5) == 1.5
    try:
        r.execute_command("DECRBY", "n", "-9223372036854775808")
        raise AssertionError("DECRBY of i64::MIN must fail")
    except redis.ResponseError as error:
        assert "overflow" in str(error)
    assert r.mset({"a": "1", "b": "2", "c": "3"})
    assert r.mget(["a", "b", "missing", "c"]) == [b"1", b"2", None, b"3"]
    assert r.msetnx({"a": "x", "zz": "y"}) is False
    assert r.get("zz") is None

    # Expiry.
    assert r.set("t", "v", ex=100)
    assert 99 <= r.ttl("t") <= 100
    assert r.expire("t", 200, gt=True)
    assert r.persist("t")
    assert r.ttl("t") == -1
    assert r.pexpire("t", 500000)
    assert r.getex("t", persist=True) == b"v"
    assert r.ttl("t") == -1
    assert r.setex("tt", 100, "v") and r.ttl("tt") > 0
    assert r.expiretime("missing") == -2

    # Keyspace.
    assert r.exists("a", "b", "nope") == 2
    assert r.type("a") == b"string" and r.type("nope") == b"none"
    assert r.rename("a", "a2") and r.get("a2") == b"1"
    assert r.renamenx("b", "c") is False
    assert sorted(r.keys("a*")) == [b"a2"]
    assert sorted(r.scan_iter(match="?")) == [b"b", b"c", b"f", b"n", b"t"]
    assert r.randomkey() is not None
    assert r.unlink("a2") == 1 and r.touch("b", "c") == 2
    assert r.dbsize() == len(r.keys("*"))
    info = r.info()
    assert info["redis_version"] and "connected_clients" in info
    assert r.client_setname("py") and r.client_getname() == "py"
    assert any(c["name"] == "py" for c in r.client_list())
    assert isinstance(r.client_id(), int)

    # Pipelines: without a transaction, and redis-py's default (MULTI/EXEC).
    with r.pipeline(transaction=False) as p:
        for i in range(100):
            p.set(f"p{i}", i)
        p.get("p99")
        assert p.execute()[-1] == b"99"
    with r.pipeline() as p:
        p.set("tx", "1").incr("tx").get("tx")
        assert p.execute() == [True, 2, b"2"]
    # A transaction with a failing command: the others still apply, the
    # error comes back in its place (as in Redis).
    with r.pipeline() as p:
        p.set("e", "x").incr("e").set("e2", "y")
        try:
            p.execute()
            raise AssertionError("the INCR of a string must fail")
        except redis.ResponseError:
            pass
    assert r.get("e2") == b"y"

    # WATCH + transaction, from threads sharing the pool.
    r.set("counter", 0)

    def step(p):
        value = int(p.get("counter"))  # watched: runs at once
        p.multi()
        p.set("counter", value + 1)

    def bump():
        client = redis.Redis(connection_pool=pool)
        for _ in range(50):
            client.transaction(step, "counter")

    threads = [threading.Thread(target=bump) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert r.get("counter") == b"200", r.get("counter")

    # Unknown commands for other data types: Redis's error.
    try:
        r.lpush("list", "x")
        raise AssertionError("LPUSH must be unknown")
    except redis.ResponseError as error:
        assert str(error).startswith("unknown command 'LPUSH'"), str(error)
    print("python redis client: all checks passed")


if __name__ == "__main__":
    main(int(sys.argv[1]))
