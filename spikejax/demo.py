"""The main job on the embedded default data set: train a spiking network on scikit-learn's 8x8
digits (ships with scikit-learn, works offline) and print its test accuracy.

    python -m spikejax.demo [--epochs N] [--dataset digits|mnist|fashion_mnist]
"""

from __future__ import annotations

import argparse
import time

import jax
import numpy as np
import optax

from .data import load_dataset
from .encoding import rate
from .neurons import LIF
from .nn import SpikingMLP, init_mlp
from .training import fit_classifier


def main(argv=None) -> float:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="digits")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--hidden", type=int, default=256)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    kw = {} if args.dataset == "digits" else {"as_float": True}
    (xtr, ytr), (xte, yte) = (load_dataset(args.dataset, s, **kw) for s in ("train", "test"))
    xtr, xte = (np.asarray(a, np.float32).reshape(len(a), -1) for a in (xtr, xte))
    ytr, yte = np.asarray(ytr, np.int32), np.asarray(yte, np.int32)

    net = SpikingMLP(neuron=LIF(reset="subtract"), readout="membrane")  # LIF hidden layer, integrator readout
    lif = LIF.params(tau_mem=10e-3)

    def predict(params, x, key):  # rate-code the pixels over `steps` time steps, average the readout
        return net(params, lif, rate(key, x, args.steps)).mean(0)

    def loss(params, x, y, key):
        return optax.softmax_cross_entropy_with_integer_labels(predict(params, x, key), y).mean()

    k_init, k_train = jax.random.split(jax.random.PRNGKey(args.seed))
    params = init_mlp(k_init, [xtr.shape[1], args.hidden, 10])
    t0 = time.time()
    params, hist = fit_classifier(
        loss, predict, params, optax.adam(2e-3), (xtr, ytr), (xte, yte),
        epochs=args.epochs, batch_size=32, key=k_train,
    )
    acc = hist["test_acc"][-1]
    print(f"spikejax demo: {args.dataset} {xtr.shape[1]}-{args.hidden}-10 LIF network, {args.steps} steps, "
          f"{args.epochs} epochs in {time.time() - t0:.1f}s -> test accuracy {100 * acc:.2f}% ({len(xte)} test images)")
    return acc


if __name__ == "__main__":
    main()
