/**
 * continuum.yaml: several functions in one file.
 *
 *   functions:
 *     hello:
 *       path: ./hello.ts        # file, directory or archive; relative to this file
 *       tier: isolate           # and any other FunctionConfigInput field: handler, limits, scale, routes, env
 *
 * Every function is validated with the core schema before anything is uploaded; errors name the file, line
 * and column of the offending key or value.
 */
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument, type Document, type Node as YamlNode } from 'yaml';
import { FunctionConfigInputSchema, validate, type FunctionConfigInput } from '../core/config.ts';
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
  items?: SchemaLike;
  anyOf?: SchemaLike[];
  const?: unknown;
}

/** The literal values a union-of-constants field accepts (tier, handler.format, methods), for messages. */
function allowedValues(segments: readonly string[]): string[] | undefined {
  let schema: SchemaLike | undefined = FunctionConfigInputSchema as unknown as SchemaLike;
  for (const seg of segments) {
    if (!schema) return undefined;
    schema = /^\d+$/.test(seg) && schema.items ? schema.items : schema.properties?.[seg];
  }
  const options = schema?.anyOf;
  if (!options || !options.every((o) => typeof o.const === 'string')) return undefined;
  return options.map((o) => String(o.const));
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
      const segments = fromPointer(pointer);
      const prefix = `functions.${name}: ${pointer} `;
      let reason = err.message.startsWith(prefix) ? err.message.slice(prefix.length) : err.message;
      const allowed = allowedValues(segments);
      if (allowed && /constant|anyOf|schema in anyOf/.test(reason)) reason = `must be one of: ${allowed.join(', ')}`;
      const unknownKey = reason === 'is not a known field';
      throw loc.error([...at, ...segments], `${dotted([...at, ...segments])} ${reason}`, unknownKey);
    }
    out.push({ name, path: path.resolve(baseDir, codePath), config, line: loc.position(at, true).line });
  }
  return { file: path.resolve(file), functions: out };
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
