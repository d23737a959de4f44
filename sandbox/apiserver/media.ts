// Content negotiation as kube-apiserver does it: an Accept header is a list of media types with
// parameters (`application/json;as=Table;v=v1;g=meta.k8s.io`), tried in order.

export interface MediaType {
  readonly type: string;
  readonly params: Readonly<Record<string, string>>;
}

export function parseAccept(header: string | undefined): MediaType[] {
  if (!header) return [];
  return header.split(',').map((part) => {
    const [type = '', ...rest] = part.split(';').map((s) => s.trim());
    const params: Record<string, string> = {};
    for (const p of rest) {
      const i = p.indexOf('=');
      if (i > 0) params[p.slice(0, i).trim().toLowerCase()] = p.slice(i + 1).trim().replace(/^"|"$/g, '');
    }
    return { type: type.toLowerCase(), params };
  }).filter((m) => m.type !== '');
}

/** Whether the media type accepts JSON (`application/json`, `application/*`, `*\/*`). */
export function acceptsJson(m: MediaType): boolean {
  return m.type === 'application/json' || m.type === 'application/*' || m.type === '*/*';
}

/**
 * The first `as=<kind>` the client asks for among `wanted` ({g, v, as} triples), or undefined when
 * plain JSON comes first or nothing matches. A plain JSON entry before any match wins, as the
 * client listed it as preferred.
 */
export function negotiateAs(accept: MediaType[], wanted: readonly { g: string; v: string; as: string }[]): { g: string; v: string; as: string } | undefined {
  for (const m of accept) {
    if (!acceptsJson(m)) continue;
    if (m.params.as === undefined) return undefined;
    const hit = wanted.find((w) => w.as === m.params.as && w.g === m.params.g && w.v === m.params.v);
    if (hit) return hit;
  }
  return undefined;
}
