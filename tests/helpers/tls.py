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
