#!/usr/bin/env node
// Run a zuoxiao bundle in Node with onnxruntime-node and the page's own runtime (web/zuoxiao-runtime.mjs).
//
//   node js/parity.mjs BUNDLE_DIR TEXTS.json [--model model.onnx] [--node-modules js/node_modules]
//
// TEXTS.json is a JSON list of strings. Prints one JSON object on stdout:
//   {"labels": [...], "temperature": T, "max_length": n, "results": [{"label", "probs", "logits", "n_tokens"}]}
// Single-threaded, one text per run (as in the page), so numbers are comparable with the Python runtime
// at batch_size=1.

import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import { Classifier } from "../ship/web/zuoxiao-runtime.mjs";

const here = dirname(fileURLToPath(import.meta.url));

function parseArgs(argv) {
  const args = { positional: [], model: null, nodeModules: resolve(here, "node_modules") };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--model") args.model = argv[++i];
    else if (argv[i] === "--node-modules") args.nodeModules = resolve(argv[++i]);
    else args.positional.push(argv[i]);
  }
  if (args.positional.length !== 2) {
    console.error("usage: node parity.mjs BUNDLE_DIR TEXTS.json [--model FILE] [--node-modules DIR]");
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

const readJson = (p) => JSON.parse(readFileSync(p, "utf8"));
const config = readJson(join(bundleDir, "config.json"));
const tokenizer = new Tokenizer(readJson(join(bundleDir, "tokenizer.json")),
                                readJson(join(bundleDir, "tokenizer_config.json")));
const modelFile = args.model ?? config.zuoxiao?.onnx_file ?? "model.onnx";
const session = await ort.InferenceSession.create(join(bundleDir, modelFile), {
  executionProviders: ["cpu"], intraOpNumThreads: 1, interOpNumThreads: 1, logSeverityLevel: 3,
});
const clf = new Classifier({ ort, session, tokenizer, config });

const texts = readJson(textsPath);
const results = [];
for (const text of texts) {
  const r = await clf.predict(text);
  results.push({ label: r.label, probs: r.probs, logits: r.logits, n_tokens: clf.encode(text).ids.length });
}
process.stdout.write(JSON.stringify({
  labels: clf.settings.labels, temperature: clf.settings.temperature, max_length: clf.settings.maxLength,
  input_names: clf.inputNames, onnxruntime_node: ort.env.versions?.common ?? null, results,
}) + "\n");
