"""The incremental teacher cache: a second run with new rows sends only the new rows to the teacher."""

import logging

import numpy as np
import pyarrow.parquet as pq

from tests.pipelines.conftest import SENTENCES, write_tsv
from zuoxiao.core.labelout import read_rows
from zuoxiao.pipelines.cache import CACHE_SCHEMA, TeacherCache
from zuoxiao.pipelines.label import label_from_config


def _logits(out):
    return {r["text"]: r["logits"] for r in read_rows(out)}


def test_second_run_only_labels_new_rows(tmp_path, make_cfg, caplog):
    cache = tmp_path / "cache"
    first = write_tsv(tmp_path / "first.tsv", SENTENCES[:8])
    m1 = label_from_config(make_cfg(first), tmp_path / "run1", cache_dir=cache)
    assert m1["counts"]["cache_hits"] == 0 and m1["counts"]["cache_misses"] == 8 and m1["counts"]["teacher_rows"] == 8
    fp = m1["teacher"]["fingerprint"]
    files = list((cache / fp).glob("*.parquet"))
    assert files and sum(pq.read_metadata(f).num_rows for f in files) == 8
    assert pq.read_schema(files[0]).equals(CACHE_SCHEMA)

    second = write_tsv(tmp_path / "second.tsv", SENTENCES)  # 8 old + 4 new rows
    m2 = label_from_config(make_cfg(second), tmp_path / "run2", cache_dir=cache)
    c = m2["counts"]
    assert (c["cache_hits"], c["cache_misses"], c["teacher_rows"], c["labeled"]) == (8, 4, 4, 12)
    assert m2["cache"]["rows"] == 12
    # cached rows carry exactly the logits the teacher gave them the first time
    before, after = _logits(tmp_path / "run1"), _logits(tmp_path / "run2")
    for text, logits in before.items():
        assert after[text] == logits
    # the new rows' logits are the teacher's (same model, so close to the cached rows' scale)
    assert np.isfinite([after[t] for t in after]).all()

    # a different max_length is a different cache key: no hits
    cfg = make_cfg(second)
    cfg.label.teacher.max_length = 12
    m3 = label_from_config(cfg, tmp_path / "run3", cache_dir=cache)
    assert m3["counts"]["cache_hits"] == 0 and m3["counts"]["teacher_rows"] == 12

    # a corrupt cache file is only a warning and a miss; deleting the cache is always safe
    for f in (cache / fp).glob("*.parquet"):
        f.write_bytes(b"not parquet")
    with caplog.at_level(logging.WARNING):
        m4 = label_from_config(make_cfg(second), tmp_path / "run4", cache_dir=cache)
    assert m4["counts"]["cache_hits"] == 0 and m4["counts"]["labeled"] == 12
    assert "ignoring unreadable file" in caplog.text


def test_cache_is_bounded_oldest_first(tmp_path):
    import pyarrow as pa

    c = TeacherCache(tmp_path, "fp", 16)
    cdir = tmp_path / "fp"  # TeacherCache.dir is a string: the cache may live on any Beam filesystem
    cdir.mkdir(parents=True)
    for i, n in enumerate([5, 5, 5]):
        t = pa.Table.from_pydict({"text_hash": [f"{i}-{j}" for j in range(n)], "max_length": [16] * n,
                                  "logits": [[0.0, 1.0]] * n, "num_tokens": [3] * n, "truncated": [False] * n},
                                 schema=CACHE_SCHEMA)
        pq.write_table(t, cdir / f"2026010{i}T000000-x-part.parquet")
    assert c.evict(10) == {"rows": 10, "files": 2, "evicted_rows": 5}
    assert sorted(p.name[:9] for p in cdir.glob("*.parquet")) == ["20260101T", "20260102T"]
    assert len(c.valid_files()) == 2
    assert TeacherCache(tmp_path / "missing", "fp", 16).valid_files() == []
