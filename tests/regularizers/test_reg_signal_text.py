"""Augmentation beyond images: time and frequency masking of 1-D signals (SpecAugment),
token dropout / random masking of text. Checked against numpy and by counting."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from harness.config import build_run_config
from harness.errors import ConfigError
from harness.regularizers import Batch, RegularizerStack, RunContext
from harness.regularizers.spec_augment import frequency_mask, span_mask, time_mask
from harness.regularizers.token_dropout import token_dropout

pytestmark = pytest.mark.usefixtures("seed_and_one_thread")


def stack(regularizers: dict, kind: str, dataset: str, num_classes: int) -> RegularizerStack:
    model = {"text": "gpt", "signal": "cnn"}[kind]
    config = build_run_config({"data": {"name": dataset}, "model": {"name": model},
                               "regularizers": regularizers})
    ctx = RunContext(config=config, data=SimpleNamespace(name=dataset, kind=kind),
                     device=torch.device("cpu"), epochs=1, steps_per_epoch=1,
                     num_classes=num_classes)
    return RegularizerStack.from_config(config, ctx)


def runs(row: np.ndarray) -> list[tuple[int, int]]:
    """(start, length) of each run of True in a 1-D bool array."""
    out, i = [], 0
    while i < len(row):
        if row[i]:
            j = i
            while j < len(row) and row[j]:
                j += 1
            out.append((i, j - i))
            i = j
        else:
            i += 1
    return out


# ------------------------------------------------------------------------------ masks


def test_span_mask_is_one_contiguous_span_of_uniform_width():
    n, length, width = 20000, 40, 6
    mask = span_mask(n, length, width, 1, torch.device("cpu")).numpy()
    widths = mask.sum(1)
    for row in mask[:500]:
        assert len(runs(row)) <= 1  # one span (or none: width 0)
    # width uniform on 0..6: every value, each about 1/7 of the samples
    counts = np.bincount(widths, minlength=width + 1)
    assert len(counts) == width + 1
    assert np.all(np.abs(counts / n - 1 / (width + 1)) < 4 * np.sqrt((1 / 7) * (6 / 7) / n))
    # starts cover every place a span fits, both ends included
    starts = {runs(row)[0][0] for row in mask if row.sum() == width}
    assert starts == set(range(length - width + 1))


def test_time_mask_zeroes_the_span_in_every_channel():
    x = torch.randn(8, 3, 40)
    mask = span_mask(8, 40, 10, 2, torch.device("cpu"))
    expected = x.numpy().copy()
    for i in range(8):
        for t in range(40):
            if mask[i, t]:
                expected[i, :, t] = 0.0
    np.testing.assert_array_equal(time_mask(x, mask).numpy(), expected)


def test_frequency_mask_matches_numpy_rfft_band_zeroing():
    x = torch.randn(6, 2, 40, dtype=torch.float64)
    mask = span_mask(6, 21, 5, 1, torch.device("cpu"))
    spectrum = np.fft.rfft(x.numpy(), axis=-1)
    spectrum[np.broadcast_to(mask.numpy()[:, None, :], spectrum.shape)] = 0.0
    expected = np.fft.irfft(spectrum, n=40, axis=-1)
    np.testing.assert_allclose(frequency_mask(x, mask).numpy(), expected, atol=1e-12)
    # an empty mask gives the signal back
    none = torch.zeros(6, 21, dtype=torch.bool)
    np.testing.assert_allclose(frequency_mask(x, none).numpy(), x.numpy(), atol=1e-12)


def test_plugins_mask_signals_and_keep_labels():
    x = torch.randn(64, 1, 40)
    y = torch.arange(64) % 10
    out = stack({"time_mask": {"width": 8}}, "signal", "mnist1d", 10).transform_batch(
        None, Batch(x, y, y))
    assert out.y is y and out.targets is y
    changed = (out.x != x)[:, 0].numpy()
    for row, orig, new in zip(changed, x[:, 0].numpy(), out.x[:, 0].numpy(), strict=True):
        spans = runs(row)
        assert len(spans) <= 1 and all(length <= 8 for _, length in spans)
        assert np.all(new[row] == 0.0) and np.array_equal(new[~row], orig[~row])
    assert changed.any()
    out = stack({"freq_mask": {"width": 4}}, "signal", "mnist1d", 10).transform_batch(
        None, Batch(x, y, y))
    before = np.fft.rfft(x[:, 0].double().numpy())
    after = np.fft.rfft(out.x[:, 0].double().numpy())
    gone = np.abs(after) < 1e-4 * np.abs(before).max()
    for row_gone, b, a in zip(gone, before, after, strict=True):
        spans = runs(row_gone)
        assert len(spans) <= 1 and all(length <= 4 for _, length in spans)
        np.testing.assert_allclose(a[~row_gone], b[~row_gone], atol=1e-4)
    assert gone.any()


def test_masks_refuse_data_that_is_not_a_signal():
    for name in ("time_mask", "freq_mask"):
        with pytest.raises(ConfigError, match=rf"regularizers.{name}: masks 1-D signals; "
                                              "dataset tiny_shakespeare holds text"):
            build_run_config({"data": {"name": "tiny_shakespeare"}, "model": {"name": "gpt"},
                              "regularizers": {name: {"width": 4}}})
    with pytest.raises(ConfigError, match="width"):
        build_run_config({"regularizers": {"time_mask": {"width": 0}}})


# ------------------------------------------------------------------------------ text


def test_token_dropout_rate_positions_and_targets():
    vocab, p = 65, 0.3
    x = torch.randint(1, vocab, (200, 128))  # no token is the mask id 0
    y = torch.randint(0, vocab, (200, 128))
    out = stack({"token_dropout": {"p": p}}, "text", "tiny_shakespeare", vocab) \
        .transform_batch(None, Batch(x, y, y))
    dropped = out.x == 0
    rate, n = dropped.float().mean().item(), x.numel()
    assert abs(rate - p) < 4 * (p * (1 - p) / n) ** 0.5
    assert torch.equal(out.x[~dropped], x[~dropped])
    assert out.y is y and out.targets is y  # the targets stay the clean next tokens
    random = stack({"token_dropout": {"p": p, "replace": "random"}}, "text",
                   "tiny_shakespeare", vocab).transform_batch(None, Batch(x, y, y))
    changed = random.x != x  # a random id equals the old one with prob. 1/vocab
    expected = p * (1 - 1 / vocab)
    assert abs(changed.float().mean().item() - expected) < 4 * (expected / n) ** 0.5
    assert random.x.min() >= 0 and random.x.max() < vocab
    assert torch.equal(token_dropout(x, 1e-9, 7), x)


def test_token_dropout_errors():
    with pytest.raises(ConfigError, match="regularizers.token_dropout: drops text tokens; "
                                          "dataset mnist1d holds 1-D signals"):
        build_run_config({"regularizers": {"token_dropout": {"p": 0.1}}})
    with pytest.raises(ConfigError, match=r"mask_id = 99: the vocabulary of tiny_shakespeare "
                                          r"has ids 0..64"):
        stack({"token_dropout": {"p": 0.1, "mask_id": 99}}, "text", "tiny_shakespeare", 65)
