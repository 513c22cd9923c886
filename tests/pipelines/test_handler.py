import numpy as np
import torch

from zuoxiao.pipelines.handler import TeacherModelHandler, tokenize_texts
from zuoxiao.teacher import TeacherSource
from zuoxiao.teacher.classifier import load_classifier, load_tokenizer

TEXTS = ["a good movie", "the worst film ever made in the world", "fun", "i love this very long story"]


def test_tokenize_counts_untruncated_tokens(tiny_classifier):
    tok = load_tokenizer(str(tiny_classifier))
    ids, lengths, truncated = tokenize_texts(tok, TEXTS, max_length=6)
    full = [len(x) for x in tok(TEXTS)["input_ids"]]
    assert lengths == full
    assert [len(x) for x in ids] == [min(n, 6) for n in full]
    assert truncated == [n > 6 for n in full] and any(truncated) and not all(truncated)
    assert all(x[-1] == tok.sep_token_id for x in ids)  # truncation keeps [SEP]


def test_handler_dynamic_padding_matches_one_by_one(tiny_classifier):
    h = TeacherModelHandler(TeacherSource("classifier", str(tiny_classifier)), ["a", "b", "c"], num_threads=1)
    loaded = h.load_model()
    assert torch.get_num_threads() == 1
    tok = loaded.tokenizer
    ids, _, _ = tokenize_texts(tok, TEXTS, 32)
    batch = [{"id": str(i), "text": t, "input_ids": x} for i, (t, x) in enumerate(zip(TEXTS, ids, strict=True))]
    out = list(h.run_inference(batch, loaded))
    assert [r["id"] for r in out] == ["0", "1", "2", "3"] and "input_ids" not in out[0]
    model = load_classifier(str(tiny_classifier), ["a", "b", "c"])
    for x, r in zip(ids, out, strict=True):
        with torch.inference_mode():
            ref = model(input_ids=torch.tensor([x])).logits[0].numpy()
        assert r["logits"].dtype == np.float32 and r["logits"].shape == (3,)
        np.testing.assert_allclose(r["logits"], ref, atol=1e-5)
    assert h.get_num_bytes(batch) > 0
    # equal-length batch (the pipeline's case) runs unmasked and gives the same logits
    same = [{"id": "x", "text": "", "input_ids": ids[0]}, {"id": "y", "text": "", "input_ids": ids[0]}]
    out2 = list(h.run_inference(same, loaded))
    np.testing.assert_allclose(out2[0]["logits"], out[0]["logits"], atol=1e-5)
    np.testing.assert_array_equal(out2[0]["logits"], out2[1]["logits"])
