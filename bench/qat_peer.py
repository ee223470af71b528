#!/usr/bin/python3
"""The peer of bench_qat.sh: one epoch of PyTorch's own quantization-aware training (eager mode,
torch.ao.quantization, fbgemm's per-channel W8A8 fake quantizers) of the demo model's architecture
on the 60,000 Fashion-MNIST training images, batch 64, Adam, on N threads. Prints the seconds of
the training steps alone (data already in memory), as bench_qat.sh reports ours.

    /usr/bin/python3 bench/qat_peer.py [--threads 2]
"""
import argparse
import os
import sys
import time

import torch
import torch.ao.quantization as tq

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "scripts"))
from train_demo_model import FashionCNN, load_split  # noqa: E402


class Quantized(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.net = FashionCNN()
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.net(self.quant(x)))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    images, labels = load_split("/usr/share/datasets/fashion-mnist", "train")  # pixel/255, [N,1,28,28]
    x = torch.from_numpy(images)
    y = torch.from_numpy(labels)
    model = Quantized()
    model.train()
    model.qconfig = tq.get_default_qat_qconfig("fbgemm")
    tq.prepare_qat(model, inplace=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    order = torch.randperm(x.shape[0])
    start = time.perf_counter()
    for first in range(0, x.shape[0], args.batch):
        index = order[first:first + args.batch]
        loss = torch.nn.functional.cross_entropy(model(x[index]), y[index])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    print(f"{time.perf_counter() - start:.1f}")


if __name__ == "__main__":
    main()
