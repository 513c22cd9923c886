"""Bad input and faults in the label stage (issue 8): each case is named after what used to go wrong.

Before: an unclosed CSV quote merged rows (exit 0), a wrong text column or a BOM rejected every row
(exit 0, nothing labeled), NaN teacher logits were stored (exit 0), and a file in the output path, a
read-only disk, a damaged Parquet page, a non-UTF-8 CSV header or Ctrl-C were internal errors (exit 1).
"""

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.core.test_datasource import _damaged_parquet
from tests.pipelines.conftest import SENTENCES, write_jsonl, write_tsv
from zuoxiao.cli import main
from zuoxiao.core.errors import InputError, IntegrityError, user_error
from zuoxiao.core.labelout import read_rows
from zuoxiao.core.shards import sha256_file
from zuoxiao.pipelines.label import label_from_config


def _rows(out):
    return read_rows(out)


def _rejected(out):
    return read_rows(out, "rejected_files")


def _cli(tmp_path, cfg, *args):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    return main(["label", str(path), *args])


# ---------------------------------------------------------------- silent wrong results
def test_unclosed_csv_quote_cannot_swallow_rows(tmp_path, make_cfg):
    """The issue's file: 5 data rows, row 2 opens a quote it never closes. Was read=2 labeled=2."""
    path = tmp_path / "in.csv"
    path.write_text('id,label,text\n1,1,a very good movie\n2,0,"dull and\n3,1,i love this story\n'
                    "4,0,boring and long\n5,1,funny and short\n")
    out = tmp_path / "label"
    m = label_from_config(make_cfg(path, text_column="text", id_column="id"), out)
    c = m["counts"]
    assert (c["read"], c["labeled"], c["rejected"]) == (5, 4, 1)
    assert c["rejected_by_reason"] == {"malformed_row": 1}
    (bad,) = _rejected(out)
    assert "line 3" in bad["detail"] and "dull and" in bad["detail"] and bad["source"].endswith("in.csv")
    rows = {r["id"]: r["text"] for r in _rows(out)}
    assert rows == {"1": "a very good movie", "3": "i love this story", "4": "boring and long",
                    "5": "funny and short"}


