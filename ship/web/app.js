// The demo page: loads the bundle that contains this web/ folder and classifies typed text offline.
// Query parameters: ?bundle=URL (folder with config.json etc., default "../"), ?model=FILE (default
// config.json zuoxiao.onnx_file, e.g. model.ort for the ORT-format model).

import * as ort from "./vendor/ort.wasm.bundle.min.mjs";
import { Tokenizer } from "./vendor/tokenizers.min.mjs";
import { Classifier, makeSession, makeTokenizer, parseJsonFile } from "./zuoxiao-runtime.mjs";

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const bundleUrl = new URL(params.get("bundle") ?? "../", location.href);

// Single-threaded WASM: no SharedArrayBuffer, so no cross-origin isolation headers are needed.
ort.env.wasm.numThreads = 1;
ort.env.wasm.proxy = false;
// The .mjs glue is inside ort.wasm.bundle.min.mjs; only the binary is fetched. (A string prefix here would
// make ORT import vendor/ort-wasm-simd-threaded.mjs as well, which is not vendored.)
ort.env.wasm.wasmPaths = { wasm: new URL("./vendor/ort-wasm-simd-threaded.wasm", import.meta.url).href };

function setStatus(state, message) {
  const el = $("status");
  el.dataset.state = state;
  el.textContent = message;
}

async function fetchOk(name, as) {
  const url = new URL(name, bundleUrl);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`GET ${url} -> HTTP ${response.status}`);
  // JSON files are parsed by the runtime so that a damaged one is named (BundleFileError), as in Python.
  return as === "json" ? parseJsonFile(name, await response.text()) : response.arrayBuffer();
}

async function load() {
  const [config, tokenizerJson, tokenizerConfig] = await Promise.all(
    ["config.json", "tokenizer.json", "tokenizer_config.json"].map((f) => fetchOk(f, "json")));
  const modelFile = params.get("model") ?? config.zuoxiao?.onnx_file ?? "model.onnx";
  const modelBytes = await fetchOk(modelFile);
  const session = await makeSession(ort, modelFile, new Uint8Array(modelBytes), {
    executionProviders: ["wasm"], graphOptimizationLevel: "all",
  });
  const clf = new Classifier({ ort, session, tokenizer: makeTokenizer(Tokenizer, tokenizerJson, tokenizerConfig), config });
  clf.modelFile = modelFile;
  clf.modelBytes = modelBytes.byteLength;
  return clf;
}

function render(clf, text, result, ms) {
  const { labels, temperature, maxLength } = clf.settings;
  const best = labels.indexOf(result.label);
  const bars = $("bars");
  bars.replaceChildren(...labels.map((name, i) => {
    const p = result.probs[i];
    const li = document.createElement("li");
    li.className = i === best ? "best" : "";
    li.dataset.label = name;
    li.dataset.prob = String(p);
    li.innerHTML = '<span class="name"></span><span class="track"><span class="fill"></span></span><span class="pct"></span>';
    li.querySelector(".name").textContent = name;
    li.querySelector(".fill").style.width = `${(100 * p).toFixed(2)}%`;
    li.querySelector(".pct").textContent = `${(100 * p).toFixed(1)}%`;
    return li;
  }));
  $("top-label").textContent = result.label;
  $("top-prob").textContent = `${(100 * result.probs[best]).toFixed(1)}%`;
  const nTokens = clf.encode(text).ids.length;
  $("details").textContent = `${nTokens} tokens (max_length ${maxLength}), T = ${temperature}, ` +
    `${ms.toFixed(1)} ms, ${clf.modelFile} (${(clf.modelBytes / 1e6).toFixed(2)} MB), onnxruntime-web ${ort.env.versions?.web ?? ""}`;
  const section = $("result");
  // Machine-readable copy for tests: the exact text classified and the full-precision probabilities.
  section.dataset.text = text;
  section.dataset.probs = JSON.stringify(result.probs);
  section.dataset.label = result.label;
  section.hidden = false;
}

// Green: the word speaks for the label (masking it lowers the label's probability); red: against it.
// Opacity is |attribution| / the text's largest |attribution|, so the strongest word is always full colour.
const FOR = [48, 164, 108];
const AGAINST = [229, 72, 77];

function renderExplanation(text, exp) {
  const chars = Array.from(text);  // offsets count code points, as in the Python runtime
  const top = Math.max(1e-9, ...exp.words.map((w) => Math.abs(w.attribution)));
  const out = $("explanation");
  const nodes = [];
  let at = 0;
  for (const w of exp.words) {
    if (w.start > at) nodes.push(document.createTextNode(chars.slice(at, w.start).join("")));
    const span = document.createElement("span");
    span.className = "word";
    span.textContent = chars.slice(w.start, w.end).join("");
    const [r, g, b] = w.attribution >= 0 ? FOR : AGAINST;
    span.style.backgroundColor = `rgba(${r}, ${g}, ${b}, ${(Math.abs(w.attribution) / top).toFixed(3)})`;
    span.title = `${w.attribution >= 0 ? "+" : ""}${w.attribution.toFixed(4)}: p(${exp.label}) ` +
      `${w.attribution >= 0 ? "drops" : "rises"} by ${Math.abs(w.attribution).toFixed(4)} without this word`;
    span.dataset.attribution = String(w.attribution);
    nodes.push(span);
    at = w.end;
  }
  if (at < chars.length) nodes.push(document.createTextNode(chars.slice(at).join("")));
  out.replaceChildren(...nodes);
  $("legend-label").textContent = exp.label;
  $("legend-max").textContent = top.toPrecision(2);
  const skipped = exp.words_total - exp.words.length;
  $("explain-note").textContent = skipped > 0
    ? `${skipped} of ${exp.words_total} words not explained (after max_length or the ${exp.words.length}-word cap).` : "";
  const section = $("why");
  section.dataset.text = text;
  section.dataset.explanation = JSON.stringify(exp);
  section.hidden = false;
}

async function main() {
  let clf;
  try {
    clf = await load();
  } catch (err) {
    setStatus("error", `Could not load the bundle from ${bundleUrl}: ${err?.message ?? err}\n` +
      "Serve the bundle folder over HTTP (e.g. python -m http.server in the bundle) and open web/index.html.");
    console.error(err);
    return;
  }
  window.zuoxiao = clf;  // for the console and for tests: await zuoxiao.predict("some text"), zuoxiao.explain(..)
  $("task").textContent = clf.settings.labels.join(" · ");
  let queue = Promise.resolve();  // one session.run at a time
  let latest = null;
  const classify = () => {
    const text = $("text").value;
    latest = text;
    queue = queue.then(async () => {
      if (text !== latest) return;  // superseded while waiting
      const t0 = performance.now();
      const result = await clf.predict(text);
      if (text === latest) render(clf, text, result, performance.now() - t0);
      if (text !== latest) return;
      let explanation;
      try {
        explanation = await clf.explain(text);  // one batch: the text + each word masked
      } catch (err) {  // the label above stands; say why the words are not coloured
        $("explanation").textContent = `No explanation: ${err?.message ?? err}`;
        $("why").hidden = false;
        return;
      }
      if (text === latest) renderExplanation(text, explanation);
    }).catch((err) => { setStatus("error", `Inference failed: ${err?.message ?? err}`); console.error(err); });
  };
  let timer;
  $("text").addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(classify, 150); });
  $("classify").addEventListener("click", classify);
  $("text").disabled = false;
  $("classify").disabled = false;
  setStatus("ready", `Ready: ${clf.settings.labels.length} labels, temperature ${clf.settings.temperature}.`);
  $("text").focus();
}

main();
