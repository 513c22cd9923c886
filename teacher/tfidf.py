"""The baseline every teacher must beat: TF-IDF features + logistic regression (scikit-learn).

Fitted on the same gold rows as the teacher and scored on the same dev/eval sets, it answers "is the
fine-tuned transformer worth its cost here?" in seconds. Features are word 1-2-grams plus character
2-5-grams within word boundaries (robust to typos and to the short fragments of SST-2); the inverse
regularisation strength C is picked on the dev set from a small grid, so the baseline is a fair one.

`save(dir)` / `TfidfBaseline.load(dir)` keep a fitted baseline without pickle (a project security rule:
unpickling runs arbitrary code): `baseline.json` holds the settings and each vectorizer's parameters and
vocabulary (terms in feature-index order), `baseline.safetensors` the arrays (idf per vectorizer, the
logistic regression's coef/intercept/classes). The float arrays are stored as float32: coef is
classes x features (TweetEval emoji, 8k rows: 20 x 169k, so baseline.safetensors is 28.4 MB as float64,
14.2 MB as float32; with baseline.json's 1.9 MB of vocabulary, 30.3 -> 16.1 MB), and float32's ~6e-8
relative rounding moved the probabilities of 5,000 test tweets by at most 6e-8 (no argmax changed). Loading rebuilds the scikit-learn objects by setting their fitted attributes (cast
back to float64, scikit-learn's own dtype here), so a blended teacher (teacher/blend.py) labels with the
fitted baseline to ~1e-6 in probability. Files written as float64 (before) load alike.
`TfidfTeacher` is a saved baseline as a member of a blended teacher (teacher/blend.py, teacher/ensemble.py).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path

import numpy as np

from zuoxiao.core.errors import InputError
from zuoxiao.core.metrics import classification_metrics

log = logging.getLogger(__name__)

#: Inverse regularisation strengths tried (picked on dev).
C_GRID = (1.0, 4.0, 16.0)
#: The files `TfidfBaseline.save` writes into its directory.
JSON_FILE, ARRAYS_FILE = "baseline.json", "baseline.safetensors"
#: dtype of the saved float arrays (idf, coef, intercept): half the size of float64, see the module docstring.
_STORED = np.float32
#: Floor for log(p) of classes the baseline never saw in training (p = 0): finite logits, same mixture.
_LOG_FLOOR = 1e-30


def baseline_logits(proba: np.ndarray) -> np.ndarray:
    """Baseline probabilities [N, C] -> logits whose softmax gives them back (log p, 0 floored)."""
    return np.log(np.clip(np.asarray(proba, dtype=np.float64), _LOG_FLOOR, 1.0)).astype(np.float32)


#: Vectorizer parameters that are saved (plain values; callables and dtype stay at their defaults).
_PARAMS = ("analyzer", "binary", "lowercase", "max_df", "max_features", "min_df", "ngram_range", "norm",
           "smooth_idf", "strip_accents", "sublinear_tf", "token_pattern", "use_idf", "encoding", "decode_error")


class TfidfBaseline:
    """predict_proba(texts) -> [N, C] float32 in the task's class order (absent classes get 0)."""

    def __init__(self, num_classes: int, C: float = 4.0, seed: int = 0, max_features: int = 200_000):
        self.num_classes, self.C, self.seed, self.max_features = num_classes, C, seed, max_features
        self.vectorizer = self.model = None

    def _features(self):
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.pipeline import FeatureUnion

        half = self.max_features // 2
        return FeatureUnion([
            # single-character words count too (emoji-less tweets, "a", "i"): token_pattern keeps them
            ("word", TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True, max_features=half, lowercase=True,
                                     token_pattern=r"(?u)\b\w+\b")),
            ("char", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True,
                                     max_features=half, lowercase=True)),
        ])

    def fit(self, texts: list[str], labels: list[int], features=None) -> TfidfBaseline:
        from sklearn.linear_model import LogisticRegression

        if self.vectorizer is None:
            self.vectorizer = self._features()
            features = self.vectorizer.fit_transform(texts)
        elif features is None:
            features = self.vectorizer.transform(texts)
        self.model = LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed)
        self.model.fit(features, np.asarray(labels))
        return self

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        proba = self.model.predict_proba(self.vectorizer.transform(texts))  # [N, classes seen in training]
        out = np.zeros((len(texts), self.num_classes), dtype=np.float32)
        out[:, self.model.classes_] = proba
        return out

    def save(self, directory: str | Path) -> Path:
        """Write baseline.json + baseline.safetensors into ``directory`` (created); returns it."""
        from safetensors.numpy import save

        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        arrays, vectorizers = {}, []
        for name, vec in self.vectorizer.transformer_list:
            params = {k: v for k, v in vec.get_params().items() if k in _PARAMS}
            vocab = [""] * len(vec.vocabulary_)
            for term, i in vec.vocabulary_.items():
                vocab[i] = term
            vectorizers.append({"name": name, "params": params, "vocabulary": vocab})
            arrays[f"{name}.idf"] = np.asarray(vec.idf_, dtype=_STORED)
        classes = np.asarray(self.model.classes_, dtype=np.int64)
        arrays["classes"] = classes
        if isinstance(self.model, _Constant):
            model_kind = "constant"
        else:
            model_kind = "logreg"
            arrays["coef"] = np.ascontiguousarray(self.model.coef_, dtype=_STORED)
            arrays["intercept"] = np.asarray(self.model.intercept_, dtype=_STORED)
        meta = {"kind": "tfidf+logreg", "format": 1, "model": model_kind, "C": self.C, "seed": self.seed,
                "num_classes": self.num_classes, "max_features": self.max_features, "vectorizers": vectorizers}
        (d / ARRAYS_FILE).write_bytes(save(arrays))  # (save_file creates the file 0600; this honours the umask)
        (d / JSON_FILE).write_text(json.dumps(meta, ensure_ascii=False))
        return d

    @classmethod
    def load(cls, directory: str | Path) -> TfidfBaseline:
        """The baseline `save` wrote into ``directory``; a missing or damaged file is an InputError naming it."""
        from safetensors.numpy import load_file
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import FeatureUnion

        d = Path(directory)
        meta_path, arrays_path = d / JSON_FILE, d / ARRAYS_FILE
        for f in (meta_path, arrays_path):
            if not f.is_file():
                raise InputError(f"baseline file {f} is missing; re-run `zuoxiao finetune-teacher` to write it, or "
                                 f"remove {d.parent / 'blend.json'} to label with the transformer alone")
        try:
            meta = json.loads(meta_path.read_text())
            arrays = load_file(str(arrays_path))
            base = cls(int(meta["num_classes"]), C=float(meta["C"]), seed=int(meta["seed"]),
                       max_features=int(meta["max_features"]))
            parts = []
            for v in meta["vectorizers"]:
                params = {**v["params"], "ngram_range": tuple(v["params"]["ngram_range"])}
                vec = TfidfVectorizer(**params)
                vec.vocabulary_ = {term: i for i, term in enumerate(v["vocabulary"])}
                vec.fixed_vocabulary_ = False
                vec.idf_ = arrays[f"{v['name']}.idf"].astype(np.float64)  # checks len(idf) == len(vocabulary)
                parts.append((v["name"], vec))
            base.vectorizer = FeatureUnion(parts)
            classes = arrays["classes"]
            if meta["model"] == "constant":
                base.model = _Constant(int(classes[0]))
            else:
                width = sum(len(v["vocabulary"]) for v in meta["vectorizers"])
                coef, intercept = arrays["coef"].astype(np.float64), arrays["intercept"].astype(np.float64)
                if coef.shape[1] != width or len(intercept) != coef.shape[0]:
                    raise ValueError(f"coef {coef.shape} / intercept {intercept.shape} do not fit {width} features")
                model = LogisticRegression(C=base.C, max_iter=1000, random_state=base.seed)
                model.coef_, model.intercept_, model.classes_ = coef, intercept, classes
                model.n_features_in_ = width
                base.model = model
            if classes.min() < 0 or classes.max() >= base.num_classes:
                raise ValueError(f"classes {classes.tolist()} outside 0..{base.num_classes - 1}")
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - JSON, safetensors, missing keys, shapes: one clear message
            raise InputError(f"baseline in {d} is damaged ({type(err).__name__}: {err}); files {meta_path.name} "
                             f"and {arrays_path.name}: re-run `zuoxiao finetune-teacher` to write them again") from None
        return base


