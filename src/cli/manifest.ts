/**
 * continuum.yaml: several functions in one file.
 *
 *   functions:
 *     hello:
 *       path: ./hello.ts        # file, directory or archive; relative to this file
 *       tier: isolate           # and any other FunctionConfigInput field: handler, limits, scale, routes, env,
 *       triggers:               #   triggers (queue, cron), bindings and async (retries, destinations)
 *         - { type: queue, queue: jobs }
 *
 * Every function is validated with the core schema before anything is uploaded; errors name the file, line
 * and column of the offending key or value.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import type { TSchema } from '@sinclair/typebox';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { FunctionConfigInputSchema, resolveFunctionConfig, validate, type FunctionConfigInput } from '../core/config.ts';
import { ContinuumError } from '../core/errors.ts';
import { isValidName } from '../core/names.ts';
import { userError } from './errors.ts';

export const MANIFEST_NAMES = ['continuum.yaml', 'continuum.yml'] as const;

export interface ManifestFunction {
  name: string;
  /** Absolute path of the code (file, directory or archive). */
  path: string;
  config: FunctionConfigInput;
  /** Where the function is declared, for messages. */
  line: number;
}

export interface Manifest {
  file: string;
  functions: ManifestFunction[];
}

const TOP_LEVEL_KEYS = new Set(['functions', '$schema']);
const CONFIG_KEYS = new Set(Object.keys(FunctionConfigInputSchema.properties));

export function isManifestPath(p: string): boolean {
  return /\.ya?ml$/i.test(p);
}

type Segment = string | number;

class Locator {
  readonly doc: Document;
  readonly lines: LineCounter;
  readonly file: string;
  constructor(doc: Document, lines: LineCounter, file: string) {
    this.doc = doc;
    this.lines = lines;
    this.file = file;
  }

  /** Line/column of the value at `segments`, or of its key when `atKey`; falls back to the deepest parent found. */
  position(segments: readonly Segment[], atKey = false): { line: number; column: number } {
    let node: unknown = this.doc.contents;
    let offset = (node as YamlNode | null)?.range?.[0] ?? 0;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const last = i === segments.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => isScalar(p.key) && String(p.key.value) === String(seg));
        if (!pair) break;
        const keyRange = isScalar(pair.key) ? pair.key.range : undefined;
        const valueRange = (pair.value as YamlNode | null)?.range;
        offset = (last && atKey ? keyRange?.[0] : valueRange?.[0] ?? keyRange?.[0]) ?? offset;
        node = pair.value;
      } else if (isSeq(node)) {
        const item = node.items[Number(seg)] as YamlNode | undefined;
        if (!item) break;
        offset = item.range?.[0] ?? offset;
        node = item;
      } else break;
    }
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  error(segments: readonly Segment[], message: string, atKey = false): Error {
    const { line, column } = this.position(segments, atKey);
    return userError(`${this.file}:${line}:${column}: ${message}`, { file: this.file, line, column, pointer: toPointer(segments) });
  }
}

