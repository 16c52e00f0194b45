"""RouteLLM 0.2.0's matrix-factorisation (MF) router, re-implemented offline.

Mirrors lm-sys/RouteLLM ``routellm/routers/matrix_factorization/model.py`` (``MFModel``, used
at routing time) and ``train_matrix_factorization.py`` (``MFModel_Train`` and
``train_loops``); the only intended difference is the prompt encoder: RouteLLM calls OpenAI's
``text-embedding-3-small`` (1536-d) inside ``forward``; we pass precomputed local embeddings
(all-MiniLM-L6-v2, 384-d, see :mod:`.embeddings`).

Model (``MFModel.__init__``)::

    P          = nn.Embedding(num_models, dim)                              # model embeddings
    text_proj  = nn.Sequential(nn.Linear(text_dim, dim, bias=False))        # if use_proj
    classifier = nn.Sequential(nn.Linear(dim, num_classes=1, bias=False))

Scoring (``MFModel.forward``)::

    model_embed  = normalize(P(model_id), p=2, dim=1)       # P / ||P||
    prompt_embed = text_proj(embedding(prompt))
    score        = classifier(model_embed * prompt_embed).squeeze()

Win probability (``MFModel.pred_win_rate(model_a, model_b, prompt)``)::

    sigmoid(score[a] - score[b])

and ``MatrixFactorizationRouter.calculate_strong_win_rate`` = ``pred_win_rate(strong, weak)``;
``Router.route`` sends the prompt to the strong model iff ``win_rate >= threshold``.

Training (``MFModel_Train.forward`` + ``train_loops``): for a pair (winner w, loser l) and
prompt embedding q (plus Gaussian noise ``alpha * randn`` during training, "to stabilise the
training")::

    logit = classifier((normalize(P[w]) - normalize(P[l])) * text_proj(q + noise))
    loss  = BCEWithLogits(logit, 1)

with Adam (lr 3e-4, weight decay 1e-5), batch size 64, dim 128, alpha 0.1, 100 epochs,
``torch.manual_seed(42)`` (the ``__main__`` example of the training script).  Since the
classifier is linear and bias-free, ``logit`` equals ``score[w] - score[l]`` of the routing
model, so training and routing use one scoring function.

Pairwise data from per-sample correctness (model 0 = weak/small, model 1 = strong/large):
the strong model wins where its score is higher (correct while the weak one is wrong), the
weak model wins where its score is higher; equal scores (both right, both wrong) are ties,
and ties are dropped, as RouteLLM's training script keeps only samples whose ``winner`` is
``model_a`` or ``model_b``.  RouteLLM also holds out 5% of the pairs to log a test accuracy it
never uses for selection (the last epoch is kept); we train on all decisive pairs.

Threshold (``routellm/calibrate_threshold.py``): the threshold for a target share ``p`` of
strong-model calls is ``quantile(win_rates, 1 - p)`` of the win rates on a reference set (the
calibration half here); pandas' default linear interpolation equals numpy's.

Checkpoints: RouteLLM's routing model saves ``P.weight``, ``text_proj.0.weight`` and
``classifier.0.weight`` (``nn.Sequential`` wrappers); the training model saves
``P.weight``, ``Q.weight`` (the prompt table, dropped on load), ``text_proj.weight`` and
``classifier.weight``.  :meth:`MFRouter.from_checkpoint` reads both (``.pt``/``.bin`` state
dicts, or ``model.safetensors`` of a hub folder such as ``routellm/mf_gpt4_augmented``, whose
strong/weak ids in RouteLLM's ``MODEL_IDS`` are 24 = gpt-4-1106-preview and
36 = mixtral-8x7b-instruct-v0.1).  A RouteLLM checkpoint expects 1536-d OpenAI embeddings:
pass embeddings of that kind to :meth:`MFRouter.win_rate`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from calib_harness.routing.base import Router, RoutingData, register_router
from calib_harness.routing.curves import RoutingCurve, routed_accuracy

#: RouteLLM's ids of the pair its released MF checkpoint was trained to route.
ROUTELLM_STRONG_ID = 24  # gpt-4-1106-preview
ROUTELLM_WEAK_ID = 36  # mixtral-8x7b-instruct-v0.1


class MFModel(nn.Module):
    """RouteLLM's ``MFModel`` with the prompt embedding passed in (no OpenAI client)."""

    def __init__(self, dim: int = 128, num_models: int = 2, text_dim: int = 384, num_classes: int = 1, use_proj: bool = True):
        super().__init__()
        self.use_proj = use_proj
        self.P = nn.Embedding(num_models, dim)
        if use_proj:
            self.text_proj = nn.Sequential(nn.Linear(text_dim, dim, bias=False))
        elif text_dim != dim:
            raise ValueError(f"text_dim {text_dim} must be equal to dim {dim} if not using projection")
        self.classifier = nn.Sequential(nn.Linear(dim, num_classes, bias=False))

    @property
    def text_dim(self) -> int:
        return self.text_proj[0].in_features if self.use_proj else self.P.embedding_dim

    def project(self, prompt_embed: torch.Tensor) -> torch.Tensor:
        return self.text_proj(prompt_embed) if self.use_proj else prompt_embed

    def forward(self, model_id: torch.Tensor | list[int], prompt_embed: torch.Tensor) -> torch.Tensor:
        """Scores ``classifier(normalize(P[m]) * text_proj(q))``.

        ``prompt_embed`` of shape ``(text_dim,)`` gives one score per model id (RouteLLM's
        call); ``(n, text_dim)`` gives an ``(n, len(model_id))`` matrix.
        """
        model_id = torch.as_tensor(model_id, dtype=torch.long, device=self.P.weight.device)
        model_embed = F.normalize(self.P(model_id), p=2, dim=1)  # (m, dim)
        q = self.project(prompt_embed)  # (dim,) or (n, dim)
        if q.dim() == 1:
            return self.classifier(model_embed * q).squeeze()
        return self.classifier(model_embed.unsqueeze(0) * q.unsqueeze(1)).squeeze(-1)

    @torch.no_grad()
    def pred_win_rate(self, model_a: int, model_b: int, prompt_embed: torch.Tensor) -> torch.Tensor:
        """``sigmoid(score[a] - score[b])`` per prompt."""
        logits = self.forward([model_a, model_b], prompt_embed)
        return torch.sigmoid(logits[..., 0] - logits[..., 1])

    def pair_logit(self, model_win: torch.Tensor, model_loss: torch.Tensor, prompt_embed: torch.Tensor, noise: float = 0.0) -> torch.Tensor:
        """``MFModel_Train.forward``: classifier((P^_w - P^_l) * text_proj(q + noise))."""
        w = F.normalize(self.P(model_win), p=2, dim=1)
        l = F.normalize(self.P(model_loss), p=2, dim=1)
        if noise > 0:
            prompt_embed = prompt_embed + torch.randn_like(prompt_embed) * noise
        return self.classifier((w - l) * self.project(prompt_embed)).squeeze(-1)


