"""TLS certificate files for a Dask cluster the tests start themselves (as a site's admin would issue them)."""

from __future__ import annotations

import os
from pathlib import Path


def write_certs(folder: Path) -> dict[str, str]:
    """A fresh CA and one certificate + key it signed, as PEM files (mode 600); ``{ca_file, cert, key}``."""
    from distributed.security import Security

    s = Security.temporary()
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for name, pem in (("ca_file", s.tls_ca_file), ("cert", s.tls_client_cert), ("key", s.tls_client_key)):
        path = folder / f"{name}.pem"
        path.write_text(pem)
        os.chmod(path, 0o600)
        out[name] = str(path)
    return out


def flags(certs: dict[str, str]) -> list[str]:
    """`dask scheduler` / `dask worker` flags for these certificates."""
    return ["--tls-ca-file", certs["ca_file"], "--tls-cert", certs["cert"], "--tls-key", certs["key"]]


def start_cluster(certs: dict[str, str], workers: int = 2,
                  worker_flags: tuple[str, ...] = ("--dashboard-address", "127.0.0.1:0")) -> tuple[str, list]:
    """A `dask scheduler` and ``workers`` `dask worker` processes (no nanny) over TLS on loopback, started as
    docs/cluster.md says; returns the scheduler's address and the processes (the caller kills them)."""
    import socket
    import subprocess
    import sys
    import time

    dask = str(Path(sys.executable).parent / "dask")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tls://127.0.0.1:{port}"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
    procs = [subprocess.Popen([dask, "scheduler", "--host", "127.0.0.1", "--port", str(port), "--protocol", "tls",
                               *flags(certs), "--dashboard-address", "127.0.0.1:0"], **quiet)]
    time.sleep(1.5)
    for _ in range(workers):
        procs.append(subprocess.Popen([dask, "worker", address, "--nthreads", "1", "--no-nanny", "--host",
                                       "127.0.0.1", *worker_flags, *flags(certs)], **quiet))
    return address, procs
