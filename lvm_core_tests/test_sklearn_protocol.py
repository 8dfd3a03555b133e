"""scikit-learn's protocol on lvm_core's estimator base classes (no scikit-learn import in lvm_core)."""
from __future__ import annotations

import numpy as np
import pytest

from lvm_core.models.base import ClusterMixin, ParamsMixin, TransformerMixin
from lvm_core.validation import NotFittedError, check_is_fitted

from .conftest import require


class ToyMeans(ClusterMixin, ParamsMixin):
    """Two-means by one assignment step: enough to exercise the protocol."""

    def __init__(self, n_components=2, shift=0.0):
        self.n_components = n_components
        self.shift = shift

    def fit(self, X, y=None):
        X = self._validate_data(X, reset=True, ndim=2)
        order = np.argsort(X[:, 0])
        self.means_ = np.stack([X[part].mean(axis=0) for part in
                                np.array_split(order, self.n_components)]) + self.shift
        return self

    def score_samples(self, X):
        check_is_fitted(self, "means_")
        X = self._validate_data(X, reset=False, ndim=2)
        return -np.min(((X[:, None, :] - self.means_) ** 2).sum(-1), axis=1)

    def score(self, X, y=None):
        return float(np.mean(self.score_samples(X)))

    def predict(self, X):
        check_is_fitted(self, "means_")
        X = self._validate_data(X, reset=False, ndim=2)
        return np.argmin(((X[:, None, :] - self.means_) ** 2).sum(-1), axis=1)


class ToyProjection(TransformerMixin, ParamsMixin):
    def __init__(self, n_components=1):
        self.n_components = n_components

    def fit(self, X, y=None):
        X = self._validate_data(X, reset=True, ndim=2)
        self.mean_ = X.mean(axis=0)
        _, _, Vt = np.linalg.svd(X - self.mean_, full_matrices=False)
        self.components_ = Vt[: self.n_components]
        return self

    def transform(self, X):
        check_is_fitted(self, "components_")
        X = self._validate_data(X, reset=False, ndim=2)
        return (X - self.mean_) @ self.components_.T


def _data():
    rng = np.random.default_rng(0)
    return np.concatenate([rng.normal(-3, 1, (40, 3)), rng.normal(3, 1, (40, 3))])


def test_tags_come_from_scikit_learn_and_name_the_estimator_type():
    require("sklearn")
    from sklearn.utils import get_tags

    assert get_tags(ToyMeans()).estimator_type == "clusterer"
    tags = get_tags(ToyProjection())
    assert tags.estimator_type == "transformer" and tags.transformer_tags is not None
    assert tags.target_tags.required is False


def test_is_fitted_and_not_fitted_error_are_recognised_by_scikit_learn():
    require("sklearn")
    from sklearn.utils.validation import check_is_fitted as sk_check_is_fitted
    from sklearn.exceptions import NotFittedError as SkNotFitted

    model = ToyMeans()
    with pytest.raises(SkNotFitted):
        sk_check_is_fitted(model)
    with pytest.raises((AttributeError, ValueError)):  # what scikit-learn's checks accept
        model.predict(_data())
    with pytest.raises(NotFittedError):
        model.predict(_data())
    sk_check_is_fitted(model.fit(_data()))


def test_n_features_in_and_the_mismatch_message_follow_scikit_learn():
    model = ToyMeans().fit(_data())
    assert model.n_features_in_ == 3 and not hasattr(model, "feature_names_in_")
    with pytest.raises(ValueError, match="X has 2 features, but ToyMeans is expecting 3"):
        model.predict(_data()[:, :2])


def test_dataframe_feature_names_are_recorded_and_checked():
    pd = require("pandas")
    frame = pd.DataFrame(_data(), columns=["a", "b", "c"])
    model = ToyMeans().fit(frame)
    assert list(model.feature_names_in_) == ["a", "b", "c"]
    with pytest.raises(ValueError, match="feature names.*differ"):
        model.predict(frame[["c", "b", "a"]])
    # refitting on a plain array forgets the names
    assert not hasattr(model.fit(_data()), "feature_names_in_")


def test_fit_predict_equals_fit_then_predict():
    X = _data()
    np.testing.assert_array_equal(ToyMeans().fit_predict(X), ToyMeans().fit(X).predict(X))


def test_set_output_pandas_and_clone_keep_the_choice():
    pd = require("pandas")
    require("sklearn")
    from sklearn.base import clone

    X = pd.DataFrame(_data(), columns=["a", "b", "c"], index=np.arange(80) + 100)
    model = ToyProjection(n_components=2).set_output(transform="pandas")
    out = model.fit_transform(X)
    assert isinstance(out, pd.DataFrame)
    assert list(out.columns) == ["toyprojection0", "toyprojection1"]
    assert list(out.index) == list(X.index)
    assert isinstance(clone(model).fit(X).transform(X), pd.DataFrame)
    assert isinstance(model.set_output(transform="default").transform(X), np.ndarray)
    with pytest.raises(ValueError, match="'default', 'pandas' or 'polars'"):
        model.set_output(transform="xarray")


def test_pipeline_grid_search_and_cross_val_score_accept_the_estimators():
    require("sklearn")
    from sklearn.model_selection import GridSearchCV, cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X = _data()
    pipe = make_pipeline(StandardScaler(), ToyProjection(n_components=2), ToyMeans())
    labels = pipe.fit(X).predict(X)
    assert set(np.unique(labels)) == {0, 1}
    scores = cross_val_score(ToyMeans(), X, cv=3)
    assert scores.shape == (3,) and np.all(np.isfinite(scores))
    search = GridSearchCV(ToyMeans(), {"shift": [0.0, 5.0]}, cv=3).fit(X)
    assert search.best_params_ == {"shift": 0.0}


@pytest.mark.parametrize("make", [ToyMeans, ToyProjection])
def test_scikit_learn_check_estimator_passes_on_the_base_classes(make):
    """Every check scikit-learn runs passes for a minimal estimator on these bases, so a
    failure on a real model is that model's, not the protocol's."""
    require("sklearn")
    import warnings

    from sklearn.utils.estimator_checks import check_estimator

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        results = check_estimator(make(), on_fail=None)
    failed = [(r["check_name"], str(r["exception"])[:200]) for r in results
              if r["status"] == "failed"]
    assert len(results) > 30 and failed == []
