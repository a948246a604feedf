"""Behaviour of the graph transformer VAE (models/graph_vae.py) beyond the zoo contract."""
import numpy as np
import pytest
import torch

import models
from models import SeededGenerator, init_parameters
from models.graph_vae import GraphVAE, edge_auc, sbm_graphs


def _tiny(seed=0):
    model = models.create_model("graph_vae_tiny")
    init_parameters(model, seed)
    return model


def test_shapes_and_infer_gives_symmetric_probabilities():
    model = _tiny()
    c = model.config
    (adj, feats, eps), target = model.example_inputs(3, 11, SeededGenerator(0))
    assert adj.shape == (3, 11, 11) and feats.shape == (3, 11, c.node_features) and eps.shape == (3, 11, c.latent)
    assert torch.equal(target, adj)
    logits, mu, logvar = model(adj, feats, eps)
    assert logits.shape == (3, 11, 11) and mu.shape == logvar.shape == (3, 11, c.latent)
    model.eval()
    with torch.no_grad():
        probs = model.infer(adj, feats, eps)
    assert probs.shape == (3, 11, 11)
    assert float(probs.min()) >= 0.0 and float(probs.max()) <= 1.0
    assert torch.allclose(probs, probs.transpose(1, 2))


def test_size_rules():
    spec = models.get_spec("graph_vae_tiny")
    assert spec.size_error(2) is None and spec.size_error(17) is None
    assert "1" in spec.size_error(1) and "0" in spec.size_error(0)
    model = _tiny()
    with pytest.raises(ValueError, match="1"):
        model.example_inputs(2, 1, SeededGenerator(0))
    inputs, _ = model.example_inputs(1, 2, SeededGenerator(0))
    with pytest.raises(ValueError, match="eps"):
        model(inputs[0], inputs[1], inputs[2][..., :-1])


def test_sbm_graphs_are_symmetric_loop_free_and_block_structured():
    adj, member = sbm_graphs(8, 40, SeededGenerator(3), p_in=0.6, p_out=0.05)
    assert torch.equal(adj, adj.transpose(1, 2))
    assert float(torch.diagonal(adj, dim1=1, dim2=2).abs().sum()) == 0.0
    assert set(torch.unique(adj).tolist()) <= {0.0, 1.0}
    same = member.unsqueeze(2) == member.unsqueeze(1)
    off = ~torch.eye(40, dtype=torch.bool).expand(8, 40, 40)
    within = adj[same & off].mean().item()
    across = adj[~same].mean().item()
    assert 0.45 < within < 0.75 and across < 0.1
    counts = [len(torch.unique(m)) for m in member]
    assert set(counts) <= {2, 3} and len(set(counts)) == 2  # both community counts occur


def test_edge_auc_matches_pair_counting_with_ties():
    adj, _ = sbm_graphs(2, 12, SeededGenerator(4))
    assert edge_auc(adj, adj) == 1.0
    assert edge_auc(-adj, adj) == 0.0
    assert edge_auc(torch.zeros_like(adj), adj) == 0.5
    scores = torch.round(SeededGenerator(5).uniform((2, 12, 12)) * 4)  # many ties
    expected = []
    for s, y in zip(scores.numpy(), adj.numpy()):
        iu = np.triu_indices(12, k=1)
        s, y = s[iu], y[iu] > 0.5
        pos, neg = s[y], s[~y]
        wins = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
        expected.append(wins / (len(pos) * len(neg)))
    assert abs(edge_auc(scores, adj) - float(np.mean(expected))) < 1e-12


def test_noise_is_an_input_used_only_while_training():
    model = _tiny()
    (adj, feats, eps), _ = model.example_inputs(2, 9, SeededGenerator(6))
    torch.manual_seed(0)
    a = model(adj, feats, eps)[0]
    torch.manual_seed(1)
    b = model(adj, feats, eps)[0]
    assert torch.equal(a, b)  # no torch RNG inside forward
    assert not torch.allclose(model(adj, feats, eps * 0)[0], a)
    model.eval()
    assert torch.equal(model(adj, feats, eps)[0], model(adj, feats, eps * 0)[0])


def test_attention_is_masked_to_neighbours():
    # One layer: a node's posterior must not depend on the features of a non-neighbour.
    model = _tiny().eval()
    (adj, feats, eps), _ = model.example_inputs(1, 12, SeededGenerator(7))
    node = 0
    others = [j for j in range(1, 12) if adj[0, node, j] == 0]
    neighbours = [j for j in range(1, 12) if adj[0, node, j] == 1]
    assert others and neighbours
    with torch.no_grad():
        mu = model.encode(adj, feats)[0]
        far = feats.clone()
        far[0, others] += 5.0
        near = feats.clone()
        near[0, neighbours[0]] += 5.0
        assert torch.allclose(model.encode(adj, far)[0][0, node], mu[0, node], atol=1e-6)
        assert not torch.allclose(model.encode(adj, near)[0][0, node], mu[0, node], atol=1e-3)


def test_unmasked_variant_sees_the_whole_graph():
    import dataclasses

    config = dataclasses.replace(models.get_spec("graph_vae_tiny").config, mask_non_edges=False)
    model = GraphVAE(config).eval()
    init_parameters(model, 0)
    (adj, feats, eps), _ = model.example_inputs(1, 12, SeededGenerator(7))
    others = [j for j in range(1, 12) if adj[0, 0, j] == 0]
    far = feats.clone()
    far[0, others] += 5.0
    with torch.no_grad():
        assert not torch.allclose(model.encode(adj, far)[0][0, 0], model.encode(adj, feats)[0][0, 0], atol=1e-3)


def test_bfloat16_model_masks_in_its_own_dtype():
    model = _tiny()
    (adj, feats, eps), target = model.example_inputs(2, 10, SeededGenerator(8))
    ref = model.loss(model(adj, feats, eps), target)
    model = model.to(torch.bfloat16)
    logits, mu, logvar = model(adj.bfloat16(), feats.bfloat16(), eps.bfloat16())
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    loss = model.loss((logits, mu, logvar), target)
    assert loss.dtype == torch.float32 and abs(loss.item() - ref.item()) < 0.05 * abs(ref.item())


def test_short_training_raises_edge_auc():
    torch.manual_seed(0)
    model = _tiny()
    held_inputs, held_target = model.task_batch(16, 16, SeededGenerator(123))

    def auc():
        model.eval()
        with torch.no_grad():
            value = model.task_metric(model.infer(*held_inputs), held_target)
        model.train()
        return value

    before = auc()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = SeededGenerator(7)
    for _ in range(50):
        inputs, target = model.task_batch(8, 16, gen)
        opt.zero_grad()
        model.loss(model(*inputs), target).backward()
        opt.step()
    after = auc()
    assert model.task_higher_is_better and model.task_metric_name == "edge_auc"
    assert after > before + 0.05 and after > 0.72, (before, after)
