import json

import torch

from tests.student.compress.compress_fixtures import dataset, make_model, make_tokenizer, train_briefly
from zuoxiao.student.compress.vocab import trim_vocab, unk_rate


def _logits(model, tok, texts):
    with torch.no_grad():
        return model(**tok(texts, padding=True, return_tensors="pt")).logits


def test_trim_keeps_logits_on_in_vocabulary_text_and_shrinks(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    model = train_briefly(make_model(), tok)
    texts, _ = dataset(1)
    texts = texts + ["the actors was boring, not superb!"]
    before = _logits(model, tok, texts)
    emb_before = model.get_input_embeddings().weight.shape
    params_before = sum(p.numel() for p in model.parameters())

    model, new_tok, info = trim_vocab(model, tok, texts, tmp_path / "trimmed", keep_chars=False)
    after = _logits(model, new_tok, texts)
    assert torch.allclose(before, after, atol=1e-6), (before - after).abs().max()
    v = info["vocab_after"]
    assert v < emb_before[0] and model.get_input_embeddings().weight.shape == (v, emb_before[1])
    assert model.config.vocab_size == v == len(new_tok.get_vocab())
    assert params_before - sum(p.numel() for p in model.parameters()) == info["params_removed"] > 0
    # the same token sequence, renumbered; specials and [PAD] keep working
    assert new_tok.convert_ids_to_tokens(new_tok("good movie")["input_ids"]) == ["[CLS]", "good", "movie", "[SEP]"]
    assert new_tok.pad_token_id == model.config.pad_token_id == 0
    saved = json.loads((tmp_path / "trimmed" / "tokenizer.json").read_text())
    assert len(saved["model"]["vocab"]) == v
    assert (tmp_path / "trimmed" / "vocab.txt").read_text().splitlines()[: 3] == ["[PAD]", "[UNK]", "[CLS]"]


def test_keep_chars_lets_unseen_words_split_instead_of_unk(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    _, strict, _ = trim_vocab(make_model(), tok, ["good movie"], tmp_path / "a", keep_chars=False)
    _, chars, info = trim_vocab(make_model(), tok, ["good movie"], tmp_path / "b", keep_chars=True,
                                check_texts=["zebra quantum"])
    assert unk_rate(strict, ["zebra"]) == 1.0
    assert chars.tokenize("zebra") == ["z", "##e", "##b", "##r", "##a"]
    assert info["eval_unk_rate_before"] == 0.0 and info["eval_unk_rate_after"] == 0.0


def test_trim_positions_keeps_logits_and_reloads(tmp_path):
    from zuoxiao.student.compress.modelio import load_model, save_model
    from zuoxiao.student.compress.vocab import trim_positions

    tok = make_tokenizer(tmp_path / "tok")
    model = make_model()  # 64 positions
    texts = ["good movie", "the actors was boring , not superb"]
    before = _logits(model, tok, texts)
    info = trim_positions(model, 16)
    assert info == {"positions_before": 64, "positions_after": 16}
    assert model.bert.embeddings.position_embeddings.weight.shape == (16, 32)
    assert torch.allclose(before, _logits(model, tok, texts), atol=1e-6)
    save_model(model, tok, tmp_path / "m")
    again, _ = load_model(tmp_path / "m")
    assert torch.allclose(before, _logits(again, tok, texts), atol=1e-6)