def pairwise_outcomes(weak_scores: np.ndarray, strong_scores: np.ndarray, weak_id: int = 0, strong_id: int = 1) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sample index, winner id, loser id) of the decisive pairs; ties are dropped."""
    w = np.asarray(weak_scores, dtype=np.float64)
    s = np.asarray(strong_scores, dtype=np.float64)
    idx = np.flatnonzero(w != s)
    strong_wins = s[idx] > w[idx]
    winner = np.where(strong_wins, strong_id, weak_id)
    loser = np.where(strong_wins, weak_id, strong_id)
    return idx, winner, loser


def _load_state_dict(source: str | Path | dict) -> dict[str, torch.Tensor]:
    if isinstance(source, dict):
        return dict(source)
    path = Path(source)
    if path.is_dir():
        cands = [path / "model.safetensors", path / "pytorch_model.bin"]
        found = [c for c in cands if c.exists()]
        if not found:
            raise FileNotFoundError(f"{path}: no model.safetensors or pytorch_model.bin in this checkpoint folder")
        path = found[0]
    if not path.exists():
        raise FileNotFoundError(f"MF checkpoint {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    return obj


def normalise_state_dict(sd: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Map either RouteLLM key layout to ``MFModel``'s (``text_proj.0.weight`` ...); drop ``Q``."""
    out = {}
    for k, v in sd.items():
        if k == "Q.weight":
            continue  # training-time prompt table
        k2 = {"text_proj.weight": "text_proj.0.weight", "classifier.weight": "classifier.0.weight"}.get(k, k)
        out[k2] = torch.as_tensor(v)
    if "P.weight" not in out or "classifier.0.weight" not in out:
        raise ValueError(f"not a RouteLLM MF state dict: keys {sorted(sd)} (need P.weight and classifier[.0].weight)")
    return out


