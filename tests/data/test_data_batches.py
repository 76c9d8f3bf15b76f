import torch
import torch.nn.functional as F
from data_helpers import fake_fashion_mnist

from edgeprune.data import Augment, open_data
from edgeprune.data.batches import (
    augment_batch,
    eval_batches,
    generator,
    num_train_batches,
    train_batches,
)


def _data(tmp_path, n=100):
    return open_data("fashion-mnist", root=fake_fashion_mnist(tmp_path / "fm", n_train=n, n_test=30))


def test_crop_and_flip_match_a_per_sample_reference():
    x = torch.rand(16, 3, 10, 12)
    aug = Augment(pad=3, flip=True)
    out = augment_batch(x, aug, generator(1))
    g = generator(1)  # replay the same draws
    oy, ox = torch.randint(0, 7, (16,), generator=g), torch.randint(0, 7, (16,), generator=g)
    flip = torch.rand(16, generator=g) < 0.5
    for i in range(16):
        ref = F.pad(x[i], (3, 3, 3, 3))[:, oy[i] : oy[i] + 10, ox[i] : ox[i] + 12]
        if flip[i]:
            ref = ref.flip(2)
        assert torch.equal(out[i], ref)
    assert flip.any() and not flip.all()


def test_without_padding_or_flip_is_identity():
    x = torch.rand(4, 1, 5, 5)
    assert torch.equal(augment_batch(x, Augment(pad=0, flip=False), generator(0)), x)


def test_batches_are_normalised_and_seeded(tmp_path):
    data = _data(tmp_path)
    a = list(train_batches(data.train, 32, seed=3, epoch=1, aug=data.augment))
    b = list(train_batches(data.train, 32, seed=3, epoch=1, aug=data.augment))
    c = list(train_batches(data.train, 32, seed=3, epoch=2, aug=data.augment))
    assert len(a) == num_train_batches(100, 32) == 3  # full batches only
    assert all(torch.equal(x.x, y.x) and torch.equal(x.labels, y.labels) for x, y in zip(a, b))
    assert not torch.equal(a[0].labels, c[0].labels)  # another epoch, another order
    plain = next(eval_batches(data.test, 30)).x
    mean = data.test.images.float().div(255).mean().item()
    assert abs(plain.mean().item() - (mean - 0.2860) / 0.3530) < 1e-4


def test_two_views_are_two_augmentations_of_the_same_samples(tmp_path):
    data = _data(tmp_path)
    batch = next(train_batches(data.train, 32, seed=0, epoch=0, aug=data.augment, views=2))
    x1, x2 = batch.views
    assert x1.shape == x2.shape == (32, 1, 28, 28) and not torch.equal(x1, x2)
    single = next(train_batches(data.train, 32, seed=0, epoch=0, aug=data.augment))
    assert torch.equal(single.labels, batch.labels) and torch.equal(single.x, x1)


def test_ranks_split_one_permutation(tmp_path):
    data = _data(tmp_path, n=101)
    seen = []
    for rank in range(2):
        batches = list(train_batches(data.train, 10, seed=0, epoch=0, aug=None, rank=rank, world=2))
        assert len(batches) == num_train_batches(101, 10, world=2) == 5
        seen.append(torch.cat([b.x for b in batches]))
    assert not torch.equal(seen[0], seen[1])
    everything = torch.cat([b.labels for r in range(3) for b in eval_batches(data.test, 7, rank=r, world=3)])
    assert torch.equal(everything, data.test.labels)


def test_tiny_subset_still_gives_one_batch(tmp_path):
    data = _data(tmp_path, n=20)
    batches = list(train_batches(data.train, 128, seed=0, epoch=0, aug=None))
    assert len(batches) == 1 and len(batches[0].labels) == 20
