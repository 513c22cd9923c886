// zuoxiao bundle runtime for JavaScript (browser and Node): the same contract as zuoxiao_bundle.py.
//
//   probabilities = softmax(logits / T), T = config.json["zuoxiao"]["temperature"] (1.0 when absent)
//
// Tokenisation follows the Python runtime (tokenizers.Tokenizer + enable_truncation(max_length)):
// tokenizer.json's normaliser / pre-tokeniser / WordPiece / post-processor ([CLS] ... [SEP]) are used as they
// are, but its own "truncation" and "padding" sections are ignored; max_length comes from
// config.json["zuoxiao"]["max_length"] and counts the special tokens. One text per run: no padding.
//
// explain(text) gives word attributions by occlusion, the rule of Bundle.explain in ship/runtime.py (same
// words, offsets and mask token; equal within 1e-3, tests/ship/test_web.py). A bundle file that does not
// parse raises BundleFileError naming it (js/parity.mjs exits 5 on it, as `zuoxiao predict` does).
//
// This module imports nothing: the caller passes in onnxruntime (onnxruntime-web in a page,
// onnxruntime-node in Node) and the Tokenizer class of @huggingface/tokenizers, so the page and
// node/parity.mjs run exactly this code.

const REBUILD = "the bundle is damaged: copy it again or rebuild it with `zuoxiao ship CONFIG`";

/** A bundle file that is missing or does not parse: the page shows it, js/parity.mjs exits 5 (as Python). */
export class BundleFileError extends Error {
  constructor(file, problem) {
    super(`bundle file ${file} ${problem}; ${REBUILD}`);
    this.name = "BundleFileError";
    this.file = file;
  }
}

/** JSON.parse of a bundle file's text, naming the file when it is not a JSON object. */
export function parseJsonFile(file, text) {
  let value;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new BundleFileError(file, `is not valid JSON (${err.message})`);
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new BundleFileError(file, `must hold a JSON object, not ${Array.isArray(value) ? "list" : typeof value}`);
  }
  return value;
}

/** Read the bundle's config.json and return what inference needs (the checks of read_config in runtime.py). */
export function bundleSettings(config) {
  const bad = (problem) => new BundleFileError("config.json", problem);
  const meta = config.zuoxiao ?? {};
  if (meta === null || typeof meta !== "object" || Array.isArray(meta)) throw bad('"zuoxiao" must be an object');
  const id2label = config.id2label;
  if (!id2label || typeof id2label !== "object" || Array.isArray(id2label) || !Object.keys(id2label).length) {
    throw bad('"id2label" must be a non-empty object {"0": name, ...}');
  }
  const n = Object.keys(id2label).length;
  const missing = Array.from({ length: n }, (_, i) => i).filter((i) => !(String(i) in id2label));
  if (missing.length) throw bad(`"id2label" has no label for id(s) ${JSON.stringify(missing.slice(0, 5))} (keys must be 0..${n - 1})`);
  const labels = Array.from({ length: n }, (_, i) => String(id2label[String(i)]));
  const maxLength = meta.max_length ?? 128;
  if (!Number.isInteger(maxLength) || maxLength <= 2) throw bad(`zuoxiao.max_length = ${JSON.stringify(maxLength)} is not valid`);
  const temperature = meta.temperature ?? 1.0;
  if (typeof temperature !== "number" || !Number.isFinite(temperature) || !(temperature > 0)) {
    throw bad(`zuoxiao.temperature = ${JSON.stringify(temperature)} is not valid`);
  }
  const onnxFile = meta.onnx_file ?? "model.onnx";
  if (typeof onnxFile !== "string" || /[/\\]/.test(onnxFile)) throw bad(`zuoxiao.onnx_file = ${JSON.stringify(onnxFile)} must be a file name in the bundle`);
  return { labels, temperature, maxLength, onnxFile, inputNames: meta.input_names ?? null };
}

/** new Tokenizer(tokenizer.json, tokenizer_config.json) and one encode, naming the file when either fails. */
export function makeTokenizer(Tokenizer, tokenizerJson, tokenizerConfig) {
  try {
    const tokenizer = new Tokenizer(tokenizerJson, tokenizerConfig);
    tokenizer.encode("a", { add_special_tokens: true });
    return tokenizer;
  } catch (err) {
    throw new BundleFileError("tokenizer.json", `is not a tokenizer @huggingface/tokenizers can read (${err?.message ?? err})`);
  }
}

