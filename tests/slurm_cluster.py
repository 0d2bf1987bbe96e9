"""A private single-node Slurm cluster for tests, from Debian's packages, without systemd.

`slurm_cluster(folder)` writes its own munge key, slurm.conf and slurmdbd.conf under `folder`, starts
munged, MariaDB and slurmdbd (with accounting) and slurmctld and slurmd, each a tracked child process in
its own session, and yields a `Cluster` whose `env` points Slurm's clients (sbatch, squeue, sacct,
scancel: what submitit runs) at it. On exit it cancels every job, stops every daemon and checks that no
process it started, job steps included, is left.

Packages: `apt-get install --no-install-recommends slurmctld slurmd slurm-client slurmdbd munge
mariadb-server` (scripts/test-services, .ci/run). slurmdbd 22.05 stores accounting in MySQL/MariaDB only.
"""

import contextlib
import getpass
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from processes import Process, with_environment
from services import free_port

PACKAGES = "slurmctld slurmd slurm-client slurmdbd munge mariadb-server"
START_TIMEOUT_S = 120  # each daemon, on a busy 2-core machine
STOP_TIMEOUT_S = 30
COMMAND_TIMEOUT_S = 30  # one client command (sinfo, squeue, scancel)
CLUSTER_MARK = "LSTM_EXP_SLURM_CLUSTER"  # in every daemon's environment, to find what is left at the end


