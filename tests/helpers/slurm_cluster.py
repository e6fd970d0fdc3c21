"""A real single-node SLURM on 127.0.0.1 for the cluster tests: munged, slurmctld and slurmd run directly.

No systemd and no cgroups (proctrack/linuxproc, task/none). The daemons and their state live in a temp
directory with their own ports; only daemons this module started are stopped. Skips (with the reason)
where SLURM cannot be started: not root, or the Debian packages are missing (.ci/run installs them).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

MUNGE_SOCKET = Path("/run/munge/munge.socket.2")
BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "scancel", "sinfo")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def unavailable() -> str | None:
    """Why SLURM cannot be started here, or None."""
    if os.geteuid() != 0:
        return "starting slurmctld/slurmd/munged needs root"
    missing = [b for b in BINARIES if not shutil.which(b) and not Path("/usr/sbin", b).exists()]
    if missing:
        return f"SLURM is not installed ({', '.join(missing)} missing; .ci/run installs slurm-wlm and munge)"
    return None


def _exe(name: str) -> str:
    return shutil.which(name) or str(Path("/usr/sbin", name))


def _munge_works() -> bool:
    try:
        enc = subprocess.run([_exe("munge"), "-n"], capture_output=True, timeout=10, check=False)
        if enc.returncode != 0:
            return False
        dec = subprocess.run([_exe("unmunge")], input=enc.stdout, capture_output=True, timeout=10, check=False)
        return dec.returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait(cond, timeout: float, what: str) -> None:
    t = time.time()
    while not cond():
        if time.time() - t > timeout:
            raise RuntimeError(f"SLURM test cluster: timed out waiting for {what}")
        time.sleep(0.2)


@contextmanager
def slurm_cluster(workdir: Path, cpus: int = 2, memory_mb: int = 8000) -> Iterator[dict[str, str]]:
    """Start the cluster; yields the environment (SLURM_CONF) that sbatch/squeue and the driver need."""
    why = unavailable()
    if why:
        pytest.skip(why)
    workdir.mkdir(parents=True, exist_ok=True)
    for sub in ("state", "spool", "log"):
        (workdir / sub).mkdir(exist_ok=True)
    host = socket.gethostname().split(".")[0]
    conf = workdir / "slurm.conf"
    conf.write_text("\n".join([
        "ClusterName=affecttest", f"SlurmctldHost={host}(127.0.0.1)", "SlurmUser=root", "SlurmdUser=root",
        "AuthType=auth/munge", f"StateSaveLocation={workdir}/state", f"SlurmdSpoolDir={workdir}/spool",
        f"SlurmctldPidFile={workdir}/slurmctld.pid", f"SlurmdPidFile={workdir}/slurmd.pid",
        f"SlurmctldLogFile={workdir}/log/slurmctld.log", f"SlurmdLogFile={workdir}/log/slurmd.log",
        f"SlurmctldPort={_free_port()}", f"SlurmdPort={_free_port()}",
        "ProctrackType=proctrack/linuxproc", "TaskPlugin=task/none", "SelectType=select/cons_tres",
        "SelectTypeParameters=CR_Core_Memory", "MpiDefault=none", "ReturnToService=2",
        "SchedulerType=sched/backfill", "SchedulerParameters=sched_interval=1", "JobCompType=jobcomp/none",
        "AccountingStorageType=accounting_storage/none", "JobAcctGatherType=jobacct_gather/none",
        "KillWait=2", "MinJobAge=2",
        f"NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN",
        "PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP", ""]))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    started: list[subprocess.Popen] = []
    try:
        if not _munge_works():
            MUNGE_SOCKET.parent.mkdir(parents=True, exist_ok=True)
            shutil.chown(MUNGE_SOCKET.parent, "munge", "munge")
            started.append(subprocess.Popen(["runuser", "-u", "munge", "--", _exe("munged"), "--foreground"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            _wait(_munge_works, 20, "munged")
        log = open(workdir / "log" / "daemons.out", "ab")  # noqa: SIM115 - closed with the daemons
        started.append(subprocess.Popen([_exe("slurmctld"), "-D", "-i"], env=env, stdout=log, stderr=log))
        started.append(subprocess.Popen([_exe("slurmd"), "-D", "-N", "localhost"], env=env, stdout=log,
                                        stderr=log))

        def idle() -> bool:
            r = subprocess.run([_exe("sinfo"), "-h", "-o", "%T"], env=env, capture_output=True, text=True,
                               timeout=10, check=False)
            return "idle" in r.stdout

        _wait(idle, 60, "the node to be idle")
        yield {"SLURM_CONF": str(conf)}
    finally:
        subprocess.run([_exe("scancel"), "--full", "-u", "root"], env=env, capture_output=True, timeout=20,
                       check=False)
        for p in reversed(started):
            p.terminate()
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def jobs(env: dict[str, str]) -> list[tuple[str, str]]:
    """(job id, state) of every job in the queue."""
    r = subprocess.run([_exe("squeue"), "-h", "-o", "%i %T"], env={**os.environ, **env}, capture_output=True,
                       text=True, timeout=20, check=True)
    return [tuple(line.split()) for line in r.stdout.splitlines() if line.strip()]  # type: ignore[misc]


def scancel(env: dict[str, str], *job_ids: str) -> None:
    subprocess.run([_exe("scancel"), *job_ids], env={**os.environ, **env}, capture_output=True, timeout=20,
                   check=True)
