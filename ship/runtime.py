"""Runtime for an exported bundle: ONNX Runtime + tokenizers + numpy only (no torch, no transformers).

This file is also copied into every bundle as ``zuoxiao_bundle.py``, so an app team can run

    from zuoxiao_bundle import Bundle            # or: from zuoxiao.ship.runtime import Bundle
    b = Bundle.load("path/to/bundle")
    b.predict(["great product, fast delivery"])
    # [{"label": "positive", "probabilities": {"negative": 0.03, "positive": 0.97}, "truncated": false}]
    b.explain(["great product, fast delivery"])   # which words made it say so (see Bundle.explain)

Inputs the model cannot judge are flagged, not hidden: an empty or blank text gets
``"warning": "empty_input"``; a text longer than the bundle's max_length is classified on its first
max_length tokens and says ``"truncated": true, "num_tokens": N, "max_length": M``. A model that outputs
NaN/inf raises (IntegrityError inside zuoxiao, exit 5 from `zuoxiao predict`): never a NaN probability.
So does a bundle file that does not parse (config.json, tokenizer.json, model.onnx, SHA256SUMS), naming the
file: a checksum rewritten to match a damaged file does not get past the parser.

Bundle layout: model.onnx (int8), tokenizer.json (+ tokenizer_config.json, vocab.txt), config.json (HF
config with id2label, plus a "zuoxiao" block: max_length, onnx file, input names, calibration
temperature), README.md (model card), metrics.json, SHA256SUMS (verified on load).
"""

from __future__ import annotations

import hashlib
import json
import math
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
#: Occlusion cost bound: at most this many words per text are masked (one extra batch row each), so one
#: explanation costs one model call on a batch of at most 1 + EXPLAIN_MAX_WORDS rows. Words after the cap
#: (and words cut by max_length) get no attribution; "words_total" says how many the text has.
EXPLAIN_MAX_WORDS = 64
#: The token that stands in for a masked word, first one the vocabulary has (ship/web/zuoxiao-runtime.mjs
#: uses the same list). Every sub-token of the word is replaced, not deleted: the sequence keeps its length
#: and every other word its position, so all variants form one unpadded batch (no pad rows that would move
#: the int8 graph's run-time quantisation ranges) and the only change the model sees is the missing word.
#: [MASK] is what a BERT-family backbone saw in pre-training for "a word is missing here".
MASK_TOKENS = ("[MASK]", "<mask>", "[UNK]", "<unk>")
_REBUILD = "the bundle is damaged: copy it again or rebuild it with `zuoxiao ship CONFIG`"


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
    try:
        lines = sums.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise _Corrupt(f"bundle file {sums} is not UTF-8 text ({e.reason} at byte {e.start}); {_REBUILD}") from None
    for lineno, line in enumerate(lines, 1):
        if not line.strip():
            continue
        parts = line.split(maxsplit=1)
        if len(parts) != 2 or len(parts[0]) != 64 or any(c not in "0123456789abcdef" for c in parts[0].lower()):
            raise _Corrupt(f"bundle file {sums} line {lineno} is not '<64 hex digits>  <file>': {line[:80]!r}; "
                           + _REBUILD)
        digest, name = parts
        f = directory.joinpath(*name.strip().lstrip("*").split("/"))
        if not f.resolve().is_relative_to(root):  # a listed "../x" must not make us read outside the bundle
            raise _Corrupt(f"{sums} line {lineno} names {name!r}, outside the bundle; the file was tampered "
                           "with: copy the bundle again")
        if not f.is_file() or _sha256(f) != digest.lower():
            raise _Corrupt(f"bundle file {f} is missing or does not match {CHECKSUMS}; "
                           "the bundle is corrupt: rebuild it with `zuoxiao export CONFIG` or copy it again")


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def read_config(path: Path) -> dict:
    """config.json as the runtime needs it: {"labels", "max_length", "temperature", "onnx_file", "pad_id"}.
    Anything that does not parse raises naming the file and the key."""
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise _Corrupt(f"bundle file {path} is not valid JSON ({e}); {_REBUILD}") from None
    if not isinstance(config, dict):
        raise _Corrupt(f"bundle file {path} must hold a JSON object, not {type(config).__name__}; {_REBUILD}")
    meta, id2label = config.get("zuoxiao", {}), config.get("id2label")
    if not isinstance(meta, dict):
        raise _Corrupt(f"bundle file {path}: \"zuoxiao\" must be an object, got {meta!r:.60}; {_REBUILD}")
    if not isinstance(id2label, dict) or not id2label:
        raise _Corrupt(f"bundle file {path}: \"id2label\" must be a non-empty object {{\"0\": name, ...}}, "
                       f"got {id2label!r:.60}; {_REBUILD}")
    missing = [i for i in range(len(id2label)) if str(i) not in id2label]
    if missing:
        raise _Corrupt(f"bundle file {path}: \"id2label\" has no label for id(s) {missing[:5]} (keys must be "
                       f"0..{len(id2label) - 1}); {_REBUILD}")
    out = {"labels": [str(id2label[str(i)]) for i in range(len(id2label))],
           "onnx_file": meta.get("onnx_file", "model.onnx")}
    for key, default, ok in [("max_length", 128, lambda v: isinstance(v, int) and v > 2),
                             ("temperature", 1.0, lambda v: isinstance(v, int | float) and math.isfinite(v) and v > 0),
                             ("pad_token_id", config.get("pad_token_id") or 0, lambda v: isinstance(v, int) and v >= 0)]:
        value = meta.get(key, default)
        if isinstance(value, bool) or not ok(value):
            raise _Corrupt(f"bundle file {path}: zuoxiao.{key} = {value!r:.60} is not valid; {_REBUILD}")
        out[key] = value
    if not isinstance(out["onnx_file"], str) or "/" in out["onnx_file"] or "\\" in out["onnx_file"]:
        raise _Corrupt(f"bundle file {path}: zuoxiao.onnx_file = {out['onnx_file']!r:.60} must be a file name "
                       f"in the bundle; {_REBUILD}")
    return out


