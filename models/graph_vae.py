"""Graph transformer VAE on dense adjacency matrices (seed 003, AstroBio-Gen).

Re-implements the ``RebuiltGraphVAE`` of the astrobiology platform of
audit report 003 ("AstroBio-Gen System Hardening & Production Readiness", 2025-10-01),
which lists a graph transformer VAE for metabolic-pathway graphs, ~8M parameters,
production-ready, tests required: node features are embedded, a stack of pre-norm transformer encoder
layers attends over the nodes of each graph with the attention biased by the
adjacency (a learned per-head edge bias) and, by default, masked to neighbours and
the node itself; ``mu``/``logvar`` heads give a diagonal Gaussian posterior per
node, the latent is drawn with the reparameterisation trick and an inner-product
decoder (with a learned scale and offset) scores every node pair. The loss is the
positively re-weighted edge BCE plus the KL term (VGAE style, KL divided by the
node count), both in float32.

How it differs: graphs are dense ``(b, n, n)`` adjacency matrices rather than
PyTorch Geometric edge lists (nothing to install, every pair is scored), there is
no multi-scale pooling, no biochemical constraint and no uncertainty head. The
reparameterisation noise ``eps`` is an input drawn from the seeded generator by
``example_inputs`` instead of ``torch.randn`` inside ``forward``, so train steps are
deterministic across versions and checkpointing recomputation. The audit's mask
dtype issue is handled the way it recommends: the additive bias is built in the
query's dtype, with the mask value taken from that dtype's ``finfo``.

Synthetic task: stochastic block model graphs (2 or 3 communities, dense inside,
sparse across) with random node features, all drawn from the seeded generator; the
metric is the edge AUC of the reconstructed adjacency over the off-diagonal pairs
(Mann-Whitney rank formula, ties averaged; higher is better).
"""
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from models._attention import attend
from models._base import ZooModel
from models._layers import CastingLayerNorm
from models._registry import register_model

# --- helpers -------------------------------------------------------------------

def sbm_graphs(batch_size: int, nodes: int, gen, p_in: float = 0.6, p_out: float = 0.05,
               communities: Tuple[int, int] = (2, 3)) -> Tuple[torch.Tensor, torch.Tensor]:
    """Symmetric stochastic-block-model adjacency (b, n, n) without self loops, and community ids (b, n).

    Each graph draws its community count from ``communities`` (inclusive) and each
    node its community uniformly, so block structure is not tied to node order.
    """
    counts = gen.integers(communities[0], communities[1] + 1, (batch_size, 1))  # (b, 1)
    member = torch.floor(gen.uniform((batch_size, nodes)) * counts.double()).long()  # (b, n)
    same = member.unsqueeze(2) == member.unsqueeze(1)  # (b, n, n)
    prob = p_out + (p_in - p_out) * same.float()  # (b, n, n)
    draws = gen.uniform((batch_size, nodes, nodes)) < prob
    upper = torch.triu(draws, diagonal=1)
    adj = (upper | upper.transpose(1, 2)).float()
    return adj, member


def edge_auc(scores: torch.Tensor, adj: torch.Tensor) -> float:
    """Mean per-graph AUC of ``scores`` (b, n, n) against ``adj`` (b, n, n) over pairs i < j.

    Rank (Mann-Whitney) formula with tied scores given their average rank; graphs
    with no edge or no non-edge are skipped (AUC undefined), NaN if all are.
    """
    scores = scores.detach().float().cpu().numpy()
    labels = adj.detach().float().cpu().numpy() > 0.5
    iu = np.triu_indices(scores.shape[-1], k=1)
    aucs = []
    for s, y in zip(scores, labels):
        s, y = s[iu], y[iu]
        pos = int(y.sum())
        neg = y.size - pos
        if pos == 0 or neg == 0:
            continue
        _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
        ends = np.cumsum(counts)
        ranks = ((ends - counts + 1 + ends) / 2.0)[inverse.reshape(-1)]  # 1-based average ranks
        aucs.append((ranks[y].sum() - pos * (pos + 1) / 2.0) / (pos * neg))
    return float(np.mean(aucs)) if aucs else float("nan")