def test_wrong_text_column_rejects_everything_and_fails_naming_the_fix(tmp_path, make_cfg, capsys):
    """A JSONL file whose text key is `body`: every row missing_text. Was exit 0 with 0 labeled."""
    path = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "body": t, "label": lab}
                                               for i, (t, lab) in enumerate(SENTENCES)])
    out = tmp_path / "label"
    assert _cli(tmp_path, make_cfg(path), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "no row was labeled" in err and "missing_text: 12" in err
    assert "text_column 'sentence' not found" in err and "['id', 'body', 'label']" in err
    assert "set label.input.text_column" in err
    assert not (out / "manifest.json").exists() and not list(out.glob(".work-*"))


def test_more_rejected_than_max_rejected_fraction_fails_the_stage(tmp_path, make_cfg):
    rows = [{"sentence": t, "label": lab} for t, lab in SENTENCES] + [{"sentence": " ", "label": "1"}] * 13
    path = write_jsonl(tmp_path / "in.jsonl", rows)  # 13 of 25 rejected: 52%
    with pytest.raises(InputError, match=r"52% of the rows were rejected, more than "
                                         r"label.max_rejected_fraction=0.5 .*empty_text: 13"):
        label_from_config(make_cfg(path), tmp_path / "a")
    assert not (tmp_path / "a" / "manifest.json").exists()
    m = label_from_config(make_cfg(path, max_rejected_fraction=0.6), tmp_path / "b")
    assert (m["counts"]["labeled"], m["counts"]["rejected"]) == (12, 13)


def test_empty_input_fails_instead_of_labelling_nothing(tmp_path, make_cfg):
    path = tmp_path / "in.tsv"
    path.write_text("sentence\tlabel\n")
    with pytest.raises(InputError, match=r"holds no rows \(0 read\)"):
        label_from_config(make_cfg(path), tmp_path / "o")


@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_utf8_bom_file_labels_every_row(tmp_path, make_cfg, fmt):
    """Excel's "UTF-8 with BOM": the first column used to read as '\\ufeffid', so id_column 'id' was
    missing in every row (all rejected, exit 0)."""
    sep = "," if fmt == "csv" else "\t"
    q = '"' if fmt == "csv" else ""  # one sentence holds a comma
    body = f"id{sep}sentence{sep}label\n" + "".join(f"r{i}{sep}{q}{t}{q}{sep}{lab}\n"
                                                   for i, (t, lab) in enumerate(SENTENCES))
    path = tmp_path / f"in.{fmt}"
    path.write_bytes(b"\xef\xbb\xbf" + body.encode())
    m = label_from_config(make_cfg(path, id_column="id"), tmp_path / "o")
    assert (m["counts"]["read"], m["counts"]["labeled"], m["counts"]["rejected"]) == (12, 12, 0)
    assert sorted(r["id"] for r in _rows(tmp_path / "o")) == sorted(f"r{i}" for i in range(12))


def _nan_teacher(src: Path, dst: Path, token: str | None) -> Path:
    """Copy of the tiny teacher with NaN weights: in one word's embedding (rows with that word give
    NaN logits) or, with token=None, in the embedding LayerNorm (every row does)."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(src, dst)
    weights = load_file(dst / "model.safetensors")
    if token is None:
        weights["embeddings.LayerNorm.weight"][0] = float("nan")
    else:
        vocab = (dst / "vocab.txt").read_text().split("\n")
        weights["embeddings.word_embeddings.weight"][vocab.index(token)] = torch.nan
    save_file(weights, dst / "model.safetensors", metadata={"format": "pt"})
    return dst


def test_nan_teacher_rows_go_to_dead_letters_not_shards(tmp_path, make_cfg, tiny_teacher):
    teacher = _nan_teacher(tiny_teacher, tmp_path / "t", "boring")
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)  # 2 of 12 sentences hold "boring"
    out = tmp_path / "o"
    m = label_from_config(make_cfg(path, teacher=teacher), out)
    c = m["counts"]
    assert (c["read"], c["labeled"], c["rejected"]) == (12, 10, 2)
    assert c["rejected_by_reason"] == {"non_finite_teacher_output": 2}
    rej = _rejected(out)
    assert sorted(json.loads(r["row"])["text"] for r in rej) == ["boring and long", "the plot is very boring"]
    assert all("not finite" in r["detail"] for r in rej)
    assert all(math.isfinite(x) for r in _rows(out) for x in r["logits"] + [r["confidence"], r["entropy"]])


def test_nan_teacher_for_every_row_fails_the_stage(tmp_path, make_cfg, tiny_teacher):
    teacher = _nan_teacher(tiny_teacher, tmp_path / "t", None)
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    with pytest.raises(InputError, match="no row was labeled.*non_finite_teacher_output: 12.*label.teacher.path"):
        label_from_config(make_cfg(path, teacher=teacher), tmp_path / "o")
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_shard_reader_refuses_non_finite_logits(tmp_path, make_cfg):
    """A shard with NaN/inf logits (an old label output, or one written by hand) used to train a NaN
    student with exit 0. The manifest's sha256 matches: only the values are wrong."""
    from zuoxiao.student.data import ShardStream

    out = tmp_path / "o"
    label_from_config(make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES)), out)
    assert ShardStream(out, batch_size=4).num_rows == 12  # the good output reads
    manifest = json.loads((out / "manifest.json").read_text())
    shard = manifest["shards"][1]
    table = pq.read_table(out / shard["file"])
    logits = table.column("logits").to_pylist()
    logits[-1] = [float("nan"), 0.0] if len(logits) == 1 else logits[-1][:1] + [float("inf")]
    table = table.set_column(table.schema.get_field_index("logits"), table.schema.field("logits"),
                             pa.array(logits, table.schema.field("logits").type))
    pq.write_table(table, out / shard["file"])
    shard.update(sha256=sha256_file(out / shard["file"]), bytes=(out / shard["file"]).stat().st_size)
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IntegrityError, match=rf"shard {out / shard['file']} holds a non-finite teacher value "
                                             rf"\(logits of row {len(logits) - 1} is NaN or inf\)") as err:
        ShardStream(out, batch_size=4)
    assert err.value.exit_code == 5


