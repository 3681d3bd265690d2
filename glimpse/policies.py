"""Stochastic heads for hard attention: where to look next, and which item to pick.

Both heads read the recurrent state ``hidden`` of shape ``(B, hidden_size)`` and return a
``torch.distributions`` object, so an agent samples an action and scores it with ``log_prob`` for
REINFORCE (see :mod:`glimpse.reinforce`).

* :class:`GaussianLocationPolicy` -- a continuous glimpse location ``(x, y)`` in normalized
  coordinates (see :mod:`glimpse`).
  Locations are a tanh-squashed Gaussian, so every sample lies in ``[-1, 1]`` and its
  log-probability is exact for what was sampled (no clamping).
* :class:`CategoricalItemPolicy` -- a discrete choice among ``N`` items, with a mask of forbidden
  items (e.g. already visited) that get probability exactly zero.

The functional forms (:func:`tanh_normal`, :func:`masked_softmax`, :func:`masked_categorical`)
are the source of truth; the modules only add the linear heads.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torch.distributions import Categorical, Independent, Normal, TanhTransform, TransformedDistribution

from glimpse.checks import check_number, check_positive_int, check_shape

__all__ = [
    "tanh_normal",
    "masked_softmax",
    "masked_categorical",
    "GaussianLocationPolicy",
    "CategoricalItemPolicy",
]


# ------------------------------------------------------------------------------------------------
# Functional forms
# ------------------------------------------------------------------------------------------------


def tanh_normal(mean: Tensor, std: Tensor) -> TransformedDistribution:
    r"""A diagonal Gaussian squashed by ``tanh``: :math:`y = \tanh(u)`, :math:`u \sim N(mean, std^2)`.

    Convention:
        ``mean`` is the *pre-squash* mean, shape ``(B, D)``; ``std`` is the pre-squash standard
        deviation, broadcastable to ``(B, D)`` and > 0. The last dimension is the event (for
        locations ``D = 2`` in ``(x, y)`` order), so ``log_prob`` returns ``(B,)``, summed over ``D``.
        Samples lie in ``[-1, 1]``; with a saturated mean they may equal ``+-1`` exactly in float32.

    Exact log-probability: the tanh transform keeps a one-element cache (``cache_size=1``), so
    ``log_prob`` of the *very tensor* returned by ``sample``/``rsample`` reuses the pre-tanh draw
    :math:`u` and evaluates :math:`\log N(u) - \sum_D \log(1 - \tanh^2 u)` with a stable formula,
    never ``atanh`` of a value rounded to ``+-1``. Scoring any other tensor (a copy, a ``.detach()``,
    a slice, or an older sample after a newer one was drawn) falls back to ``atanh`` and can give
    ``inf`` at the boundary: score a sample immediately, or use :meth:`GaussianLocationPolicy.sample`,
    which returns the sample and its log-probability together.

    Args:
        mean: pre-squash mean, ``(B, D)``.
        std: pre-squash standard deviation, broadcastable to ``mean``.

    Returns:
        A ``TransformedDistribution`` with batch shape ``(B,)`` and event shape ``(D,)``.

    Example:
        >>> dist = tanh_normal(torch.zeros(3, 2), torch.tensor(0.17))
        >>> y = dist.sample()
        >>> y.shape, dist.log_prob(y).shape
        (torch.Size([3, 2]), torch.Size([3]))
        >>> bool(y.abs().max() <= 1)
        True
    """
    check_shape(mean, "mean", "(B, D)")
    base = Independent(Normal(mean, std), 1)
    return TransformedDistribution(base, [TanhTransform(cache_size=1)])


def _check_forbidden(logits: Tensor, forbidden: Tensor | None) -> None:
    check_shape(logits, "logits", "(B, N)")
    if forbidden is None:
        return
    check_shape(forbidden, "forbidden", "(B, N)", dims=tuple(logits.shape))
    if forbidden.dtype != torch.bool:
        raise ValueError(f"forbidden must be a bool tensor (True = forbidden); got dtype {forbidden.dtype}")
    all_forbidden = forbidden.all(dim=-1)
    if bool(all_forbidden.any()):
        rows = all_forbidden.nonzero().flatten().tolist()
        raise ValueError(f"forbidden marks every item as forbidden in row(s) {rows}; at least one must stay allowed")


def _mask_logits(logits: Tensor, forbidden: Tensor | None) -> Tensor:
    _check_forbidden(logits, forbidden)
    if forbidden is None:
        return logits
    return logits.masked_fill(forbidden, float("-inf"))


def masked_softmax(logits: Tensor, forbidden: Tensor | None = None) -> Tensor:
    """Softmax over items in which forbidden items get probability exactly zero.

    Convention:
        ``logits`` is ``(B, N)``; ``forbidden`` is a bool ``(B, N)`` with ``True`` = forbidden
        (the opposite of an attention "keep" mask). Forbidden logits are replaced by ``-inf`` before
        the softmax, so they receive zero probability and zero gradient. The output is ``(B, N)``,
        each row summing to 1. A row with every item forbidden raises ``ValueError``.

    This is the same normalisation as ``masked_categorical(logits, forbidden).probs``; soft
    (item-wise) attention can use it directly as weights.

    Args:
        logits: unnormalised scores, ``(B, N)``.
        forbidden: optional bool mask, ``(B, N)``; ``True`` = forbidden.

    Returns:
        Probabilities, ``(B, N)``.

    Example:
        >>> masked_softmax(torch.zeros(1, 4), torch.tensor([[True, False, False, True]]))
        tensor([[0.0000, 0.5000, 0.5000, 0.0000]])
    """
    return torch.softmax(_mask_logits(logits, forbidden), dim=-1)


def masked_categorical(logits: Tensor, forbidden: Tensor | None = None) -> Categorical:
    """A ``Categorical`` over ``N`` items in which forbidden items are never sampled.

    Convention:
        As :func:`masked_softmax`: ``logits`` ``(B, N)``, ``forbidden`` bool ``(B, N)`` with
        ``True`` = forbidden. Forbidden items get logit ``-inf``: probability 0, ``log_prob`` of
        ``-inf`` and no contribution to the entropy. Samples are ``(B,)`` long indices in ``[0, N)``.
        A row with every item forbidden raises ``ValueError``.

    Args:
        logits: unnormalised scores, ``(B, N)``.
        forbidden: optional bool mask, ``(B, N)``; ``True`` = forbidden.

    Returns:
        ``torch.distributions.Categorical`` with batch shape ``(B,)``.

    Example:
        >>> dist = masked_categorical(torch.zeros(2, 3), torch.tensor([[True, True, False], [False, True, True]]))
        >>> dist.sample()
        tensor([2, 0])
    """
    return Categorical(logits=_mask_logits(logits, forbidden))


# ------------------------------------------------------------------------------------------------
# Modules
# ------------------------------------------------------------------------------------------------


class GaussianLocationPolicy(nn.Module):
    r"""Where to look next: a tanh-squashed Gaussian over normalized glimpse locations.

    Convention:
        Input ``hidden`` is ``(B, hidden_size)``. Locations are ``(B, loc_dims)``, ``(x, y)`` order
        for ``loc_dims=2``, normalized as in :mod:`glimpse`.
        The pre-squash mean is ``mu = W hidden + b``; a location is ``tanh(u)``, ``u ~ N(mu, std^2)``
        (see :func:`tanh_normal` for why the log-probability is exact and when it is not).
        ``log_prob`` and :meth:`entropy` are summed over ``loc_dims`` and have shape ``(B,)``.

    Standard deviation:
        ``learn_std=False`` (default) keeps ``std`` a fixed buffer, not a parameter. With
        ``learn_std=True`` the log-std is one state-independent ``nn.Parameter`` of shape
        ``(loc_dims,)`` (not a head on ``hidden``), initialised to ``log(std)``.

    Initialisation:
        The mean head starts with tiny weights and zero bias, so initial locations are spread
        around the image centre ``(0, 0)`` with a spread set by ``std`` alone.

    Args:
        hidden_size: size of the recurrent state.
        std: pre-squash standard deviation (initial value when learned).
        learn_std: learn a log-std parameter instead of keeping ``std`` fixed.
        loc_dims: number of location coordinates (2 for ``(x, y)``).

    Example:
        >>> policy = GaussianLocationPolicy(hidden_size=8)
        >>> policy.mode(torch.zeros(2, 8)).tolist()  # zero bias: the image centre
        [[0.0, 0.0], [0.0, 0.0]]
        >>> loc, log_prob = policy.sample(torch.randn(2, 8))
        >>> loc.shape, log_prob.shape
        (torch.Size([2, 2]), torch.Size([2]))
    """

    def __init__(self, hidden_size: int, std: float = 0.17, learn_std: bool = False, loc_dims: int = 2) -> None:
        super().__init__()
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.loc_dims = check_positive_int(loc_dims, "loc_dims")
        check_number(std, "std", open_low=True)
        self.learn_std = bool(learn_std)
        # std=0.17 is the fixed, not-learned location std of RAM-style models (Mnih et al., 2014).
        # Fixed because learning it under REINFORCE tends to collapse it (less noise = less variance)
        # before the locations are any good. On the [-1, 1] scale 0.17 is about a twelfth of the image
        # width: enough to explore around the mean, small enough that a location still mostly says
        # where the policy meant to look (and that tanh rarely saturates near the centre).
        log_std = torch.full((self.loc_dims,), math.log(std))
        if self.learn_std:
            self.log_std = nn.Parameter(log_std)
        else:
            self.register_buffer("log_std", log_std)
        self.mean_head = nn.Linear(self.hidden_size, self.loc_dims)
        nn.init.normal_(self.mean_head.weight, std=1e-3)
        nn.init.zeros_(self.mean_head.bias)

    @property
    def std(self) -> Tensor:
        """Pre-squash standard deviation, ``(loc_dims,)``."""
        return self.log_std.exp()

    def mean(self, hidden: Tensor) -> Tensor:
        """Pre-squash Gaussian mean ``mu``, ``(B, loc_dims)``; :meth:`mode` is ``tanh(mu)``."""
        check_shape(hidden, "hidden", "(B, hidden_size)", dims=(None, self.hidden_size))
        return self.mean_head(hidden)

    def forward(self, hidden: Tensor) -> TransformedDistribution:
        """Distribution over locations for each row of ``hidden`` ``(B, hidden_size)``.

        Batch shape ``(B,)``, event shape ``(loc_dims,)``; score a sample with ``log_prob`` on the
        very tensor that ``sample`` returned (see :func:`tanh_normal`).
        """
        return tanh_normal(self.mean(hidden), self.std)

    def sample(self, hidden: Tensor) -> tuple[Tensor, Tensor]:
        """Draw locations and their exact log-probabilities together.

        Returns:
            ``loc`` ``(B, loc_dims)`` in ``[-1, 1]`` (no gradient: REINFORCE, not reparameterised),
            and ``log_prob`` ``(B,)`` differentiable w.r.t. the mean head (and the log-std if learned).
        """
        dist = self(hidden)
        loc = dist.sample()
        return loc, dist.log_prob(loc)

    def sample_pre_squash(self, hidden: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """:meth:`sample`, also returning the pre-squash draw ``u`` (``loc = tanh(u)``), which
        :meth:`log_prob_pre_squash` re-scores exactly later (a stored ``loc`` may have rounded to ``+-1``).

        The same draw from torch's RNG and the same log-probability, bit for bit, as :meth:`sample`.

        Returns:
            ``loc`` ``(B, loc_dims)`` (no gradient), ``u`` ``(B, loc_dims)`` (no gradient), ``log_prob`` ``(B,)``.
        """
        dist = self(hidden)
        u = dist.base_dist.sample()
        return torch.tanh(u), u, self._log_prob_of(dist, u)

    def log_prob_pre_squash(self, hidden: Tensor, u: Tensor) -> Tensor:
        """Exact ``log pi(tanh(u))`` ``(B,)`` of stored pre-squash draws ``u`` ``(B, loc_dims)`` under the
        current policy: ``log N(u; mu, std^2) - sum log(1 - tanh(u)^2)``, the Jacobian in a stable form."""
        check_shape(u, "u", "(B, loc_dims)", dims=(hidden.shape[0], self.loc_dims))
        return self._log_prob_of(self(hidden), u)

    @staticmethod
    def _log_prob_of(dist: TransformedDistribution, u: Tensor) -> Tensor:
        # Summed in the order TransformedDistribution.log_prob sums, so that sample() and
        # sample_pre_squash() agree to the bit.
        tanh = dist.transforms[0]
        return -tanh.log_abs_det_jacobian(u, torch.tanh(u)).sum(-1) + dist.base_dist.log_prob(u)

    def mode(self, hidden: Tensor) -> Tensor:
        """Deterministic location for evaluation: ``tanh(mu)``, ``(B, loc_dims)`` in ``[-1, 1]``.

        This is the squashed Gaussian mean (the median of each coordinate), not the exact mean of
        the squashed distribution.
        """
        return torch.tanh(self.mean(hidden))

    def entropy(self, hidden: Tensor) -> Tensor:
        """Entropy of the *pre-squash* Gaussian, summed over ``loc_dims``: ``(B,)``.

        The entropy of ``tanh(u)`` has no closed form; it equals this value plus
        ``E[sum log(1 - tanh(u)^2)]`` <= 0, so this is an upper bound that ignores squashing. It
        depends on ``std`` only: as an entropy bonus it does nothing unless ``learn_std=True``.
        """
        check_shape(hidden, "hidden", "(B, hidden_size)", dims=(None, self.hidden_size))
        per_row = 0.5 * self.loc_dims * (1.0 + math.log(2 * math.pi)) + self.log_std.sum()
        return per_row.expand(hidden.shape[0])


class CategoricalItemPolicy(nn.Module):
    """Which item to pick: a categorical over ``num_items`` items with an optional forbidden mask.

    Convention:
        Input ``hidden`` is ``(B, hidden_size)``; logits are a linear head, ``(B, num_items)``.
        ``mask`` is a bool ``(B, num_items)`` with ``True`` = **forbidden** (e.g. already chosen);
        forbidden items get probability 0 and are never sampled, and a row with every item forbidden
        raises ``ValueError``. Samples are ``(B,)`` long indices. See :func:`masked_categorical`.

    Args:
        hidden_size: size of the recurrent state.
        num_items: number of items to choose from.

    Example:
        >>> policy = CategoricalItemPolicy(hidden_size=8, num_items=3)
        >>> dist = policy(torch.randn(2, 8), mask=torch.tensor([[True, True, False], [False, True, True]]))
        >>> dist.sample()
        tensor([2, 0])
    """

    def __init__(self, hidden_size: int, num_items: int) -> None:
        super().__init__()
        self.hidden_size = check_positive_int(hidden_size, "hidden_size")
        self.num_items = check_positive_int(num_items, "num_items")
        self.logits_head = nn.Linear(self.hidden_size, self.num_items)

    def logits(self, hidden: Tensor) -> Tensor:
        """Unmasked logits, ``(B, num_items)``."""
        check_shape(hidden, "hidden", "(B, hidden_size)", dims=(None, self.hidden_size))
        return self.logits_head(hidden)

    def forward(self, hidden: Tensor, mask: Tensor | None = None) -> Categorical:
        """Categorical over items for each row of ``hidden``; ``mask`` ``True`` = forbidden."""
        return masked_categorical(self.logits(hidden), mask)
