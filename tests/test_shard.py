"""monitor/shard.py: the hash that splits series between replicas, its fixed vectors and shard parsing."""

from __future__ import annotations

import random
import string
import subprocess
import sys

import pytest

from harness import ROOT
from monitor.shard import belongs, canonical_labels, hostname_ordinal, parse_shard, series_hash
from streamwatch.errors import UserError

# The contract. These numbers were computed once (SHA-256, first 8 bytes, big-endian) and must never
# change: every running replica of every version has to agree on them, or series move between shards.
VECTORS = [
    # sha256(b"") starts e3b0c44298fc1c14: the well-known empty digest.
    ({}, b"", 16406829232824261652),
    ({"__name__": "energy_price_metric"}, b'__name__="energy_price_metric"', 4270369614686675408),
    (
        {"job": "simulator", "instance": "127.0.0.1:5000", "__name__": "up"},
        b'__name__="up",instance="127.0.0.1:5000",job="simulator"',
        15514811340849967735,
    ),
    ({"b": "2", "a": "1"}, b'a="1",b="2"', 117716687054632464),
    ({"host": 'x"y\\z\nw'}, b'host="x\\"y\\\\z\\nw"', 5385676217480842227),
    ({"zone": "Zürich"}, 'zone="Zürich"'.encode(), 11506078859075758358),
]


@pytest.mark.parametrize(("labels", "encoded", "digest"), VECTORS)
def test_fixed_vectors(labels: dict[str, str], encoded: bytes, digest: int) -> None:
    assert canonical_labels(labels) == encoded
    assert series_hash(labels) == digest


def test_label_order_does_not_matter_and_values_do() -> None:
    a = {"instance": "a:1", "job": "j", "series": "7"}
    assert series_hash(a) == series_hash(dict(reversed(list(a.items()))))
    assert series_hash(a) != series_hash({**a, "series": "8"})


def test_escaping_keeps_distinct_label_sets_apart() -> None:
    # Without escaping, a value holding '",b="' would encode like two labels.
    one = {"a": '1",b="2'}
    two = {"a": "1", "b": "2"}
    assert canonical_labels(one) != canonical_labels(two)
    assert series_hash(one) != series_hash(two)


def test_same_hash_in_another_process_with_another_hash_seed() -> None:
    # Python's hash() would differ between these processes; the shard hash must not.
    labels = {"__name__": "x", "series": "42"}
    code = f"from monitor.shard import series_hash; print(series_hash({labels!r}))"
    for seed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env={"PYTHONHASHSEED": seed, "PYTHONPATH": str(ROOT)},
            check=True,
        )
        assert int(out.stdout) == series_hash(labels)


@pytest.mark.parametrize("count", [2, 3, 5])
def test_random_label_sets_split_evenly(count: int) -> None:
    rng = random.Random(15)
    alphabet = string.ascii_letters + string.digits + '_-:."\\'
    label_sets = [
        {
            "__name__": "m_" + "".join(rng.choices(string.ascii_lowercase, k=6)),
            "instance": f"10.0.{rng.randrange(256)}.{rng.randrange(256)}:{rng.randrange(1, 65536)}",
            "series": "".join(rng.choices(alphabet, k=rng.randrange(1, 12))),
        }
        for _ in range(10_000)
    ]
    assert len({tuple(sorted(s.items())) for s in label_sets}) == 10_000
    for index in range(count):
        share = sum(belongs(s, index, count) for s in label_sets) / len(label_sets)
        assert abs(share - 1 / count) <= 0.05 / count, (index, share)


def test_every_series_belongs_to_exactly_one_replica() -> None:
    for i in range(500):
        labels = {"series": str(i)}
        assert sum(belongs(labels, index, 4) for index in range(4)) == 1
        assert belongs(labels, 0, 1)


@pytest.mark.parametrize(
    ("spec", "hostname", "expected"),
    [
        ("0/3", "laptop", (0, 3)),
        ("2/3", "laptop", (2, 3)),
        (" 1 / 2 ", "laptop", (1, 2)),
        ("0/1", "laptop", (0, 1)),
        ("auto/3", "streamwatch-monitor-2", (2, 3)),
        ("auto/3", "streamwatch-monitor-0.streamwatch-monitor.ns.svc.cluster.local", (0, 3)),
        ("auto/12", "web-11", (11, 12)),
    ],
)
def test_parse_shard(spec: str, hostname: str, expected: tuple[int, int]) -> None:
    assert parse_shard(spec, hostname) == expected


@pytest.mark.parametrize(
    ("spec", "hostname", "message"),
    [
        ("3/3", "h", "INDEX 3 must be between 0 and 2"),
        ("0/0", "h", "COUNT must be at least 1"),
        ("1", "h", "shard must be INDEX/COUNT or auto/COUNT"),
        ("-1/3", "h", "shard must be INDEX/COUNT or auto/COUNT"),
        ("a/3", "h", "shard must be INDEX/COUNT or auto/COUNT"),
        ("1/x", "h", "shard must be INDEX/COUNT or auto/COUNT"),
        ("auto/3", "laptop", "does not end in -N"),
        ("auto/3", "streamwatch-monitor-3", "INDEX 3 (from host name 'streamwatch-monitor-3')"),
    ],
)
def test_parse_errors_are_one_clear_line(spec: str, hostname: str, message: str) -> None:
    with pytest.raises(UserError) as info:
        parse_shard(spec, hostname)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_hostname_ordinal_ignores_the_domain() -> None:
    assert hostname_ordinal("streamwatch-monitor-7.svc") == 7
