"""SimCLR training (Chen et al. 2020), small enough for a 2-core CPU.

Two augmented views of each image go through the backbone and an MLP
projection head; the NT-Xent loss (temperature 0.5) pulls the two views
together and pushes the other 2B-2 images of the batch away.  The embedding
kept for retrieval is the backbone output, before the head.

Runs are seeded and reproducible: epoch e shuffles with a generator seeded by
(seed, e) and reseeds torch's global generator (which the augmentations draw
from) the same way, so a run resumed from the checkpoint of epoch e gives the
same weights as an uninterrupted one.  A checkpoint is written after every epoch.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from nps.encoders.augment import make_augment, normalise, to_chw, two_views
from nps.encoders.backbones import build_backbone, default_backbone
from nps.encoders.evaluate import knn_accuracy, stratified_rows
from nps.encoders.hparams import check_simclr_config
from nps.errors import NPSError

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """Hyperparameters of a SimCLR run (defaults fit ~20 min of MNIST on 2 CPU cores)."""

    epochs: int = 5
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-5
    temperature: float = 0.5
    warmup_steps: int = 50
    proj_dim: int = 64
    backbone: str | None = None        # None: small_cnn for grayscale, resnet18 for colour
    width: int | None = None
    readout: str = "max"               # small_cnn global pooling, "avg" or "max" (max: +1-2% kNN on glyphs)
    augment: str | None = None         # None: glyph, garment or colour by corpus (see augment.py)
    aug_group: int = 8                 # images per draw of augmentation parameters (speed on CPU)
    seed: int = 0
    device: str = "cpu"
    monitor_train: int = 5000          # quick kNN check after each epoch on a stratified subset
    monitor_test: int = 1000
    max_steps_per_epoch: int | None = None  # for tests
    extra: dict = field(default_factory=dict)


class SimCLRModel(nn.Module):
    """Backbone plus projection head: x -> (h, z); h is the embedding, z feeds the loss."""

    def __init__(self, backbone: nn.Module, proj_dim: int = 64) -> None:
        super().__init__()
        self.backbone = backbone
        d = backbone.out_dim
        self.head = nn.Sequential(nn.Linear(d, d, bias=False), nn.BatchNorm1d(d), nn.ReLU(inplace=True),
                                  nn.Linear(d, proj_dim))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.backbone(x)
        return h, self.head(h)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent loss of SimCLR.

    Args:
        z1, z2: (B,P) projections of the two views; row i of each is a positive pair.
    Returns:
        scalar: mean over the 2B anchors of -log softmax(sim/t) at the positive,
        with each anchor's self-similarity excluded.
    """
    b = z1.shape[0]
    z = nn.functional.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    sim = sim.masked_fill(torch.eye(2 * b, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return nn.functional.cross_entropy(sim, target)


def _lr_lambda(warmup: int, total: int):
    def f(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warmup) / max(1, total - warmup))))
    return f


@torch.no_grad()
def embed(net: nn.Module, images: np.ndarray, device: str = "cpu", batch_size: int = 256) -> np.ndarray:
    """(N,H,W[,C]) uint8 -> (N,D) float32 backbone features (not normalised)."""
    was_training = net.training
    net.eval()
    x = to_chw(torch.from_numpy(np.array(images, dtype=np.uint8)))
    out = [net(normalise(x[i:i + batch_size]).to(device)).float().cpu().numpy() for i in range(0, len(x), batch_size)]
    net.train(was_training)
    return np.concatenate(out)




