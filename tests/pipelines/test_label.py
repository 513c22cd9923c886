"""End-to-end label runs on the tiny teacher: dead letters, manifest, determinism, runners, CLI."""

import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.pipelines.conftest import SENTENCES, write_tsv
from zuoxiao.core.errors import ConfigError
from zuoxiao.core.labelout import read_rows
from zuoxiao.core.shards import SHARD_SCHEMA, read_manifest, sha256_file
from zuoxiao.pipelines.label import label_from_config, run
from zuoxiao.teacher.classifier import load_classifier


def _rows(out):
    return read_rows(out)


def _rejected(out):
    return read_rows(out, "rejected_files")


def test_every_bad_input_class_lands_in_rejected(tmp_path, make_cfg):
    d = tmp_path / "in"
    d.mkdir()
    good = [{"id": f"j{i}", "sentence": t, "label": lab} for i, (t, lab) in enumerate(SENTENCES[:6])]
    lines = [json.dumps(r) for r in good] + [
        json.dumps({"id": "m1", "label": "1"}),                       # missing_text
        json.dumps({"id": "n1", "sentence": None, "label": "1"}),     # null_text
        json.dumps({"id": "s1", "sentence": 42, "label": "1"}),       # non_string_text
        json.dumps({"id": "e1", "sentence": "   ", "label": "1"}),    # empty_text
        json.dumps({"id": "u1", "sentence": "fine", "label": "9"}),   # unknown_label
        json.dumps({"id": "j0", "sentence": "again", "label": "1"}),  # duplicate_id
        json.dumps({"sentence": "no id", "label": "1"}),              # missing_id
        "{not json",                                                  # malformed_row
        json.dumps(["a", "list"]),                                    # malformed_row
        json.dumps({"id": "t1", "sentence": "word " * 50, "label": "0"}),  # truncated, kept
        json.dumps({"id": "g1", "sentence": "no gold label here", "label": None}),  # unlabelled, kept
    ]
    (d / "a.jsonl").write_text("\n".join(lines) + "\n")
    tsv = b"id\tsentence\tlabel\nt2\tgood fun\t1\nt3\tbad \xff\xfe bytes\t0\nt4\ttoo\tmany\tfields\n"
    (d / "b.tsv").write_bytes(tsv)
    pq.write_table(pa.table({"id": ["p1", "p2"], "sentence": [b"valid bytes", b"\xc3\x28 invalid"],
                             "label": ["1", "0"]}), d / "c.parquet")
    out = tmp_path / "label"
    m = label_from_config(make_cfg([str(d / "*")], id_column="id", max_rejected_fraction=0.8), out)
    c = m["counts"]
    assert c["read"] == len(lines) + 3 + 2 == c["labeled"] + c["rejected"]
    assert c["rejected_by_reason"] == {
        "duplicate_id": 1, "empty_text": 1, "malformed_row": 3, "missing_id": 1, "missing_text": 1,
        "non_string_text": 1, "null_text": 1, "undecodable_bytes": 2, "unknown_label": 1,
    }
    assert c["labeled"] == 6 + 2 + 1 + 1 and c["truncated"] == 1
    rows = {r["id"]: r for r in _rows(out)}
    assert rows["t1"]["truncated"] and rows["t1"]["num_tokens"] == 52  # 50 words + [CLS] [SEP], before cut
    assert rows["g1"]["gold"] is None and rows["p1"]["text"] == "valid bytes"
    assert rows["j0"]["text"] == SENTENCES[0][0]  # the first occurrence wins
    rejected = _rejected(out)
    by_reason = {r["reason"]: r for r in rejected}
    assert json.loads(by_reason["unknown_label"]["row"]) == {"id": "u1", "label": "9", "sentence": "fine"}
    assert "9" in by_reason["unknown_label"]["detail"]
    bad_tsv = [r for r in rejected if r["source"].endswith("b.tsv") and r["reason"] == "undecodable_bytes"]
    assert json.loads(bad_tsv[0]["row"])["sentence"] == repr(b"bad \xff\xfe bytes")
    assert all(r["detail"] for r in rejected)