def _metrics_or_none(model: TfidfBaseline, texts: list[str], labels: list[int], num_classes: int) -> dict | None:
    """The baseline's accuracy and macro-F1 on (texts, labels); None when there are no rows."""
    if not texts:
        return None
    pred = model.predict_proba(texts).argmax(-1)
    return classification_metrics(pred, np.asarray(labels), num_classes)


def fit_baseline(train: tuple[list[str], list[int]], dev: tuple[list[str], list[int]] | None,
                 evals: dict[str, tuple[list[str], list[int]]], num_classes: int, seed: int = 0
                 ) -> tuple[TfidfBaseline, dict]:
    """Fit on ``train``; pick C on ``dev`` (the middle of the grid without one); score on dev and ``evals``.

    Returns (model, metrics) with metrics = {"kind", "C", "dev": {accuracy, macro_f1, n} | None,
    <eval name>: {...}, "seconds", "grid": {C: dev accuracy}}.
    """
    import sklearn.linear_model  # noqa: F401  (load scikit-learn/scipy's BLAS first: the limit applies to
    from threadpoolctl import threadpool_limits  # libraries already loaded)

    # One BLAS/OpenMP thread: on a busy CPU, lbfgs with spinning threads ran 15x slower (measured: 12-19 s
    # vs 0.7-1.1 s per fit on the demo's 640 rows), and the fits are small enough not to need more.
    with threadpool_limits(1):
        return _fit_baseline(train, dev, evals, num_classes, seed)


