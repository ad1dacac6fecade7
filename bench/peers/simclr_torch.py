#!/usr/bin/env python3
"""PyTorch peer of `seaclr bench train`: the same seaclr-s CNN, batch, image
size and NT-Xent step (two views, forward, backward, Adam), on synthetic
images, timed the same way (untimed warm-up, then mean over timed steps).

    pip install torch            # plain PyPI wheel
    python3 bench/peers/simclr_torch.py --threads 2 --batch 128 --steps 10 --json

Prints one JSON object with views_per_s, batch, threads, backend, like
`seaclr bench train --json`.
"""

import argparse
import json
import time

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn_relu(cin, cout, stride):
    return [
        nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1),
        nn.ReLU(inplace=True),
    ]


class SeaclrS(nn.Module):
    """4 stages of [3x3 conv s2 + BN + ReLU, 3x3 conv s1 + BN + ReLU], 16-32-64-128,
    with stage 4's stride-2 conv narrowed to 96 channels (ModelConfig::seaclr_s),
    global average pool -> h (128), head Linear-ReLU-Linear-ReLU-Linear -> z."""

    def __init__(self, channels=(16, 32, 64, 128), entry=(16, 32, 64, 96), head=128, proj=128):
        super().__init__()
        layers, cin = [], 1
        for c, e in zip(channels, entry):
            layers += conv_bn_relu(cin, e, 2) + conv_bn_relu(e, c, 1)
            cin = c
        self.encoder = nn.Sequential(*layers)
        self.head = nn.Sequential(
            nn.Linear(cin, head), nn.ReLU(inplace=True),
            nn.Linear(head, head), nn.ReLU(inplace=True),
            nn.Linear(head, proj),
        )

    def forward(self, x):
        h = self.encoder(x).mean(dim=(2, 3))
        return h, self.head(h)


def nt_xent(z, t):
    """Mean over 2N anchors, self-similarity masked, as in seaclr's loss.rs."""
    n2 = z.shape[0]
    n = n2 // 2
    z = F.normalize(z, dim=1)
    logits = (z @ z.t()) / t
    logits = logits.masked_fill(torch.eye(n2, dtype=torch.bool), float("-inf"))
    target = torch.cat([torch.arange(n, n2), torch.arange(0, n)])
    return F.cross_entropy(logits, target)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = SeaclrS()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = torch.rand(2 * a.batch, 1, a.size, a.size)
    timed = 0.0
    for i in range(a.warmup + a.steps):
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        _, z = model(x)
        loss = nt_xent(z, 0.1)
        loss.backward()
        opt.step()
        if i >= a.warmup:
            timed += time.perf_counter() - start
    sps = timed / a.steps
    result = {
        "views_per_s": 2 * a.batch / sps,
        "batch": a.batch,
        "threads": a.threads,
        "backend": f"pytorch {torch.__version__} cpu",
        "steps": a.steps,
        "seconds_per_step": sps,
        "image_size": a.size,
        "model": "seaclr-s",
    }
    if a.json:
        print(json.dumps(result))
    else:
        print(f"pytorch seaclr-s batch {a.batch}: {result['views_per_s']:.1f} views/s, {a.threads} threads")


if __name__ == "__main__":
    main()
