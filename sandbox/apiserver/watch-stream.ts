// One open watch: a chunked response of JSON lines. Filtered watches translate writes the way the
// real API server does: an object that starts matching arrives as ADDED, one that stops matching
// leaves as DELETED, so a client's view of the filtered set stays exact.
import type { ServerResponse } from 'node:http';
import type { ApiError } from './errors.js';
import type { StoreEvent } from './history.js';
import { apiVersionOf, type ResourceDef } from './resources.js';
import type { Matcher } from './selectors.js';

export class WatchStream {
  private timer: NodeJS.Timeout | undefined;
  closed = false;

  constructor(
    readonly def: ResourceDef,
    private readonly res: ServerResponse,
    private readonly match: Matcher,
    readonly bookmarks: boolean,
    timeoutMs: number,
    private readonly onClose: (w: WatchStream) => void,
    /** Turns each event's object into what the client asked for (a Table row), else sent as stored. */
    private readonly transform: (o: object) => object = (o) => o,
  ) {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Cache-Control': 'no-cache, private' });
    res.flushHeaders();
    res.on('close', () => this.finish());
    this.timer = setTimeout(() => this.end(), timeoutMs);
  }

  /** Sends the event if this watch sees it; returns whether it was sent. */
  send(e: StoreEvent): boolean {
    if (this.closed || e.resource !== this.def.name) return false;
    const now = e.type !== 'DELETED' && this.match(e.object);
    const before = e.type === 'ADDED' ? false : e.type === 'DELETED' ? this.match(e.object) : e.previous !== undefined && this.match(e.previous);
    let type: string;
    if (now && before) type = 'MODIFIED';
    else if (now) type = 'ADDED';
    else if (before) type = 'DELETED';
    else return false;
    this.write(type, e.object);
    return true;
  }

  sendAdded(obj: object): void {
    this.write('ADDED', obj);
  }

  bookmark(resourceVersion: number): void {
    if (!this.bookmarks) return;
    this.write('BOOKMARK', { kind: this.def.kind, apiVersion: apiVersionOf(this.def), metadata: { resourceVersion: String(resourceVersion) } });
  }

  /** Sends an ERROR event carrying the Status, then ends the stream (how 410 Gone reaches a watcher). */
  fail(err: ApiError): void {
    this.write('ERROR', err.toStatus());
    this.end();
  }

  /** Ends the stream cleanly, as a server-side timeout does. */
  end(): void {
    if (this.closed) return;
    this.res.end();
    this.finish();
  }

  /** Cuts the connection without a clean end, as a crashing server or a broken network does. */
  destroy(): void {
    if (this.closed) return;
    this.res.destroy();
    this.finish();
  }

  private write(type: string, object: object): void {
    if (this.closed) return;
    const out = type === 'ERROR' || type === 'BOOKMARK' ? object : this.transform(object);
    this.res.write(`{"type":"${type}","object":${JSON.stringify(out)}}\n`);
  }

  private finish(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.onClose(this);
  }
}
