import pytest
import torch

from tests.student.compress.compress_fixtures import dataset, make_model, make_tokenizer, train_briefly
from zuoxiao.core.errors import InputError
from zuoxiao.student.compress import prune
from zuoxiao.student.compress.magnitude import magnitude_prune, zero_fraction
from zuoxiao.student.compress.modelio import load_model, save_model, weights_bytes


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tok = make_tokenizer(tmp_path_factory.mktemp("tok"))
    return train_briefly(make_model(layers=3), tok), tok


def _params(m):
    return sum(p.numel() for p in m.parameters())


def _batches(tok):
    texts, labels = dataset(1)
    enc = tok(texts, padding=True, return_tensors="pt")
    soft = torch.nn.functional.one_hot(torch.tensor(labels), 2).float()
    return [(dict(enc), soft)]


def test_head_pruning_shapes_params_and_reload(trained, tmp_path):
    model, tok = trained
    import copy

    m = copy.deepcopy(model)
    scores = prune.importance(m, _batches(tok), "heads", "gradient")
    assert [s.shape[0] for s in scores] == [4, 4, 4] and all(float(s.sum()) > 0 for s in scores)
    keep = prune.top_k(scores, 0.5)
    before = _params(m)
    prune.prune_heads(m, keep)
    att = prune.encoder_layers(m)[0].attention
    # 4 heads of size 8 -> 2: q/k/v lose 16 rows (+bias) each, attention.output.dense 16 columns
    assert att.self.query.weight.shape == (16, 32) and att.output.dense.weight.shape == (32, 16)
    assert before - _params(m) == 3 * (3 * (16 * 32 + 16) + 16 * 32)
    enc = tok(["good movie", "awful plot"], padding=True, return_tensors="pt")
    ref = m(**enc).logits
    save_model(m, tok, tmp_path / "m")
    m2, _ = load_model(tmp_path / "m")
    assert torch.allclose(ref, m2(**enc).logits, atol=1e-6)
    assert prune.structure_of(m2)["heads"] == [2, 2, 2]


def test_pruning_all_but_kept_heads_keeps_function_of_kept_heads(trained):
    """Keeping every head is the identity; slicing must not perturb the kept computation."""
    import copy

    m = copy.deepcopy(trained[0])
    enc = trained[1](["very fun film"], return_tensors="pt")
    ref = m(**enc).logits
    prune.prune_heads(m, [[0, 1, 2, 3]] * 3)
    prune.prune_neurons(m, [list(range(64))] * 3)
    assert torch.allclose(ref, m(**enc).logits, atol=1e-6)


def test_neuron_and_layer_pruning(trained):
    import copy

    m, tok = copy.deepcopy(trained[0]), trained[1]
    scores = prune.importance(m, _batches(tok), "neurons", "activation")
    keep = prune.top_k(scores, 0.25)
    assert [len(k) for k in keep] == [16, 16, 16]
    before = _params(m)
    prune.prune_neurons(m, keep)
    assert before - _params(m) == 3 * (48 * 32 + 48 + 48 * 32)
    assert m.config.intermediate_size == 16
    prune.prune_layers(m, [0, 2])
    assert m.config.num_hidden_layers == 2 and len(prune.encoder_layers(m)) == 2
    m(**tok(["good"], return_tensors="pt"))  # still runs
    with pytest.raises(InputError, match="has 2 layers"):
        prune.prune_layers(m, [0, 5])


def test_magnitude_zeros_weights_but_not_bytes(trained, tmp_path):
    import copy

    m, tok = copy.deepcopy(trained[0]), trained[1]
    save_model(m, tok, tmp_path / "dense")
    info = magnitude_prune(m, 0.6, "global")
    assert abs(info["sparsity"] - 0.6) < 0.01 and abs(zero_fraction(m) - 0.6) < 0.01
    assert not any("weight_orig" in n for n, _ in m.named_parameters())  # made permanent
    save_model(m, tok, tmp_path / "sparse")
    assert weights_bytes(tmp_path / "sparse") == weights_bytes(tmp_path / "dense")  # honest: same dense file
    per_layer = magnitude_prune(copy.deepcopy(trained[0]), 0.5, "layer")
    assert abs(per_layer["sparsity"] - 0.5) < 0.01
