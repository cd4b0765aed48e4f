"""digitlab.models: the tutorial's network exactly, the CNN, and safe loading of outside models."""

import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from keras import layers

from digitlab.models import (
    ModelConfig,
    ModelError,
    build_model,
    check_model,
    load_model_file,
    predict_proba,
    save_model_file,
)


def test_mlp_is_the_tutorial_network():
    model = build_model(ModelConfig(), seed=0)
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    assert [d.units for d in dense] == [512, 10]
    assert [d.activation.__name__ for d in dense] == ["relu", "softmax"]
    assert model.count_params() == 784 * 512 + 512 + 512 * 10 + 10  # 407,050 as in the tutorial
    assert model.optimizer.__class__.__name__ == "RMSprop"
    assert abs(float(model.optimizer.learning_rate) - 0.001) < 1e-9
    assert model.loss == "categorical_crossentropy"


def test_cnn_and_options():
    cnn = build_model(ModelConfig(arch="cnn"), seed=0)
    assert cnn.output_shape == (None, 10)
    deep = build_model(
        ModelConfig(
            hidden_units=64, hidden_layers=3, optimizer="adam", learning_rate=0.01, dropout=0.2
        )
    )
    assert [layer.units for layer in deep.layers if isinstance(layer, layers.Dense)] == [
        64,
        64,
        64,
        10,
    ]
    assert sum(isinstance(layer, layers.Dropout) for layer in deep.layers) == 3
    assert abs(float(deep.optimizer.learning_rate) - 0.01) < 1e-7


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"arch": "rnn"}, "architecture"),
        ({"hidden_units": 0}, "hidden units"),
        ({"hidden_layers": 99}, "hidden layers"),
        ({"optimizer": "lbfgs"}, "optimizer"),
        ({"learning_rate": 5.0}, "learning rate"),
        ({"dropout": 1.0}, "dropout"),
    ],
)
def test_config_out_of_range(kwargs, words):
    with pytest.raises(ModelError, match=f"(?i){words}"):
        ModelConfig(**kwargs)