def test_manifest_shards_schema_and_determinism(tmp_path, make_cfg):
    rows = SENTENCES * 2
    path = write_tsv(tmp_path / "in.tsv", [(f"{t} {i}", lab) for i, (t, lab) in enumerate(rows)])
    cfg = make_cfg(path)
    a, b = tmp_path / "a", tmp_path / "b"
    ma = label_from_config(cfg, a)
    # stale output from an older run must not survive a rerun into the same dir
    (b / "shards").mkdir(parents=True)
    pq.write_table(pa.table({"x": [1]}), b / "shards" / "part-00099-of-00100.parquet")
    (b / ".work-dead" / "shards").mkdir(parents=True)  # the temp dir of a run killed with -9
    (b / ".work-dead" / "shards" / "part-00000-of-00005.parquet").write_bytes(b"half")
    mb = label_from_config(cfg, b)
    assert not list(b.glob(".work-*"))
    assert sorted(p.name for p in (b / "shards").iterdir()) == sorted(s["file"][7:] for s in mb["shards"])
    assert ma["data_hash"] == mb["data_hash"]
    assert [s["sha256"] for s in ma["shards"]] == [s["sha256"] for s in mb["shards"]]
    # counts and shards: 24 rows, 5 per shard -> 5 hash-assigned shards of similar size
    assert ma["counts"]["read"] == ma["counts"]["labeled"] == 24
    assert len(ma["shards"]) == 5 and sum(s["rows"] for s in ma["shards"]) == 24
    for s in ma["shards"]:
        assert sha256_file(a / s["file"]) == s["sha256"]
        t = pq.read_table(a / s["file"])
        assert t.schema.remove_metadata().equals(SHARD_SCHEMA)
        assert json.loads(t.schema.metadata[b"zuoxiao.label_names"]) == ["0", "1"]
        assert t.schema.metadata[b"zuoxiao.storage"] == b"full"
        assert t.column("id").to_pylist() == sorted(t.column("id").to_pylist())
        meta = pq.ParquetFile(a / s["file"]).metadata
        assert meta.row_group(0).column(0).compression == "ZSTD" and meta.row_group(0).num_rows <= 4
    assert ma["teacher"]["fingerprint"] and ma["teacher"]["max_length"] == 16
    assert ma["inputs"][0]["sha256"] == sha256_file(path)
    assert ma["num_classes"] == 2 and ma["storage"] == "full" and ma["schema_version"] == 1
    assert (a / "config.resolved.yaml").is_file() and not list(a.glob(".work-*"))
    # the stored logits are the teacher's, row by row
    model = load_classifier(str(cfg.label.teacher.path), ["0", "1"])
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(cfg.label.teacher.path)
    r = _rows(a)[0]
    import torch
    with torch.inference_mode():
        ref = model(**tok([r["text"]], return_tensors="pt")).logits[0].numpy()
    np.testing.assert_allclose(r["logits"], ref, atol=1e-5)
    # tampering is detected by the reader
    with open(a / ma["shards"][0]["file"], "ab") as f:
        f.write(b"x")
    from zuoxiao.core.errors import IntegrityError
    with pytest.raises(IntegrityError, match="sha256"):
        read_manifest(a)


def test_multi_processing_two_workers_gives_the_same_shards(tmp_path, make_cfg):
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    cfg = make_cfg(path)
    m1 = label_from_config(cfg, tmp_path / "one")
    m2 = label_from_config(cfg, tmp_path / "two",
                           beam_args=["--direct_num_workers=2", "--direct_running_mode=multi_processing"])
    assert "--direct_running_mode=multi_processing" in m2["beam_options"]
    assert m1["data_hash"] == m2["data_hash"] and m1["counts"] == m2["counts"] and m2["counts"]["labeled"] == 12
    assert [(s["file"], s["sha256"]) for s in m1["shards"] + m1["rejected_files"]] == \
        [(s["file"], s["sha256"]) for s in m2["shards"] + m2["rejected_files"]]
    # counts came from the pipeline's own summary (written by the workers through FileSystems),
    # and teacher counts from the written rows, not from process-local metrics
    assert m2["counts"]["teacher_rows"] == 12 and m2["counts"]["teacher_tokens"] == m1["counts"]["teacher_tokens"]


def test_failed_pipeline_keeps_the_previous_output(tmp_path, make_cfg, monkeypatch):
    """A run that dies inside the pipeline removes its temp dir and leaves the last good output intact."""
    from zuoxiao.pipelines import write

    cfg = make_cfg(write_tsv(tmp_path / "in.tsv", SENTENCES))
    out = tmp_path / "o"
    good = label_from_config(cfg, out)

    def broken(self, item, num_shards):
        raise OSError("disk full (simulated)")
        yield  # a generator, like the real process()

    monkeypatch.setattr(write.WriteShard, "process", broken)
    with pytest.raises(Exception, match="disk full"):
        label_from_config(cfg, out)
    assert read_manifest(out).data_hash == good["data_hash"]  # still complete and verified
    assert not list(out.glob(".work-*"))


def test_secrets_never_reach_the_manifest():
    from zuoxiao.pipelines.options import redact_flags

    assert redact_flags(["--s3_secret_access_key=abc", "--s3_access_key_id", "AKIA", "--project=p",
                         "--s3_session_token=t", "--runner=DirectRunner"]) == [
        "--s3_secret_access_key=***", "--s3_access_key_id", "***", "--project=p",
        "--s3_session_token=***", "--runner=DirectRunner"]


