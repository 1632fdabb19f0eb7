"""A PyTorch NPGAN training step, the reference the speed section times tfgan_mix against.

Optional: needs ``pip install -e .[bench]`` (PyTorch on the CPU); nothing else in the package or
the test suite imports it. It runs the same step as ``tfgan_mix.methods.npgan`` (paper 000,
Algorithm 1's soft loss, non-saturating): D, then the K generators with NP fixed, then NP with D
and G fixed, each with its own Adam(beta1 = 0.5), fresh z ~ U(-1, 1) for each update. D's outputs
on the K fakes are mixed in probability space, D_fake = sum_i NP(z)_i sigmoid(D(G_i(z))).

Two ways to write the K generators, as PyTorch users do:

* ``bmm``: stacked weights (K, in, out) and ``torch.baddbmm``, a fair vectorised PyTorch;
* ``loop``: K separate ``nn.Sequential`` modules called in a Python loop (how the reference
  repositories are written).
"""
import time

import torch
import torch.nn.functional as F
from torch import nn


def _mlp(fan_in, widths, fan_out):
    layers, width = [], fan_in
    for hidden in widths:
        layers += [nn.Linear(width, hidden), nn.LeakyReLU(0.2)]
        width = hidden
    return nn.Sequential(*layers, nn.Linear(width, fan_out))


class StackedGenerators(nn.Module):
    """K same-shaped MLPs with stacked weights: z (B, in) -> (K, B, out)."""

    def __init__(self, k, fan_in, widths, fan_out):
        super().__init__()
        dims = [fan_in, *widths, fan_out]
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.randn(k, a, b) / a**0.5) for a, b in zip(dims[:-1], dims[1:])])
        self.biases = nn.ParameterList([nn.Parameter(torch.zeros(k, 1, b)) for b in dims[1:]])

    def forward(self, z):
        h = z.unsqueeze(0).expand(len(self.weights[0]), -1, -1)
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            h = torch.baddbmm(b, h, w)
            if i < len(self.weights) - 1:
                h = F.leaky_relu(h, 0.2)
        return h


class LoopGenerators(nn.Module):
    """K separate MLPs in a Python loop: z (B, in) -> (K, B, out)."""

    def __init__(self, k, fan_in, widths, fan_out):
        super().__init__()
        self.nets = nn.ModuleList([_mlp(fan_in, widths, fan_out) for _ in range(k)])

    def forward(self, z):
        return torch.stack([net(z) for net in self.nets], 0)


class TorchNPGAN:
    """Paper 000's toy networks (G 100-200-100-20-2, D 2-1000-200-100-1, NP 100-128-128-K)."""

    def __init__(self, k, impl="bmm", batch=256, latent_dim=100, data_dim=2, generator_units=(200, 100, 20),
                 discriminator_units=(1000, 200, 100), router_units=(128, 128), learning_rate=2e-4, threads=2,
                 seed=0):
        if impl not in ("bmm", "loop"):
            raise ValueError(f"unknown impl {impl!r}; choose 'bmm' or 'loop'")
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        self.k, self.batch, self.latent_dim = k, batch, latent_dim
        bank = StackedGenerators if impl == "bmm" else LoopGenerators
        self.generators = bank(k, latent_dim, generator_units, data_dim)
        self.discriminator = _mlp(data_dim, discriminator_units, 1)
        self.noise_prior = _mlp(latent_dim, router_units, k)
        adam = lambda module: torch.optim.Adam(module.parameters(), learning_rate, betas=(0.5, 0.999))  # noqa: E731
        self.optimizers = [adam(self.discriminator), adam(self.generators), adam(self.noise_prior)]
        self.real = torch.randn(batch * 64, data_dim)
        self.steps_done = 0

    def _z(self):
        return torch.rand(self.batch, self.latent_dim) * 2 - 1

    def _mixed_fake_probability(self, fakes, prior):
        """sum_i pi_i sigmoid(D(G_i(z))): fakes (K, B, d), prior (B, K) -> (B,)."""
        logits = self.discriminator(fakes.reshape(-1, fakes.shape[-1])).reshape(self.k, self.batch)
        return (prior.T * torch.sigmoid(logits)).sum(0).clamp(1e-7, 1 - 1e-7)

    def _update(self, optimizer, loss):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def step(self):
        """One training step: D, G (NP fixed), NP (D and G fixed)."""
        d_opt, g_opt, np_opt = self.optimizers
        start = (self.steps_done % 64) * self.batch
        real = self.real[start:start + self.batch]
        z = self._z()
        with torch.no_grad():
            fakes, prior = self.generators(z), F.softmax(self.noise_prior(z), -1)
        fake = self._mixed_fake_probability(fakes, prior)
        self._update(d_opt, F.softplus(-self.discriminator(real)).mean() - torch.log1p(-fake).mean())
        # D is fixed for the other two players: no gradients for its weights (TensorFlow's tape,
        # asked for G's or NP's variables only, computes none either).
        self.discriminator.requires_grad_(False)
        z = self._z()
        with torch.no_grad():
            prior = F.softmax(self.noise_prior(z), -1)
        self._update(g_opt, -torch.log(self._mixed_fake_probability(self.generators(z), prior)).mean())
        z = self._z()
        with torch.no_grad():
            fakes = self.generators(z)
        self._update(np_opt, -torch.log(self._mixed_fake_probability(fakes, F.softmax(self.noise_prior(z), -1))).mean())
        self.discriminator.requires_grad_(True)
        self.steps_done += 1

    def seconds_for(self, steps):
        """Wall-clock seconds of ``steps`` training steps."""
        start = time.perf_counter()
        for _ in range(steps):
            self.step()
        return time.perf_counter() - start