@dataclass
class Cluster:
    """A running private cluster: its folder, the environment for Slurm's clients, its node name."""

    folder: Path
    env: dict[str, str]
    node: str
    accounting: bool
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def command(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """Runs a Slurm client (`squeue`, `scancel`, ...) against this cluster."""
        return subprocess.run(list(args), env={**os.environ, **self.env}, capture_output=True, text=True,
                              timeout=COMMAND_TIMEOUT_S, check=check)

    def jobs(self) -> list[dict[str, str]]:
        """The jobs squeue lists, one per array task: id, name, state."""
        out = self.command("squeue", "-h", "-r", "-o", "%i|%j|%T").stdout
        return [dict(zip(("id", "name", "state"), line.split("|"), strict=True))
                for line in out.splitlines() if line.strip()]

    def wait_for(self, predicate, what: str, timeout_s: float, poll_s: float = 0.5):
        """Polls `predicate()` until it returns something truthy; fails after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(poll_s)
        raise TimeoutError(f"{what}: not seen in {timeout_s} s; slurmctld log:\n{self.log('slurmctld')}")

    def log(self, daemon: str, tail: int = 3000) -> str:
        path = self.folder / "log" / f"{daemon}.log"
        return path.read_text(errors="replace")[-tail:] if path.is_file() else "(no log)"


def _slurm_conf(folder: Path, node_line: str, node: str, ports: dict[str, int], accounting: bool,
                cred_expire_s: int | None = None) -> str:
    state, log, run = folder / "state", folder / "log", folder / "run"
    if accounting:
        storage = (f"AccountingStorageType=accounting_storage/slurmdbd\nAccountingStorageHost=127.0.0.1\n"
                   f"AccountingStoragePort={ports['slurmdbd']}\n"
                   # the connection to slurmdbd takes munge's socket from here, not from AuthInfo
                   f"AccountingStoragePass={run / 'munge.socket'}\n")
    else:
        storage = "AccountingStorageType=accounting_storage/none\n"
    return f"""# Written by tests/slurm_cluster.py for one test session.
ClusterName=lstmexp{ports['slurmctld']}
SlurmctldHost={node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort={ports['slurmctld']}
SlurmdPort={ports['slurmd']}
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={run / 'munge.socket'}{f",cred_expire={cred_expire_s}" if cred_expire_s else ""}
StateSaveLocation={state / 'ctld'}
SlurmdSpoolDir={state / 'd'}
SlurmctldPidFile={run / 'slurmctld.pid'}
SlurmdPidFile={run / 'slurmd.pid'}
SlurmctldLogFile={log / 'slurmctld.log'}
SlurmdLogFile={log / 'slurmd.log'}
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
MpiDefault=none
MailProg=/bin/true
SwitchType=switch/none
ReturnToService=2
# Jobs leave slurmctld's memory soon after they end; a killed step gets 5 s between SIGTERM and SIGKILL.
MinJobAge=30
KillWait=5
InactiveLimit=0
SlurmdTimeout=60
{storage}JobCompType=jobcomp/none
{node_line} NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
"""


def _slurmdbd_conf(folder: Path, ports: dict[str, int]) -> str:
    return f"""# Written by tests/slurm_cluster.py for one test session.
AuthType=auth/munge
AuthInfo=socket={folder / 'run' / 'munge.socket'}
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort={ports['slurmdbd']}
SlurmUser=root
LogFile={folder / 'log' / 'slurmdbd.log'}
PidFile={folder / 'run' / 'slurmdbd.pid'}
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort={ports['mariadb']}
StorageUser=root
StorageLoc=slurm_acct_db
"""


def _node_line() -> tuple[str, str]:
    """slurmd -C's NodeName line for this host, and the node's name."""
    out = subprocess.run(["slurmd", "-C"], capture_output=True, text=True, timeout=COMMAND_TIMEOUT_S,
                         check=True).stdout
    line = next(line for line in out.splitlines() if line.startswith("NodeName="))
    return line, line.split()[0].split("=", 1)[1]


def _start(cluster: Cluster, name: str, command: list[str]) -> subprocess.Popen:
    log = (cluster.folder / "log" / f"{name}.out").open("w")
    env = {**os.environ, **cluster.env, CLUSTER_MARK: str(cluster.folder)}
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env,
                               start_new_session=True)
    log.close()
    cluster.processes[name] = process
    return process


def _wait_port(cluster: Cluster, name: str, port: int) -> None:
    process = cluster.processes[name]

    def answers():
        if process.poll() is not None:
            output = (cluster.folder / "log" / f"{name}.out").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{name} exited {process.returncode}: {output}\n{cluster.log(name)}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=2):
            return True
        return False

    cluster.wait_for(answers, f"{name} listening on port {port}", START_TIMEOUT_S)


def _start_database(cluster: Cluster, port: int) -> None:
    data = cluster.folder / "mariadb"
    subprocess.run(["mariadb-install-db", "--user=root", f"--datadir={data}", "--skip-test-db",
                    "--auth-root-authentication-method=normal"],
                   capture_output=True, text=True, timeout=START_TIMEOUT_S, check=True)
    # Private and reached from 127.0.0.1 only, so no grant tables: slurmdbd connects as root.
    _start(cluster, "mariadb", [
        "mariadbd", "--no-defaults", "--user=root", f"--datadir={data}", "--bind-address=127.0.0.1",
        f"--port={port}", f"--socket={cluster.folder / 'run' / 'mariadb.socket'}",
        f"--pid-file={cluster.folder / 'run' / 'mariadb.pid'}", "--skip-grant-tables",
        f"--log-error={cluster.folder / 'log' / 'mariadb.log'}"])
    _wait_port(cluster, "mariadb", port)


def _node_idle(cluster: Cluster) -> bool:
    out = cluster.command("sinfo", "-h", "-N", "-o", "%N %t", check=False).stdout.split()
    return out[-1:] == ["idle"] if out else False


def _leftovers(cluster: Cluster) -> list[Process]:
    """Live processes started for this cluster: its daemons, their job steps and the jobs' processes."""
    return with_environment(f"{CLUSTER_MARK}={cluster.folder}", f"SLURM_CONF={cluster.env['SLURM_CONF']}")


def _stop(cluster: Cluster) -> list[Process]:
    """Cancels every job, stops the daemons newest first; returns the processes that had to be killed."""
    if "slurmctld" in cluster.processes and cluster.processes["slurmctld"].poll() is None:
        with contextlib.suppress(subprocess.SubprocessError, OSError):
            cluster.command("scancel", "--full", "--user", getpass.getuser(), check=False)
            cluster.wait_for(lambda: not cluster.jobs(), "every job gone after scancel", STOP_TIMEOUT_S)
            # squeue drops a job before its batch step has told slurmctld it completed; a step whose
            # controller is gone retries that report well past STOP_TIMEOUT_S, so the daemons wait for it.
            cluster.wait_for(lambda: not any("slurmstepd" in p.command for p in _leftovers(cluster)),
                             "every job step gone after scancel", STOP_TIMEOUT_S)
    for process in reversed(list(cluster.processes.values())):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=STOP_TIMEOUT_S)
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while (left := _leftovers(cluster)) and time.monotonic() < deadline:
        time.sleep(0.5)
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)
    return left


