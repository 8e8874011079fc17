"""Scaling out through a real PostgreSQL server: independent ``slimnas search`` processes (as on
several machines) share one study through Optuna's RDB storage.

The module starts a throwaway PostgreSQL cluster (``initdb`` + ``pg_ctl``, as the ``postgres``
user when run as root) on 127.0.0.1 and a free port, and stops and deletes it afterwards. Without
the server binaries or the ``psycopg`` driver the tests skip, unless ``SLIMNAS_REQUIRE_POSTGRES``
is set (CI sets it), in which case they fail.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import optuna
import pytest
import yaml
from optuna.trial import TrialState

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
N_TRIALS = 6
STUDY = "pg-shared"


def _unavailable(reason: str):
    if os.environ.get("SLIMNAS_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


def _server_bin() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` (Debian/Ubuntu), else the one on PATH."""
    def version(p: str) -> tuple[int, ...]:
        return tuple(int(x) for x in re.findall(r"\d+", p.split("/")[-3]))

    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "slimnas", *args]


def _words(text: str) -> str:
    """The console wraps long lines when it isn't a terminal."""
    return " ".join(text.split())


class Cluster:
    """A throwaway PostgreSQL server on 127.0.0.1 and a free port (``initdb`` + ``pg_ctl``, as
    the ``postgres`` user when run as root), with one database, ``slimnas``."""

    def __init__(self) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError:
            _unavailable("the psycopg driver is not installed (pip install -e '.[dev]' installs psycopg[binary])")
        self.bindir = _server_bin()
        if self.bindir is None:
            _unavailable("PostgreSQL server binaries (initdb, pg_ctl) not found under /usr/lib/postgresql/*/bin "
                         "or on PATH; install them with `apt-get install postgresql`")
        self.as_postgres: list[str] = []
        self.root = Path(tempfile.mkdtemp(prefix="slimnas-pg-"))  # not under pytest's root-only tmp dirs
        if os.geteuid() == 0:  # the server refuses to run as root
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                shutil.rmtree(self.root)
                _unavailable("running as root and there is no 'postgres' system user to run the server as")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.as_postgres = ["runuser", "-u", "postgres", "--"]
        self.data, self.log, self.port = self.root / "data", self.root / "server.log", _free_port()
        self.running = False
        self.url = f"postgresql+psycopg://slimnas@127.0.0.1:{self.port}/slimnas"

    def pg(self, tool: str, *args: str) -> None:
        subprocess.run([*self.as_postgres, str(self.bindir / tool), *args], cwd=self.root, check=True,
                       capture_output=True, text=True, timeout=120)

    def start(self) -> None:
        try:
            if not self.data.exists():
                self.pg("initdb", "-D", str(self.data), "-U", "slimnas", "--auth=trust", "-E", "UTF8", "--locale=C",
                        "--no-sync")
            self.pg("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o",
                    f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off", "start")
            self.running = True
        except subprocess.CalledProcessError as e:
            server_log = self.log.read_text() if self.log.is_file() else ""
            pytest.fail(f"could not start PostgreSQL from {self.bindir}: {e.stderr}\n{server_log}")

    def create_database(self) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="slimnas", dbname="postgres",
                             autocommit=True) as c:
            c.execute("CREATE DATABASE slimnas")

    def stop(self) -> None:
        if self.running:
            self.pg("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")
            self.running = False

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def cluster():
    """A fresh PostgreSQL database on a throwaway local server, removed afterwards."""
    server = Cluster()
    try:
        server.start()
        server.create_database()
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh PostgreSQL database on a throwaway local server; yields its SQLAlchemy URL."""
    with cluster() as server:
        yield server.url


@pytest.fixture(scope="module")
def shared_run(postgres_url, tmp_path_factory, tiny_space):
    """Two ``slimnas search`` commands started at once on the same config, storage and study name
    (each with its own seed, as two machines would be given), on a database with no tables yet."""
    root = tmp_path_factory.mktemp("pg")
    cfg = root / "config.yaml"
    cfg.write_text(yaml.safe_dump({
        # trials long enough (15 epochs, about a second) that the two processes' trials overlap even
        # when one of them starts a second later (at 1 epoch one process could run all six first)
        "data": {"dataset": "digits"}, "space": tiny_space, "training": {"epochs": 15, "lr": 0.01, "optimizer": "adam"},
        "storage": postgres_url, "name": STUDY, "n_trials": N_TRIALS,
    }))
    out = root / "run"
    cmd = _cli("search", str(cfg), "--out", str(out), "--quiet")
    procs = [subprocess.Popen([*cmd, "--seed", str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in (0, 1)]
    try:
        outputs = [p.communicate(timeout=300) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    trials = optuna.load_study(study_name=STUDY, storage=postgres_url).get_trials()
    return {"cfg": cfg, "out": out, "cmd": cmd, "procs": procs, "outputs": outputs, "trials": trials}


def test_two_processes_complete_one_postgres_study(shared_run):
    for p, (stdout, stderr) in zip(shared_run["procs"], shared_run["outputs"], strict=True):
        assert p.returncode == 0, stderr
        assert "Pareto front" in stdout and "Traceback" not in stderr
    trials = shared_run["trials"]  # as loaded from PostgreSQL with plain optuna
    done = [t for t in trials if t.state in FINISHED]
    assert len(done) == len(trials), [t.state for t in trials]  # nothing failed or left running
    # the total is the study's n_trials, not n_trials per process (each process checks the cap after
    # each of its trials, so the other one may finish the trial it is running: at most one more)
    assert N_TRIALS <= len(done) <= N_TRIALS + 1
    assert sorted(t.number for t in trials) == list(range(len(trials)))  # unique trial numbers
    # the two processes really ran at the same time: some trials' run times overlap
    spans = sorted((t.datetime_start, t.datetime_complete) for t in done)
    assert any(b[0] < a[1] for a, b in zip(spans, spans[1:], strict=False)), spans
    out = shared_run["out"]
    assert not (out / "study.db").exists()  # the storage key was used, not the SQLite default
    for t in done:
        assert (out / "trials" / f"{t.number:05d}" / "model.onnx").is_file()
        assert {"val_accuracy", "macs", "params"} <= set(t.user_attrs["metrics"])
    pareto = json.loads((out / "pareto.json").read_text())
    assert pareto["study"] == STUDY and pareto["n_trials"] == len(done)
    assert {m["trial"] for m in pareto["front"]} <= {t.number for t in done}


def test_resume_on_postgres_runs_only_missing_trials(shared_run, postgres_url):
    before = {t.number: t.datetime_complete for t in shared_run["trials"]}
    n = len(before)
    again = subprocess.run([*shared_run["cmd"], "--n-trials", str(n)], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{n} trials done, 0 to run" in _words(again.stdout)
    study = optuna.load_study(study_name=STUDY, storage=postgres_url)
    assert {t.number: t.datetime_complete for t in study.trials} == before
    more = subprocess.run([*shared_run["cmd"], "--n-trials", str(n + 1)], capture_output=True, text=True, timeout=300)
    assert more.returncode == 0, more.stderr
    assert f"{n} trials done, 1 to run" in _words(more.stdout)
    trials = optuna.load_study(study_name=STUDY, storage=postgres_url).trials
    assert [t.number for t in trials] == list(range(n + 1)) and trials[n].state in FINISHED
    assert {t.number: t.datetime_complete for t in trials[:n]} == before  # finished trials were not rerun


@pytest.mark.parametrize("where", ["closed port", "missing database"])
def test_bad_postgres_url_exits_2_with_one_line(request, tmp_path, tiny_config, where):
    if where == "closed port":  # nothing listens there; needs no server
        url = f"postgresql+psycopg://slimnas@127.0.0.1:{_free_port()}/slimnas"
    else:  # the server answers, the database isn't there
        url = request.getfixturevalue("postgres_url").rsplit("/", 1)[0] + "/no_such_db"
    r = subprocess.run(_cli("search", str(tiny_config()), "--storage", url, "--out", str(tmp_path / "x"), "--quiet"),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: storage: expected a reachable Optuna storage URL, got '{url}: "), r.stderr
    assert ("Connection refused" if where == "closed port" else '"no_such_db" does not exist') in lines[0]
    assert "Traceback" not in r.stderr


def test_a_server_going_down_mid_search_ends_in_one_line_and_the_same_command_resumes(tmp_path, tiny_config):
    """The report: stopping PostgreSQL while trials ran ended the search with `UnboundLocalError:
    cannot access local variable 'updated_state'` from inside Optuna's trial loop."""
    with cluster() as server:
        cfg = tiny_config(storage=server.url, name="down")
        out = tmp_path / "down"
        cmd = _cli("search", str(cfg), "--n-trials", "40", "--out", str(out), "--quiet")
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            deadline = time.time() + 240
            while not (out / "trials" / "00001" / "arch.json").exists():  # trial 0 is done
                assert proc.poll() is None and time.time() < deadline, proc.communicate()
                time.sleep(0.05)
            server.stop()  # while trial 1 runs
            stdout, stderr = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 2 and "Traceback" not in stderr, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and "became unreachable" in lines[0] and "run the same command" in lines[0], stderr
        assert "127.0.0.1" in lines[0] and "updated_state" not in lines[0]
        server.start()
        kept = optuna.load_study(study_name="down", storage=server.url).trials
        assert kept[0].state == TrialState.COMPLETE  # the completed trial is kept