function toPointer(segments: readonly Segment[]): string {
  return '/' + segments.map((s) => String(s).replace(/~/g, '~0').replace(/\//g, '~1')).join('/');
}

function fromPointer(pointer: string): string[] {
  if (pointer === '' || pointer === '/') return [];
  return pointer.replace(/^\//, '').split('/').map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

function dotted(segments: readonly Segment[]): string {
  return segments.map((s, i) => (typeof s === 'number' || /^\d+$/.test(String(s)) ? `[${s}]` : i === 0 ? s : `.${s}`)).join('');
}

interface SchemaLike {
  properties?: Record<string, SchemaLike>;
  patternProperties?: Record<string, SchemaLike>;
  items?: SchemaLike;
  anyOf?: SchemaLike[];
  const?: unknown;
  required?: string[];
}

const ROOT_SCHEMA = FunctionConfigInputSchema as unknown as SchemaLike;

/** The `type` constants of a union of objects told apart by their `type` (triggers), if `schema` is one. */
function discriminants(schema: SchemaLike | undefined): string[] | undefined {
  const options = schema?.anyOf;
  if (!options || !options.every((o) => typeof o.properties?.type?.const === 'string')) return undefined;
  return options.map((o) => String(o.properties?.type?.const));
}

/**
 * The schema at `segments` inside a function's config. Unions of objects are entered through the branch the
 * value names with its `type`; records through their key pattern.
 */
function schemaAt(segments: readonly string[], value: unknown): SchemaLike | undefined {
  let schema: SchemaLike | undefined = ROOT_SCHEMA;
  let v = value;
  for (const seg of segments) {
    if (!schema) return undefined;
    if (discriminants(schema)) schema = schema.anyOf?.find((o) => o.properties?.type?.const === (v as { type?: unknown } | undefined)?.type);
    if (!schema) return undefined;
    if (/^\d+$/.test(seg) && schema.items) schema = schema.items;
    else schema = schema.properties?.[seg] ?? Object.values(schema.patternProperties ?? {})[0];
    v = isPlainObject(v) || Array.isArray(v) ? (v as Record<string, unknown>)[seg] : undefined;
  }
  return schema;
}

function valueAt(root: unknown, segments: readonly string[]): unknown {
  let v = root;
  for (const seg of segments) v = isPlainObject(v) || Array.isArray(v) ? (v as Record<string, unknown>)[seg] : undefined;
  return v;
}

/**
 * A clearer reason than the validator's first error where that one misleads: a union answers with its first
 * branch's complaint (a cron trigger "must have required property 'queue'"), and a record's bad key is "not a
 * known field". Returns where to point and what to say, or undefined to keep the validator's words.
 */
function explain(config: unknown, segments: readonly string[], reason: string): { segments: string[]; reason: string; atKey?: boolean } | undefined {
  // The nearest union of `type`-tagged objects on the path: judge the value by the branch it names.
  for (let i = segments.length; i >= 0; i--) {
    const at = segments.slice(0, i);
    const types = discriminants(schemaAt(at, config));
    if (!types) continue;
    const value = valueAt(config, at);
    const type = isPlainObject(value) ? value.type : undefined;
    if (!types.includes(type as string)) return { segments: [...at, 'type'], reason: `must be one of: ${types.join(', ')}` };
    // The validator's first error may come from another branch; re-check against the named one alone.
    const branch = schemaAt(at, config)?.anyOf?.find((o) => o.properties?.type?.const === type);
    try {
      validate(branch as unknown as TSchema, value);
    } catch (err) {
      if (!(err instanceof ContinuumError)) throw err;
      const inner = err.details?.pointer ?? '/';
      const why = stripPrefix(err.message, `request: ${inner} `);
      return { segments: [...at, ...fromPointer(inner)], reason: why, atKey: why === 'is not a known field' };
    }
    return undefined;
  }
  // A record's key that fails its pattern: the key is wrong, whatever its value's schema says.
  if (reason === 'is not a known field') {
    const parent = schemaAt(segments.slice(0, -1), config);
    const pattern = Object.keys(parent?.patternProperties ?? {})[0];
    if (pattern !== undefined) return { segments: [...segments], reason: `is not a valid key here (keys must match ${pattern})`, atKey: true };
  }
  const options = schemaAt(segments, config)?.anyOf;
  if (options) {
    if (options.every((o) => typeof o.const === 'string')) return { segments: [...segments], reason: `must be one of: ${options.map((o) => String(o.const)).join(', ')}` };
    // Objects with one required key each (async destinations, bindings): { queue: NAME } or { function: NAME }.
    if (options.every((o) => o.required?.length === 1)) return { segments: [...segments], reason: `must be ${options.map((o) => `{ ${o.required?.[0]}: … }`).join(' or ')}` };
  }
  return undefined;
}

function stripPrefix(text: string, prefix: string): string {
  return text.startsWith(prefix) ? text.slice(prefix.length) : text;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

/**
 * Parse and validate manifest text. `file` is used for messages and to resolve relative paths. Does not touch
 * the filesystem; see loadManifest for existence checks.
 */
export function parseManifest(source: string, file: string): Manifest {
  const shown = displayPath(file);
  const lines = new LineCounter();
  const doc = parseDocument(source, { lineCounter: lines, uniqueKeys: true, prettyErrors: false });
  const yamlError = doc.errors[0];
  if (yamlError) {
    const { line, col } = lines.linePos(yamlError.pos[0]);
    const msg = yamlError.message.split('\n', 1)[0]?.replace(/ at line \d+, column \d+:?$/, '') ?? 'invalid YAML';
    throw userError(`${shown}:${line}:${col}: invalid YAML: ${msg}`, { file: shown, line, column: col });
  }
  const loc = new Locator(doc, lines, shown);
  const root: unknown = doc.toJS({ maxAliasCount: 100 });
  if (!isPlainObject(root)) throw loc.error([], 'expected a mapping with a `functions:` key');
  for (const key of Object.keys(root)) {
    if (!TOP_LEVEL_KEYS.has(key)) throw loc.error([key], `${key} is not a known field (expected functions)`, true);
  }
  const fns = root.functions;
  if (!isPlainObject(fns) || Object.keys(fns).length === 0) {
    throw loc.error(root.functions === undefined ? [] : ['functions'], 'functions must map function names to their config, e.g. functions: { hello: { path: ./hello.ts } }');
  }
  const baseDir = path.dirname(path.resolve(file));
  const out: ManifestFunction[] = [];
  for (const [name, raw] of Object.entries(fns)) {
    const at = ['functions', name];
    if (!isValidName(name)) throw loc.error(at, `function name ${JSON.stringify(name)} is invalid: use 1-63 characters [a-z0-9-], starting with a letter`, true);
    if (!isPlainObject(raw)) throw loc.error(at, `functions.${name} must be a mapping with at least path: <file or directory>`);
    const { path: codePath, ...rest } = raw;
    if (codePath === undefined) throw loc.error(at, `functions.${name}.path is missing (the file, directory or archive with the function's code)`, true);
    if (typeof codePath !== 'string' || codePath.trim() === '') throw loc.error([...at, 'path'], `functions.${name}.path must be a non-empty string`);
    for (const key of Object.keys(rest)) {
      if (!CONFIG_KEYS.has(key)) {
        throw loc.error([...at, key], `functions.${name}.${key} is not a known field (expected path, ${[...CONFIG_KEYS].join(', ')})`, true);
      }
    }
    let config: FunctionConfigInput;
    try {
      config = validate(FunctionConfigInputSchema, rest, `functions.${name}`);
    } catch (err) {
      if (!(err instanceof ContinuumError)) throw err;
      const pointer = err.details?.pointer ?? '/';
      const reason = stripPrefix(err.message, `functions.${name}: ${pointer} `);
      const e = explain(rest, fromPointer(pointer), reason) ?? { segments: fromPointer(pointer), reason, atKey: reason === 'is not a known field' };
      throw loc.error([...at, ...e.segments], `${dotted([...at, ...e.segments])} ${e.reason}`, e.atKey);
    }
    try {
      // Rules across the fields of one trigger (retry delays): a bad one fails before any function is uploaded.
      if (config.triggers) resolveFunctionConfig({ triggers: config.triggers });
    } catch (err) {
      if (!(err instanceof ContinuumError)) throw err;
      throw loc.error([...at, ...fromPointer(err.details?.pointer ?? '/')], `functions.${name}.${err.message}`);
    }
    out.push({ name, path: path.resolve(baseDir, codePath), config, line: loc.position(at, true).line });
  }
  return { file: path.resolve(file), functions: out };
}

/** The queues a function's config names (triggers, bindings, async destinations), with the field naming each. */
export function queueRefs(config: FunctionConfigInput): Array<{ queue: string; field: string }> {
  const refs: Array<{ queue: string; field: string }> = [];
  config.triggers?.forEach((t, i) => {
    if (t.type === 'queue') refs.push({ queue: t.queue, field: `triggers[${i}].queue` });
  });
  for (const [name, b] of Object.entries(config.bindings ?? {})) if ('queue' in b) refs.push({ queue: b.queue, field: `bindings.${name}.queue` });
  for (const key of ['onSuccess', 'onFailure'] as const) {
    const d = config.async?.[key];
    if (d && 'queue' in d) refs.push({ queue: d.queue, field: `async.${key}.queue` });
  }
  return refs;
}

/** Read, parse and validate a manifest, and check that every function's path exists. */
export async function loadManifest(file: string): Promise<Manifest> {
  const source = await readFile(file, 'utf8');
  const manifest = parseManifest(source, file);
  for (const fn of manifest.functions) {
    try {
      await stat(fn.path);
    } catch {
      throw userError(`${displayPath(file)}:${fn.line}: functions.${fn.name}.path: ${displayPath(fn.path)} does not exist`, { file: displayPath(file), line: fn.line });
    }
  }
  return manifest;
}

/** Paths in messages: relative to the working directory when inside it. */
export function displayPath(p: string): string {
  const rel = path.relative(process.cwd(), path.resolve(p));
  return rel && !rel.startsWith('..') && !path.isAbsolute(rel) ? rel : path.resolve(p);
}
