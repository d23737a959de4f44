// GET pods/{name}/log: a container's output as the kubelet stand-in keeps it (one file per
// container, across restarts), with tailLines, limitBytes and follow (streamed until the container
// stops or the client goes away), as `kubectl logs [-f] [--tail N] [-c C]` asks for.
import { open, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { ApiError } from '../apiserver/errors.js';
import type { RouteHandler } from '../apiserver/server.js';
import type { FakeStore } from '../apiserver/store.js';
import { podSubresource, resolveContainer, type ContainerLookup } from './target.js';

const POLL_MS = 200;

/** The last `n` lines of `text` (a trailing newline does not count as an empty line). */
export function tailLines(text: Buffer, n: number): Buffer {
  if (n < 0) return text;
  if (n === 0) return Buffer.alloc(0);
  let end = text.length;
  if (end > 0 && text[end - 1] === 0x0a) end--;
  let i = end;
  let seen = 0;
  while (i > 0) {
    if (text[i - 1] === 0x0a && ++seen === n) break;
    i--;
  }
  return text.subarray(i);
}

async function readFrom(file: string, offset: number): Promise<Buffer> {
  const fh = await open(file, 'r').catch(() => undefined);
  if (!fh) return Buffer.alloc(0);
  try {
    const { size } = await fh.stat();
    if (size <= offset) return Buffer.alloc(0);
    const buf = Buffer.alloc(size - offset);
    await fh.read(buf, 0, buf.length, offset);
    return buf;
  } finally {
    await fh.close();
  }
}

function intParam(q: URLSearchParams, name: string): number | undefined {
  const v = q.get(name);
  if (v === null || v === '') return undefined;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new ApiError(400, 'BadRequest', `invalid ${name} "${v}": must be an integer`);
  return n;
}

export function logsRoute(store: FakeStore, lookup: ContainerLookup): RouteHandler {
  return async (req: IncomingMessage, res: ServerResponse, url: URL) => {
    const where = podSubresource(url.pathname, 'log');
    if (!where) return false;
    if (req.method !== 'GET') throw new ApiError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource: ${req.method}`);
    const q = url.searchParams;
    const { target, container, pod } = resolveContainer(store, lookup, where.namespace, where.name, q.get('container'));
    if (q.get('previous') === 'true') throw new ApiError(400, 'BadRequest', `previous terminated container "${container}" in pod "${where.name}" not found`);
    const tail = intParam(q, 'tailLines');
    const limit = intParam(q, 'limitBytes');
    const follow = q.get('follow') === 'true' || q.get('follow') === '1';
    let data = await readFrom(target.logFile, 0);
    let offset = data.length;
    if (tail !== undefined) data = tailLines(data, tail);
    let left = limit !== undefined && limit > 0 ? limit : Infinity;
    const write = (b: Buffer): void => {
      const part = b.length > left ? b.subarray(0, left) : b;
      left -= part.length;
      if (part.length) res.write(part);
    };
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Transfer-Encoding': 'chunked' });
    write(data);
    if (!follow || left <= 0) {
      res.end();
      return true;
    }
    // Follow: poll the file until the container stops (what the kubelet does) or the client leaves.
    let gone = false;
    res.on('close', () => (gone = true));
    const uid = pod.metadata.uid ?? '';
    const nodeName = (pod.spec as { nodeName?: string }).nodeName ?? '';
    while (!gone && left > 0) {
      await new Promise((r) => setTimeout(r, POLL_MS));
      const more = await readFrom(target.logFile, offset);
      offset += more.length;
      write(more);
      const now = lookup(nodeName, uid, container);
      if (now?.running) continue;
      // Stopped: done once everything written is sent, or once the kubelet removed the pod's logs
      // (a deleted pod's directory goes with it; waiting for its size would never end).
      const size = (await stat(target.logFile).catch(() => undefined))?.size;
      if (size === undefined || size === offset) break;
    }
    res.end();
    return true;
  };
}