# ---------------------------------------------------------------- crashes that are bad input / environment
def test_output_dir_that_is_a_file_exits_2(tmp_path, make_cfg, capsys):
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES))
    (tmp_path / "afile").write_text("x")
    assert _cli(tmp_path, cfg, "--output", str(tmp_path / "afile")) == 2
    assert f"{tmp_path / 'afile'} is a file, not a directory, but it is the output directory" in capsys.readouterr().err
    assert _cli(tmp_path, cfg, "--output", str(tmp_path / "afile" / "label")) == 2
    assert "is a file, not a directory, but it is a parent of the output directory" in capsys.readouterr().err


def test_unwritable_output_dir_exits_2(tmp_path, make_cfg, capsys):
    # Tests run as root, which chmod does not stop; /sys refuses new directories even to root.
    target = Path("/sys/zuoxiao-test-output")
    try:
        target.mkdir()
    except OSError:
        pass
    else:
        target.rmdir()
        pytest.skip("/sys is writable here: no unwritable location to test with")
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES))
    assert _cli(tmp_path, cfg, "--output", str(target / "label")) == 2
    err = capsys.readouterr().err
    assert f"cannot write to the output directory {target / 'label'}" in err and "writable" in err


def test_damaged_parquet_page_exits_2_naming_the_file(tmp_path, make_cfg, capsys):
    path = _damaged_parquet(tmp_path / "damaged.parquet")
    out = tmp_path / "o"
    assert _cli(tmp_path, make_cfg(path, text_column="text", label_names=("0", "1")), "--output", str(out)) == 2
    err = capsys.readouterr().err
    assert "damaged.parquet: Parquet data in row group 2 of 3 (after row 1000)" in err
    assert "restore or re-export it" in err
    assert not (out / "manifest.json").exists() and not list(out.glob(".work-*"))


def test_csv_header_with_invalid_utf8_exits_2(tmp_path, make_cfg, capsys):
    path = tmp_path / "in.csv"
    path.write_bytes(b"sent\xe9nce,label\n" + b"".join(f"{t},{lab}\n".encode() for t, lab in SENTENCES))
    assert _cli(tmp_path, make_cfg(path), "--output", str(tmp_path / "o")) == 2
    assert "in.csv line 1 (the header) is not valid UTF-8" in capsys.readouterr().err


def test_beam_wrapped_errors_map_to_their_exit_codes():
    """In-process runners re-raise Ctrl-C as RuntimeError; multi-process ones send errors back as text."""
    assert isinstance(user_error(RuntimeError("KeyboardInterrupt [while running 'Teacher/RunInference']")),
                      KeyboardInterrupt)
    msg = "a.parquet: Parquet data in row group 2 of 3 (after row 1000) cannot be read"
    text = ("Traceback (most recent call last):\n  File \"x.py\", line 1, in process\n"
            f"zuoxiao.core.errors.InputError: {msg} [while running 'Read/ParseRows']\n")
    err = user_error(RuntimeError(text))
    assert isinstance(err, InputError) and str(err) == msg
    err = user_error(PermissionError(13, "Permission denied", "/data/out"))
    assert isinstance(err, InputError) and "/data/out: Permission denied" in str(err)
    bug = ValueError("a bug")
    assert user_error(bug) is bug


