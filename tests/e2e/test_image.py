"""The container image, built from the Dockerfile and run as a user runs it: read-only root,
uid 10001, metrics, healthcheck, state on the volume, a clean exit on SIGTERM, and its first job
event against a simulator container. Built with podman on a Debian bookworm root made by
mmdebstrap (no image registry is reachable from CI); skipped only where podman cannot start a
container at all."""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.conftest import require_tool
from tests.harness import free_port
from tests.image_base import BASE, build_base, containers_conf

ROOT = Path(__file__).resolve().parents[2]
IMAGE = "localhost/dli-monitor:test"
CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")


class Podman:
    def __init__(self, binary: str, conf: Path) -> None:
        self.binary = binary
        self.env = {**os.environ, "CONTAINERS_CONF": str(conf)}

    def __call__(
        self, *args: str, check: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [self.binary, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert result.returncode == 0, f"podman {' '.join(args)}: {result.stderr}"
        return result

    @contextmanager
    def container(self, *args: str) -> Iterator[str]:
        name = f"dli-monitor-test-{uuid.uuid4().hex[:8]}"
        self("run", "--detach", "--name", name, "--read-only", "--network", "host", *args)
        try:
            yield name
        finally:
            self("rm", "--force", "--time", "0", name, check=False)


@pytest.fixture(scope="module")
def podman(tmp_path_factory: pytest.TempPathFactory) -> Podman:
    work = tmp_path_factory.mktemp("image")
    runner = Podman(require_tool("podman"), containers_conf(work))
    build_base(runner.binary, require_tool("mmdebstrap"), runner.env, work)
    probe = runner("run", "--rm", BASE, "true", check=False, timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"podman cannot start a container here: {probe.stderr.strip()}")
    # RUN steps reach PyPI through a proxy whose CA only the host trusts: lend them its bundle.
    ca = [f"--volume={CA_BUNDLE}:{CA_BUNDLE}:ro"] if CA_BUNDLE.is_file() else []
    runner("build", "--format", "docker", "--build-arg", f"PYTHON_IMAGE={BASE}", *ca,
           "--tag", IMAGE, str(ROOT), timeout=900)  # fmt: skip
    return runner


def wait_for(what: str, check: object, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if callable(check) and check():
                return
        except OSError:
            pass
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}")


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=2) as response:
        return str(response.read().decode())


def stop(podman: Podman, name: str) -> tuple[int, float]:
    """SIGTERM, as Kubernetes and `podman stop` send it; (exit status, seconds to exit)."""
    started = time.monotonic()
    podman("kill", "--signal", "TERM", name)
    status = int(podman("wait", name, timeout=30).stdout.strip())
    return status, time.monotonic() - started


@pytest.mark.needs("podman", "mmdebstrap")
def test_the_image_runs_read_only_as_10001_and_watches_a_simulator_container(
    podman: Podman, tmp_path: Path
) -> None:
    image = json.loads(podman("image", "inspect", IMAGE).stdout)[0]
    assert image["Config"]["User"] == "10001:10001"
    assert image.get("Healthcheck"), "the docker format keeps HEALTHCHECK"
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, 10001, 10001)
    sim_port, metrics_port = free_port(), free_port()
    simulate = ["simulate", "--host", "127.0.0.1", "--port", str(sim_port),
                "--project-id", "imageproject", "--queues", "etl", "--jobs", "20",
                "--ak", "IMAGEACCESSKEY", "--sk", "image-S3CRET-key"]  # fmt: skip
    with podman.container(IMAGE, *simulate) as sim:
        wait_for("the simulator", lambda: "simulating" in podman("logs", sim).stdout)
        env = {
            "DLI_MONITOR_PROJECT_ID": "imageproject",
            "DLI_MONITOR_ENDPOINT": f"http://127.0.0.1:{sim_port}",
            "DLI_MONITOR_QUEUES": "etl",
            "DLI_MONITOR_POLL_INTERVAL": "1",
            "DLI_MONITOR_AK": "IMAGEACCESSKEY",
            "DLI_MONITOR_SK": "image-S3CRET-key",
            "DLI_MONITOR_LISTEN": f"127.0.0.1:{metrics_port}",
            "DLI_MONITOR_STATE_FILE": "/var/lib/dli-monitor/state.json",
        }
        flags = [f"--env={k}={v}" for k, v in env.items()]
        with podman.container(*flags, f"--volume={state}:/var/lib/dli-monitor", IMAGE) as mon:
            metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            wait_for("a successful poll", lambda: 'queue="etl"' in get(metrics))

            def first_job_event() -> bool:
                events = [json.loads(line) for line in podman("logs", mon).stdout.splitlines()]
                return any(e["event"] in {"job.transition", "job.discovered"} for e in events)

            wait_for("the first job event", first_job_event)
            assert 'dli_monitor_up{project_id="imageproject",queue="etl",region=""} 1.0' in get(
                metrics
            )
            assert podman("exec", mon, "id", "-u").stdout.strip() == "10001"
            inspected = json.loads(podman("inspect", mon).stdout)[0]
            assert inspected["HostConfig"]["ReadonlyRootfs"] is True
            assert podman("healthcheck", "run", mon, check=False).returncode == 0
            wait_for("the state file", (state / "state.json").is_file)

            status, took = stop(podman, mon)
            assert status == 0 and took < 5, (status, took)
            logs = podman("logs", mon)
            last = json.loads(logs.stdout.splitlines()[-1])
            assert (last["event"], last["reason"]) == ("monitor.stopping", "SIGTERM")
            assert "image-S3CRET-key" not in logs.stdout + logs.stderr
            assert "Traceback" not in logs.stderr

        status, took = stop(podman, sim)
        assert status == 0 and took < 5, "simulate handles SIGTERM as PID 1"
