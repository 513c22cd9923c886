"""The label stage on a filesystem the launcher does not own: DirectRunner multi_processing (2 worker
processes) writing to s3:// on a local S3-compatible server (moto), then the train stage's shard reader
reading the same URI through pyarrow's S3 filesystem.

The moto server runs in this process on 127.0.0.1 (a free port); the worker processes reach it over
HTTP exactly as Dataflow workers reach GCS: only through the filesystem, never through this process's
disk or memory. The test skips only when moto cannot start (it is in the `dev` extra, so CI runs it).
"""

from __future__ import annotations

import json
import socket
import time

import numpy as np
import pytest

from tests.pipelines.conftest import SENTENCES, write_tsv
from zuoxiao.core.errors import IntegrityError
from zuoxiao.core.shards import read_manifest
from zuoxiao.pipelines.label import label_from_config

BUCKET = "zuoxiao-test"
KEY_ID, SECRET = "testing-key-id", "testing-secret-key"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A moto S3 server on 127.0.0.1 with one empty bucket; yields its endpoint URL."""
    try:
        import boto3
        from moto.server import ThreadedMotoServer
    except ImportError as err:
        pytest.skip(f"moto[server] / boto3 not installed ({err}); pip install -e '.[dev]'")
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    try:
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                     region_name="us-east-1").create_bucket(Bucket=BUCKET)
    except Exception as err:  # noqa: BLE001 - any failure to bring the server up is a skip, not a failure
        server.stop()
        pytest.skip(f"could not start a moto S3 server on 127.0.0.1:{port}: {err}")
    yield endpoint
    server.stop()


def _s3(endpoint):
    import boto3

    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET,
                        region_name="us-east-1")


def test_multi_processing_to_s3_then_train_reader_reads_it_back(tmp_path, make_cfg, s3_endpoint, monkeypatch):
    from zuoxiao.student.data import ShardStream

    rows = [(f"{t} {i}", lab) for i, (t, lab) in enumerate(SENTENCES * 2)] + [("   ", "1"), ("fine", "7")]
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", rows))
    local = label_from_config(cfg, tmp_path / "local")  # in-memory DirectRunner, local disk: the reference

    uri = f"s3://{BUCKET}/runs/1/label"
    s3 = _s3(s3_endpoint)
    # a stale shard and a dead run's temp dir from earlier runs must not survive
    s3.put_object(Bucket=BUCKET, Key="runs/1/label/shards/part-00099-of-00100.parquet", Body=b"old")
    s3.put_object(Bucket=BUCKET, Key="runs/1/label/.work-dead/shards/x.parquet", Body=b"old")
    flags = ["--direct_num_workers=2", "--direct_running_mode=multi_processing",
             f"--s3_endpoint_url={s3_endpoint}", f"--s3_access_key_id={KEY_ID}",
             f"--s3_secret_access_key={SECRET}", "--s3_region_name=us-east-1"]
    m = label_from_config(cfg, uri, beam_args=flags)

    # counts come from the pipeline's own summary; dead letters are written to S3 too
    c = m["counts"]
    assert (c["read"], c["labeled"], c["rejected"]) == (26, 24, 2)
    assert c["rejected_by_reason"] == {"empty_text": 1, "unknown_label": 1}
    assert c["teacher_rows"] == 24 and c["teacher_tokens"] == local["counts"]["teacher_tokens"] > 0
    assert c == local["counts"]
    # byte-identical to the local in-memory run: same files, same checksums, same data hash
    assert [(s["file"], s["rows"], s["sha256"]) for s in m["shards"]] == \
        [(s["file"], s["rows"], s["sha256"]) for s in local["shards"]]
    assert m["data_hash"] == local["data_hash"] and len(m["shards"]) == 5
    assert "--direct_running_mode=multi_processing" in m["beam_options"]
    assert SECRET not in json.dumps(m) and "--s3_secret_access_key=***" in m["beam_options"]

    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix="runs/1/label/")["Contents"])
    assert keys == sorted(["runs/1/label/manifest.json", "runs/1/label/config.resolved.yaml"]
                          + [f"runs/1/label/{s['file']}" for s in m["shards"] + m["rejected_files"]])
    stored = json.loads(s3.get_object(Bucket=BUCKET, Key="runs/1/label/manifest.json")["Body"].read())
    assert stored["data_hash"] == m["data_hash"] and stored["counts"] == c

    # the train stage's reader: the same URI through pyarrow's S3 filesystem, configured from AWS_* env
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    remote, ref = ShardStream(uri, batch_size=4), ShardStream(tmp_path / "local", batch_size=4)
    assert remote.num_rows == ref.num_rows == 24 and len(remote) == len(ref)
    for a, b in zip(remote.epoch(0), ref.epoch(0), strict=True):
        assert a.texts == b.texts
        np.testing.assert_array_equal(a.teacher, b.teacher)
        np.testing.assert_array_equal(a.gold, b.gold)

    # a shard changed on S3 after the manifest was written is caught by its checksum
    first = m["shards"][0]["file"]
    s3.put_object(Bucket=BUCKET, Key=f"runs/1/label/{first}", Body=b"not the shard")
    with pytest.raises(IntegrityError, match="sha256"):
        read_manifest(uri)
    s3.delete_object(Bucket=BUCKET, Key="runs/1/label/manifest.json")
    with pytest.raises(IntegrityError, match="no manifest.json"):
        ShardStream(uri, batch_size=4)


# ---------------------------------------------------------------- an object store that does not answer
def _label_cli(tmp_path, cfg, out: str, *flags: str) -> tuple[int, float]:
    """`zuoxiao label` in this process with Beam flags; (exit code, seconds)."""
    import yaml

    from zuoxiao.cli import main

    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    t0 = time.monotonic()
    rc = main(["label", str(path), "--output", out, "--", *flags])
    return rc, time.monotonic() - t0


def test_refused_endpoint_fails_in_bounded_time_naming_endpoint_and_setting(tmp_path, make_cfg, capsys):
    """Nothing listens on the port: Beam's S3 client alone retried that for over 10 minutes (exit 1 at
    the end). Now one request within label.beam.object_store's limits, then exit 2 before any compute."""
    pytest.importorskip("boto3")
    port = _free_port()  # bound, then closed: connections to it are refused
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES),
                   beam={"object_store": {"connect_timeout_s": 2, "read_timeout_s": 5, "max_attempts": 2}})
    rc, seconds = _label_cli(tmp_path, cfg, f"s3://{BUCKET}/runs/1/label",
                                f"--s3_endpoint_url=http://127.0.0.1:{port}", f"--s3_access_key_id={KEY_ID}",
                                f"--s3_secret_access_key={SECRET}", "--s3_region_name=us-east-1")
    err = capsys.readouterr().err
    assert rc == 2, err[-2000:]
    assert seconds < 60, f"took {seconds:.0f} s"
    assert f"the object store at http://127.0.0.1:{port} did not answer for s3://{BUCKET}/runs/1/label" in err
    assert "label.beam.object_store: connect_timeout_s=2, read_timeout_s=5, max_attempts=2" in err
    assert "check --s3_endpoint_url" in err and "Traceback" not in err and SECRET not in err


def test_missing_bucket_is_a_named_error(tmp_path, make_cfg, s3_endpoint, capsys):
    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES))
    rc, seconds = _label_cli(tmp_path, cfg, "s3://no-such-bucket/label", f"--s3_endpoint_url={s3_endpoint}",
                                f"--s3_access_key_id={KEY_ID}", f"--s3_secret_access_key={SECRET}",
                                "--s3_region_name=us-east-1")
    err = capsys.readouterr().err
    assert rc == 2 and seconds < 60, err[-2000:]
    assert f"the object store at {s3_endpoint} refused bucket 'no-such-bucket' for s3://no-such-bucket/label (404" in err
