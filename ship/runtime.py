"""Runtime for an exported bundle: ONNX Runtime + tokenizers + numpy only (no torch, no transformers).

This file is also copied into every bundle as ``zuoxiao_bundle.py``, so an app team can run

    from zuoxiao_bundle import Bundle            # or: from zuoxiao.ship.runtime import Bundle
    b = Bundle.load("path/to/bundle")
    b.predict(["great product, fast delivery"])
    # [{"label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}, "truncated": false}]

Inputs the model cannot judge are flagged, not hidden: an empty or blank text gets
``"warning": "empty_input"``; a text longer than the bundle's max_length is classified on its first
max_length tokens and says ``"truncated": true, "num_tokens": N, "max_length": M``. A model that outputs
NaN/inf raises (IntegrityError inside zuoxiao, exit 5 from `zuoxiao predict`): never a NaN probability.

Bundle layout: model.onnx (int8), tokenizer.json (+ tokenizer_config.json, vocab.txt), config.json (HF
config with id2label, plus a "zuoxiao" block: max_length, onnx file, input names, calibration
temperature), README.md (model
card), metrics.json, SHA256SUMS (verified on load).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

try:  # inside zuoxiao: errors map to documented exit codes; stand-alone in a bundle: plain exceptions
    from zuoxiao.core.errors import InputError as _BadBundle
    from zuoxiao.core.errors import IntegrityError as _Corrupt
except ImportError:  # pragma: no cover - exercised by the stand-alone subprocess test
    class _BadBundle(ValueError):
        pass

    class _Corrupt(ValueError):
        pass

CHECKSUMS = "SHA256SUMS"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def verify_checksums(directory: Path) -> None:
    """Every file listed in SHA256SUMS ("<hex>  <relative path>" lines, POSIX separators; older bundles list
    top-level names only) must exist inside ``directory`` and match."""
    sums = directory / CHECKSUMS
    if not sums.is_file():
        raise _Corrupt(f"{directory} has no {CHECKSUMS}; rebuild the bundle with `zuoxiao export CONFIG`")
    root = directory.resolve()
    for lineno, line in enumerate(sums.read_text().splitlines(), 1):
        if not line.strip():
            continue
        digest, name = line.split(maxsplit=1)
        f = directory.joinpath(*name.strip().lstrip("*").split("/"))
        if not f.resolve().is_relative_to(root):  # a listed "../x" must not make us read outside the bundle
            raise _Corrupt(f"{sums} line {lineno} names {name!r}, outside the bundle; the file was tampered "
                           "with: copy the bundle again")
        if not f.is_file() or _sha256(f) != digest:
            raise _Corrupt(f"bundle file {f} is missing or does not match {CHECKSUMS}; "
                           "the bundle is corrupt: rebuild it with `zuoxiao export CONFIG` or copy it again")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


class Bundle:
    """A loaded bundle. ``predict`` returns labels with probabilities; ``logits`` the raw scores [N, C]."""

    def __init__(self, directory: Path, session, tokenizer, label_names: list[str], input_names: list[str],
                 temperature: float = 1.0, counter=None, max_length: int | None = None):
        self.directory, self.session, self.tokenizer = directory, session, tokenizer
        self.label_names, self.input_names = label_names, input_names
        self.temperature = temperature  # calibration: probabilities = softmax(logits / T)
        # `counter`: the same tokenizer without truncation or padding, to tell how long a cut text was.
        self.counter, self.max_length = counter, max_length

    @classmethod
    def load(cls, directory: str | Path, verify: bool = True, threads: int | None = None) -> Bundle:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.is_file():
            raise _BadBundle(f"{directory} is not a bundle (no config.json); give the directory written by "
                             "`zuoxiao compress` or `zuoxiao export` (<output_dir>/bundle)")
        if verify:
            verify_checksums(directory)
        config = json.loads(cfg_path.read_text())
        meta = config.get("zuoxiao", {})
        id2label = config.get("id2label") or {}
        label_names = [str(id2label.get(str(i), id2label.get(i, i))) for i in range(len(id2label))]
        tokenizer = Tokenizer.from_file(str(directory / "tokenizer.json"))
        counter = Tokenizer.from_str(tokenizer.to_str())
        counter.no_truncation()
        counter.no_padding()
        max_length = int(meta.get("max_length", 128))
        tokenizer.enable_truncation(max_length=max_length)
        pad_id = int(meta.get("pad_token_id", config.get("pad_token_id") or 0))
        tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        session = ort.InferenceSession(str(directory / meta.get("onnx_file", "model.onnx")), opts,
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        return cls(directory, session, tokenizer, label_names, names, float(meta.get("temperature", 1.0)),
                   counter=counter, max_length=max_length)

    def logits(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Raw logits [N, C] (float32)."""
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for s in range(0, len(texts), batch_size):
            encs = self.tokenizer.encode_batch(list(texts[s : s + batch_size]))
            feed = {"input_ids": np.array([e.ids for e in encs], np.int64),
                    "attention_mask": np.array([e.attention_mask for e in encs], np.int64),
                    "token_type_ids": np.array([e.type_ids for e in encs], np.int64)}
            out.append(self.session.run(["logits"], {n: feed[n] for n in self.input_names})[0])
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        """Per text, in input order: {"label": name, "probabilities": {name: p} (calibrated),
        "truncated": bool} plus "num_tokens"/"max_length" when truncated and "warning": "empty_input"
        for an empty or blank text. Raises when the model outputs NaN/inf (a broken bundle)."""
        if isinstance(texts, str):
            texts = [texts]
        logits = self.logits(texts, batch_size).astype(np.float64)  # [N, C]
        probs = _softmax(logits / self.temperature)
        bad = [i for i, row in enumerate(probs) if not np.isfinite(row).all()]
        if bad:
            raise _Corrupt(f"the model in {self.directory} produced non-finite outputs (NaN/inf) for text(s) "
                           f"{bad[:10]}; the bundle is broken: rebuild it from a finite student "
                           "(`zuoxiao compress CONFIG`) or ship the previous bundle")
        out = []
        for text, p in zip(texts, probs, strict=True):
            r = {"label": self.label_names[int(p.argmax())],
                 "probabilities": {n: round(float(x), 6) for n, x in zip(self.label_names, p, strict=True)},
                 "truncated": False}
            if not text.strip():
                r["warning"] = "empty_input"
            n = self._num_tokens(text)
            if n is not None and self.max_length is not None and n > self.max_length:
                r.update(truncated=True, num_tokens=n, max_length=self.max_length)
            out.append(r)
        return out

    def _num_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` before truncation (special tokens included, as max_length counts them)."""
        return len(self.counter.encode(text).ids) if self.counter is not None else None