/** ort.InferenceSession.create(source, options), naming the file when it is not a model the runtime can run. */
export async function makeSession(ort, file, source, options) {
  let session;
  try {
    session = await ort.InferenceSession.create(source, options);
  } catch (err) {
    throw new BundleFileError(file, `is not an ONNX model onnxruntime can load (${String(err?.message ?? err).split("\n")[0]})`);
  }
  const known = ["input_ids", "attention_mask", "token_type_ids"];
  if (!session.inputNames.includes("input_ids") || session.inputNames.some((n) => !known.includes(n)) ||
      !session.outputNames.includes("logits")) {
    throw new BundleFileError(file, `takes inputs ${JSON.stringify(session.inputNames)} and gives ` +
      `${JSON.stringify(session.outputNames)}; the runtime needs input_ids (+ attention_mask, token_type_ids) -> logits`);
  }
  return session;
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

  const encode = function encode(text) {
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
  encode.before = before;  // special tokens in front of the text ([CLS]) and after it ([SEP])
  encode.after = after;
  return encode;
}

/** Softmax of logits / T in double precision (as numpy float64 in the Python runtime). */
export function calibratedSoftmax(logits, temperature) {
  const z = Array.from(logits, (x) => x / temperature);
  const m = Math.max(...z);
  const e = z.map((x) => Math.exp(x - m));
  const s = e.reduce((a, b) => a + b, 0);
  return e.map((x) => x / s);
}


/** Occlusion cost bound and mask tokens: the same constants and rule as ship/runtime.py (Bundle.explain). */
export const EXPLAIN_MAX_WORDS = 64;
export const MASK_TOKENS = ["[MASK]", "<mask>", "[UNK]", "<unk>"];

/**
 * The tokenizer's words of `text` with their sub-tokens and UTF-16 offsets [{start, end, tokens}], i.e.
 * what the Rust tokenizers' word_ids + offsets give the Python runtime. @huggingface/tokenizers returns no
 * offsets, so this replays its encode steps (added-token split, normaliser, pre-tokeniser, model) keeping
 * track of where each piece came from: the normaliser is applied one code point at a time to map normalised
 * characters back to the original ones (exact for per-character normalisers such as BERT's). Throws when the
 * words' tokens do not add up to the tokenizer's own encoding (a tokenizer this cannot follow).
 */
export function tokenizerWords(tokenizer, text) {
  const words = [];
  let cursor = 0;
  for (const section of tokenizer.splitter_unnormalized.split(text)) {
    if (!section) continue;
    const at = text.indexOf(section, cursor);
    cursor = at + section.length;
    if (tokenizer.added_tokens_map.has(section)) {
      words.push({ start: at, end: cursor, tokens: [section] });
      continue;
    }
    const { norm, back } = normaliseWithMap(tokenizer, section);
    let sub = 0;
    for (const piece of tokenizer.splitter_normalized.split(norm)) {
      if (!piece) continue;
      const p0 = norm.indexOf(piece, sub);
      sub = p0 + piece.length;
      if (tokenizer.added_tokens_map.has(piece)) {
        words.push({ start: at + back[p0][0], end: at + back[sub - 1][1], tokens: [piece] });
        continue;
      }
      const pre = tokenizer.pre_tokenizer ? tokenizer.pre_tokenizer(piece, { section_index: 0 }) : [piece];
      let c = 0;
      for (const word of pre) {
        const w0 = piece.indexOf(word, c);
        if (w0 < 0 || !word) throw new Error(`explain: cannot locate pre-token ${JSON.stringify(word)} in the text`);
        c = w0 + word.length;
        const tokens = tokenizer.model([word]);
        if (tokens.length) words.push({ start: at + back[p0 + w0][0], end: at + back[p0 + c - 1][1], tokens });
      }
    }
  }
  const expected = tokenizer.encode(text, { add_special_tokens: false }).tokens;
  const got = words.flatMap((w) => w.tokens);
  if (got.length !== expected.length || got.some((t, i) => t !== expected[i])) {
    throw new Error("explain: this tokenizer's words cannot be re-joined from its tokens in JavaScript");
  }
  return words;
}

function normaliseWithMap(tokenizer, section) {
  const whole = tokenizer.normalizer ? tokenizer.normalizer(section) : section;
  let norm = "";
  const back = [];  // per UTF-16 unit of the normalised text: [start, end) of its source character
  let i = 0;
  for (const ch of section) {
    const n = tokenizer.normalizer ? tokenizer.normalizer(ch) : ch;
    norm += n;
    for (let k = 0; k < n.length; k++) back.push([i, i + ch.length]);
    i += ch.length;
  }
  // Context-dependent rules (a final sigma) change letters, never lengths: keep the whole-text form.
  if (whole.length !== norm.length) throw new Error("explain: the normaliser is not per-character");
  return { norm: whole, back };
}

/** UTF-16 offset -> code point offset (Python's str indices), for offsets that equal the Python runtime's. */
function codePointIndex(text) {
  const index = new Array(text.length + 1);
  let cp = 0;
  for (let i = 0; i < text.length; i++) {
    index[i] = cp;
    const c = text.charCodeAt(i);
    if (!(c >= 0xd800 && c <= 0xdbff && i + 1 < text.length)) cp++;
  }
  index[text.length] = cp;
  return index;
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
    this.tokenizer = tokenizer;
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

  /** Calibrated probabilities [rows][C] of a batch of equal-length rows (one session.run). */
  async batchProbs(rows, attentionMask, tokenTypeIds) {
    const n = rows.length, len = rows[0].length;
    const columns = { input_ids: rows.flat(), attention_mask: Array(n).fill(attentionMask).flat(),
                      token_type_ids: Array(n).fill(tokenTypeIds).flat() };
    const feeds = {};
    for (const name of this.inputNames) {
      feeds[name] = new this.ort.Tensor("int64", BigInt64Array.from(columns[name], BigInt), [n, len]);
    }
    const logits = (await this.session.run(feeds)).logits.data;
    const c = logits.length / n;
    return Array.from({ length: n }, (_, r) =>
      calibratedSoftmax(logits.subarray(r * c, (r + 1) * c), this.settings.temperature));
  }

  /**
   * Word attributions by occlusion, as Bundle.explain in ship/runtime.py: {label, probability, words:
   * [{word, start, end, attribution}], words_total}; start/end count code points (Python's offsets), so
   * Array.from(text).slice(start, end).join("") is the word. attribution = p(label | text) - p(label | text
   * with the word's sub-tokens replaced by MASK_TOKENS[0 or the first in the vocab]); one batch of
   * 1 + min(words, maxWords) rows. `label`: a name or id (default: the predicted label).
   */
  async explain(text, label = null, maxWords = EXPLAIN_MAX_WORDS) {
    const { ids, attentionMask, tokenTypeIds } = this.encode(text);
    const words = tokenizerWords(this.tokenizer, text);
    const groups = [];
    let pos = this.encode.before;
    for (const w of words) {
      if (pos + w.tokens.length > ids.length - this.encode.after) break;  // cut by max_length
      groups.push({ ...w, positions: Array.from(w.tokens, (_, k) => pos + k) });
      pos += w.tokens.length;
    }
    const shown = groups.slice(0, maxWords);
    const maskId = this.maskId();
    const rows = [ids, ...shown.map((g) => ids.map((id, k) => (g.positions.includes(k) ? maskId : id)))];
    const probs = await this.batchProbs(rows, attentionMask, tokenTypeIds);
    if (probs.some((row) => row.some((p) => !Number.isFinite(p)))) {
      throw new Error("the model produced non-finite outputs (NaN/inf): the bundle is broken");
    }
    const labels = this.settings.labels;
    let y = label === null ? probs[0].indexOf(Math.max(...probs[0])) : (typeof label === "number" ? label : labels.indexOf(label));
    if (!(y >= 0 && y < labels.length)) throw new Error(`label ${label} is not one of ${JSON.stringify(labels)}`);
    const cp = codePointIndex(text);
    return {
      label: labels[y],
      probability: probs[0][y],
      words: shown.map((g, r) => ({ word: text.slice(g.start, g.end), start: cp[g.start], end: cp[g.end],
                                   attribution: probs[0][y] - probs[r + 1][y] })),
      words_total: words.length,
    };
  }

  maskId() {
    for (const t of MASK_TOKENS) {
      const id = this.tokenizer.added_tokens_map?.get(t)?.id ?? this.tokenizer.token_to_id(t);
      if (id !== undefined) return id;
    }
    return 0;
  }
}
