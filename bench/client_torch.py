"""Training throughput in PyTorch on CPU, for bench/client.bench.ts: the demo CNN or the SDK example's
ResNet-style CNN.

demo: the same network as src/client/model.ts builds from the default template: atom-factored 3×3
convolutions (W[o, c] = Σ_a α[o, c, a] D[a], α frozen, atoms D and biases trained) with ReLU,
2×2 max pooling after conv1 and conv2, flatten, a dense layer to the task's 2 classes; softmax
cross-entropy, Adam (lr 1e-2), batch 64, shuffled minibatches gathered from an in-memory array
every step, and the loss and batch accuracy read back each step as the TypeScript trainer does.
Inputs are random 28×28 images (throughput does not depend on pixel values).

resnet: examples/byo-model's small ResNet as its federation members fine-tune it after
`atomlens template create` (m = 9 atoms per 3×3 convolution, α frozen): stem conv 1→16, BN, ReLU;
block A [conv 16→16, BN, ReLU, conv 16→16, BN] + identity, ReLU; max-pool 2; conv 16→32, BN, ReLU;
block B [conv 32→32, BN, ReLU, conv 32→32, BN] + identity, ReLU; global average pool; dense to 5
classes. Convolutions have no bias; batch norm runs in inference mode with its statistics and
affine parameters frozen; only the atoms and the head train (Adam 1e-2, batch 32).

usage: client_torch.py THREADS BATCHES_PER_REP REPS [demo|resnet]  → JSON on stdout
"""
import json
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

CLASSES = 2  # the demo's task {0, 1}
RESNET_CLASSES = 5  # the example members' task, digits 5–9
LAYERS = [  # (c_in, c_out, k, m, pool_after) — the default template
    (1, 8, 3, 6, 2),
    (8, 16, 3, 6, 2),
    (16, 16, 3, 6, 0),
    (16, 24, 3, 6, 0),
    (24, 24, 3, 6, 0),
]
SAMPLES = 12_000


class AtomConv2d(nn.Module):
    def __init__(self, c_in, c_out, k, m, generator, bias=True, relu=True):
        super().__init__()
        self.shape = (c_out, c_in, k, m)
        self.relu = relu
        alpha = torch.randn(c_out, c_in, m, generator=generator) / (c_in * m) ** 0.5
        self.register_buffer("alpha", alpha)  # frozen, as the template's α
        self.atoms = nn.Parameter(torch.randn(m, k, k, generator=generator) / k)
        self.bias = nn.Parameter(torch.zeros(c_out)) if bias else None

    def forward(self, x):
        c_out, c_in, k, m = self.shape
        weight = (self.alpha.reshape(c_out * c_in, m) @ self.atoms.reshape(m, k * k)).reshape(c_out, c_in, k, k)
        y = F.conv2d(x, weight, self.bias, padding=k // 2)
        return F.relu(y) if self.relu else y


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


class ConvBn(nn.Module):
    """Atom-factored 3×3 convolution without bias, then batch norm in inference mode (frozen)."""

    def __init__(self, c_in, c_out, generator):
        super().__init__()
        self.conv = AtomConv2d(c_in, c_out, 3, 9, generator, bias=False, relu=False)
        self.bn = nn.BatchNorm2d(c_out, momentum=0.1)
        self.bn.eval()
        for p in self.bn.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        return self.bn(self.conv(x))


class SmallResNet(nn.Module):
    def __init__(self):
        super().__init__()
        g = torch.Generator().manual_seed(1)
        self.stem = ConvBn(1, 16, g)
        self.a1, self.a2 = ConvBn(16, 16, g), ConvBn(16, 16, g)
        self.widen = ConvBn(16, 32, g)
        self.b1, self.b2 = ConvBn(32, 32, g), ConvBn(32, 32, g)
        self.head = nn.Linear(32, RESNET_CLASSES)

    def forward(self, x):
        x = F.relu(self.stem(x))
        x = F.relu(x + self.a2(F.relu(self.a1(x))))
        x = F.max_pool2d(x, 2)
        x = F.relu(self.widen(x))
        x = F.relu(x + self.b2(F.relu(self.b1(x))))
        return self.head(x.mean(dim=(2, 3)))


MODELS = {"demo": (DemoCnn, 64, CLASSES), "resnet": (SmallResNet, 32, RESNET_CLASSES)}


def main():
    threads, batches, reps = (int(a) for a in sys.argv[1:4])
    which = sys.argv[4] if len(sys.argv) > 4 else "demo"
    build, BATCH, classes = MODELS[which]
    torch.set_num_threads(threads)
    torch.manual_seed(1)
    images = torch.rand(SAMPLES, 1, 28, 28)
    labels = torch.randint(0, classes, (SAMPLES,))
    model = build()
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
    print(
        json.dumps(
            {"model": which, "batch": BATCH, "threads": torch.get_num_threads(), "torch": torch.__version__, "reps": rates}
        )
    )


if __name__ == "__main__":
    main()
