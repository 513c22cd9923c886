import torch
from torch import nn

from tests.student.compress.compress_fixtures import make_model, make_tokenizer
from zuoxiao.student.compress.lowrank import LowRankLinear, factorize, low_rank, rank_for_energy
from zuoxiao.student.compress.modelio import load_model, save_model


def test_full_rank_reproduces_layer():
    torch.manual_seed(0)
    lin = nn.Linear(24, 40)
    new, r = factorize(lin, rank=24)
    x = torch.randn(5, 24)
    assert r == 24 and isinstance(new, LowRankLinear)
    assert torch.allclose(lin(x), new(x), atol=1e-5)


def test_energy_rank_and_reconstruction_error_shrinks_with_rank():
    torch.manual_seed(0)
    # a rank-3 matrix plus small noise: 99% of the energy sits in 3 directions
    w = torch.randn(40, 3) @ torch.randn(3, 24) + 0.01 * torch.randn(40, 24)
    lin = nn.Linear(24, 40)
    with torch.no_grad():
        lin.weight.copy_(w)
    s = torch.linalg.svdvals(w)
    assert rank_for_energy(s, 0.99) == 3
    x = torch.randn(8, 24)
    errs = [float((factorize(lin, rank=r)[0](x) - lin(x)).abs().max()) for r in (1, 3, 12)]
    assert errs[0] > errs[1] > errs[2]


def test_low_rank_on_model_shrinks_params_and_reloads(tmp_path):
    tok = make_tokenizer(tmp_path / "tok")
    m = make_model()
    before = sum(p.numel() for p in m.parameters())
    rep = low_rank(m, [r"intermediate\.dense$", r"layer\.\d+\.output\.dense$"], rank=4)
    assert len(rep) == 4 and all(v["replaced"] for v in rep.values())  # not attention.output.dense
    # Linear(32, 64): 2048 weights -> 4 * (32 + 64) = 384, twice per layer, two layers
    assert before - sum(p.numel() for p in m.parameters()) == 4 * (2048 - 384)
    enc = tok(["good movie"], return_tensors="pt")
    ref = m(**enc).logits
    save_model(m, tok, tmp_path / "m")
    m2, _ = load_model(tmp_path / "m")
    assert torch.allclose(ref, m2(**enc).logits, atol=1e-6)


def test_low_rank_skips_layers_that_would_grow():
    m = make_model()
    rep = low_rank(m, [r"intermediate\.dense$"], rank=32)  # 32 * (32 + 64) > 32 * 64
    assert not any(v["replaced"] for v in rep.values())
    assert isinstance(m.bert.encoder.layer[0].intermediate.dense, nn.Linear)


def test_embedding_factorisation_full_rank_exact_reloads_and_exports(tmp_path):
    from zuoxiao.student.compress.export import export_onnx, max_abs_diff
    from zuoxiao.student.compress.lowrank import LowRankEmbedding

    tok = make_tokenizer(tmp_path / "tok")
    m = make_model()
    enc = tok(["good movie", "the plot was dull"], padding=True, return_tensors="pt")
    ref = m(**enc).logits
    full = low_rank(m, [r"word_embeddings$"], rank=32, force=True)
    assert isinstance(m.bert.embeddings.word_embeddings, LowRankEmbedding)
    assert full["bert.embeddings.word_embeddings"]["rank"] == 32
    assert torch.allclose(ref, m(**enc).logits, atol=1e-5)
    m = make_model()
    before = sum(p.numel() for p in m.parameters())
    low_rank(m, [r"word_embeddings$"], rank=8)
    v = m.config.vocab_size
    assert before - sum(p.numel() for p in m.parameters()) == v * 32 - 8 * (v + 32)
    save_model(m, tok, tmp_path / "m")
    m2, _ = load_model(tmp_path / "m")
    assert torch.allclose(m(**enc).logits, m2(**enc).logits, atol=1e-6)
    path = export_onnx(m2, tok, tmp_path / "m.onnx")
    assert max_abs_diff(m2, tok, path, ["good movie", "a fun story"], 16) < 1e-4