# --- blocks --------------------------------------------------------------------

class AdjacencyAttention(nn.Module):
    """Multi-head self-attention over nodes with a learned per-head edge bias and a neighbour mask."""

    def __init__(self, dim: int, heads: int, mask_non_edges: bool):
        super().__init__()
        if dim % heads:
            raise ValueError("hidden width must be divisible by heads, got %d and %d" % (dim, heads))
        self.heads = heads
        self.mask_non_edges = mask_non_edges
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        # Starts at 1 so neighbours are favoured from the first step; the init keeps constants.
        self.edge_bias = nn.Parameter(torch.ones(heads))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:  # (b, n, d), (b, n, n)
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)  # (b, h, n, dh)
        adj = adj.to(q.dtype)
        bias = adj.unsqueeze(1) * self.edge_bias.to(q.dtype).view(1, -1, 1, 1)  # (b, h, n, n)
        if self.mask_non_edges:
            eye = torch.eye(n, dtype=torch.bool, device=x.device)
            blocked = (adj <= 0) & ~eye  # self loops keep every row attendable
            bias = bias.masked_fill(blocked.unsqueeze(1), torch.finfo(q.dtype).min)
        out = attend(q, k, v, bias, scale_scores=True)  # (b, h, n, dh)
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class GraphTransformerLayer(nn.Module):
    """Pre-norm transformer encoder layer whose attention sees the adjacency."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, mask_non_edges: bool):
        super().__init__()
        self.norm1 = CastingLayerNorm(dim)
        self.attn = AdjacencyAttention(dim, heads, mask_non_edges)
        self.norm2 = CastingLayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x: torch.Tensor, adj: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), adj)
        return x + self.mlp(self.norm2(x))


# --- model ---------------------------------------------------------------------

@dataclass(frozen=True)
class GraphVAEConfig:
    node_features: int = 32
    dim: int = 384
    depth: int = 4
    heads: int = 8
    mlp_ratio: int = 4
    latent: int = 64
    mask_non_edges: bool = True
    kl_weight: float = 1.0
    # Stochastic block model of the synthetic task.
    p_in: float = 0.6
    p_out: float = 0.05
    feature_signal: float = 1.0
    min_nodes: int = 2
    default_sizes: Tuple[int, ...] = (64,)


class GraphVAE(ZooModel):
    """Graph transformer encoder, Gaussian node latents, inner-product edge decoder."""

    size_axis = "nodes per graph"
    task_metric_name = "edge_auc"
    task_higher_is_better = True

    def __init__(self, config: GraphVAEConfig):
        super().__init__(config)
        c = config
        self.embed = nn.Linear(c.node_features, c.dim)
        self.layers = nn.ModuleList(
            [GraphTransformerLayer(c.dim, c.heads, c.mlp_ratio, c.mask_non_edges) for _ in range(c.depth)]
        )
        self.norm = CastingLayerNorm(c.dim)
        self.mu = nn.Linear(c.dim, c.latent)
        self.logvar = nn.Linear(c.dim, c.latent)
        # Decoder logit = scale * <z_i, z_j> + offset; the offset absorbs graph density.
        self.decoder_scale = nn.Parameter(torch.tensor(float(c.latent) ** -0.5))
        self.decoder_offset = nn.Parameter(torch.tensor(0.0))

    @classmethod
    def size_error(cls, config: GraphVAEConfig, size) -> Optional[str]:
        reason = super().size_error(config, size)
        if reason is None and size < config.min_nodes:
            reason = "graphs need at least %d nodes (one node pair), got %d" % (config.min_nodes, size)
        return reason

    def _check_inputs(self, adj: torch.Tensor, feats: torch.Tensor, eps: torch.Tensor) -> None:
        b, n = feats.shape[0], feats.shape[1]
        if feats.dim() != 3 or feats.shape[2] != self.config.node_features:
            raise ValueError("expected node features (b, n, %d), got %s"
                             % (self.config.node_features, tuple(feats.shape)))
        if tuple(adj.shape) != (b, n, n):
            raise ValueError("expected adjacency (%d, %d, %d), got %s" % (b, n, n, tuple(adj.shape)))
        if tuple(eps.shape) != (b, n, self.config.latent):
            raise ValueError("expected eps (%d, %d, %d), got %s" % (b, n, self.config.latent, tuple(eps.shape)))

    def encode(self, adj: torch.Tensor, feats: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance per node, each (b, n, latent)."""
        x = self.embed(feats)  # (b, n, d)
        for layer in self.layers:
            x = self.checkpointed(layer, x, adj)
        x = self.norm(x)
        return self.mu(x), self.logvar(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:  # (b, n, latent) -> edge logits (b, n, n)
        return torch.matmul(z, z.transpose(1, 2)) * self.decoder_scale + self.decoder_offset

    def forward(self, adj: torch.Tensor, feats: torch.Tensor, eps: torch.Tensor):
        """Edge logits (b, n, n), mu and logvar (b, n, latent); samples z only while training."""
        self._check_inputs(adj, feats, eps)
        mu, logvar = self.encode(adj, feats)
        z = mu + eps.to(mu.dtype) * torch.exp(0.5 * logvar) if self.training else mu
        return self.decode(z), mu, logvar

    def infer(self, adj: torch.Tensor, feats: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Edge probabilities (b, n, n) decoded from the posterior mean."""
        self._check_inputs(adj, feats, eps)
        mu, _ = self.encode(adj, feats)
        return torch.sigmoid(self.decode(mu))

    def example_inputs(self, batch_size: int, size, gen):
        self.check_size(size)
        c = self.config
        adj, member = sbm_graphs(batch_size, size, gen, c.p_in, c.p_out)
        # Contextual SBM: per-graph community centroids plus per-node noise, so features
        # carry a noisy copy of the block structure the adjacency also shows.
        centroids = gen.normal((batch_size, 3, c.node_features), std=c.feature_signal)  # (b, 3, f)
        feats = torch.gather(centroids, 1, member.unsqueeze(-1).expand(-1, -1, c.node_features))
        feats = feats + gen.normal((batch_size, size, c.node_features))  # (b, n, f)
        eps = gen.normal((batch_size, size, c.latent))
        return (adj, feats, eps), adj

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        logits, mu, logvar = outputs
        logits, mu, logvar = logits.float(), mu.float(), logvar.float()
        target = target.float().to(logits.device)
        n = target.shape[-1]
        off_diag = ~torch.eye(n, dtype=torch.bool, device=target.device)
        y = target[:, off_diag]  # (b, n*(n-1))
        # Re-weight edges by the non-edge/edge ratio so sparse graphs do not collapse to "no edge".
        pos = y.sum()
        pos_weight = ((y.numel() - pos) / pos.clamp(min=1.0)).clamp(min=1.0).detach()
        recon = F.binary_cross_entropy_with_logits(logits[:, off_diag], y, pos_weight=pos_weight)
        kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(-1).mean()
        return recon + self.config.kl_weight * kl / n

    def task_metric(self, outputs, target: torch.Tensor) -> float:
        scores = outputs[0] if isinstance(outputs, (tuple, list)) else outputs
        return edge_auc(scores, target)


# --- sizes ---------------------------------------------------------------------

_TINY = GraphVAEConfig(node_features=8, dim=32, depth=1, heads=2, mlp_ratio=2, latent=8, default_sizes=(16,))
_BASE = GraphVAEConfig()

# --- registrations -------------------------------------------------------------

register_model(
    "graph_vae_tiny", GraphVAE, _TINY,
    family="graph", description="graph transformer VAE, one layer, width 32, 16-node SBM graphs",
)
register_model(
    "graph_vae_base", GraphVAE, _BASE,
    family="graph", description="graph transformer VAE (4 layers, width 384, 8 heads), ~7.2M params, 64 nodes",
)
