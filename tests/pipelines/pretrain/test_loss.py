from __future__ import annotations

import torch
import torch.nn.functional as F

from tanuki_pipelines.pretrain.train import lm_loss


def test_fused_loss_equals_cross_entropy_plus_z_loss_in_value_and_gradient() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 7, 13, dtype=torch.float64, requires_grad=True)
    labels = torch.randint(0, 13, (2, 7))
    total, ce, z = lm_loss(logits, labels, 1e-2)
    (grad,) = torch.autograd.grad(total, logits)

    reference_ce = F.cross_entropy(logits.reshape(-1, 13), labels.reshape(-1))
    reference_z = 1e-2 * torch.logsumexp(logits, dim=-1).pow(2).mean()
    (reference_grad,) = torch.autograd.grad(reference_ce + reference_z, logits)
    assert torch.allclose(ce.double(), reference_ce) and torch.allclose(z.double(), reference_z)
    assert torch.allclose(grad, reference_grad)


def test_zero_coefficient_disables_z_loss() -> None:
    logits = torch.randn(1, 3, 5)
    total, ce, z = lm_loss(logits, torch.tensor([[0, 1, 2]]), 0.0)
    assert z.item() == 0.0 and torch.equal(total, ce)
