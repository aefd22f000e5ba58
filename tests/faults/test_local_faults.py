"""Local faults (issue 12): hostile configs, init, full and read-only disks, damaged state pages, bad paths,
odd inputs. Each case asserts the one-line message, the exit code, and that nothing was lost or left behind.
No Label Studio is needed: every case fails before the network (the URL points where nothing listens)."""

from __future__ import annotations

import os
import random
import sqlite3
from pathlib import Path

import pytest
from faulthelpers import POOL, listing, one_line_error, run_cli, write_config

from labelloop.config import load_config
from labelloop.store import Store, StoreError

pytestmark = pytest.mark.faults


# -- 4. strict config types ---------------------------------------------------------------------------

HOSTILE = {
    "project = true": ('project = true', "labelstudio.project: expected a project title"),
    'project = ""': ('project = ""', "labelstudio.project: an empty project title"),
    "project = 0": ('project = 0', "labelstudio.project: a project id is a positive integer"),
    "project = -3": ('project = -3', "labelstudio.project: a project id is a positive integer"),
    "project = 1.5": ('project = 1.5', "labelstudio.project: expected a project title"),
    "project with a newline": ('project = "a\\nb"', "labelstudio.project: the project title contains a control"),
    "budget = true": ('project = "p"\n[loop]\nbudget = true', "loop.budget: Input should be a valid integer (got bool True)"),
    'queue_target = "50"': ('project = "p"\n[loop]\nqueue_target = "50"', "loop.queue_target: Input should be a valid integer (got str '50')"),
    "seed = 1.0": ('project = "p"\n[loop]\nseed = 1.0', "loop.seed: Input should be a valid integer"),
    "batch_size = true": ('project = "p"\nbatch_size = true', "labelstudio.batch_size: Input should be a valid integer"),
    "skip_empty = 1": ('project = "p"\n[data]\nskip_empty = 1', "skip_empty"),
    "C = true": ('project = "p"\n[model]\nC = true', "model.C: Input should be a valid number"),
    "state.path = 1": ('project = "p"\n[state]\npath = 1', "state.path: expected a path as a string, got int 1"),
    "cache_dir = false": ('project = "p"\n[model]\ncache_dir = false', "model.cache_dir: expected a path"),
    'state.path = ""': ('project = "p"\n[state]\npath = ""', "state.path: an empty path"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_config_values_are_refused_before_anything_is_written(case, tmp_path) -> None:
    line, expected = HOSTILE[case]
    (tmp_path / "pool.csv").write_text(POOL)
    text = f'labels = ["billing", "bug", "other"]\n[labelstudio]\n{line}\n'
    if "[data]" not in line:
        text += '[data]\npath = "pool.csv"\n'
    else:
        text = text.replace("[data]\n", '[data]\npath = "pool.csv"\n')
    (tmp_path / "labelloop.toml").write_text(text)
    before = listing(tmp_path)
    err = one_line_error(run_cli("sync", "-q", "--config", "labelloop.toml", cwd=tmp_path))
    assert expected in err, err
    assert listing(tmp_path) == before


def test_a_project_id_is_a_positive_int_or_ascii_digits(tmp_path) -> None:
    (tmp_path / "pool.csv").write_text(POOL)
    assert load_config(write_config(tmp_path, project="12")).labelstudio.project == 12
    assert load_config(write_config(tmp_path, project='"12"')).labelstudio.project == "12"
    with pytest.raises(Exception, match="neither a project id"):
        load_config(write_config(tmp_path, project='"²"'))


# -- 5. labelloop init ---------------------------------------------------------------------------------

def test_init_escapes_quotes_backslashes_and_newlines(tmp_path) -> None:
    project = 'Tickets "Q3"'
    data = 'C:\\data\\"odd" name.csv'
    proc = run_cli("init", "labelloop.toml", "--project", project, "--data", data,
                   "--labels", 'say "hi",back\\slash,plain', cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = load_config(tmp_path / "labelloop.toml")
    assert config.labelstudio.project == project
    assert config.labelstudio.url is None  # nothing injected
    assert config.data.path == tmp_path / data
    assert config.labels == ['say "hi"', "back\\slash", "plain"]
    text = (tmp_path / "labelloop.toml").read_text()
    assert "# project title (created with the label set if missing)" in text  # the example's comments stay


def test_init_refuses_a_newline_that_would_add_a_setting_and_leaves_no_file(tmp_path) -> None:
    proc = run_cli("init", "labelloop.toml", "--project", 'x"\nurl = "http://evil.example"', cwd=tmp_path)
    err = one_line_error(proc)
    assert "labelstudio.project" in err and "control character" in err
    assert listing(tmp_path) == {}  # no config, no temporary file


@pytest.mark.parametrize("args, expected", [
    (["--labels", "only-one"], "labels: a label set needs at least two labels"),
    (["--labels", "a,a"], "duplicate labels"),
    (["--project", ""], "an empty project title"),
])
def test_a_refused_init_leaves_nothing(tmp_path, args, expected) -> None:
    err = one_line_error(run_cli("init", "labelloop.toml", *args, cwd=tmp_path))
    assert expected in err
    assert listing(tmp_path) == {}
    again = run_cli("init", "labelloop.toml", cwd=tmp_path)  # the next init is not told "exists"
    assert again.returncode == 0, again.stderr


def test_init_into_a_missing_folder_or_onto_a_folder_is_one_line(tmp_path) -> None:
    err = one_line_error(run_cli("init", "no/such/labelloop.toml", cwd=tmp_path))
    assert "does not exist" in err
    (tmp_path / "adir").mkdir()
    err = one_line_error(run_cli("init", "adir", cwd=tmp_path))
    assert "is a directory" in err
    assert listing(tmp_path) == {"adir": None}


def test_init_with_data_that_is_not_there_writes_the_config_and_warns(tmp_path) -> None:
    proc = run_cli("init", "labelloop.toml", "--data", "nofolder/pool.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "--data nofolder/pool.csv does not exist yet" in " ".join(proc.stderr.split())
    assert (tmp_path / "labelloop.toml").exists()


def test_init_does_not_overwrite_without_force(tmp_path) -> None:
    (tmp_path / "labelloop.toml").write_text("mine\n")
    err = one_line_error(run_cli("init", "labelloop.toml", cwd=tmp_path))
    assert "exists; pass --force" in err
    assert (tmp_path / "labelloop.toml").read_text() == "mine\n"


def test_init_detects_columns_labels_and_warns_about_the_budget(tmp_path) -> None:
    (tmp_path / "tickets.csv").write_text("ID,Category,text\n7,bug,crash\n8,billing,refund please\n9,,hello\n")
    proc = run_cli("init", "labelloop.toml", "--data", "tickets.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    config = load_config(tmp_path / "labelloop.toml")
    assert (config.data.id_column, config.data.text_column, config.data.label_column) == ("ID", "text", "Category")
    assert config.labels == ["billing", "bug"]  # from the data, no --labels given
    assert "loop.budget 2000 exceeds the 3 text(s)" in " ".join(proc.stderr.split())
    # What init wrote is what sync will load: the same file validates as a campaign.
    from labelloop.data import load_pool

    pool = load_pool(config.data.path, config.data.text_column, config.data.label_column, config.data.id_column)
    assert pool.ids == ["7", "8", "9"] and pool.labels == ["bug", "billing", None]


def test_init_without_the_data_keeps_the_columns_commented(tmp_path) -> None:
    proc = run_cli("init", "labelloop.toml", "--data", "later.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    text = (tmp_path / "labelloop.toml").read_text()
    assert '# id_column = "id"' in text and load_config(tmp_path / "labelloop.toml").data.id_column is None


# -- 6. disk full under the state file -----------------------------------------------------------------

def _fill(folder: Path) -> Path:
    filler = folder / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    finally:
        os.close(fd)
    return filler


def test_disk_full_is_the_one_line_store_error_and_keeps_the_last_step(tmpfs) -> None:
    mnt = tmpfs("1m")
    state = mnt.path / "state.db"
    with Store.open(state) as store, store.tx():
        store.add_items([(f"kept-{i}", "h", "s", "pool") for i in range(10)])
    with Store.open(state) as store:
        filler = _fill(mnt.path)
        with pytest.raises(StoreError) as err:  # was: "cannot rollback - no transaction is active"
            with store.tx():
                store.add_items([(f"id-{i}-" + "x" * 200, "h" * 64, "s" * 100, "pool") for i in range(20_000)])
        assert "disk is full" in str(err.value) and str(state) in str(err.value)
        assert "\n" not in str(err.value)
        assert not store.conn.in_transaction
    filler.unlink()
    with Store.open_existing(state) as store:
        assert sorted(store.items()) == sorted(f"kept-{i}" for i in range(10))  # nothing lost, nothing half


# -- 9. a state file damaged in its interior pages -------------------------------------------------------

def _campaign_state(folder: Path) -> Path:
    state = folder / "state.db"
    with Store.open(state) as store, store.tx():
        store.set("project_id", "1")
        store.add_items([(f"item-{i:05d}", f"{i:064x}", "pool.csv", "pool") for i in range(4000)])
        store.add_round(0, "labelloop-cold-start", "cold-start", {}, {}, None, None)
        store.start_run()
    return state


def _damage_interior_page(state: Path) -> None:
    """Overwrite a leaf page in the middle of the items table: past the first pages, read by every command."""
    with sqlite3.connect(state) as conn:
        page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        leaves = [p for (p,) in conn.execute("SELECT pageno FROM dbstat WHERE name = 'items' AND pagetype = 'leaf' "
                                             "ORDER BY pageno")]
    conn.close()
    assert len(leaves) > 20 and leaves[len(leaves) // 2] > 10
    with open(state, "r+b") as fh:
        fh.seek(page_size * (leaves[len(leaves) // 2] - 1))
        fh.write(bytes(range(256)) * (page_size // 256))


@pytest.mark.parametrize("command", [["status"], ["report", "--out", "r.md"], ["sync", "-q"]])
def test_a_state_file_damaged_inside_is_one_line_and_left_alone(tmp_path, command) -> None:
    (tmp_path / "pool.csv").write_text(POOL)
    write_config(tmp_path)
    state = _campaign_state(tmp_path)
    _damage_interior_page(state)
    before = listing(tmp_path)
    err = one_line_error(run_cli(*command, "--config", "labelloop.toml", cwd=tmp_path))
    assert "damaged state file" in err and "restore a backup" in err and "state.path" in err, err
    after = listing(tmp_path)
    # The damaged file is not touched. (A read-only SQLite open may leave its own -wal/-shm sidecars, and
    # sync its lock file: neither changes the state file.)
    sidecars = {"state.db-wal", "state.db-shm", "state.db.lock"}
    assert {k: v for k, v in after.items() if k not in sidecars} == before


def test_widespread_damage_is_still_one_short_line(tmp_path) -> None:
    # Red-team rerun: random bytes over pages 5-40 gave SQLite's 4-line report inside the message.
    (tmp_path / "pool.csv").write_text(POOL)
    write_config(tmp_path)
    state = _campaign_state(tmp_path)
    page = 4096
    with open(state, "r+b") as fh:
        fh.seek(page * 4)
        fh.write(random.Random(7).randbytes(page * 36))
    proc = run_cli("status", "--config", "labelloop.toml", cwd=tmp_path)
    err = one_line_error(proc)
    assert "damaged state file" in err or "not a labelloop state file" in err, err
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and len(lines[0]) < 400, proc.stderr


def test_an_empty_state_file_says_it_is_empty(tmp_path) -> None:
    (tmp_path / "pool.csv").write_text(POOL)
    write_config(tmp_path)
    (tmp_path / "state.db").write_bytes(b"")
    err = one_line_error(run_cli("status", "--config", "labelloop.toml", cwd=tmp_path))
    assert "an empty state file" in err and "schema 0" not in err, err


def test_a_damaged_page_met_while_reading_is_a_store_error(tmp_path) -> None:
    """Damage that appears after the open-time check still gives a StoreError, not sqlite3.DatabaseError."""
    state = _campaign_state(tmp_path)
    with Store.open_existing(state) as store:
        _damage_interior_page(state)
        store.conn.execute("PRAGMA cache_size = 0")
        with pytest.raises(StoreError, match="damaged state file"):
            store.items()


# -- read-only state file: it is ours, only not writable -------------------------------------------------

def test_a_read_only_state_file_is_read_by_status_and_named_by_sync(tmp_path, tmpfs) -> None:
    mnt = tmpfs("4m")
    (mnt.path / "pool.csv").write_text(POOL)
    write_config(mnt.path)
    _campaign_state(mnt.path)
    mnt.read_only()
    proc = run_cli("status", "--config", "labelloop.toml", cwd=mnt.path)
    assert proc.returncode == 0, proc.stderr
    assert "1 sync run(s)" in proc.stdout
    err = one_line_error(run_cli("sync", "-q", "--config", "labelloop.toml", cwd=mnt.path))
    assert "not a labelloop state file" not in err and "read-only file system" in err.lower(), err
    with pytest.raises(StoreError) as opened:  # what a sync's write step meets
        Store.open(mnt.path / "state.db")
    assert "not a labelloop state file" not in str(opened.value)
    assert "cannot write the state file" in str(opened.value) and "permissions" in str(opened.value)


# -- 10. bad output and input paths -----------------------------------------------------------------------

def test_report_and_predict_into_a_directory_fail_before_the_work_and_leave_nothing(tmp_path) -> None:
    (tmp_path / "pool.csv").write_text(POOL)
    write_config(tmp_path)
    _campaign_state(tmp_path)
    (tmp_path / "out").mkdir()
    before = listing(tmp_path)
    err = one_line_error(run_cli("report", "--config", "labelloop.toml", "--out", "out", cwd=tmp_path))
    assert "--out out is a directory" in err
    err = one_line_error(run_cli("predict", "--config", "labelloop.toml", "--input", "pool.csv", "--out", "out",
                                 cwd=tmp_path))
    assert "--out out is a directory" in err
    assert listing(tmp_path) == before  # no .out.tmp, out.tmp, out_files/


def test_outputs_on_a_read_only_disk_fail_before_the_work(tmp_path, tmpfs) -> None:
    (tmp_path / "pool.csv").write_text(POOL)
    write_config(tmp_path)
    _campaign_state(tmp_path)
    ro = tmpfs("1m")
    ro.read_only()
    before = listing(tmp_path)
    for args in (["report", "--config", "labelloop.toml", "--out", f"{ro.path}/r.md"],
                 ["predict", "--config", "labelloop.toml", "--input", "pool.csv", "--out", f"{ro.path}/p.csv"],
                 ["simulate", "--out", f"{ro.path}/results.json"],
                 ["simulate", "--plot", f"{ro.path}/curve.png"]):
        err = one_line_error(run_cli(*args, cwd=tmp_path))
        assert "read-only file system" in err, (args, err)
    assert listing(tmp_path) == before
    assert os.listdir(ro.path) == []


def test_an_output_under_a_file_is_refused(tmp_path) -> None:
    (tmp_path / "afile").write_text("x")
    err = one_line_error(run_cli("simulate", "--out", "afile/results.json", cwd=tmp_path))
    assert "afile is not a folder" in err
    assert listing(tmp_path) == {"afile": b"x"}


def test_data_in_a_folder_without_permission_is_named(tmp_path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "train.csv").write_text("text,label\nhi,a\nyo,b\n")
    (tmp_path / "test.csv").write_text("text,label\nhi,a\n")
    locked.chmod(0)
    try:
        err = one_line_error(run_cli("simulate", "--train", "locked/train.csv", "--test", "test.csv",
                                     "--out", "results.json", cwd=tmp_path, drop_root=True))
    finally:
        locked.chmod(0o755)
    assert "locked/train.csv: permission denied" in err
    assert not (tmp_path / "results.json").exists()


def test_a_symlink_loop_is_called_a_loop(tmp_path) -> None:
    (tmp_path / "loop.csv").symlink_to(tmp_path / "loop.csv")
    (tmp_path / "test.csv").write_text("text,label\nhi,a\n")
    err = one_line_error(run_cli("simulate", "--train", "loop.csv", "--test", "test.csv", cwd=tmp_path))
    assert "loop.csv: a symbolic link loop" in err and "not found" not in err


def test_pull_into_a_read_only_folder_or_a_symlink_loop_fails_before_the_network(tmp_path, tmpfs) -> None:
    # Red-team rerun: both were tracebacks, the read-only one only after the whole pull.
    ro = tmpfs("1m")
    ro.read_only()
    (tmp_path / "loop.jsonl").symlink_to(tmp_path / "loop.jsonl")
    for out, expected in ((f"{ro.path}/labels.jsonl", "read-only file system"),
                          ("loop.jsonl", "a broken or looping symbolic link")):
        err = one_line_error(run_cli("pull", "--project", "p", "--out", out, cwd=tmp_path))
        assert expected in err, (out, err)
    assert os.listdir(ro.path) == []


def test_embed_into_a_read_only_folder_fails_before_the_work(tmp_path, tmpfs) -> None:
    # Red-team rerun: a traceback (unlinking its temp file on the read-only disk) after embedding everything.
    (tmp_path / "pool.csv").write_text(POOL)
    ro = tmpfs("1m")
    ro.read_only()
    before = listing(tmp_path)
    err = one_line_error(run_cli("embed", "--data", "pool.csv", "--out", f"{ro.path}/e.parquet", cwd=tmp_path))
    assert "read-only file system" in err and "embedded" not in err, err
    assert listing(tmp_path) == before
    assert os.listdir(ro.path) == []


def test_labels_file_loops_folders_and_devices_are_named_for_what_they_are(tmp_path) -> None:
    # Red-team rerun: a loop was "file not found", a folder named --out, /dev/zero was read until OOM.
    (tmp_path / "pool.csv").write_text(POOL)
    (tmp_path / "l1").symlink_to(tmp_path / "l2")
    (tmp_path / "l2").symlink_to(tmp_path / "l1")
    (tmp_path / "adir").mkdir()
    cases = (("l1", "--labels-file l1: a broken or looping symbolic link"),
             ("adir", "--labels-file adir is a directory"),
             ("/dev/null", "--labels-file /dev/null is not a regular file"))  # not /dev/zero: OOM if broken
    for labels_file, expected in cases:
        err = one_line_error(run_cli("push", "--data", "pool.csv", "--id-column", "id", "--project", "p",
                                     "--labels-file", labels_file, cwd=tmp_path))
        assert expected in err and "--out" not in err, (labels_file, err)


def test_a_device_is_never_an_output(tmp_path) -> None:
    # /dev/full as --out was read forever by pull; an atomic write would replace /dev/null itself.
    for device in ("/dev/full", "/dev/null"):
        err = one_line_error(run_cli("pull", "--project", "p", "--out", device, cwd=tmp_path))
        assert f"--out {device} is not a regular file" in err, err
    assert os.path.exists("/dev/null") and not os.path.isfile("/dev/null")


def test_the_command_line_prints_labelloops_warnings_as_one_line(capsys, monkeypatch) -> None:
    # Red-team rerun: cache warnings came out as Python's format, source path and code line included.
    import warnings

    from labelloop.cli import _one_line_warnings
    from labelloop.embeddings import CacheWarning

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    _one_line_warnings()
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.warn("embedding cache: dropped a damaged shard", CacheWarning, stacklevel=1)
    err = capsys.readouterr().err
    assert err.strip() == "warning: embedding cache: dropped a damaged shard", err
