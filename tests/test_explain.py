"""digitlab.explain on small real networks trained briefly on real digits: gradients checked
against finite differences of the model's own answers, contributions against the logit, and
the shapes the pages draw."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import correlate2d

from digitlab import explain
from digitlab.data import normalise, one_hot
from digitlab.models import ModelConfig, build_model, predict_proba


def trained(digits, config: ModelConfig, epochs: int):
    model = build_model(config, seed=0)
    model.fit(
        normalise(digits.x_train),
        one_hot(digits.y_train),
        epochs=epochs,
        batch_size=64,
        verbose=0,
    )
    return model


@pytest.fixture(scope="module")
def mlp(tiny_digits):
    return trained(tiny_digits, ModelConfig(hidden_units=32, jit_compile=False), epochs=3)


@pytest.fixture(scope="module")
def cnn(tiny_digits):
    return trained(tiny_digits, ModelConfig(arch="cnn", jit_compile=False), epochs=1)


@pytest.fixture(scope="module")
def image(tiny_digits):
    return normalise(tiny_digits.x_test[:1])[0]  # (28, 28) float32 in [0, 1]: a real test digit


def centred_log_probs(model, x: np.ndarray) -> np.ndarray:
    """log p - mean(log p) = logit - mean(logit), from the model's own call: a reference that
    does not go through explain's logit computation."""
    logp = np.log(predict_proba(model, x).astype("float64"))
    return logp - logp.mean(axis=1, keepdims=True)


def finite_difference(model, x: np.ndarray, v: np.ndarray, eps: float = 3e-3):
    """(10,) slopes of the centred log-probabilities and (10,) of the probabilities along v,
    by central differences, or None where the network has a kink on the way (a relu turning
    on, a max-pool changing its pick: there the two one-sided slopes differ and no gradient
    describes both)."""
    c0 = centred_log_probs(model, x)[0]
    up, down = x + eps * v, x - eps * v
    c_up, c_down = centred_log_probs(model, up)[0], centred_log_probs(model, down)[0]
    if not np.allclose((c_up - c0) / eps, (c0 - c_down) / eps, atol=2e-3, rtol=0.02):
        return None
    p_up, p_down = (predict_proba(model, z)[0].astype("float64") for z in (up, down))
    return (c_up - c_down) / (2 * eps), (p_up - p_down) / (2 * eps)


@pytest.mark.parametrize("name", ["mlp", "cnn"])
def test_saliency_matches_finite_differences(name, request, image):
    model = request.getfixturevalue(name)
    every = {s: explain.explain(model, image, range(10), score=s) for s in explain.SCORES}
    e = every["logit"]
    g = {  # (10, 28, 28) each: every digit's gradient
        s: np.stack([every[s].gradients[d] for d in range(10)]).astype("float64")
        for s in explain.SCORES
    }
    rng = np.random.default_rng(0)
    big = np.abs(g["logit"][e.digit]).ravel().argsort()[-8:]  # the pixels that matter most
    ink = rng.choice(np.flatnonzero(image.ravel() > 0.2), size=8, replace=False)
    directions = []
    for i in [*big, *ink]:
        v = np.zeros(28 * 28, "float32")
        v[i] = 1.0
        directions.append(v.reshape(28, 28))
    directions += [d / np.linalg.norm(d) for d in rng.normal(size=(4, 28, 28)).astype("float32")]
    checked = 0
    for v in directions:
        fd = finite_difference(model, image, v)
        if fd is None:
            continue
        checked += 1
        along = {s: (g[s] * v).sum(axis=(1, 2)) for s in explain.SCORES}  # (10,) each
        want = along["logit"] - along["logit"].mean()  # the centred logit's slope
        np.testing.assert_allclose(fd[0], want, atol=2e-3, rtol=0.05)
        np.testing.assert_allclose(fd[1], along["probability"], atol=1e-3, rtol=0.05)
    assert checked >= 8, f"only {checked} of {len(directions)} directions free of kinks"
    assert np.abs(g["logit"][e.digit]).max() > 1e-3  # not trivially zero
    np.testing.assert_allclose(e.saliency(3, times_input=True), g["logit"][3] * image, rtol=1e-6)
    np.testing.assert_allclose(
        explain.saliency(model, image, 3, score="probability"),
        g["probability"][3],
        rtol=1e-4,
        atol=1e-7,
    )
    # by default: the answer and the runner-up, the same maps as when asked for by name
    default = explain.explain(model, image)
    assert list(default.gradients) == [e.digit, e.runner_up]
    for d in default.gradients:
        np.testing.assert_allclose(default.gradients[d], g["logit"][d], rtol=1e-4, atol=1e-7)


def test_answers_are_the_models_own(mlp, image):
    e = explain.explain(mlp, image)
    probs = predict_proba(mlp, image)[0]
    np.testing.assert_allclose(e.probs, probs, atol=1e-6)
    np.testing.assert_allclose(np.exp(e.logits) / np.exp(e.logits).sum(), probs, atol=1e-6)
    top = e.top(3)
    assert [d for d, _ in top] == list(np.argsort(-probs)[:3])
    assert top[0][0] == e.digit and e.runner_up == top[1][0] and top[0][1] >= top[1][1] >= top[2][1]
    assert explain.top_answers([0.1, 0.7, 0.2], 2) == [(1, 0.7), (2, 0.2)]


