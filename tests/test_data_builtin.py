"""Built-in datasets: registered under stable names, shaped as documented, the same from the same
seed, and scaled as declared (statistics from the training split only)."""

import numpy as np
import pytest
import torch

from slimnas.data import list_datasets, load_dataset
from slimnas.data._shapes import CLASSES as SHAPES
from slimnas.data._shapes import make_shapes
from slimnas.data._textgen import CLASSES as REVIEWS
from slimnas.data._textgen import make_text
from slimnas.errors import ConfigError


def test_the_names_are_registered():
    assert {"mnist1d", "digits", "digits-images", "shapes32", "text", "wine", "breast-cancer"} <= set(list_datasets())


def test_digits_stays_as_it_was_and_digits_images_is_standardised_per_channel():
    from sklearn.datasets import load_digits

    plain, images = load_dataset("digits"), load_dataset("digits-images")
    assert plain.info() == {} and plain.kind == "image"
    raw = load_digits().images / 16.0
    assert np.isclose(plain.x_train.numpy().max(), 1.0) and plain.x_train.min() >= 0  # [0, 1], nothing more
    every = torch.cat([plain.x_train, plain.x_val, plain.x_test]).numpy().ravel()
    assert np.array_equal(np.sort(every), np.sort(raw.astype(np.float32).ravel()))  # the source's pixels
    assert images.input_shape == plain.input_shape == (1, 8, 8)
    assert torch.equal(images.y_train, plain.y_train)  # same split
    p = images.preprocessing
    assert p.normalize == "channel" and p.mean.shape == (1, 1, 1)
    assert np.allclose(p.mean, plain.x_train.mean().item(), atol=1e-5)  # training split only
    assert np.allclose(p.transform(plain.x_test.numpy()), images.x_test.numpy(), atol=1e-5)
    assert abs(float(images.x_train.mean())) < 1e-4 and abs(float(images.x_train.std()) - 1) < 1e-3


def test_shapes32_is_deterministic_balanced_and_configurable():
    a, b = make_shapes(200, seed=3), make_shapes(200, seed=3)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])
    assert not np.array_equal(make_shapes(200, seed=4)[0], a[0])
    x, y = a
    assert x.shape == (200, 3, 32, 32) and x.dtype == np.float32 and 0 <= x.min() and x.max() <= 1
    assert np.bincount(y, minlength=len(SHAPES)).tolist() == [20] * 10
    s = load_dataset("shapes32", options={"n": 300, "seed": 1})
    assert s.input_shape == (3, 32, 32) and s.n_classes == 10 and s.kind == "image"
    assert len(s.y_train) + len(s.y_val) + len(s.y_test) == 300
    assert s.preprocessing.mean.shape == (3, 1, 1)  # per channel
    means = s.x_train.mean(dim=(0, 2, 3))
    assert torch.allclose(means, torch.zeros(3), atol=1e-4)


def test_text_is_deterministic_tokenised_and_not_solved_by_word_counts():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.linear_model import LogisticRegression

    t1, y1 = make_text(300, seed=2)
    t2, y2 = make_text(300, seed=2)
    assert list(t1) == list(t2) and np.array_equal(y1, y2)
    s = load_dataset("text", options={"n": 600})
    assert s.kind == "text" and s.n_classes == len(REVIEWS) == 8
    assert s.x_train.dtype == torch.int64 and s.x_train.ndim == 2 and s.input_shape == (s.x_train.shape[1],)
    assert s.vocab_size == len(s.preprocessing.tokenizer["vocab"]) and int(s.x_train.max()) < s.vocab_size
    assert s.pad_id == 0 and (s.x_train == 0).any()  # padded
    assert s.info()["vocab_size"] == s.vocab_size
    # a bag of words learns the topic words but not which clause decides or what a negation touches
    texts, y = make_text(4000, seed=0)
    bow = CountVectorizer().fit(texts[:3000])
    acc = LogisticRegression(max_iter=2000).fit(bow.transform(texts[:3000]), y[:3000]).score(bow.transform(texts[3000:]), y[3000:])
    assert 0.3 < acc < 0.85, acc


def test_sklearn_tabular_sets_are_standardised_per_feature():
    s = load_dataset("wine")
    assert s.kind == "tabular" and s.input_shape == (1, 13) and s.n_classes == 3
    assert s.preprocessing.normalize == "feature" and s.preprocessing.mean.shape == (1, 13)
    assert torch.allclose(s.x_train.mean(0), torch.zeros(1, 13), atol=1e-4)
    assert torch.allclose(s.x_train.std(0, unbiased=False), torch.ones(1, 13), atol=1e-3)
    assert load_dataset("breast-cancer").input_shape == (1, 30)


@pytest.mark.parametrize("options, field", [({"n": 3}, "data.options.n"), ({"colour": 1}, "data.options.colour"),
                                            ({"noise": "loud"}, "data.options.noise")])
def test_bad_dataset_options_name_the_field(options, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        load_dataset("shapes32", options=options)
