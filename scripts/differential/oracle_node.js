#!/usr/bin/env node
// Reference oracle: evaluates every case with npm @openfeature/flagd-core
// (fractional v2) and prints one normalized result line per case.
//
// usage: node oracle_node.js FLAGS.json CASES.jsonl > OUT.jsonl
//
// Output line: {"value","variant","reason","errorCode"} with null where absent;
// value/variant are null on ERROR, DISABLED and "code default" (no variant).
// A "_note" field carries the reference's error message for the report only.
'use strict';

const fs = require('fs');
const path = require('path');
const readline = require('readline');

const { FlagdCore } = require(path.join(__dirname, 'node', 'node_modules', '@openfeature', 'flagd-core'));

const silent = { error() {}, warn() {}, info() {}, debug() {} };

// Defaults handed to the resolver. They are never printed: any result that is
// the caller's default is normalized to null.
const DEFAULTS = { boolean: false, string: '', integer: 0, float: 0, object: {} };

function resolve(core, c) {
  const ctx = c.context && typeof c.context === 'object' ? c.context : {};
  switch (c.type) {
    case 'boolean':
      return core.resolveBooleanEvaluation(c.flag, DEFAULTS.boolean, ctx, silent);
    case 'string':
      return core.resolveStringEvaluation(c.flag, DEFAULTS.string, ctx, silent);
    // flagd-core JS has no integer resolver: integers are numbers.
    case 'integer':
    case 'float':
      return core.resolveNumberEvaluation(c.flag, DEFAULTS[c.type], ctx, silent);
    case 'object':
      return core.resolveObjectEvaluation(c.flag, DEFAULTS.object, ctx, silent);
    default:
      throw new Error(`unknown requested type ${c.type}`);
  }
}

const KNOWN_CODES = new Set(['FLAG_NOT_FOUND', 'PARSE_ERROR', 'TYPE_MISMATCH', 'GENERAL', 'INVALID_CONTEXT']);

function normalizeError(code) {
  return KNOWN_CODES.has(code) ? code : 'GENERAL';
}

function normalize(r) {
  if (r.reason === 'ERROR' || r.errorCode) {
    const out = { value: null, variant: null, reason: 'ERROR', errorCode: normalizeError(r.errorCode) };
    if (r.errorMessage) out._note = String(r.errorMessage);
    return out;
  }
  const hasVariant = r.variant !== undefined && r.variant !== null && r.variant !== '';
  return {
    value: hasVariant && r.value !== undefined ? r.value : null,
    variant: hasVariant ? r.variant : null,
    reason: r.reason ?? null,
    errorCode: null,
  };
}

function fromThrown(e) {
  const name = (e && (e.name || (e.constructor && e.constructor.name))) || 'Error';
  const code = e && e.code;
  let errorCode = 'GENERAL';
  if (name === 'FlagNotFoundError' || code === 'FLAG_NOT_FOUND') errorCode = 'FLAG_NOT_FOUND';
  else if (name === 'ParseError' || code === 'PARSE_ERROR') errorCode = 'PARSE_ERROR';
  else if (name === 'TypeMismatchError' || code === 'TYPE_MISMATCH') errorCode = 'TYPE_MISMATCH';
  else if (name === 'InvalidContextError' || code === 'INVALID_CONTEXT') errorCode = 'INVALID_CONTEXT';
  return { value: null, variant: null, reason: 'ERROR', errorCode, _note: `${name}: ${e && e.message}` };
}

async function main() {
  const [flagsFile, casesFile] = process.argv.slice(2);
  if (!flagsFile || !casesFile) {
    process.stderr.write('usage: node oracle_node.js FLAGS.json CASES.jsonl\n');
    process.exit(2);
  }
  const core = new FlagdCore(undefined, silent);
  core.setConfigurations(fs.readFileSync(flagsFile, 'utf8'));

  const out = [];
  const rl = readline.createInterface({ input: fs.createReadStream(casesFile), crlfDelay: Infinity });
  for await (const line of rl) {
    if (!line.trim()) continue;
    const c = JSON.parse(line);
    let res;
    try {
      res = normalize(resolve(core, c));
    } catch (e) {
      res = fromThrown(e);
    }
    out.push(JSON.stringify(res));
  }
  process.stdout.write(out.join('\n') + (out.length ? '\n' : ''));
}

main().catch((e) => {
  process.stderr.write(`oracle_node: ${e && e.stack ? e.stack : e}\n`);
  process.exit(1);
});
