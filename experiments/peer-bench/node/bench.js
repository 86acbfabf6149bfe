#!/usr/bin/env node
// Peer benchmark: @openfeature/flagd-core on the shared scenarios in benches/scenarios/.
//
//   node bench.js [--flags10k PATH] [--seconds S]
//
// Without --flags10k the 10k document is generated into a temporary file by gen_10k.py.
// Prints a readable table on stderr and one JSON object on stdout.
'use strict';

const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { execFileSync } = require('node:child_process');
const { FlagdCore } = require('@openfeature/flagd-core');

const SCENARIOS_DIR = path.resolve(__dirname, '../../../benches/scenarios');
const N_CONTEXTS = 1024;

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : fallback;
}
const SECONDS = Number(arg('--seconds', '1.5')); // measured time per scenario, after warm-up

// Context i, exactly as benches/scenarios/README.md defines it.
const COUNTRIES = ['US', 'DE', 'GB', 'FR', 'CA', 'NL', 'SE', 'BR'];
const DOMAINS = ['example.com', 'acme.com', 'mail.com', 'corp.com', 'shop.com', 'dev.com', 'example.org'];
function context(i) {
  return {
    targetingKey: `user-${i}`,
    email: `user-${i}@${DOMAINS[i % 7]}`,
    country: COUNTRIES[i % 8],
    plan: i % 6 === 5 ? 'free' : 'pro',
    age: 17 + 6 * (i % 9),
    appVersion: `2.${i % 11}.${i % 13}`,
  };
}
const CONTEXTS = Array.from({ length: N_CONTEXTS }, (_, i) => context(i));

const nowNs = () => process.hrtime.bigint();

// Times `op(ctx)` over rotating contexts: warm-up, then 10 samples filling SECONDS.
// Returns the median ns/op of the samples (and min/max).
function measure(op) {
  let sink = 0;
  let batch = 1024;
  const warmEnd = nowNs() + BigInt(Math.round(SECONDS * 0.3e9));
  while (nowNs() < warmEnd) {
    for (let i = 0; i < batch; i++) sink += op(CONTEXTS[i & (N_CONTEXTS - 1)]) ? 1 : 0;
  }
  // Size a sample to about SECONDS / 10.
  const t0 = nowNs();
  for (let i = 0; i < batch; i++) sink += op(CONTEXTS[i & (N_CONTEXTS - 1)]) ? 1 : 0;
  const perOp = Number(nowNs() - t0) / batch;
  batch = Math.max(1024, Math.round((SECONDS * 1e8) / perOp / 1024) * 1024);
  const samples = [];
  for (let s = 0; s < 10; s++) {
    const start = nowNs();
    for (let i = 0; i < batch; i++) sink += op(CONTEXTS[i & (N_CONTEXTS - 1)]) ? 1 : 0;
    samples.push(Number(nowNs() - start) / batch);
  }
  samples.sort((a, b) => a - b);
  if (sink < 0) console.error(sink); // keeps results observable
  return { median: (samples[4] + samples[5]) / 2, min: samples[0], max: samples[9], opsPerSample: batch };
}

function loadFlags10k() {
  let file = arg('--flags10k', process.env.ENSIGN_FLAGS_10K);
  if (!file) {
    file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'peer-bench-')), 'flags-10k.json');
    execFileSync('python3', [path.join(SCENARIOS_DIR, 'gen_10k.py'), file]);
  }
  return fs.readFileSync(file, 'utf8');
}

// Load+compile: a fresh FlagdCore per run (parse, schema check, targeting compile, per-flag hash).
function measureLoad(text) {
  const runs = [];
  const end = Date.now() + Math.max(SECONDS, 1) * 2000;
  for (let r = 0; r < 3; r++) new FlagdCore().setConfigurations(text); // warm-up
  while (runs.length < 5 || (Date.now() < end && runs.length < 50)) {
    const start = nowNs();
    const n = new FlagdCore().setConfigurations(text).length;
    runs.push(Number(nowNs() - start) / 1e6);
    if (n !== 10000) throw new Error(`10k load gave ${n} flags`);
  }
  runs.sort((a, b) => a - b);
  return { median: runs[runs.length >> 1], min: runs[0], max: runs[runs.length - 1], runs: runs.length };
}