@contextmanager
def _sigint_reaches_children():
    """SIGINT handled, not ignored, while a child process starts.

    A shell that runs the suite in the background without job control (`make test &` in a script,
    `nohup`, cron, some CI runners) starts it with SIGINT ignored; an ignored signal stays ignored
    across fork and exec, and Python installs its KeyboardInterrupt handler only where SIGINT is at its
    default. The CLI under test then never saw the Ctrl-C, labelled to the end and exited 0 (the
    "flake" of background full-suite runs). A *handled* signal is reset to its default by exec, so
    handling it here around Popen gives the child what an interactive terminal gives it.
    """
    old = signal.getsignal(signal.SIGINT)
    if old is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def _wait_for_line(log: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    """Block until the child has written ``text`` to ``log``; fail naming what it wrote instead."""
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            pytest.fail(f"no {text!r} from the label CLI (exit {proc.returncode}, waited up to {timeout_s:.0f} s); "
                        f"its stderr:\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.05)


def test_sigint_during_labelling_exits_130_without_manifest(tmp_path, tiny_teacher):
    """Ctrl-C while the teacher runs: was exit 1 with `RuntimeError: KeyboardInterrupt` from Beam.

    No fixed sleeps: the signal goes as soon as the child logs "teacher loaded" (its main thread loads
    the teacher at the start of the Beam stage that runs it, then labels), and the child's output goes
    to files, read once it has exited, so a loaded machine cannot make the test miss a line. 4800 rows
    at batch size 1 take seconds of teacher time: the labelling cannot end before the signal lands,
    and the absent summary line below proves it did not.
    """
    rows = [(f"{t} {i}", lab) for i in range(400) for t, lab in SENTENCES]  # 4800 rows
    path = write_tsv(tmp_path / "in.tsv", rows)
    out = tmp_path / "o"
    cfg = {"output_dir": str(tmp_path / "outputs"), "task": {"name": "t", "label_names": ["0", "1"]},
           "label": {"input": {"path": str(path), "text_column": "sentence"}, "batch_size": 1,
                     "teacher": {"path": str(tiny_teacher), "max_length": 16, "num_threads": 1}}}
    (tmp_path / "cfg.yaml").write_text(yaml.safe_dump(cfg))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    stdout, stderr = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with stdout.open("wb") as fo, stderr.open("wb") as fe, _sigint_reaches_children():
        proc = subprocess.Popen([sys.executable, "-m", "zuoxiao.cli", "label", str(tmp_path / "cfg.yaml"),
                                 "--output", str(out)], stdout=fo, stderr=fe, env=env)
    try:
        _wait_for_line(stderr, "teacher loaded", proc, timeout_s=600)  # startup is slow on a busy machine
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = stderr.read_text(errors="replace")
    assert rc == 130, err[-3000:]
    assert "zuoxiao: interrupted (exit 130); nothing partial was committed, rerun to continue" in err
    assert "internal error" not in err and "Traceback" not in err, err[-3000:]
    assert "label: labelled" not in err and stdout.read_text() == ""  # stopped mid-way, no summary
    assert not (out / "manifest.json").exists() and not list(out.glob(".work-*"))
    assert not [p for p in out.rglob("*") if p.name == "manifest.json" or p.suffix == ".parquet"]


def test_full_disk_during_labelling_exits_2_nothing_complete_rerun_clean(tmp_path, make_cfg, capsys):
    """A real full disk (a tmpfs filled to its last page): was exit 1 with the shard writer's
    `OSError: [Errno 28] No space left on device` traceback. Now exit 2 naming the file and the bytes,
    no manifest and no temp dir; once space is freed the same command labels everything."""
    from tests.core.test_disk_full import small_disk

    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES))
    with small_disk(tmp_path / "disk", size_kib=512) as filler:
        out = filler.parent / "label"
        assert _cli(tmp_path, cfg, "--output", str(out)) == 2
        err = capsys.readouterr().err
        assert re.search(rf"zuoxiao: error: no space left on device writing {out}/\.work-\w+/\S+: [1-9][\d,]* "
                         r"bytes \([\d.]+ MiB\) needed, 0 bytes \(0\.00 MiB\) free on its filesystem; free space "
                         r"there or choose another output .* nothing was marked complete", err), err[-3000:]
        assert "Traceback" not in err and "internal error" not in err
        assert sorted(p.name for p in out.iterdir()) == []  # no manifest, no shards, no .work-* dir
        filler.unlink()
        assert _cli(tmp_path, cfg, "--output", str(out)) == 0
        assert json.loads((out / "manifest.json").read_text())["counts"]["labeled"] == 12
