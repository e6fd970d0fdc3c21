"""Who can drive the run's cluster: only a client holding the run's credentials, in every mode.

Real clusters and real clients: a client in another process, without the certificates, with another CA's,
or speaking plain TCP, is refused by the local cluster a run starts and by a `dask scheduler` started with
TLS; every socket the scheduler and workers listen on is checked, not only the addresses they advertise.
(jobqueue mode on a real SLURM: tests/cluster/test_slurm.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.errors import ConfigError
from pipeline.runtime import cluster, security
from tests.helpers.cli import ROOT, cli
from tests.helpers.tls import start_cluster, write_certs

ATTEMPT = """
import sys
from distributed import Client
from distributed.security import Security
how, addr = sys.argv[1], sys.argv[2]
kw = {"security": Security.temporary()} if how == "other-ca" else {}
if how == "tcp":
    addr = addr.replace("tls://", "tcp://")
try:
    with Client(addr, timeout=5, **kw) as c:
        c.run(lambda: 1)
except Exception as exc:
    print("refused", type(exc).__name__)
else:
    print("ACCEPTED")
"""


def assert_refused(address: str) -> None:
    """Without credentials, with another CA's certificate, and over plain TCP: no connection is admitted."""
    for how in ("none", "other-ca", "tcp"):
        proc = subprocess.run([sys.executable, "-c", ATTEMPT, how, address], capture_output=True, text=True,
                              timeout=120, cwd=ROOT)
        assert proc.stdout.startswith("refused"), (how, proc.stdout, proc.stderr[-1500:])


def test_the_local_cluster_of_a_run_admits_only_its_own_client() -> None:
    with cluster.client_for(cluster.ClusterConfig()) as session:
        address = session.client.scheduler.address
        assert address.startswith("tls://127.0.0.1:"), address
        assert_refused(address)
        assert sorted(session.client.run(lambda: "ran").values()) == ["ran"] * len(session.workers())
        assert session.exposure_warnings() == []  # every listener on loopback


def _yaml(tmp_path: Path, address: str, certs: dict[str, str] | None, extra: str = "") -> Path:
    f = tmp_path / "cluster.yaml"
    tls = "  tls:\n" + "".join(f"    {k}: {v}\n" for k, v in certs.items()) if certs else ""
    f.write_text(f"mode: scheduler\nscheduler:\n  address: {address}\n{tls}{extra}")
    return f


@pytest.mark.parametrize("worker_flags,exposed", [(["--no-dashboard"], True),
                                                  (["--dashboard-address", "127.0.0.1:0"], False)])
def test_a_tls_scheduler_refuses_strangers_and_every_listener_is_checked(tmp_path, worker_flags, exposed):
    """Scheduler mode as docs/cluster.md says to start it. `--no-dashboard` (the flag the docs gave before)
    still serves the worker's HTTP endpoints on 0.0.0.0: the warning now sees it."""
    certs = write_certs(tmp_path / "certs")
    address, procs = start_cluster(certs, 1, tuple(worker_flags))
    try:
        cfg = cluster.load(str(_yaml(tmp_path, address, certs)))
        with cluster.client_for(cfg) as session:
            session.client.wait_for_workers(1, timeout=60)
            assert_refused(address)
            warnings = session.exposure_warnings()
        if exposed:
            assert any("0.0.0.0:" in w and "every interface" in w and "worker" in w for w in warnings), warnings
        else:
            assert warnings == [], warnings
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_an_extract_runs_on_a_tls_scheduler_and_a_console_warning_names_an_exposed_listener(tmp_path, mini_corpus):
    certs = write_certs(tmp_path / "certs")
    address, procs = start_cluster(certs, 1, ("--no-dashboard",))
    try:
        yaml_file = _yaml(tmp_path, address, certs)
        proc = cli("extract", "--dataset", "demo", "--root", str(mini_corpus), "--store", str(tmp_path / "s.zarr"),
                   "--extractors", "logmel", "--limit", "2", "--quiet", "--cluster", str(yaml_file))
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert "listens on 0.0.0.0:" in proc.stderr, proc.stderr[-2000:]
    finally:
        for p in procs:
            p.kill()
            p.wait()


def test_a_plain_tcp_scheduler_or_an_open_cluster_file_is_refused_in_one_line(tmp_path):
    tcp = _yaml(tmp_path, "tcp://127.0.0.1:8786", None)
    with pytest.raises(ConfigError, match="not TLS: anyone who can reach it can run code as you"):
        cluster.load(str(tcp))
    ok = _yaml(tmp_path, "tcp://127.0.0.1:8786", None, "  insecure: true\n")
    # said in so many words: no credentials
    assert security.security_for("scheduler", cluster.load(str(ok)).section) is None
    tcp.chmod(0o666)
    with pytest.raises(ConfigError, match="writable by other users .*chmod go-w"):
        cluster.load(str(tcp))
    proc = cli("extract", "--dataset", "demo", "--root", str(tmp_path), "--store", str(tmp_path / "s"),
               "--cluster", str(tcp))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len([ln for ln in proc.stderr.splitlines() if ln.strip()]) == 1, proc.stderr


def test_the_exposure_warning_reads_what_each_process_really_listens_on() -> None:
    import socket

    before = security.listening_addresses()
    with socket.socket() as s:
        s.bind(("0.0.0.0", 0))
        s.listen()
        port = s.getsockname()[1]
        now = security.listening_addresses()
    assert f"0.0.0.0:{port}" in now and f"0.0.0.0:{port}" not in before
    assert security.any_host(f"0.0.0.0:{port}") and not security.is_loopback(f"0.0.0.0:{port}")