def test_a_process_killed_mid_trial_leaves_no_trial_running_once_the_others_finish(postgres_url, tmp_path, tiny_config):
    """The report: three processes on one study, one killed with kill -9: the others finished the
    study and the killed one's trial stayed RUNNING (17 COMPLETE + 1 RUNNING for 16 trials). The
    last process to finish fails it, and re-runs its candidate while the study is short."""
    # 16 trials, as the report had, of 60 epochs each: with 4 trials, or 3 epochs, one process could
    # finish the study under load before the other had entered a trial, and the two were never seen
    # inside trials at once; at 20 epochs the victim's trial could complete between being seen
    # running and the kill landing
    cfg = tiny_config(training={"epochs": 60, "lr": 0.01, "optimizer": "adam"}, storage=postgres_url, name="killed",
                      n_trials=16)
    out = tmp_path / "k"
    cmd = _cli("search", str(cfg), "--out", str(out), "--quiet")
    procs = [subprocess.Popen([*cmd, "--seed", str(k)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for k in (0, 1)]
    survivor, victim = procs
    try:
        deadline, victims_trial = time.time() + 240, None
        while victims_trial is None:
            assert time.time() < deadline and victim.poll() is None and survivor.poll() is None
            time.sleep(0.1)
            try:
                running = optuna.load_study(study_name="killed", storage=postgres_url).get_trials(
                    states=(TrialState.RUNNING,))
            except KeyError:  # not created yet
                continue
            pids = {t.user_attrs.get("worker", {}).get("pid"): t for t in running}
            if survivor.pid in pids and victim.pid in pids and pids[victim.pid].params:  # both inside a trial
                victims_trial = pids[victim.pid].number
        victim.kill()  # kill -9 while its trial runs
        victim.communicate(timeout=60)
        stdout, stderr = survivor.communicate(timeout=300)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert survivor.returncode == 0 and "Traceback" not in stderr, stderr
    trials = optuna.load_study(study_name="killed", storage=postgres_url).trials
    assert not [t.number for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], \
        [(t.number, t.state.name) for t in trials]
    killed = trials[victims_trial]
    assert killed.state == TrialState.FAIL and "its process stopped" in killed.user_attrs["failure"]
    assert len([t for t in trials if t.state in FINISHED]) >= 16
    rerun = [t for t in trials if t.system_attrs.get("failed_trial") == victims_trial]
    if "not re-run" in killed.user_attrs["failure"]:  # the survivor had finished the study's trials meanwhile
        assert not rerun
    else:
        assert len(rerun) == 1 and rerun[0].state in FINISHED and rerun[0].params == killed.params


def test_a_session_left_mid_transaction_by_a_lost_server_is_unreachable_not_a_write_refusal():
    """Under load the server going down can surface as SQLAlchemy's PendingRollbackError on the
    next use of the session (the connection dropped inside a transaction): that is the storage
    becoming unreachable (resume later), not a storage refusing writes. Needs no server."""
    from sqlalchemy.exc import PendingRollbackError

    from slimnas.errors import ConfigError
    from slimnas.study._driver import StorageUnreachable, storage_error

    lost = PendingRollbackError("Can't reconnect until invalid transaction is rolled back.")
    error = storage_error(RuntimeError("trial loop"), "postgresql+psycopg://u:secret@127.0.0.1:5/db")
    assert error is None  # not from the storage
    try:
        raise RuntimeError("recording the trial failed") from lost
    except RuntimeError as e:
        error = storage_error(e, "postgresql+psycopg://u:secret@127.0.0.1:5/db")
    assert isinstance(error, StorageUnreachable) and "secret" not in str(error)
    assert isinstance(storage_error(lost, "sqlite:///run/study.db"), ConfigError)  # a file storage is not a server
