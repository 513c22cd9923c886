// zuoxiao bundle runtime for JavaScript (browser and Node): the same contract as zuoxiao_bundle.py.
//
//   probabilities = softmax(logits / T), T = config.json["zuoxiao"]["temperature"] (1.0 when absent)
//
// Tokenisation follows the Python runtime (tokenizers.Tokenizer + enable_truncation(max_length)):
// tokenizer.json's normaliser / pre-tokeniser / WordPiece / post-processor ([CLS] ... [SEP]) are used as they
// are, but its own "truncation" and "padding" sections are ignored; max_length comes from
// config.json["zuoxiao"]["max_length"] and counts the special tokens. One text per run: no padding.
//
// This module imports nothing: the caller passes in onnxruntime (onnxruntime-web in a page,
// onnxruntime-node in Node) and the Tokenizer class of @huggingface/tokenizers, so the page and
// node/parity.mjs run exactly this code.

/** Read the bundle's config.json and return what inference needs. */
export function bundleSettings(config) {
  const meta = config.zuoxiao ?? {};
  const id2label = config.id2label ?? {};
  const n = Object.keys(id2label).length;
  const labels = n
    ? Array.from({ length: n }, (_, i) => String(id2label[String(i)] ?? id2label[i] ?? i))
    : (meta.label_names ?? []).map(String);
  const temperature = Number(meta.temperature ?? 1.0);
  if (!(temperature > 0)) throw new Error(`config.json zuoxiao.temperature must be > 0, got ${meta.temperature}`);
  return {
    labels,
    temperature,
    maxLength: Number(meta.max_length ?? 128),
    onnxFile: meta.onnx_file ?? "model.onnx",
    inputNames: meta.input_names ?? null,
  };
}

/** Wrap a @huggingface/tokenizers Tokenizer with the Python runtime's truncation rule. */
export function makeEncoder(tokenizer, maxLength) {
  // How many special tokens the post-processor puts before and after the text: find where a plain
  // encoding sits inside the encoding with special tokens ([CLS] a [SEP] -> 1 before, 1 after).
  const plain = tokenizer.encode("a", { add_special_tokens: false }).ids;
  const full = tokenizer.encode("a", { add_special_tokens: true }).ids;
  let before = -1;
  for (let i = 0; i + plain.length <= full.length && before < 0; i++) {
    if (plain.every((id, j) => full[i + j] === id)) before = i;
  }
  if (before < 0) throw new Error("cannot locate the text inside the post-processed encoding");
  const after = full.length - before - plain.length;
  if (maxLength <= before + after) throw new Error(`max_length ${maxLength} leaves no room for text`);

  return function encode(text) {
    const enc = tokenizer.encode(text, { add_special_tokens: true, return_token_type_ids: true });
    let ids = Array.from(enc.ids);
    let types = enc.token_type_ids ? Array.from(enc.token_type_ids) : ids.map(() => 0);
    if (ids.length > maxLength) {
      // Rust tokenizers truncate the sequence (right side) to max_length minus the special tokens.
      const keep = maxLength - after;
      ids = ids.slice(0, keep).concat(ids.slice(ids.length - after));
      types = types.slice(0, keep).concat(types.slice(types.length - after));
    }
    return { ids, attentionMask: ids.map(() => 1), tokenTypeIds: types };
  };
}

/** Softmax of logits / T in double precision (as numpy float64 in the Python runtime). */
export function calibratedSoftmax(logits, temperature) {
  const z = Array.from(logits, (x) => x / temperature);
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}

/**
 * A loaded bundle. `ort` is the onnxruntime module, `session` an ort.InferenceSession on the bundle's
 * model, `tokenizer` a @huggingface/tokenizers Tokenizer built from tokenizer.json + tokenizer_config.json.
 */
export class Classifier {
  constructor({ ort, session, tokenizer, config }) {
    this.ort = ort;
    this.session = session;
    this.settings = bundleSettings(config);
    this.encode = makeEncoder(tokenizer, this.settings.maxLength);
    this.inputNames = session.inputNames; // the graph decides (token_type_ids is optional)
  }

  /** Feeds for one text: int64 [1, n] tensors named as the graph's inputs. */
  feeds(text) {
    const { ids, attentionMask, tokenTypeIds } = this.encode(text);
    const columns = { input_ids: ids, attention_mask: attentionMask, token_type_ids: tokenTypeIds };
    const out = {};
    for (const name of this.inputNames) {
      if (!(name in columns)) throw new Error(`model input ${name} is not one the runtime can build`);
      out[name] = new this.ort.Tensor("int64", BigInt64Array.from(columns[name], BigInt), [1, ids.length]);
    }
    return out;
  }

  /** Raw logits (Float32Array) for one text. */
  async logits(text) {
    const result = await this.session.run(this.feeds(text));
    return result.logits.data;
  }

  /** { label, probabilities: {name: p}, probs: [p...], logits: [..] } for one text (calibrated). */
  async predict(text) {
    const logits = Array.from(await this.logits(text));
    const probs = calibratedSoftmax(logits, this.settings.temperature);
    let best = 0;
    for (let i = 1; i < probs.length; i++) if (probs[i] > probs[best]) best = i;
    const labels = this.settings.labels;
    return {
      label: labels[best],
      probabilities: Object.fromEntries(labels.map((n, i) => [n, probs[i]])),
      probs,
      logits,
    };
  }
}
