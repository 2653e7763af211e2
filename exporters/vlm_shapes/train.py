"""Train the vlm-shapes input projector (stage-1 alignment, LLaVA style): the ViT
encoder and Gemma 3 270M (float32, from the GGUF) stay frozen; only an MLP from
the encoder's pooled tokens [17,384] to Gemma's embedding width 640 is trained,
with next-token cross-entropy on the answer tokens of captions and QA pairs.

    python -m exporters.vlm_shapes.train --minutes 30     # writes exporters/vlm_shapes/projector.npz
    python -m exporters.vlm_shapes.train --minutes 15 --lr 1e-3 --seed 1 --init exporters/vlm_shapes/projector.npz   # continued

Needs the cached features (python -m exporters.vlm_shapes.features train 1600 / val 200).
Fixed seed; logs loss and validation accuracy (teacher-forced: the share of
validation captions whose every token is the argmax, i.e. that greedy decoding
reproduces exactly, and per-token accuracy). The weights are saved as float16
(the bundle's projector.onnx is built from exactly those values).
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..gemma3.reference import HF_DIR, load
from .data import CAPTION_PROMPTS, scene, seed
from .encoder import TOKENS, WIDTH
from .features import load as load_features

#: The trained projector weights (float16), committed beside this module.
WEIGHTS = Path(__file__).resolve().parent / "projector.npz"
HIDDEN = 1024
D_LLM = 640
# Prompt format of the bundle (mirrors the manifest and src/prompt.rs: placeholder + "\n" + user text).
TEMPLATE = "{content}\n"
PLACEHOLDER = "<start_of_image>"
EOS = 1


class Projector(nn.Module):
    """features [n, 17, 384] -> [n, 17, 640]: Linear, GELU (tanh), Linear."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(WIDTH, HIDDEN)
        self.fc2 = nn.Linear(HIDDEN, D_LLM)

    def forward(self, x):
        return self.fc2(nn.functional.gelu(self.fc1(x), approximate="tanh"))

    def save(self, path: Path) -> None:
        np.savez(path, **{k: v.detach().numpy().astype(np.float16) for k, v in self.state_dict().items()})

    @classmethod
    def from_file(cls, path: Path) -> "Projector":
        p = cls()
        with np.load(path) as z:
            p.load_state_dict({k: torch.from_numpy(z[k].astype(np.float32)) for k in z.files})
        return p


def tokenizer():
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(HF_DIR / "tokenizer.json"))


def prompt_ids(tok, user: str, tokens: int = TOKENS, placeholder: str = PLACEHOLDER) -> tuple[list[int], int]:
    """(ids with BOS and ``placeholder`` expanded to ``tokens`` rows, first media row), as mmrt builds them."""
    text = TEMPLATE.replace("{content}", f"{placeholder}\n{user}")
    media = tok.token_to_id(placeholder)
    ids, pos = [2], -1
    for t in tok.encode(text, add_special_tokens=False).ids:
        if t == media:
            pos = len(ids)
            ids.extend([t] * tokens)
        else:
            ids.append(t)
    assert pos >= 0
    return ids, pos


def answer_ids(tok, text: str) -> list[int]:
    return tok.encode(text, add_special_tokens=False).ids + [EOS]


def sample_task(rng: np.random.Generator, sc) -> tuple[str, str]:
    """(instruction, answer): a caption 70% of the time, else one QA pair."""
    if rng.random() < 0.7:
        return CAPTION_PROMPTS[rng.integers(len(CAPTION_PROMPTS))], sc.caption()
    qa = sc.qa()
    return qa[rng.integers(len(qa))]


def scene_of(split: str, index: int):
    return scene(np.random.default_rng(seed(split, index)))


class Batcher:
    """Right-padded batches of (embeds with image rows spliced in, answer targets)."""

    def __init__(self, model, tok):
        self.embed = model.get_input_embeddings()  # Gemma's scaled embedding (text rows get sqrt(640))
        self.tok = tok

    def build(self, feats: torch.Tensor, items: list[tuple[str, str]], projector: Projector):
        rows = projector(feats)  # image rows: NOT scaled (they replace placeholder rows after the scale)
        seqs = []
        for user, ans in items:
            p, pos = prompt_ids(self.tok, user)
            seqs.append((p, pos, answer_ids(self.tok, ans)))
        length = max(len(p) + len(a) for p, _, a in seqs)
        ids = torch.zeros((len(seqs), length), dtype=torch.long)
        targets = torch.full((len(seqs), length), -100, dtype=torch.long)
        for b, (p, _, a) in enumerate(seqs):
            full = p + a
            ids[b, :len(full)] = torch.tensor(full)
            targets[b, len(p) - 1:len(full) - 1] = torch.tensor(a)  # position t predicts token t+1
        with torch.no_grad():
            text = self.embed(ids)
        embeds = text.clone()
        for b, (_, pos, _) in enumerate(seqs):
            embeds[b, pos:pos + TOKENS] = rows[b]
        return embeds, targets


