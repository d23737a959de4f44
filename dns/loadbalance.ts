// CoreDNS loadbalance: address records in random order so clients that take the first address
// spread over the set, with CNAMEs kept in front where resolvers expect them.
import { isPromise, type Next, type Plugin, type Reply, type Request } from './plugin.js';
import { Type, type RR } from './wire/types.js';

export function shuffleAnswer(answer: readonly RR[], random: () => number = Math.random): RR[] {
  const cnames: RR[] = [];
  const addrs: RR[] = [];
  const rest: RR[] = [];
  for (const rr of answer) {
    if (rr.type === Type.CNAME) cnames.push(rr);
    else if (rr.type === Type.A || rr.type === Type.AAAA) addrs.push(rr);
    else rest.push(rr);
  }
  for (let i = addrs.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [addrs[i], addrs[j]] = [addrs[j]!, addrs[i]!];
  }
  return [...cnames, ...addrs, ...rest];
}

export class LoadBalancePlugin implements Plugin {
  readonly name = 'loadbalance';
  constructor(private readonly random: () => number = Math.random) {}

  serve(req: Request, next: Next): Reply | Promise<Reply> {
    const r = next(req);
    return isPromise(r) ? r.then((m) => this.apply(m)) : this.apply(r);
  }

  private apply(m: Reply): Reply {
    if (m.answer.length < 2) return m;
    return { ...m, answer: shuffleAnswer(m.answer, this.random) };
  }
}