def test_topk_storage_and_automatic_label_map(tmp_path, make_cfg):
    rows = [(t, ["x", "y", "z"][i % 3]) for i, (t, _) in enumerate(SENTENCES)]
    path = write_tsv(tmp_path / "in.tsv", rows)
    cfg = make_cfg(path, label_names=None, max_full_classes=2, top_k=1)
    m = label_from_config(cfg, tmp_path / "o")
    assert m["label_names"] == ["x", "y", "z"] and m["label_source"] == "auto" and m["storage"] == "topk"
    for r in _rows(tmp_path / "o"):
        assert r["logits"] is None and len(r["topk_indices"]) == 1
        assert r["topk_indices"][0] == r["teacher_argmax"]
        assert r["residual_mass"] == pytest.approx(1 - np.exp(r["topk_logprobs"][0]), abs=1e-6)


def test_trained_teacher_names_its_labels(tmp_path, make_cfg, trained_teacher):
    path = write_tsv(tmp_path / "in.tsv", [(t, "pos" if lab == "1" else "neg") for t, lab in SENTENCES])
    m = label_from_config(make_cfg(path, label_names=None, teacher=trained_teacher), tmp_path / "o")
    assert m["label_names"] == ["neg", "pos"] and m["label_source"] == "teacher"
    assert {r["gold"] for r in _rows(tmp_path / "o")} == {0, 1}
    with pytest.raises(ConfigError, match="trained on 2"):
        label_from_config(make_cfg(path, label_names=["a", "b", "c"], teacher=trained_teacher), tmp_path / "p")


def test_augmentation_end_to_end(tmp_path, make_cfg):
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    cfg = make_cfg(path, augment={"enabled": True, "copies": 2, "p_mask": 0.3, "p_swap": 0.3, "seed": 1})
    m = label_from_config(cfg, tmp_path / "o")
    c = m["counts"]
    assert c["read"] == c["labeled"] + c["rejected"] == 12
    assert c["augmented"] > 0 and c["rows_in_shards"] == 12 + c["augmented"]
    aug = [r for r in _rows(tmp_path / "o") if r["augmented"]]
    assert len(aug) == c["augmented"] and all(r["gold"] is None for r in aug)
    assert any("[MASK]" in r["text"] for r in aug)


def test_joined_rows_end_to_end(tmp_path, make_cfg):
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    cfg = make_cfg(path, augment={"enabled": True, "copies": 0, "joins": 1, "seed": 1})
    m = label_from_config(cfg, tmp_path / "o")
    rows = _rows(tmp_path / "o")
    originals = {r["text"] for r in rows if not r["augmented"]}
    joined = [r for r in rows if r["augmented"]]
    # one per row, less any row whose only draw was itself (such a join equals the row and is dropped)
    assert 10 <= m["counts"]["augmented"] == len(joined) <= 12
    for r in joined:
        assert r["id"].endswith("~join0") and r["gold"] is None
        assert sum(t in r["text"] for t in originals) >= 2  # the row's own text and at least one partner
    again = label_from_config(cfg, tmp_path / "o2")
    assert sorted(r["text"] for r in _rows(tmp_path / "o2")) == sorted(r["text"] for r in rows)
    assert again["counts"] == m["counts"]


def test_cli_and_beam_style_entry(tmp_path, make_cfg, capsys):
    from zuoxiao.cli import main

    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    cfg_path = tmp_path / "cfg.yaml"
    cfg_path.write_text(yaml.safe_dump(make_cfg(path).model_dump(mode="json")))
    assert main(["label", str(cfg_path), "--output", str(tmp_path / "cli"), "--", "--runner=DirectRunner"]) == 0
    assert json.loads(capsys.readouterr().out)["counts"]["labeled"] == 12
    m = run(["--config", str(cfg_path), "--output", str(tmp_path / "beam"), "--set", "label.batch_size=3",
             "--runner=DirectRunner"])
    assert m["config"]["label"]["batch_size"] == 3
    # a different batch size changes GEMM shapes, so floats may differ in the last bits, not more
    a = {r["id"]: r["logits"] for r in _rows(tmp_path / "cli")}
    b = {r["id"]: r["logits"] for r in _rows(tmp_path / "beam")}
    assert a.keys() == b.keys()
    np.testing.assert_allclose([a[k] for k in sorted(a)], [b[k] for k in sorted(a)], atol=1e-5)
    assert main(["label", str(cfg_path), "--set", "label.batch_sise=3"]) == 2
    assert "batch_size" in capsys.readouterr().err
