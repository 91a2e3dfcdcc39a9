#!/usr/bin/env python3
"""A producer in another language, as docs/queue.md describes one: it enqueues a job by
running gitfleet's push script (queue/src/lua/enqueue.lua) with EVAL, passing KEYS and
ARGV exactly as the script's header documents them, waits for a worker to finish the job,
and prints one JSON line:

    {"job_id": ..., "status": "done", "result": "<the job's result field>",
     "malformed_error": "<what Redis answered to a malformed payload>"}

It also checks that a malformed payload is refused with an error starting `invalid_input:`.

Usage: producer.py REDIS_URL KEY_PREFIX ENQUEUE_LUA OP ARGS_JSON [--org ORG]
"""

import argparse
import json
import os
import sys
import time

try:
    import redis
except ImportError:
    sys.exit("python3 cannot import redis (redis-py): run `pip install redis`")

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_job_id():
    """A ULID: 48 bits of milliseconds then 80 random bits, 26 Crockford base32 digits."""
    n = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    return "".join(CROCKFORD[(n >> (5 * i)) & 31] for i in reversed(range(26)))


def enqueue(r, script, prefix, queue, payloads, org=""):
    """Runs the push script for `payloads` (JSON strings, one job each) on `queue`, for
    organization `org` ('' for none), in one call; returns (job ids, the script's reply:
    [created, status, enqueued_at (unix microseconds), then (place, error) of each job
    refused])."""
    ids = [new_job_id() for _ in payloads]
    keys = [
        f"{prefix}{queue}",  # KEYS[1] ready list
        f"{prefix}{queue}:delayed",  # KEYS[2] delayed zset
        f"{prefix}queues",  # KEYS[3] queue set
        f"{prefix}workers",  # KEYS[4] worker zset
        f"{prefix}{queue}:dead",  # KEYS[5] dead zset
        f"{prefix}idem:{org}:-",  # KEYS[6] idempotency key (any name: no key given)
    ] + [f"{prefix}job:{i}" for i in ids]  # KEYS[6 + i] each job's hash
    routed = queue[len("worker:"):] if queue.startswith("worker:") else ""
    argv = [
        prefix,
        queue,
        org,  # the organization the jobs run for ('' = none)
        0,  # delay_ms
        0,  # max_attempts: the op's default
        0,  # timeout_ms: the op's default
        "",  # idempotency_key: none
        86400,  # idempotency_ttl_s
        "",  # idempotency fingerprint: none
        1 << 20,  # max_payload_bytes
        routed,
        7 * 86400,  # dead_ttl_s
    ] + list(payloads)
    return ids, r.eval(script, len(keys), *keys, *argv)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("redis_url")
    p.add_argument("prefix")
    p.add_argument("enqueue_lua")
    p.add_argument("op")
    p.add_argument("args_json")
    p.add_argument("--timeout", type=float, default=30.0)
    p.add_argument("--org", default="")
    a = p.parse_args()

    with open(a.enqueue_lua, encoding="utf-8") as f:
        script = f.read()
    r = redis.Redis.from_url(a.redis_url, decode_responses=True)

    payload = json.dumps({"op": a.op, "args": json.loads(a.args_json)})
    # Two jobs in one call: the one asked for, and a malformed one refused by its place.
    (job_id, _), reply = enqueue(r, script, a.prefix, "jobs", [payload, "{not json"], a.org)
    created, status, enqueued_at, *refused = reply
    if (
        created != 1
        or status != "waiting"
        or abs(enqueued_at / 1e6 - time.time()) > 60
        or len(refused) != 2
        or refused[0] != 2
    ):
        sys.exit(f"enqueue answered {reply!r}")
    malformed_error = refused[1]
    deadline = time.monotonic() + a.timeout
    key = f"{a.prefix}job:{job_id}"
    while (status := r.hget(key, "status")) not in ("done", "dead"):
        if time.monotonic() > deadline:
            sys.exit(f"job {job_id} is still {status!r} after {a.timeout} s")
        time.sleep(0.05)
    # A call of one malformed job is refused as an error reply.
    try:
        enqueue(r, script, a.prefix, "jobs", ["{not json"])
        sys.exit("a malformed payload was accepted")
    except redis.ResponseError as e:
        if not str(e).startswith("invalid_input:"):
            sys.exit(f"a malformed payload got {str(e)!r}, not invalid_input")
    if not malformed_error.startswith("invalid_input:"):
        sys.exit(f"a malformed payload got {malformed_error!r}, not invalid_input")
    print(
        json.dumps(
            {
                "job_id": job_id,
                "status": status,
                "result": r.hget(key, "result"),
                "error": r.hget(key, "error"),
                "malformed_error": malformed_error,
            }
        )
    )


if __name__ == "__main__":
    main()