function main() {
  const text = fs.readFileSync(path.join(SCENARIOS_DIR, 'flags.json'), 'utf8');
  const core = new FlagdCore();
  core.setConfigurations(text);
  const doc = JSON.parse(text);
  const bulkOnly = { flags: {} };
  for (const [k, v] of Object.entries(doc.flags)) if (k.startsWith('bulk-')) bulkOnly.flags[k] = v;
  const bulk = new FlagdCore();
  bulk.setConfigurations(JSON.stringify(bulkOnly));

  // Sanity: the scenarios resolve as the README says (and no evaluation errors).
  const rule = CONTEXTS.map((c) => core.resolveStringEvaluation('rule-flag', 'x', c));
  const matched = rule.filter((r) => r.value === 'on').length;
  const frac = {};
  for (const c of CONTEXTS) {
    const r = core.resolveStringEvaluation('fractional-flag', 'x', c);
    if (r.reason !== 'TARGETING_MATCH') throw new Error(`fractional: ${JSON.stringify(r)}`);
    frac[r.value] = (frac[r.value] || 0) + 1;
  }
  if (rule.some((r) => r.reason !== 'TARGETING_MATCH')) throw new Error('rule-flag did not evaluate');
  const all = bulk.resolveAll(CONTEXTS[0]);
  if (all.length !== 100) throw new Error(`resolveAll gave ${all.length} flags`);

  const ns = {
    static: measure((c) => core.resolveBooleanEvaluation('static-flag', false, c).value),
    fractional: measure((c) => core.resolveStringEvaluation('fractional-flag', 'x', c).value === 'a'),
    rule_5_conditions: measure((c) => core.resolveStringEvaluation('rule-flag', 'x', c).value === 'on'),
    missing_flag: measure((c) => core.resolveBooleanEvaluation('missing-flag', false, c).errorCode),
    disabled_flag: measure((c) => core.resolveBooleanEvaluation('disabled-flag', false, c).reason),
    resolve_all_100: measure((c) => bulk.resolveAll(c).length),
  };
  const load = measureLoad(loadFlags10k());

  const result = {
    peer: '@openfeature/flagd-core@4.0.1',
    node: process.version,
    resolve_all: 'FlagdCore.resolveAll() over a core holding only the 100 bulk flags',
    rule_flag_matches: `${matched}/${N_CONTEXTS}`,
    fractional_split: frac,
    ns_per_op: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, Math.round(v.median)])),
    ns_per_op_min_max: Object.fromEntries(Object.entries(ns).map(([k, v]) => [k, [Math.round(v.min), Math.round(v.max)]])),
    load_compile_10k_ms: Number(load.median.toFixed(1)),
    load_compile_10k_ms_min_max: [Number(load.min.toFixed(1)), Number(load.max.toFixed(1))],
  };

  const rows = Object.entries(ns).map(([k, v]) => `  ${k.padEnd(20)} ${v.median.toFixed(0).padStart(9)} ns/op` +
    `   (min ${v.min.toFixed(0)}, max ${v.max.toFixed(0)})`);
  console.error(`flagd-core 4.0.1 on node ${process.version}; rule-flag matched ${matched}/${N_CONTEXTS}`);
  console.error(rows.join('\n'));
  console.error(`  ${'load_compile_10k'.padEnd(20)} ${load.median.toFixed(1).padStart(9)} ms` +
    `      (min ${load.min.toFixed(1)}, max ${load.max.toFixed(1)}, ${load.runs} runs)`);
  console.log(JSON.stringify(result));
}

main();