def _read_checkpoint(path: Path) -> dict:
    """A training checkpoint (tensors and plain data only), or one NPSError line if it is damaged."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch.load raises many types for damaged files
        first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        raise NPSError(f"checkpoint '{path}' is damaged ({first}); delete it or drop --resume.") from None
    if not isinstance(state, dict):
        raise NPSError(f"checkpoint '{path}' is not a training checkpoint; delete it or drop --resume.")
    return state


def build_model(image_shape: tuple[int, ...], cfg: TrainConfig) -> SimCLRModel:
    channels = 1 if len(image_shape) == 2 else int(image_shape[2])
    name = cfg.backbone or default_backbone(image_shape)
    return SimCLRModel(build_backbone(name, channels, cfg.width, cfg.readout), cfg.proj_dim)


def weights_meta(corpus, cfg: TrainConfig, model: SimCLRModel) -> dict:
    """The metadata stored inside a weights file."""
    channels = 1 if len(corpus.image_shape) == 2 else int(corpus.image_shape[2])
    return {"backbone": cfg.backbone or default_backbone(corpus.image_shape), "in_channels": channels,
            "width": cfg.width, "readout": cfg.readout, "augment": cfg.augment,
            "image_shape": list(corpus.image_shape), "corpus": corpus.name,
            "dim": int(model.backbone.out_dim)}


def train_simclr(corpus, cfg: TrainConfig, checkpoint: Path | None = None, resume: bool = False,
                 progress: bool = True, stop_after: int | None = None) -> tuple[SimCLRModel, dict]:
    """Train SimCLR on ``corpus.train``.

    Args:
        corpus: a :class:`nps.corpora.Corpus` (uint8 images).
        checkpoint: a ``.pt`` file written after each epoch; with ``resume`` the run
            continues from it (it must come from the same config).
        progress: show a tqdm bar per epoch.
        stop_after: stop (checkpoint written) once this many epochs are done, as an
            interrupted run would; the schedule still spans ``cfg.epochs``.
    Returns:
        (model, report) where report has per-epoch loss, monitor kNN and wall time.
    Raises:
        NPSError: a hyper-parameter out of range (before any work), a damaged or foreign
            checkpoint, or a loss that becomes NaN/inf (the last good checkpoint is kept).
    """
    from tqdm import tqdm

    check_simclr_config(cfg)
    if len(corpus) < 4:
        raise NPSError(f"corpus '{corpus.name}' has {len(corpus)} training images; SimCLR needs at least 4.")
    torch.manual_seed(cfg.seed)
    model = build_model(corpus.image_shape, cfg).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    batch = min(cfg.batch_size, len(corpus))
    steps_per_epoch = len(corpus) // batch  # drop the ragged last batch (BN and NT-Xent like full batches)
    if cfg.max_steps_per_epoch:
        steps_per_epoch = min(steps_per_epoch, cfg.max_steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _lr_lambda(cfg.warmup_steps, cfg.epochs * steps_per_epoch))
    history: list[dict] = []
    start_epoch, elapsed = 0, 0.0
    conf = {k: v for k, v in asdict(cfg).items() if k not in ("device", "extra")}
    if resume and checkpoint is not None and Path(checkpoint).is_file():
        state = _read_checkpoint(Path(checkpoint))
        if state.get("config") != conf or state.get("corpus_hash") != corpus.content_hash:
            raise NPSError(f"checkpoint '{checkpoint}' comes from a different config or corpus; drop --resume "
                           "or use the same options.")
        try:
            model.load_state_dict(state["model"])
            opt.load_state_dict(state["optimizer"])
            sched.load_state_dict(state["scheduler"])
            start_epoch, history, elapsed = int(state["epoch"]), list(state["history"]), float(state["elapsed"])
        except (KeyError, ValueError, TypeError, RuntimeError):
            raise NPSError(f"checkpoint '{checkpoint}' is damaged; delete it or drop --resume.") from None
        log.info("resuming from %s at epoch %d", checkpoint, start_epoch)
    elif resume:
        log.warning("--resume: no checkpoint at %s; starting from scratch", checkpoint)

    augment = make_augment(corpus.image_shape, corpus.name, cfg.augment)
    images = to_chw(torch.from_numpy(np.array(corpus.train, dtype=np.uint8)))  # a writable copy
    monitor = bool(cfg.monitor_train and cfg.monitor_test and len(corpus.test))
    if monitor:
        mon_tr = stratified_rows(corpus.train_labels, cfg.monitor_train)
        mon_te = stratified_rows(corpus.test_labels, cfg.monitor_test)
    model.train()
    for epoch in range(start_epoch, cfg.epochs):
        t0 = time.perf_counter()
        gen = torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)
        torch.manual_seed(cfg.seed * 100_003 + epoch)  # augmentations draw from the global generator
        order = torch.randperm(len(images), generator=gen)
        losses = []
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for step in bar:
            idx = order[step * batch:(step + 1) * batch]
            v1, v2 = two_views(images[idx], augment, cfg.aug_group)
            _, z = model(torch.cat([v1, v2]).to(cfg.device))
            loss = nt_xent(z[:len(idx)], z[len(idx):], cfg.temperature)
            if not bool(torch.isfinite(loss)):
                raise NPSError(f"the SimCLR loss became {loss.item()} at epoch {epoch + 1}, step {step + 1}, so "
                               f"training stopped (the last checkpoint is kept); lower --lr (now {cfg.lr}) or "
                               f"raise --temperature (now {cfg.temperature}).")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
        bar.close()
        mon = None
        if monitor:
            tr = embed(model.backbone, corpus.train[mon_tr], cfg.device)
            te = embed(model.backbone, corpus.test[mon_te], cfg.device)
            mon = knn_accuracy(tr, corpus.train_labels[mon_tr], te, corpus.test_labels[mon_te], k=20)
        elapsed += time.perf_counter() - t0
        history.append({"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                        "monitor_knn": mon, "elapsed_s": round(elapsed, 1)})
        log.info("epoch %d: loss %.4f, monitor kNN@20 %s, %.0f s", epoch + 1, history[-1]["loss"], mon, elapsed)
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{cfg.epochs}: loss {history[-1]['loss']:.4f}  "
                       f"kNN@20 (subset {cfg.monitor_train}/{cfg.monitor_test}) {mon}  [{elapsed:.0f} s]")
        if checkpoint is not None:
            Path(checkpoint).parent.mkdir(parents=True, exist_ok=True)
            state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
                     "epoch": epoch + 1, "history": history, "elapsed": elapsed, "config": conf,
                     "corpus_hash": corpus.content_hash}
            from nps.cache import atomic_write
            atomic_write(checkpoint, lambda f, state=state: torch.save(state, f))
        if stop_after is not None and epoch + 1 >= stop_after:
            break
    model.eval()
    return model, {"history": history, "train_seconds": round(elapsed, 1), "config": conf}