@contextlib.contextmanager
def slurm_cluster(folder: Path, accounting: bool = True,
                  cred_expire_s: int | None = None) -> Iterator[Cluster]:
    """A single-node Slurm cluster (with slurmdbd accounting on MariaDB unless `accounting=False`).

    `cred_expire_s`: Slurm's job credential lifetime (AuthInfo's cred_expire; None: Slurm's 120 s),
    which is also how long a requeued job waits before it may start again.

    Raises:
        RuntimeError: a package is missing, a daemon did not start, or a process outlived the cluster.
    """
    missing = [tool for tool in ("munged", "slurmctld", "slurmd", "sbatch", "mariadbd", "slurmdbd")
               if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"Slurm test cluster: {', '.join(missing)} missing: apt-get install {PACKAGES}")
    if os.geteuid() != 0:  # slurmd runs jobs as their users, munged and MariaDB run here as root
        raise RuntimeError("the Slurm test cluster's daemons run as root: run the tests as root")
    for sub in ("log", "run", "state/ctld", "state/d", "munge"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    os.chmod(folder / "munge", 0o700)
    node_line, node = _node_line()
    ports = {name: free_port() for name in ("slurmctld", "slurmd", "slurmdbd", "mariadb")}
    conf = folder / "slurm.conf"
    conf.write_text(_slurm_conf(folder, node_line, node, ports, accounting, cred_expire_s))
    cluster = Cluster(folder, {"SLURM_CONF": str(conf)}, node, accounting)
    try:
        key = folder / "munge" / "munge.key"
        key.write_bytes(os.urandom(1024))
        os.chmod(key, 0o400)
        run = folder / "run"
        _start(cluster, "munged", ["munged", "--foreground", "--force", f"--key-file={key}",
                                   f"--socket={run / 'munge.socket'}", f"--pid-file={run / 'munged.pid'}",
                                   f"--log-file={folder / 'log' / 'munged.log'}",
                                   f"--seed-file={folder / 'munge' / 'seed'}"])
        cluster.wait_for(lambda: (run / "munge.socket").exists(), "munged's socket", START_TIMEOUT_S)
        if accounting:
            _start_database(cluster, ports["mariadb"])
            dbd_conf = folder / "slurmdbd.conf"
            dbd_conf.write_text(_slurmdbd_conf(folder, ports))
            os.chmod(dbd_conf, 0o600)  # slurmdbd refuses a config others can read
            _start(cluster, "slurmdbd", ["slurmdbd", "-D"])  # reads slurmdbd.conf beside SLURM_CONF
            _wait_port(cluster, "slurmdbd", ports["slurmdbd"])
        _start(cluster, "slurmctld", ["slurmctld", "-D", "-i", "-f", str(conf)])
        _wait_port(cluster, "slurmctld", ports["slurmctld"])
        _start(cluster, "slurmd", ["slurmd", "-D", "-N", node, "-f", str(conf)])
        cluster.wait_for(lambda: _node_idle(cluster), f"node {node} idle in sinfo", START_TIMEOUT_S)
        yield cluster
    finally:
        left = _stop(cluster)
    if left:
        lines = "\n".join(f"  pid {p.pid}: {p.command[:160]}" for p in left)
        raise RuntimeError(f"the Slurm test cluster left {len(left)} process(es) behind (killed):\n{lines}")