@dataclass
class MFRouter:
    """Scikit-learn-like wrapper: ``fit`` on the calibration half, ``win_rate`` / ``route`` /
    ``curve`` on new prompt embeddings.  Model 0 is the weak (small) model, 1 the strong one,
    unless a RouteLLM checkpoint says otherwise (``strong_id`` / ``weak_id``)."""

    dim: int = 128
    epochs: int = 100
    batch_size: int = 64
    lr: float = 3e-4
    weight_decay: float = 1e-5
    alpha: float = 0.1
    use_proj: bool = True
    seed: int = 42
    strong_id: int = 1
    weak_id: int = 0
    num_models: int = 2
    progress: bool = False
    model_: MFModel | None = field(default=None, repr=False)
    reference_win_rates_: np.ndarray | None = field(default=None, repr=False)
    train_losses_: list[float] = field(default_factory=list, repr=False)
    n_pairs_: int = 0

    # -- training ------------------------------------------------------------------------
    def fit(self, prompt_embeddings: np.ndarray, weak_scores: np.ndarray, strong_scores: np.ndarray) -> "MFRouter":
        """Train on the decisive pairs (from scratch, or fine-tune a loaded checkpoint) and keep
        the win rates of these prompts as the reference for quantile thresholds."""
        q = torch.as_tensor(np.asarray(prompt_embeddings, dtype=np.float32))
        idx, win, loss = pairwise_outcomes(weak_scores, strong_scores, self.weak_id, self.strong_id)
        self.n_pairs_ = int(idx.size)
        torch.manual_seed(self.seed)
        gen = torch.Generator().manual_seed(self.seed)
        if self.model_ is None:
            self.model_ = MFModel(self.dim, self.num_models, q.shape[1], 1, self.use_proj)
        elif self.model_.text_dim != q.shape[1]:
            raise ValueError(f"checkpoint expects {self.model_.text_dim}-d prompt embeddings, got {q.shape[1]}-d")
        model = self.model_
        if idx.size == 0:
            raise ValueError("no decisive pairs (the two models always agree in score): MF cannot be trained")
        qi = q[torch.as_tensor(idx)]
        wi = torch.as_tensor(win, dtype=torch.long)
        li = torch.as_tensor(loss, dtype=torch.long)
        opt = torch.optim.Adam(model.parameters(), lr=self.lr, weight_decay=self.weight_decay)
        bce = nn.BCEWithLogitsLoss(reduction="mean")
        from tqdm.auto import trange

        model.train()
        self.train_losses_ = []
        for _ in trange(self.epochs, desc="MF router", disable=not self.progress):
            perm = torch.randperm(len(idx), generator=gen)
            total = 0.0
            for start in range(0, len(idx), self.batch_size):
                b = perm[start : start + self.batch_size]
                out = model.pair_logit(wi[b], li[b], qi[b], noise=self.alpha)
                ls = bce(out, torch.ones_like(out))
                opt.zero_grad()
                ls.backward()
                opt.step()
                total += ls.item() * len(b)
            self.train_losses_.append(total / len(idx))
        model.eval()
        self.reference_win_rates_ = self.win_rate(prompt_embeddings)
        return self

    # -- checkpoints -----------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, source: str | Path | dict, strong_id: int = ROUTELLM_STRONG_ID, weak_id: int = ROUTELLM_WEAK_ID, **kwargs) -> "MFRouter":
        """Load a RouteLLM MF checkpoint (either key layout, see module docstring)."""
        sd = normalise_state_dict(_load_state_dict(source))
        num_models, dim = sd["P.weight"].shape
        use_proj = "text_proj.0.weight" in sd
        text_dim = sd["text_proj.0.weight"].shape[1] if use_proj else dim
        model = MFModel(dim, num_models, text_dim, sd["classifier.0.weight"].shape[0], use_proj)
        model.load_state_dict(sd)
        model.eval()
        for i in (strong_id, weak_id):
            if not 0 <= i < num_models:
                raise ValueError(f"model id {i} out of range for a checkpoint with {num_models} models")
        return cls(dim=dim, num_models=num_models, use_proj=use_proj, strong_id=strong_id, weak_id=weak_id, model_=model, **kwargs)

    def state_dict(self) -> dict[str, torch.Tensor]:
        """RouteLLM routing-model layout (``P.weight``, ``text_proj.0.weight``, ``classifier.0.weight``)."""
        self._check()
        return {k: v.detach().clone() for k, v in self.model_.state_dict().items()}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        torch.save(self.state_dict(), path)
        return path

    # -- routing ---------------------------------------------------------------------------
    def _check(self) -> None:
        if self.model_ is None:
            raise RuntimeError("MF router is not fitted or loaded")

    def win_rate(self, prompt_embeddings: np.ndarray) -> np.ndarray:
        """``calculate_strong_win_rate`` for each prompt: sigmoid(score[strong] - score[weak])."""
        self._check()
        q = torch.as_tensor(np.asarray(prompt_embeddings, dtype=np.float32))
        if q.dim() != 2 or q.shape[1] != self.model_.text_dim:
            raise ValueError(f"expected (n, {self.model_.text_dim}) prompt embeddings, got {tuple(q.shape)}")
        return self.model_.pred_win_rate(self.strong_id, self.weak_id, q).double().numpy()

    def calibrate_threshold(self, strong_model_pct: float, reference_win_rates: np.ndarray | None = None) -> float:
        """``quantile(win_rates, 1 - strong_model_pct)`` (RouteLLM's calibrate_threshold.py)."""
        ref = self.reference_win_rates_ if reference_win_rates is None else np.asarray(reference_win_rates)
        if ref is None:
            raise RuntimeError("no reference win rates: fit() first or pass reference_win_rates")
        return float(np.quantile(ref, 1.0 - strong_model_pct))

    def route(self, prompt_embeddings: np.ndarray, threshold: float) -> np.ndarray:
        """``"large"`` where the strong model's win rate >= threshold (RouteLLM's Router.route)."""
        return np.where(self.win_rate(prompt_embeddings) >= threshold, "large", "small")

    def curve(
        self,
        prompt_embeddings: np.ndarray,
        weak_scores: np.ndarray,
        strong_scores: np.ndarray,
        strong_pcts: np.ndarray | None = None,
        name: str = "MF",
    ) -> RoutingCurve:
        """Share kept on the weak model and accuracy on new data, one point per target
        strong-model share (thresholds from the reference/calibration win rates)."""
        pcts = np.linspace(0.0, 1.0, 101) if strong_pcts is None else np.asarray(strong_pcts, dtype=np.float64)
        wr = self.win_rate(prompt_embeddings)
        share, acc = [], []
        for p in pcts:
            keep = wr < self.calibrate_threshold(float(p))
            share.append(float(keep.mean()))
            acc.append(routed_accuracy(keep, weak_scores, strong_scores))
        return RoutingCurve(name, np.array(share), np.array(acc), pcts, {"n_pairs": self.n_pairs_})


