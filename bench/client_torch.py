"""Training throughput of the demo CNN in PyTorch on CPU, for bench/client.bench.ts.

The same network as src/client/model.ts builds from the default template: atom-factored 3×3
convolutions (W[o, c] = Σ_a α[o, c, a] D[a], α frozen, atoms D and biases trained) with ReLU,
2×2 max pooling after conv1 and conv2, flatten, a dense layer to the task's 2 classes; softmax
cross-entropy, Adam (lr 1e-2), batch 64, shuffled minibatches gathered from an in-memory array
every step, and the loss and batch accuracy read back each step as the TypeScript trainer does.
Inputs are random 28×28 images (throughput does not depend on pixel values).

usage: client_torch.py THREADS BATCHES_PER_REP REPS  → JSON on stdout
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

LAYERS = [  # (c_in, c_out, k, m, pool_after) — the default template
    (1, 8, 3, 6, 2),
    (8, 16, 3, 6, 2),
    (16, 16, 3, 6, 0),
    (16, 24, 3, 6, 0),
    (24, 24, 3, 6, 0),
]
BATCH = 64
CLASSES = 2
SAMPLES = 12_000


class AtomConv2d(nn.Module):
    def __init__(self, c_in, c_out, k, m, generator):
        super().__init__()
        self.shape = (c_out, c_in, k, m)
        alpha = torch.randn(c_out, c_in, m, generator=generator) / (c_in * m) ** 0.5
        self.register_buffer("alpha", alpha)  # frozen, as the template's α
        self.atoms = nn.Parameter(torch.randn(m, k, k, generator=generator) / k)
        self.bias = nn.Parameter(torch.zeros(c_out))

    def forward(self, x):
        c_out, c_in, k, m = self.shape
        weight = (self.alpha.reshape(c_out * c_in, m) @ self.atoms.reshape(m, k * k)).reshape(c_out, c_in, k, k)
        return F.relu(F.conv2d(x, weight, self.bias, padding=k // 2))


class DemoCnn(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.convs = nn.ModuleList(AtomConv2d(ci, co, k, m, g) for ci, co, k, m, _ in LAYERS)
        self.pools = [p for *_, p in LAYERS]
        side = 28
        for p in self.pools:
            if p > 1:
                side //= p
        self.head = nn.Linear(side * side * LAYERS[-1][1], CLASSES)

    def forward(self, x):
        for conv, pool in zip(self.convs, self.pools):
            x = conv(x)
            if pool > 1:
                x = F.max_pool2d(x, pool)
        return self.head(torch.flatten(x, 1))


def main():
    threads, batches, reps = (int(a) for a in sys.argv[1:4])
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    images = torch.rand(SAMPLES, 1, 28, 28)
    labels = torch.randint(0, CLASSES, (SAMPLES,))
    model = DemoCnn()
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    order = torch.randperm(SAMPLES)
    position = 0

    def step():
        nonlocal position, order
        if position + BATCH > SAMPLES:
            order = torch.randperm(SAMPLES)
            position = 0
        idx = order[position : position + BATCH]
        position += BATCH
        x = images[idx]
        y = labels[idx]
        optimizer.zero_grad(set_to_none=True)
        logits = model(x)
        loss = F.cross_entropy(logits, y)
        loss.backward()
        optimizer.step()
        return loss.item(), (logits.argmax(1) == y).sum().item()

    for _ in range(3):  # warm-up
        step()
    rates = []
    for _ in range(reps):
        started = time.perf_counter()
        cpu = time.process_time()
        for _ in range(batches):
            step()
        seconds = time.perf_counter() - started
        rates.append({"samples_per_second": batches * BATCH / seconds, "cpu_seconds": time.process_time() - cpu})
    print(json.dumps({"threads": torch.get_num_threads(), "torch": torch.__version__, "reps": rates}))


if __name__ == "__main__":
    main()
