"""Targets and shards, as pure rules: what each target is made of, and which replica polls what."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.app.config import ConfigError, Settings, load_settings
from monitor.app.sharding import Shard, owner, parse_shard
from monitor.app.targets import assign, expand


def toml(tmp_path: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(text)
    return load_settings(path)


TWO_TARGETS = """
region = "cn-north-4"
poll_interval = 20
max_rps = 5
ak = "SHAREDAK"
sk = "shared-S3CRET"
state_file = "/var/lib/dli-monitor/state.json"

[[targets]]
project_id = "teama"
queues = ["etl", "adhoc"]

[[targets]]
project_id = "teamb"
region = "eu-west-101"
queues = "etl"
max_rps = 2
secrets_dir = "/var/run/secrets/teamb"
"""


def test_top_level_values_are_every_target_s_defaults_and_limits_are_per_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a, b = expand(toml(tmp_path, TWO_TARGETS, monkeypatch))
    assert (a.project_id, a.queues, a.poll_interval, a.max_rps) == (
        "teama",
        ("etl", "adhoc"),
        20,
        5,
    )
    assert (b.project_id, b.queues, b.poll_interval, b.max_rps) == ("teamb", ("etl",), 20, 2)
    assert b.base_url == "https://dli.eu-west-101.myhuaweicloud.eu"
    # Credentials are inherited as a group: teamb names its own, so it gets none of teama's.
    assert a.credential_source == "env" and a.ak is not None
    assert b.ak is None and b.sk is None and b.credential_source == "secrets_dir"
    # One state file per target, from the top-level name.
    assert a.state_file == Path("/var/lib/dli-monitor/state.teama.cn-north-4.json")
    assert b.state_file == Path("/var/lib/dli-monitor/state.teamb.eu-west-101.json")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('project_id = "p2"\nqueue = "etl"', "targets[1].queue: is not a known setting"),
        ('project_id = "p2"\nlisten = "0.0.0.0:1"', "targets[1].listen: is set for the whole"),
        ('project_id = "p2"\npoll_interval = 0', "targets[1].poll_interval: Input should be"),
        ('project_id = "p2"\nauth = "aksk"', "targets[1]: DLI_MONITOR_AUTH=aksk needs"),
        ('queues = "etl"', "targets[1].project_id: required"),
        ('project_id = "p1"', "targets[1]: the same project and endpoint as targets[0]"),
    ],
)
def test_a_bad_target_is_one_line_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, message: str
) -> None:
    first = '[[targets]]\nproject_id = "p1"\n'
    text = f'region = "cn-north-4"\nauth = "none"\n{first}[[targets]]\n{table}\n'
    with pytest.raises(ConfigError) as caught:
        expand(toml(tmp_path, text, monkeypatch))
    assert message.lower() in str(caught.value).lower(), caught.value
    assert "\n" not in str(caught.value)


def test_without_targets_the_settings_are_the_one_target() -> None:
    settings = Settings(project_id="p1", endpoint="http://127.0.0.1:9", auth="none")
    assert expand(settings) == [settings]


# --- shards ---------------------------------------------------------------------------------------


def test_the_owner_of_a_pair_is_stable_and_spreads_evenly() -> None:
    assert owner("teama", "etl", 3) == owner("teama", "etl", 3), "no per-process salt"
    assert owner("teama", "etl", 1) == 0
    pairs = [(f"project{p}", f"queue{q}") for p in range(10) for q in range(100)]
    counts = [0] * 4
    for project, queue in pairs:
        counts[owner(project, queue, 4)] += 1
    assert min(counts) > 200, counts  # 250 each on average


@pytest.mark.parametrize(
    ("project", "queue", "owners"),
    [
        # FNV-1a 64 of "project\x1fqueue" modulo 3, 4 and 5, computed apart from the product
        # (FNV-1, which multiplies before it xors, gives (0, 0, 0), (0, 2, 1), (2, 3, 3), ...;
        # with 2 shards the two agree on parity, so only 3 or more tell them apart).
        ("p1", "etl", (2, 2, 2)),
        ("p1", "adhoc", (1, 0, 4)),
        ("projecta", "ml", (0, 3, 3)),
        ("0123456789abcdef", "reporting", (1, 0, 4)),
        ("p2", "etl", (0, 3, 2)),
    ],
)
def test_the_owner_is_fnv_1a_so_every_version_splits_the_pairs_the_same_way(
    project: str, queue: str, owners: tuple[int, int, int]
) -> None:
    assert tuple(owner(project, queue, total) for total in (3, 4, 5)) == owners


@pytest.mark.parametrize(
    ("setting", "total", "hostname", "index"),
    [
        (None, 1, "anything", 0),
        ("2", 3, "anything", 2),
        ("auto", 3, "dli-monitor-1", 1),
        ("auto", 12, "watch-dli-monitor-11", 11),
    ],
)
def test_the_shard_is_a_number_or_the_statefulset_ordinal(
    setting: str | None, total: int, hostname: str, index: int
) -> None:
    assert parse_shard(setting, total, hostname) == Shard(index, total)


@pytest.mark.parametrize(
    ("setting", "total", "hostname", "message"),
    [
        ("3", 3, "x", "shard 3 does not exist"),
        ("auto", 2, "dli-monitor-2", "shard 2 does not exist"),
        ("auto", 2, "laptop", "a hostname ending in -<ordinal>"),
        ("-1", 2, "x", "^must be a shard number from 0, or auto$"),
    ],
)
def test_a_shard_that_cannot_be_is_refused(
    setting: str, total: int, hostname: str, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        parse_shard(setting, total, hostname)


@given(
    st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), min_size=1, max_size=4, unique=True),
    st.lists(st.from_regex(r"[a-z]{1,6}", fullmatch=True), max_size=6, unique=True),
    st.integers(1, 5),
)
def test_shards_partition_the_pairs_every_pair_polled_exactly_once(
    projects: list[str], queues: list[str], total: int
) -> None:
    targets = tuple(
        {"project_id": p, "endpoint": f"http://127.0.0.1:{9000 + i}", "queues": queues}
        for i, p in enumerate(projects)
    )
    settings = Settings(auth="none", targets=targets, total_shards=total)
    owned: list[tuple[str, str]] = []
    for index in range(total):
        shard_settings = settings.model_copy(update={"shard": str(index)})
        shard, assignments = assign(shard_settings, lambda: "host")
        assert shard == Shard(index, total)
        owned += [
            (a.settings.project_id or "", q) for a in assignments for q in (a.queues or ("*",))
        ]
    expected = [(p, q) for p, q in itertools.product(projects, queues or ["*"])]
    assert sorted(owned) == sorted(expected)


def test_a_shard_owns_the_pairs_the_hash_of_project_and_queue_gives_it() -> None:
    pairs = [(f"project{p}", f"queue{q}") for p in range(4) for q in range(6)]
    for index in range(3):
        shard = Shard(index, 3)
        assert [shard.owns(p, q) for p, q in pairs] == [owner(p, q, 3) == index for p, q in pairs]
    assert all(Shard(0, 1).owns(p, q) for p, q in pairs), "one replica owns everything"
