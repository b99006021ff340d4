"""The base image the image test builds on, with nothing but the standard library, so that
``.ci/run`` can prepare it before the suite starts (``python3 tests/image_base.py``) and the
heavy debootstrap does not run beside timing-sensitive tests. The test builds it itself when
it is missing.

No image registry is reachable from CI: the base is a minimal Debian bookworm root made by
mmdebstrap, with python3 and a venv on PATH (keeps the Dockerfile's ``pip``, and avoids PEP
668), imported into podman as the Dockerfile's ``PYTHON_IMAGE``.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BASE = "localhost/dli-monitor-python:3.11-bookworm"
#: This machine's sandbox refuses setrlimit(RLIMIT_NPROC) above this, whatever `ulimit -Hu` says.
NPROC_CEILING = 32768


def containers_conf(directory: Path) -> Path:
    """Runc and cgroupfs (crun and systemd are not usable here), and default ulimits no higher
    than this process's own: a container may not raise them."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nproc = min(resource.getrlimit(resource.RLIMIT_NPROC)[1], NPROC_CEILING)
    path = directory / "containers.conf"
    path.write_text(
        "[containers]\n"
        f'default_ulimits = ["nofile={nofile}:{nofile}", "nproc={nproc}:{nproc}"]\n'
        "[engine]\n"
        'runtime = "runc"\ncgroup_manager = "cgroupfs"\nevents_logger = "file"\n'
    )
    return path


def build_base(podman: str, mmdebstrap: str, env: dict[str, str], work: Path) -> None:
    """Import the base as :data:`BASE`, unless it is there already."""
    exists = subprocess.run([podman, "image", "exists", BASE], env=env, check=False)
    if exists.returncode == 0:
        return
    rootfs = work / "rootfs.tar"
    subprocess.run(
        [mmdebstrap, "--quiet", "--variant=minbase",
         "--include=python3,python3-venv,ca-certificates",
         '--customize-hook=chroot "$1" python3 -m venv /opt/venv',
         "bookworm", str(rootfs)],
        check=True, capture_output=True, timeout=600,
    )  # fmt: skip
    path = "/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    subprocess.run(
        [podman, "import", "--change", f"ENV PATH={path}", "--change", "ENV LANG=C.UTF-8",
         str(rootfs), BASE],
        env=env, check=True, capture_output=True, timeout=300,
    )  # fmt: skip
    rootfs.unlink()


def main() -> int:
    podman, mmdebstrap = shutil.which("podman"), shutil.which("mmdebstrap")
    if podman is None or mmdebstrap is None:
        print("podman or mmdebstrap is missing: the image test will say so", file=sys.stderr)
        return 0
    with tempfile.TemporaryDirectory() as work:
        env = {**os.environ, "CONTAINERS_CONF": str(containers_conf(Path(work)))}
        build_base(podman, mmdebstrap, env, Path(work))
    return 0


if __name__ == "__main__":
    sys.exit(main())