def _read_tokenizer(path: Path):
    from tokenizers import Tokenizer

    if not path.is_file():
        raise _Corrupt(f"bundle file {path} is missing; {_REBUILD}")
    try:
        return Tokenizer.from_file(str(path))
    except Exception as e:  # noqa: BLE001 - the Rust library raises a bare Exception with its parse error
        raise _Corrupt(f"bundle file {path} is not a tokenizer the tokenizers library can read "
                       f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); {_REBUILD}") from None


def _read_model(path: Path, opts):
    import onnxruntime as ort

    if not path.is_file():
        raise _Corrupt(f"bundle file {path} (config.json zuoxiao.onnx_file) is missing; {_REBUILD}")
    try:
        session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # noqa: BLE001 - onnxruntime raises InvalidProtobuf / Fail / RuntimeException
        raise _Corrupt(f"bundle file {path} is not an ONNX model onnxruntime can load "
                       f"({str(e).splitlines()[0][:200] if str(e) else type(e).__name__}); {_REBUILD}") from None
    names = [i.name for i in session.get_inputs()]
    unknown = sorted(set(names) - {"input_ids", "attention_mask", "token_type_ids"})
    if unknown or "input_ids" not in names or "logits" not in [o.name for o in session.get_outputs()]:
        raise _Corrupt(f"bundle file {path} takes inputs {names} and gives {[o.name for o in session.get_outputs()]}; "
                       f"the runtime needs input_ids (+ attention_mask, token_type_ids) -> logits; {_REBUILD}")
    return session, names


