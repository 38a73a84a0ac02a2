"""One-layer LSTM -> multi-vector soft attention -> dropout -> linear over the emotions."""

from __future__ import annotations

import torch
from torch import nn


class MultiVectorAttention(nn.Module):
    """Attention pooling with ``n_att`` learned query vectors u_i (no bias).

    e_t = max_i u_i . h_t ;  alpha = softmax_t(e) over real frames ;  c = sum_t alpha_t h_t.
    With n_att = 1 this is the soft attention of Mirsamadi et al. (ICASSP 2017).
    """

    def __init__(self, hidden_size: int, n_att: int = 1, generator: torch.Generator | None = None):
        super().__init__()
        self.u = nn.Parameter(torch.empty(n_att, hidden_size))
        nn.init.normal_(self.u, std=hidden_size**-0.5, generator=generator)

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        scores = (h @ self.u.T).amax(dim=-1)  # (B, T): best-matching vector per frame
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=1)
        context = torch.bmm(weights.unsqueeze(1), h).squeeze(1)
        return context, weights

    def winners(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(B, T) index of the vector u_i that wins the max at each frame; -1 on padding.
        The same scores as ``forward``, read out for inspection only."""
        return (h @ self.u.T).argmax(dim=-1).masked_fill(~mask, -1)


class AttentionLSTM(nn.Module):
    def __init__(self, input_size: int, hidden_size: int = 64, num_layers: int = 1, n_att: int = 1,
                 dropout: float = 0.0, n_classes: int = 8, context_norm: bool = False, init: str = "default",
                 attention_seed: int | None = None):
        """``attention_seed``: the attention vectors draw from a stream of their own, so that models
        that differ only in N_att start from the same LSTM and output layer (common random numbers:
        the global stream would otherwise be advanced by n_att x hidden draws). None: the global stream."""
        super().__init__()
        gen = lambda: None if attention_seed is None else torch.Generator().manual_seed(attention_seed)  # noqa: E731
        self.lstm = nn.LSTM(input_size, hidden_size, num_layers=num_layers, batch_first=True)
        self.attention = MultiVectorAttention(hidden_size, n_att, gen())
        # The authors' LSTM-SA normalises the context vector over the batch before dropout.
        self.context_norm = nn.BatchNorm1d(hidden_size) if context_norm else nn.Identity()
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(hidden_size, n_classes)
        if init == "xavier":
            xavier_init(self, gen())  # the same stream from its start: u[0] as without xavier, rescaled

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, T, D) zero-padded, lengths (B,) -> logits (B, C), attention weights (B, T).

        The LSTM runs forward only, so padding after a sequence's end cannot reach its real
        frames, and masking the attention is enough: no packing needed.
        """
        h, _ = self.lstm(x)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        context, weights = self.attention(h, mask)
        return self.head(self.dropout(self.context_norm(context))), weights

    @torch.no_grad()
    def attention_map(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """For inspection (eval mode): logits (B, C), attention weights alpha (B, T) summing to 1
        over each utterance's real frames, and the winning vector per frame (B, T; -1 on padding)."""
        h, _ = self.lstm(x)
        mask = torch.arange(x.shape[1], device=x.device)[None, :] < lengths[:, None]
        context, weights = self.attention(h, mask)
        return self.head(self.dropout(self.context_norm(context))), weights, self.attention.winners(h, mask)


def xavier_init(model: AttentionLSTM, attention_generator: torch.Generator | None = None) -> None:
    """The authors' initialisation: LSTM input weights Xavier-normal, recurrent weights
    orthogonal, biases zero except the forget gate's, which start at 1 (in both of torch's bias
    vectors, as their code does: an effective forget bias of 2); attention vectors Xavier-normal."""
    h = model.lstm.hidden_size
    for name, p in model.lstm.named_parameters():
        if name.startswith("weight_ih"):
            nn.init.xavier_normal_(p)
        elif name.startswith("weight_hh"):
            nn.init.orthogonal_(p)
        else:  # bias_ih, bias_hh: gates in torch's order i, f, g, o
            with torch.no_grad():
                p.zero_()
                p[h : 2 * h] = 1.0
    nn.init.xavier_normal_(model.attention.u, generator=attention_generator)
