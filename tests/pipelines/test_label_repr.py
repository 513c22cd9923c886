"""label.store_representation: the teacher's [CLS] state lands in the teacher_repr shard column."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch

from tests.pipelines.conftest import SENTENCES, write_tsv
from zuoxiao.core.shards import SHARD_SCHEMA, read_manifest
from zuoxiao.pipelines.label import label_from_config
from zuoxiao.teacher.classifier import load_classifier, load_tokenizer


def test_store_representation_writes_fp16_cls_states(tmp_path, make_cfg, tiny_teacher):
    path = write_tsv(tmp_path / "in.tsv", SENTENCES)
    m = label_from_config(make_cfg(path, store_representation=True), tmp_path / "on")
    assert m["teacher"]["repr_dim"] == 32
    tables = [pq.read_table(tmp_path / "on" / s.file) for s in read_manifest(tmp_path / "on").shards]
    t = pa.concat_tables(tables)
    assert t.schema.remove_metadata().equals(SHARD_SCHEMA)
    assert t.schema.field("teacher_repr").type.value_type == pa.float16()
    reps = np.asarray(t.column("teacher_repr").to_pylist(), dtype=np.float32)
    assert reps.shape == (len(SENTENCES), 32) and np.isfinite(reps).all()
    # the stored vector is the teacher's first-token final hidden state of that text (fp16-rounded)
    model, tok = load_classifier(str(tiny_teacher), ["0", "1"]), load_tokenizer(str(tiny_teacher))
    text = t.column("text")[0].as_py()
    with torch.inference_mode():
        out = model(**tok([text], truncation=True, max_length=16, return_tensors="pt"), output_hidden_states=True)
    np.testing.assert_allclose(reps[0], out.hidden_states[-1][0, 0].numpy(), atol=2e-2, rtol=1e-2)


def test_representation_off_writes_a_null_column(tmp_path, make_cfg):
    path = write_tsv(tmp_path / "in.tsv", SENTENCES[:4])
    m = label_from_config(make_cfg(path), tmp_path / "off")
    assert m["teacher"]["repr_dim"] is None
    t = pq.read_table(tmp_path / "off" / m["shards"][0]["file"])
    assert t.column("teacher_repr").null_count == t.num_rows


def test_an_ensemble_stores_its_first_members_representation(tmp_path):
    from tests.pipelines.tiny_teacher import build_tiny_teacher
    from zuoxiao.core.config.base import TeacherSpec
    from zuoxiao.teacher import TeacherSource, load_teacher

    a = str(build_tiny_teacher(tmp_path / "a", label_names=["neg", "pos"], seed=1))
    b = str(build_tiny_teacher(tmp_path / "b", label_names=["neg", "pos"], seed=2))
    ens = load_teacher(TeacherSource.of_spec(TeacherSpec(members=[{"path": a}, {"path": b}], max_length=16)))
    texts = ["a very good movie", "i hate it"]
    assert ens.repr_dim == 32  # the first member's hidden size (tiny_teacher: 32)
    logits, reps = ens.predict_with_repr([], texts)
    np.testing.assert_allclose(logits, ens.predict_texts(texts), atol=1e-6)  # the combined soft labels
    model, tok = load_classifier(a, ["neg", "pos"]), load_tokenizer(a)
    with torch.inference_mode():
        out = model(**tok(texts, padding=True, truncation=True, max_length=16, return_tensors="pt"),
                    output_hidden_states=True)
    np.testing.assert_allclose(reps, out.hidden_states[-1][:, 0].numpy(), atol=1e-5)