class Bundle:
    """A loaded bundle. ``predict`` returns labels with probabilities; ``logits`` the raw scores [N, C];
    ``explain`` word attributions."""

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

        directory = Path(directory)
        cfg_path = directory / "config.json"
        if not cfg_path.is_file():
            raise _BadBundle(f"{directory} is not a bundle (no config.json); give the directory written by "
                             "`zuoxiao compress` or `zuoxiao export` (<output_dir>/bundle)")
        if verify:
            verify_checksums(directory)
        cfg = read_config(cfg_path)
        tokenizer = _read_tokenizer(directory / "tokenizer.json")
        counter = _read_tokenizer(directory / "tokenizer.json")
        counter.no_truncation()
        counter.no_padding()
        tokenizer.enable_truncation(max_length=cfg["max_length"])
        pad_id = cfg["pad_token_id"]
        tokenizer.enable_padding(pad_id=pad_id, pad_token=tokenizer.id_to_token(pad_id) or "[PAD]")
        opts = ort.SessionOptions()
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        session, names = _read_model(directory / cfg["onnx_file"], opts)
        return cls(directory, session, tokenizer, cfg["labels"], names, float(cfg["temperature"]),
                   counter=counter, max_length=cfg["max_length"])

    def _run(self, ids: np.ndarray, mask: np.ndarray, types: np.ndarray) -> np.ndarray:
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        return self.session.run(["logits"], {n: feed[n] for n in self.input_names})[0]

    def logits(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Raw logits [N, C] (float32)."""
        if isinstance(texts, str):
            texts = [texts]
        out = []
        for s in range(0, len(texts), batch_size):
            encs = self.tokenizer.encode_batch(list(texts[s : s + batch_size]))
            out.append(self._run(*(np.array([getattr(e, k) for e in encs], np.int64)
                                   for k in ("ids", "attention_mask", "type_ids"))))
        return np.concatenate(out) if out else np.zeros((0, len(self.label_names)), np.float32)

    def _probs(self, logits: np.ndarray) -> np.ndarray:
        probs = _softmax(logits.astype(np.float64) / self.temperature)
        bad = [i for i, row in enumerate(probs) if not np.isfinite(row).all()]
        if bad:
            raise _Corrupt(f"the model in {self.directory} produced non-finite outputs (NaN/inf) for text(s) "
                           f"{bad[:10]}; the bundle is broken: rebuild it from a finite student "
                           "(`zuoxiao compress CONFIG`) or ship the previous bundle")
        return probs

    def predict(self, texts: list[str], batch_size: int = 32) -> list[dict]:
        """Per text, in input order: {"label": name, "probabilities": {name: p} (calibrated),
        "truncated": bool} plus "num_tokens"/"max_length" when truncated and "warning": "empty_input"
        for an empty or blank text. Raises when the model outputs NaN/inf (a broken bundle)."""
        if isinstance(texts, str):
            texts = [texts]
        probs = self._probs(self.logits(texts, batch_size))  # [N, C]
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

    def explain(self, texts: list[str], label: str | int | None = None,
                max_words: int = EXPLAIN_MAX_WORDS) -> list[dict]:
        """Word attributions by occlusion, per text: {"label", "probability", "words": [{"word", "start",
        "end", "attribution"}], "words_total"}. ``label``: a label name or id to explain (default: each text's
        predicted label). attribution = p(label | text) - p(label | text with the word masked), calibrated
        probabilities: > 0 the word speaks for the label, < 0 against it. Words are the tokenizer's words (its
        pre-tokenizer: "don't" is don / ' / t), re-joined from the sub-tokens' offsets; start/end are
        character offsets into the text (text[start:end] == word). One model call per text on an unpadded
        batch of 1 + W rows (the text and each word masked, see MASK_TOKENS), W <= max_words. "probability"
        comes from that batch's first row: the int8 graph quantises per batch, so it can differ from
        predict()'s by ~1e-3."""
        if isinstance(texts, str):
            texts = [texts]
        want = None if label is None else self._label_index(label)
        return [self._explain_one(t, want, max_words) for t in texts]

    def _label_index(self, label: str | int) -> int:
        if isinstance(label, int) and not isinstance(label, bool) and 0 <= label < len(self.label_names):
            return label
        if label in self.label_names:
            return self.label_names.index(label)
        raise _BadBundle(f"label {label!r} is not one of this bundle's labels {self.label_names}")

    def _explain_one(self, text: str, want: int | None, max_words: int) -> dict:
        enc = self.tokenizer.encode(text)
        groups = _word_groups(enc.word_ids)
        full = _word_groups(self.counter.encode(text).word_ids) if self.counter is not None else groups
        if groups and len(groups[-1][1]) < len(full[len(groups) - 1][1]):
            groups = groups[:-1]  # the last word was cut by max_length: the model never saw all of it
        groups = groups[:max_words]
        ids = np.tile(np.array(enc.ids, np.int64), (1 + len(groups), 1))
        mask_id = self._mask_id()
        for row, (_, positions) in enumerate(groups, 1):
            ids[row, positions] = mask_id
        rows = ids.shape[0]
        probs = self._probs(self._run(ids, np.tile(np.array(enc.attention_mask, np.int64), (rows, 1)),
                                      np.tile(np.array(enc.type_ids, np.int64), (rows, 1))))
        y = int(probs[0].argmax()) if want is None else want
        words = []
        for row, (_, positions) in enumerate(groups, 1):
            start, end = enc.offsets[positions[0]][0], enc.offsets[positions[-1]][1]
            words.append({"word": text[start:end], "start": start, "end": end,
                          "attribution": round(float(probs[0, y] - probs[row, y]), 6)})
        return {"label": self.label_names[y], "probability": round(float(probs[0, y]), 6), "words": words,
                "words_total": len(full)}

    def _mask_id(self) -> int:
        for token in MASK_TOKENS:
            i = self.tokenizer.token_to_id(token)
            if i is not None:
                return i
        return self.tokenizer.padding["pad_id"] if self.tokenizer.padding else 0

    def _num_tokens(self, text: str) -> int | None:
        """Tokens of ``text`` before truncation (special tokens included, as max_length counts them)."""
        return len(self.counter.encode(text).ids) if self.counter is not None else None


def _word_groups(word_ids: list[int | None]) -> list[tuple[int, list[int]]]:
    """[(word id, [token positions])] in order; special tokens ([CLS], [SEP], padding) have no word id."""
    groups: dict[int, list[int]] = {}
    for pos, w in enumerate(word_ids):
        if w is not None:
            groups.setdefault(w, []).append(pos)
    return list(groups.items())
