"""Who may drive a run's cluster, and where its processes listen (docs/cluster.md, "security model").

A Dask scheduler runs whatever a connected client submits, as the user who started the workers; on a shared
node every local user reaches loopback ports. So every mode uses Dask's mutual TLS by default, and the run
asks every process of the cluster for every socket it listens on, to warn about any beyond loopback.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pipeline.errors import ConfigError

TLS_KEYS = ("ca_file", "cert", "key")


def check_scheduler_security(sched: dict[str, Any], path: str) -> None:
    """A scheduler you started is driven over TLS with certificate files (mutual: it admits only clients and
    workers whose certificate your CA signed), unless the file says ``insecure: true``."""
    address, tls = str(sched["address"]), sched.get("tls")
    if sched.get("insecure") is True:
        if tls:
            raise ConfigError(f"--cluster {path}: scheduler.tls and scheduler.insecure: true contradict each other")
        return
    if not address.startswith("tls://"):
        raise ConfigError(f"--cluster {path}: scheduler.address {address} is not TLS: anyone who can reach it can run "
                          "code as you. Start the scheduler and workers with TLS certificates and give them in "
                          "scheduler.tls {ca_file, cert, key} (docs/cluster.md), or set scheduler.insecure: true")
    if not isinstance(tls, dict) or sorted(tls) != sorted(TLS_KEYS):
        raise ConfigError(f"--cluster {path}: scheduler.tls needs exactly {list(TLS_KEYS)} (certificate files; "
                          "docs/cluster.md)")
    for key in TLS_KEYS:
        if not Path(str(tls[key])).expanduser().is_file():
            raise ConfigError(f"--cluster {path}: scheduler.tls.{key} {tls[key]} is not a file")


def security_for(mode: str, section: dict[str, Any]) -> Any:
    """The run's Dask ``Security``: throw-away certificates made for this run (local and jobqueue modes: only
    this driver and the workers it starts hold them), the files of the cluster file (scheduler mode), or None
    where the cluster file says ``insecure: true``."""
    from distributed.security import Security

    if section.get("insecure") is True:
        return None
    if mode == "scheduler":
        tls = {k: str(Path(str(v)).expanduser()) for k, v in section["tls"].items()}
        return Security(tls_ca_file=tls["ca_file"], tls_client_cert=tls["cert"], tls_client_key=tls["key"],
                        require_encryption=True)
    return Security.temporary()


def shared_dir(jq: dict[str, Any]) -> str:
    """Where the run's worker certificates are written for the jobs to read: ``shared_temp_directory`` of the
    cluster file, else the user's home (shared with compute nodes on HPC systems); the files are private
    (a mode-700 folder of this run, removed at its end)."""
    d = Path(str(jq.get("shared_temp_directory") or "~")).expanduser()
    return str(d)


def listening_addresses() -> list[str]:
    """``host:port`` of every socket this process listens on (run on the scheduler and on each worker)."""
    import psutil

    conns = psutil.Process().net_connections(kind="inet")
    return sorted({f"[{c.laddr.ip}]:{c.laddr.port}" if ":" in c.laddr.ip else f"{c.laddr.ip}:{c.laddr.port}"
                   for c in conns if c.status == psutil.CONN_LISTEN})


def any_host(address: str) -> bool:
    host = urlparse(f"tcp://{address}").hostname or ""
    return host in ("0.0.0.0", "::")


def is_loopback(address: str) -> bool:
    host = urlparse(address if "://" in address else f"tcp://{address}").hostname or ""
    if host in ("localhost", ""):
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
