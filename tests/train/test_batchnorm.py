"""BatchNorm re-estimation (`edgeprune.train.batchnorm`)."""

import torch
from torch import nn

from edgeprune.data.base import ImageSet, Normalization
from edgeprune.train.batchnorm import recalibrate_batchnorm


def _images(n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=gen, dtype=torch.uint8)
    return ImageSet("toy", "train", images, torch.zeros(n, dtype=torch.long), ("a",), Normalization((0.5,), (0.25,)))


def _model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Dropout(0.5),
                         nn.Conv2d(4, 3, 3), nn.BatchNorm2d(3))


def test_statistics_become_the_datas_own_and_the_rest_is_untouched():
    data, model = _images(), _model()
    bn1, bn2 = model[1], model[5]
    bn1.running_mean.fill_(5.0)  # stale statistics, as a soft-mask run leaves them
    bn1.running_var.fill_(9.0)
    weights = {k: v.clone() for k, v in model.state_dict().items() if "running" not in k and "batches" not in k}
    used = recalibrate_batchnorm(model, data, batch_size=64, batches=1)
    assert used == 64 and model.training and bn1.momentum == 0.1
    # one batch of all the images: the running statistics are exactly that batch's
    x = data.norm.apply(data.images.float() / 255.0)
    h = model[0](x)
    assert torch.allclose(bn1.running_mean, h.mean(dim=(0, 2, 3)), atol=1e-5)
    assert torch.allclose(bn1.running_var, h.var(dim=(0, 2, 3), unbiased=True), atol=1e-4)
    # the second BatchNorm saw the first one's output with dropout off (eval) and no mask skew
    h2 = model[4](torch.relu(nn.functional.batch_norm(h, None, None, bn1.weight, bn1.bias, training=True)))
    assert torch.allclose(bn2.running_mean, h2.mean(dim=(0, 2, 3)), atol=1e-5)
    after = {k: v for k, v in model.state_dict().items() if k in weights}
    assert all(torch.equal(weights[k], after[k]) for k in weights)


def test_several_batches_average_and_the_same_seed_gives_the_same_statistics():
    data = _images(96)
    a, b = _model(), _model()
    assert recalibrate_batchnorm(a, data, batch_size=32, batches=10, seed=3) == 96  # capped at the data
    recalibrate_batchnorm(b, data, batch_size=32, batches=10, seed=3)
    assert torch.equal(a[1].running_mean, b[1].running_mean) and torch.equal(a[5].running_var, b[5].running_var)
    x = data.norm.apply(data.images.float() / 255.0)
    assert torch.allclose(a[1].running_mean, a[0](x).mean(dim=(0, 2, 3)), atol=1e-5)  # equal batches: the mean


def test_nothing_to_do_returns_zero():
    data = _images()
    assert recalibrate_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3)), data, 16) == 0
    model = _model()
    before = model[1].running_mean.clone()
    assert recalibrate_batchnorm(model, data, 16, batches=0) == 0 and torch.equal(model[1].running_mean, before)