@register_router("MF")
class MFCascadeRouter(Router):
    """RouteLLM's MF router behind the router protocol: ``score`` = the strong model's win rate.

    Trained from scratch on the calibration half's prompts and pairwise outcomes, or loaded from
    a RouteLLM ``checkpoint`` (fine-tuned on the calibration half unless ``finetune=False``).
    Its curve has one point per distinct win rate (every threshold; RouteLLM's calibrated
    thresholds, quantiles of the calibration half's win rates, pick points of this curve).
    """

    order = 30
    plot_style = {"color": "tab:brown", "lw": 1.4}
    needs_prompts = True

    def __init__(
        self,
        dim: int = 128,
        epochs: int = 100,
        checkpoint: str | None = None,
        strong_id: int | None = None,
        weak_id: int | None = None,
        finetune: bool = True,
        progress: bool = False,
    ):
        self.dim = dim
        self.epochs = epochs
        self.checkpoint = checkpoint
        self.strong_id = strong_id
        self.weak_id = weak_id
        self.finetune = finetune
        self.progress = progress

    def _fit(self, calib: RoutingData) -> None:
        q = calib.embeddings()
        if self.checkpoint:
            ids = {k: v for k, v in (("strong_id", self.strong_id), ("weak_id", self.weak_id)) if v is not None}
            mf = MFRouter.from_checkpoint(self.checkpoint, progress=self.progress, epochs=self.epochs, **ids)
            if self.finetune:
                mf.fit(q, calib.small_scores, calib.large_scores)
            else:
                mf.reference_win_rates_ = mf.win_rate(q)
        else:
            mf = MFRouter(dim=self.dim, epochs=self.epochs, progress=self.progress).fit(q, calib.small_scores, calib.large_scores)
        self.mf_ = mf

    def score(self, data: RoutingData) -> np.ndarray:
        return self.mf_.win_rate(data.embeddings())

    def info(self) -> dict[str, Any]:
        d = super().info()
        if hasattr(self, "mf_"):
            mf = self.mf_
            d.update({"n_pairs": mf.n_pairs_, "final_train_loss": (mf.train_losses_ or [None])[-1]})
        return d