def test_contributions_sum_to_logit_minus_bias(mlp, image):
    e = explain.explain(mlp, image)
    w1, b1, w2, b2 = (np.asarray(v, dtype="float64") for v in mlp.get_weights())
    hidden = np.maximum(image.reshape(-1).astype("float64") @ w1 + b1, 0)  # numpy, not keras
    np.testing.assert_allclose(e.hidden, hidden, rtol=1e-4, atol=1e-5)
    for d in range(10):
        c = e.contributions(d)
        assert c.shape == (32,)
        np.testing.assert_allclose(c.sum(), e.logits[d] - b2[d], rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(c, hidden * w2[:, d], rtol=1e-4, atol=1e-5)
    top = e.top_units(e.digit, n=5)
    assert len(top.units) == 5 and np.all(np.diff(top.contributions) <= 0)  # largest first
    assert top.contributions[0] == pytest.approx(e.contributions(e.digit).max())
    np.testing.assert_allclose(top.activations * top.weights, top.contributions, rtol=1e-6)
    assert top.logit == pytest.approx(e.contributions(e.digit).sum() + top.bias, abs=1e-4)


def test_mlp_shapes_and_tiles(mlp, image):
    e = explain.explain(mlp, image, [explain.ANSWER, 4])
    assert [g.shape for g in e.gradients.values()] == [(28, 28)] * 2 and e.feature_maps is None
    assert list(e.gradients) == [e.digit, 4] or e.digit == 4
    tiles = explain.first_layer_tiles(mlp)
    assert tiles.shape == (32, 28, 28)
    np.testing.assert_array_equal(tiles[7].reshape(-1), np.asarray(mlp.get_weights()[0])[:, 7])
    assert explain.first_layer_tiles(mlp, [3, 1]).shape == (2, 28, 28)
    assert explain.reads_pixels(mlp)
    event = explain.tiles_event(mlp, 16)
    assert event["type"] == "tiles" and event["shape"] == [28, 28] and len(event["tiles"]) == 16
    assert event["tiles"].dtype == np.float16 and event["tiles"].nbytes == 16 * 784 * 2
    np.testing.assert_allclose(event["tiles"], tiles[:16], rtol=1e-3, atol=1e-4)


def test_cnn_filters_and_feature_maps(cnn, image):
    e = explain.explain(cnn, image)
    assert e.feature_maps.shape == (32, 26, 26)
    kernel, bias = (np.asarray(v) for v in cnn.layers[1].get_weights())  # (3, 3, 1, 32), (32,)
    for k in (0, 9, 31):
        want = np.maximum(correlate2d(image, kernel[:, :, 0, k], mode="valid") + bias[k], 0)
        np.testing.assert_allclose(e.feature_maps[k], want, atol=1e-5)
    filters = explain.first_layer_tiles(cnn)
    assert filters.shape == (32, 3, 3)
    np.testing.assert_array_equal(filters[5], kernel[:, :, 0, 5])
    assert not explain.reads_pixels(cnn)
    assert explain.tiles_event(cnn)["shape"] == [3, 3]


def test_deeper_mlp_and_models_it_cannot_take_apart(image):
    import keras

    deep = build_model(ModelConfig(hidden_units=16, hidden_layers=2, dropout=0.2), seed=1)
    e = explain.explain(deep, image)
    assert e.hidden.shape == (16,) and not explain.reads_pixels(deep)
    assert explain.first_layer_tiles(deep).shape == (16, 28, 28)
    odd = keras.Sequential(
        [
            keras.Input((28, 28)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
            keras.layers.Dropout(0.1),
        ]
    )
    with pytest.raises(explain.ExplainError, match="followed by more than a softmax"):
        explain.explain(odd, image)
    with pytest.raises(explain.ExplainError, match="28x28"):
        explain.explain(deep, np.zeros((20, 20), "float32"))
    with pytest.raises(explain.ExplainError, match="score"):
        explain.explain(deep, image, score="loss")
    with pytest.raises(explain.ExplainError, match="0..9"):
        explain.explain(deep, image, [12])
    missing = next(d for d in range(10) if d not in e.gradients)
    with pytest.raises(explain.ExplainError, match=f"No saliency for digit {missing}"):
        e.saliency(missing)


def test_pictures_without_a_browser():
    a = np.zeros((28, 28))
    a[0, 0], a[0, 1] = 2.0, -1.0
    img = explain.picture(a, scale=10)
    assert img.size == (280, 280)
    assert img.getpixel((0, 0)) == (255, 0, 0)  # the largest positive: red
    assert img.getpixel((15, 0)) == (128, 128, 255)  # half as negative: light blue
    assert img.getpixel((100, 100)) == (255, 255, 255)  # zero: white
    sheet = explain.picture_grid(np.random.default_rng(0).normal(size=(10, 3, 3)), cols=4, size=30)
    assert sheet.size == (4 * 34 - 4, 3 * 34 - 4)


def test_training_sends_first_layer_tiles_each_epoch(tiny_digits):
    from digitlab.training import TrainConfig, train

    events = []
    result = train(
        tiny_digits.take(200, 50),
        model_config=ModelConfig(hidden_units=32, jit_compile=False, steps_per_execution=1),
        train_config=TrainConfig(epochs=2, batch_size=64),
        on_event=events.append,
    )
    tiles = [e for e in events if e["type"] == "tiles"]
    assert [e["epoch"] for e in tiles] == [0, 1, 2]  # before training, then after each epoch
    assert all(np.asarray(e["tiles"]).shape == (explain.TILE_UNITS, 28, 28) for e in tiles)
    assert not np.allclose(tiles[0]["tiles"], tiles[2]["tiles"])  # it learned something
    np.testing.assert_allclose(
        tiles[-1]["tiles"],
        explain.first_layer_tiles(result.model)[: explain.TILE_UNITS],
        rtol=1e-3,
        atol=1e-4,
    )