def _fit_baseline(train, dev, evals, num_classes: int, seed: int) -> tuple[TfidfBaseline, dict]:
    t0 = time.perf_counter()
    x, y = train
    if len(set(y)) < 2:
        # Logistic regression needs two classes; a constant predictor is the honest baseline then.
        log.warning("baseline: the training rows hold a single class; the baseline predicts it always")
    base = TfidfBaseline(num_classes, seed=seed)
    base.vectorizer = base._features()
    feats = base.vectorizer.fit_transform(x)
    grid: dict[str, float] = {}
    best, best_acc = None, -1.0
    for c in (C_GRID if dev and dev[0] else (C_GRID[len(C_GRID) // 2],)):
        cand = TfidfBaseline(num_classes, C=c, seed=seed)
        cand.vectorizer = base.vectorizer
        if len(set(y)) < 2:
            cand.model = _Constant(y[0] if y else 0)
        else:
            cand.fit(x, y, features=feats)
        acc = _metrics_or_none(cand, *dev, num_classes)["accuracy"] if dev and dev[0] else 0.0
        grid[str(c)] = round(acc, 5)
        if acc > best_acc:
            best, best_acc = cand, acc
    metrics = {"kind": "tfidf+logreg", "C": best.C, "grid": grid,
               "dev": _metrics_or_none(best, *dev, num_classes) if dev else None}
    for name, (tx, ty) in evals.items():
        metrics[name] = _metrics_or_none(best, tx, ty, num_classes)
    metrics["seconds"] = round(time.perf_counter() - t0, 2)
    return best, metrics


class _Constant:
    """A stand-in for LogisticRegression when the gold rows hold one class."""

    def __init__(self, label: int):
        self.classes_ = np.asarray([label])

    def predict_proba(self, features) -> np.ndarray:
        return np.ones((features.shape[0], 1))


# ---- the baseline as a member of a blended teacher (teacher/blend.py, teacher/ensemble.py) ----

class TfidfTeacher:
    """A saved TfidfBaseline as an ensemble member: texts -> logits (log-probabilities), fingerprinted by its
    files. It has no torch module: it runs on the CPU wherever the transformer runs, and counts 0 parameters."""

    kind = "tfidf"

    def __init__(self, baseline: TfidfBaseline, directory: str | Path):
        self.baseline, self.directory = baseline, Path(directory)
        h = hashlib.sha256()
        for name in (JSON_FILE, ARRAYS_FILE):
            h.update(name.encode() + b"\0" + (self.directory / name).read_bytes())
        self._fingerprint = h.hexdigest()[:16]

    @classmethod
    def load(cls, directory: str | Path) -> TfidfTeacher:
        return cls(TfidfBaseline.load(directory), directory)

    def predict_texts(self, texts: list[str], batch_size: int = 64, progress: bool = False) -> np.ndarray:
        return baseline_logits(self.baseline.predict_proba(list(texts)))

    def fingerprint(self) -> str:
        return self._fingerprint

    def params(self) -> int:
        return 0

    def to(self, device) -> TfidfTeacher:
        return self
