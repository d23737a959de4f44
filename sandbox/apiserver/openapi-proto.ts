// OpenAPI v2 as the protobuf kubectl asks for first (gnostic's openapi.v2.Document, the wire
// format of `application/com.github.proto-openapi.spec.v2@v1.0+protobuf`), encoded from the JSON
// document openapi.ts builds. Only the messages that document uses are written; vendor extensions
// travel as YAML text, as gnostic carries them.
import { stringify as toYaml } from 'yaml';

type Json = Record<string, unknown>;
const isObj = (v: unknown): v is Json => v !== null && typeof v === 'object' && !Array.isArray(v);

/** A protobuf message under construction: fields appended in order. */
class Writer {
  private readonly parts: Buffer[] = [];

  private varint(n: number): void {
    const bytes: number[] = [];
    let v = n;
    while (v > 0x7f) {
      bytes.push((v & 0x7f) | 0x80);
      v = Math.floor(v / 128);
    }
    bytes.push(v);
    this.parts.push(Buffer.from(bytes));
  }

  private tag(field: number, wire: number): void {
    this.varint(field * 8 + wire);
  }

  string(field: number, v: unknown): this {
    if (typeof v !== 'string' || v === '') return this;
    return this.bytes(field, Buffer.from(v, 'utf8'));
  }

  strings(field: number, v: unknown): this {
    if (Array.isArray(v)) for (const s of v) this.bytes(field, Buffer.from(String(s), 'utf8'));
    return this;
  }

  bool(field: number, v: unknown): this {
    if (v !== true) return this;
    this.tag(field, 0);
    this.varint(1);
    return this;
  }

  message(field: number, m: Writer | undefined): this {
    return m ? this.bytes(field, m.finish()) : this;
  }

  private bytes(field: number, b: Buffer): this {
    this.tag(field, 2);
    this.varint(b.length);
    this.parts.push(b);
    return this;
  }

  finish(): Buffer {
    return Buffer.concat(this.parts);
  }
}

const w = (): Writer => new Writer();

/** Every x- key of `o` as NamedAny { name, Any { yaml } } at `field`. */
function extensions(m: Writer, field: number, o: Json): Writer {
  for (const [k, v] of Object.entries(o)) if (k.startsWith('x-')) m.message(field, w().string(1, k).message(2, w().string(2, toYaml(v))));
  return m;
}

function schema(s: Json): Writer {
  const m = w().string(1, s.$ref).string(2, s.format).string(4, s.description).strings(19, s.required);
  if (isObj(s.additionalProperties)) m.message(21, w().message(1, schema(s.additionalProperties)));
  if (typeof s.type === 'string') m.message(22, w().string(1, s.type));
  if (isObj(s.items)) m.message(23, w().message(1, schema(s.items)));
  if (Array.isArray(s.allOf)) for (const a of s.allOf) if (isObj(a)) m.message(24, schema(a));
  if (isObj(s.properties)) {
    const props = w();
    for (const [name, p] of Object.entries(s.properties)) if (isObj(p)) props.message(1, w().string(1, name).message(2, schema(p)));
    m.message(25, props);
  }
  return extensions(m, 31, s);
}

function parameter(p: Json): Writer {
  if (p.in === 'body') {
    const body = w().string(1, p.description).string(2, p.name).string(3, p.in).bool(4, p.required).message(5, isObj(p.schema) ? schema(p.schema) : undefined);
    return w().message(1, w().message(1, body));
  }
  // Query sub-schema: type 6, uniqueItems 20; path sub-schema: type 5, uniqueItems 19.
  const query = p.in === 'query';
  const sub = w().bool(1, p.required).string(2, p.in).string(3, p.description).string(4, p.name).string(query ? 6 : 5, p.type).bool(query ? 20 : 19, p.uniqueItems);
  return w().message(1, w().message(2, w().message(query ? 3 : 4, sub)));
}

function operation(op: Json): Writer {
  const m = w().strings(1, op.tags).string(3, op.description).string(5, op.operationId).strings(6, op.produces).strings(7, op.consumes);
  if (Array.isArray(op.parameters)) for (const p of op.parameters) if (isObj(p)) m.message(8, parameter(p));
  if (isObj(op.responses)) {
    const responses = w();
    for (const [code, r] of Object.entries(op.responses)) {
      if (!isObj(r)) continue;
      const resp = w().string(1, r.description).message(2, isObj(r.schema) ? w().message(1, schema(r.schema)) : undefined);
      responses.message(1, w().string(1, code).message(2, w().message(1, resp)));
    }
    m.message(9, responses);
  }
  return extensions(m, 13, op);
}

const VERB_FIELDS: Readonly<Record<string, number>> = { get: 2, put: 3, post: 4, delete: 5, options: 6, head: 7, patch: 8 };

export function encodeOpenApiV2(doc: Json): Buffer {
  const info = isObj(doc.info) ? doc.info : {};
  const m = w().string(1, doc.swagger).message(2, w().string(1, info.title).string(2, info.version));
  const paths = w();
  for (const [path, item] of Object.entries(isObj(doc.paths) ? doc.paths : {})) {
    if (!isObj(item)) continue;
    const pi = w();
    for (const [verb, field] of Object.entries(VERB_FIELDS)) if (isObj(item[verb])) pi.message(field, operation(item[verb]));
    if (Array.isArray(item.parameters)) for (const p of item.parameters) if (isObj(p)) pi.message(9, parameter(p));
    paths.message(2, w().string(1, path).message(2, pi));
  }
  m.message(8, paths);
  const defs = w();
  for (const [name, s] of Object.entries(isObj(doc.definitions) ? doc.definitions : {})) if (isObj(s)) defs.message(1, w().string(1, name).message(2, schema(s)));
  m.message(9, defs);
  return m.finish();
}
