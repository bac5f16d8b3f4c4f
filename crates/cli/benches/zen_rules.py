#!/usr/bin/env python3
"""The peer baseline of the lead-scoring rule bench (BENCHMARKS.md, "Rule evaluations"): the same
10-condition scoring expression over the same 20-field customers through GoRules' zen-engine
(`pip install zen-engine`; its Rust expression engine, compiled once, called through the Python
binding), on one core, counting evaluations per second. Also checks zen's scores against the
expected ones, so the two engines compute the same thing.

    python3 -m venv /tmp/zenv && /tmp/zenv/bin/pip install zen-engine
    /tmp/zenv/bin/python crates/cli/benches/zen_rules.py [EVALUATIONS]
"""

import os
import sys
import time

import zen

REGIONS = ["north", "south", "east", "west"]
STAGES = ["acquisition", "growth", "maturity", "decline", "churned"]


def customer(i):
    """The bench's customer (crates/cli/benches/records.rs, `customer`)."""
    return {
        "name": f"Customer {i}", "email": f"c{i}@example.com",
        "phone": f"+86 138 {i % 10000:04} {(i // 7) % 10000:04}", "company": f"Company {i % 5000}",
        "region": REGIONS[i % 4], "city": "Shanghai", "stage": STAGES[i % 5], "segment": "smb",
        "score": i % 101, "health": (i * 7) % 101, "ltv": (i % 10000) * 1.5, "orders": i % 50,
        "joined_on": f"2024-{i % 12 + 1:02}-{i % 28 + 1:02}", "last_order_on": "2025-06-01",
        "vip": i % 10 == 0, "tags": ["a", "b"], "source": "web", "owner": "u1",
        "notes": "prefers email", "nps": i % 11,
    }


# The rhai rule's expression, in zen's expression language.
EXPRESSION = (
    "(score > 50 ? 10 : 0) + (health > 70 ? 10 : 0) + (orders > 10 ? 10 : 0) + (ltv > 5000.0 ? 10 : 0)"
    " + (vip ? 10 : 0) + (region == 'north' ? 5 : 0) + (stage == 'growth' ? 5 : 0) + (nps >= 9 ? 10 : 0)"
    " + (source == 'web' ? 5 : 0) + (segment == 'smb' ? 5 : 0)"
)


def expected(c):
    return (
        (10 if c["score"] > 50 else 0) + (10 if c["health"] > 70 else 0) + (10 if c["orders"] > 10 else 0)
        + (10 if c["ltv"] > 5000.0 else 0) + (10 if c["vip"] else 0) + (5 if c["region"] == "north" else 0)
        + (5 if c["stage"] == "growth" else 0) + (10 if c["nps"] >= 9 else 0) + (5 if c["source"] == "web" else 0)
        + (5 if c["segment"] == "smb" else 0)
    )


def main():
    evaluations = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {0})  # one core, like the Rust bench
    records = [customer(i) for i in range(1000)]
    compiled = zen.compile_expression(EXPRESSION)
    for c in records:
        assert compiled.evaluate(c) == expected(c), c
    start = time.perf_counter()
    for i in range(evaluations):
        compiled.evaluate(records[i % 1000])
    rate = evaluations / (time.perf_counter() - start)
    start = time.perf_counter()
    for i in range(evaluations):
        expected(records[i % 1000])
    python_rate = evaluations / (time.perf_counter() - start)
    print(f"| zen-engine {getattr(zen, '__version__', '2.x')}: compiled expression, {evaluations} evaluations, one core | {rate:.0f} |")
    print(f"| (for scale) the same scoring in plain Python | {python_rate:.0f} |")


if __name__ == "__main__":
    main()