def answer_logits(model, embeds: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits at the answer positions only (the 262k-wide output layer is the costly part)."""
    hidden = model.model(inputs_embeds=embeds, use_cache=False).last_hidden_state
    mask = targets != -100
    return model.lm_head(hidden[mask]), targets[mask]


def validate(model, batcher: Batcher, projector: Projector, feats: np.ndarray, index: np.ndarray,
             prompt: str, limit: int) -> dict:
    exact = correct = total = 0
    with torch.no_grad():
        for s in range(0, min(limit, len(index)), 16):
            idx = index[s:min(s + 16, limit)]
            items = [(prompt, scene_of("val", int(i)).caption()) for i in idx]
            embeds, targets = batcher.build(torch.from_numpy(feats[s:s + len(idx)]), items, projector)
            logits, _ = answer_logits(model, embeds, targets)
            pred = torch.full_like(targets, -100)
            pred[targets != -100] = logits.argmax(-1)
            ok = (pred == targets) | (targets == -100)
            exact += int(ok.all(dim=1).sum())
            correct += int(((pred == targets) & (targets != -100)).sum())
            total += int((targets != -100).sum())
    n = min(limit, len(index))
    return {"caption_exact": exact / n, "token_acc": correct / total, "n": n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--minutes", type=float, default=30.0, help="wall-clock training budget")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=1.5e-3)
    ap.add_argument("--val-every", type=int, default=50)
    ap.add_argument("--val-images", type=int, default=64)
    ap.add_argument("--out", type=Path, default=WEIGHTS)
    ap.add_argument("--init", type=Path, default=None, help="start from these weights (a second run continues the first)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)  # measured: 2 threads are 4x slower on this shared 2-core machine
    rng = np.random.default_rng(args.seed)
    model, _ = load()
    for p in model.parameters():
        p.requires_grad_(False)
    tok = tokenizer()
    batcher = Batcher(model, tok)
    projector = Projector.from_file(args.init) if args.init else Projector()
    opt = torch.optim.AdamW(projector.parameters(), lr=args.lr, weight_decay=0.0)
    vi, vf = load_features("val")
    t0 = time.time()
    step, losses = 0, []
    budget = args.minutes * 60
    while time.time() - t0 < budget:
        ti, tf = load_features("train")  # more chunks appear while the features are still being computed
        pick = rng.integers(len(ti), size=args.batch)
        items = [sample_task(rng, scene_of("train", int(ti[k]))) for k in pick]
        # cosine decay over the time budget, short warmup
        frac = min(1.0, (time.time() - t0) / budget)
        for g in opt.param_groups:
            g["lr"] = args.lr * min(1.0, (step + 1) / 30) * 0.5 * (1 + math.cos(math.pi * frac))
        embeds, targets = batcher.build(torch.from_numpy(tf[pick]), items, projector)
        logits, tgt = answer_logits(model, embeds, targets)
        loss = nn.functional.cross_entropy(logits, tgt)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        step += 1
        if step % 10 == 0:
            print(f"step {step:5d} {time.time() - t0:7.0f}s loss {np.mean(losses[-10:]):.4f} train_images {len(ti)}", flush=True)
        if step % args.val_every == 0:
            print(f"  val {validate(model, batcher, projector, vf, vi, 'Describe the image.', args.val_images)}", flush=True)
            projector.save(args.out)
    projector.save(args.out)
    final = Projector.from_file(args.out)  # the float16-rounded weights actually shipped
    for prompt in ("", "Describe the image.", "What is in the image?"):
        print(f"final val (float16 weights, prompt {prompt!r}): "
              f"{validate(model, batcher, final, vf, vi, prompt, len(vi))}", flush=True)
    print(f"trained {step} steps in {time.time() - t0:.0f}s; wrote {args.out}")


if __name__ == "__main__":
    main()