def test_predict_proba_matches_predict():
    model = build_model(ModelConfig(hidden_units=32), seed=1)
    x = np.random.default_rng(0).random((5, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(predict_proba(model, x), model.predict(x, verbose=0), atol=1e-5)
    assert predict_proba(model, x[0]).shape == (1, 10)


def test_save_and_load_roundtrip(tmp_path):
    model = build_model(ModelConfig(hidden_units=16), seed=0)
    path = save_model_file(model, tmp_path / "m.keras")
    assert [p.name for p in tmp_path.iterdir()] == ["m.keras"]  # no temporary left behind
    x = np.random.default_rng(0).random((3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(
        predict_proba(load_model_file(path), x), predict_proba(model, x), atol=1e-6
    )


def test_flat_784_input_model_is_accepted(tmp_path):
    flat = keras.Sequential([keras.Input(shape=(784,)), layers.Dense(10, activation="softmax")])
    flat.save(tmp_path / "flat.keras")
    model = load_model_file(tmp_path / "flat.keras")
    assert predict_proba(model, np.zeros((2, 28, 28), np.float32)).shape == (2, 10)


def test_save_refuses_bad_names(tmp_path):
    model = build_model(ModelConfig(hidden_units=8))
    with pytest.raises(ModelError, match="end in .keras"):
        save_model_file(model, tmp_path / "m.h5")
    with pytest.raises(ModelError, match="no such folder"):
        save_model_file(model, tmp_path / "nope" / "m.keras")


def test_refuses_files_that_are_not_models(tmp_path):
    (tmp_path / "a.keras").write_text("not a model")
    with pytest.raises(ModelError, match="not a .keras model file"):
        load_model_file(tmp_path / "a.keras")
    with pytest.raises(ModelError, match="no such model file"):
        load_model_file(tmp_path / "missing.keras")


def test_refuses_truncated_file(tmp_path):
    model = build_model(ModelConfig(hidden_units=16))
    good = save_model_file(model, tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(good[: len(good) // 2])
    with pytest.raises(ModelError, match="damaged or truncated"):
        load_model_file(tmp_path / "cut.keras")


def test_refuses_too_large(tmp_path):
    path = save_model_file(build_model(ModelConfig(hidden_units=16)), tmp_path / "m.keras")
    with pytest.raises(ModelError, match="larger than"):
        load_model_file(path, max_bytes=1000)


@pytest.mark.parametrize(
    "model, fault",
    [
        (
            keras.Sequential([keras.Input(shape=(32, 32)), layers.Flatten(), layers.Dense(10)]),
            "input",
        ),
        (
            keras.Sequential([keras.Input(shape=(28, 28)), layers.Flatten(), layers.Dense(5)]),
            "outputs",
        ),
    ],
    ids=["input", "output"],
)
def test_refuses_wrong_shapes(tmp_path, model, fault):
    model.save(tmp_path / "shape.keras")
    with pytest.raises(ModelError, match=fault):
        load_model_file(tmp_path / "shape.keras")
    with pytest.raises(ModelError):
        check_model(model)


def test_lambda_layer_is_refused_and_runs_no_code(tmp_path):
    marker = tmp_path / "ran.txt"
    code = f"(open({str(marker)!r}, 'w').write('ran'), x)[1]"
    evil = keras.Sequential(
        [
            keras.Input(shape=(28, 28)),
            layers.Lambda(eval(f"lambda x: {code}")),
            layers.Flatten(),
            layers.Dense(10, activation="softmax"),
        ]
    )
    evil.save(tmp_path / "evil.keras")
    marker.unlink()  # building the model ran it once; from here on nothing may run it
    with pytest.raises(ModelError, match="Lambda or custom layer"):
        load_model_file(tmp_path / "evil.keras")
    assert not marker.exists()
    # The control: the same file loaded unsafely does run its code, so the check above can fail.
    keras.config.enable_unsafe_deserialization()
    try:
        keras.saving.load_model(tmp_path / "evil.keras", safe_mode=False)
    finally:
        keras.config.disable_unsafe_deserialization() if hasattr(
            keras.config, "disable_unsafe_deserialization"
        ) else None
    assert marker.exists()


def test_custom_layer_is_refused_in_a_fresh_process(tmp_path):
    marker = tmp_path / "custom-ran.txt"
    save = textwrap.dedent(
        f"""
        import keras
        from keras import layers

        @keras.saving.register_keras_serializable(package="evil")
        class Evil(layers.Layer):
            def __init__(self, **kw):
                super().__init__(**kw)
                open({str(marker)!r}, "w").write("ran")
            def call(self, x):
                return x

        m = keras.Sequential([keras.Input(shape=(28, 28)), Evil(), layers.Flatten(),
                              layers.Dense(10, activation="softmax")])
        m.save({str(tmp_path / "custom.keras")!r})
        """
    )
    subprocess.run([sys.executable, "-c", save], check=True, capture_output=True)
    marker.unlink()
    load = (
        "from digitlab.models import load_model_file, ModelError\n"
        "try:\n"
        f"    load_model_file({str(tmp_path / 'custom.keras')!r})\n"
        "except ModelError as e:\n"
        "    print('REFUSED', e)\n"
    )
    out = subprocess.run([sys.executable, "-c", load], capture_output=True, text=True, check=True)
    assert "REFUSED" in out.stdout and "custom layer" in out.stdout
    assert not marker.exists()


def test_models_built_and_loaded_from_many_threads_while_others_predict(tmp_path):
    """A server builds a finished job's model (from_weights) and loads saved ones in some
    threads while script threads call models: every build and load goes through one lock
    (tensorflow issue 35813), and none of it fails, many times over."""
    import threading

    from digitlab.models import from_weights

    configs = [ModelConfig(hidden_units=32), ModelConfig(arch="cnn")]
    trained = [build_model(c, seed=0) for c in configs]
    weights = [m.get_weights() for m in trained]
    paths = [save_model_file(m, tmp_path / f"m{i}.keras") for i, m in enumerate(trained)]
    x = np.random.default_rng(0).random((1, 28, 28), dtype=np.float32)
    want = [predict_proba(m, x) for m in trained]
    errors: list[BaseException] = []
    rounds = 6

    def builder(i):
        for _ in range(rounds):
            model = from_weights(configs[i % 2], weights[i % 2])
            np.testing.assert_allclose(predict_proba(model, x), want[i % 2], atol=1e-5)

    def loader(i):
        for _ in range(rounds):
            model = load_model_file(paths[i % 2])
            np.testing.assert_allclose(predict_proba(model, x), want[i % 2], atol=1e-5)

    def predictor(i):
        for _ in range(rounds * 10):
            np.testing.assert_allclose(predict_proba(trained[i % 2], x), want[i % 2], atol=1e-5)

    def guarded(fn, i):
        try:
            fn(i)
        except BaseException as e:  # collected: a thread's failure must fail the test
            errors.append(e)

    threads = [
        threading.Thread(target=guarded, args=(fn, i))
        for i in range(2)
        for fn in (builder, builder, loader, predictor)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not [t for t in threads if t.is_alive()]
    assert not errors, errors[:3]


def test_a_model_from_outside_is_described_from_its_layers():
    from digitlab.models import arch_of, describe_model, model_bytes

    mlp, cnn = build_model(ModelConfig(hidden_units=16)), build_model(ModelConfig(arch="cnn"))
    assert describe_model(mlp) == "Flatten -> Dense(16) -> Dense(10)"
    assert describe_model(cnn).startswith("Reshape -> Conv2D(32) -> MaxPooling2D -> Conv2D(64)")
    assert (arch_of(mlp), arch_of(cnn)) == ("mlp", "cnn")
    data = model_bytes(mlp)
    assert data[:2] == b"PK"  # a .keras zip, as the download button sends it


def test_one_accuracy_for_pages_and_teaching(tiny_digits):
    """models.accuracy on [0, 1] images agrees with training.evaluate's on the same digits."""
    from digitlab.data import normalise
    from digitlab.models import accuracy
    from digitlab.training import TrainConfig, evaluate, train

    model = train(
        tiny_digits, model_config=ModelConfig(hidden_units=32), train_config=TrainConfig(epochs=1)
    ).model
    x, y = tiny_digits.x_test, tiny_digits.y_test
    assert accuracy(model, normalise(x), y) == pytest.approx(evaluate(model, x, y)[1], abs=1e-9)
    assert accuracy(model, np.zeros((0, 28, 28), np.float32), np.zeros(0)) is None
