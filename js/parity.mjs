#!/usr/bin/env node
// Run a zuoxiao bundle in Node with onnxruntime-node and the page's own runtime (web/zuoxiao-runtime.mjs).
//
//   node js/parity.mjs BUNDLE_DIR TEXTS.json [--model model.onnx] [--explain EXPLAIN_TEXTS.json]
//                      [--node-modules js/node_modules]
//
// TEXTS.json is a JSON list of strings. Prints one JSON object on stdout:
//   {"labels": [...], "temperature": T, "max_length": n, "results": [{"label", "probs", "logits", "n_tokens"}],
//    "explanations": [Classifier.explain(text) for each --explain text]}
// Single-threaded, one text per run (as in the page), so numbers are comparable with the Python runtime
// at batch_size=1. A bundle file that is missing or does not parse exits 5 naming it (as `zuoxiao predict`).

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { BundleFileError, Classifier, makeSession, makeTokenizer, parseJsonFile } from "../ship/web/zuoxiao-runtime.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const EXIT_INTEGRITY = 5;

function parseArgs(argv) {
  const args = { positional: [], model: null, explain: null, nodeModules: resolve(here, "node_modules") };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--model") args.model = argv[++i];
    else if (argv[i] === "--explain") args.explain = argv[++i];
    else if (argv[i] === "--node-modules") args.nodeModules = resolve(argv[++i]);
    else args.positional.push(argv[i]);
  }
  if (args.positional.length !== 2) {
    console.error("usage: node parity.mjs BUNDLE_DIR TEXTS.json [--model FILE] [--explain TEXTS.json] [--node-modules DIR]");
    process.exit(2);
  }
  return args;
}

const args = parseArgs(process.argv.slice(2));
const [bundleDir, textsPath] = args.positional;
// The JS dependencies live in js/node_modules (npm ci there), not beside this script.
const require = createRequire(join(args.nodeModules, "noop.js"));
const ort = require("onnxruntime-node");
const { Tokenizer } = require("@huggingface/tokenizers");

function bundleFile(name) {
  try {
    return readFileSync(join(bundleDir, name), "utf8");
  } catch (err) {
    throw new BundleFileError(join(bundleDir, name), `cannot be read (${err.code ?? err.message})`);
  }
}

async function load() {
  const config = parseJsonFile("config.json", bundleFile("config.json"));
  const tokenizer = makeTokenizer(Tokenizer, parseJsonFile("tokenizer.json", bundleFile("tokenizer.json")),
                                  parseJsonFile("tokenizer_config.json", bundleFile("tokenizer_config.json")));
  const modelFile = args.model ?? config.zuoxiao?.onnx_file ?? "model.onnx";
  const session = await makeSession(ort, modelFile, join(bundleDir, modelFile), {
    executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3,
  });
  return new Classifier({ ort, session, tokenizer, config });
}

let clf;
try {
  clf = await load();
} catch (err) {
  if (!(err instanceof BundleFileError)) throw err;
  console.error(`zuoxiao: ${err.message}`);
  process.exit(EXIT_INTEGRITY);
}

const texts = JSON.parse(readFileSync(textsPath, "utf8"));
const results = [];
for (const text of texts) {
  const r = await clf.predict(text);
  results.push({ label: r.label, probs: r.probs, logits: r.logits, n_tokens: clf.encode(text).ids.length });
}
const explanations = [];
for (const text of args.explain ? JSON.parse(readFileSync(args.explain, "utf8")) : []) {
  explanations.push(await clf.explain(text));
}
process.stdout.write(JSON.stringify({
  labels: clf.settings.labels, temperature: clf.settings.temperature, max_length: clf.settings.maxLength,
  input_names: clf.inputNames, onnxruntime_node: ort.env.versions?.common ?? null, results, explanations,
}) + "\n");
