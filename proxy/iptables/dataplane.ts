// The iptables fallback. Every sync rewrites all SKIFF-* chains in one iptables-restore
// --noflush per family (atomic per table); partial syncs are full ones here, which is fine for
// the small clusters that still need this backend.
import type { Dataplane, FullSyncHooks, ServiceChange } from '../dataplane.js';
import type { Runner } from '../exec.js';
import type { Family, NodeContext, ServicePort } from '../model.js';
import { JUMPS, renderIptables, restoreText, type RestoreTables } from './render.js';

const tools = (f: Family): { cmd: string; save: string; restore: string } =>
  f === 4 ? { cmd: 'iptables', save: 'iptables-save', restore: 'iptables-restore' } : { cmd: 'ip6tables', save: 'ip6tables-save', restore: 'ip6tables-restore' };

/** SKIFF-* chains and their rule counts per table, from iptables-save output. */
export function parseSave(text: string): { nat: Map<string, number>; filter: Map<string, number> } {
  const out = { nat: new Map<string, number>(), filter: new Map<string, number>() };
  let table: 'nat' | 'filter' | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) table = line === '*nat' ? 'nat' : line === '*filter' ? 'filter' : undefined;
    if (!table) continue;
    let m = /^:(SKIFF-\S+)/.exec(line);
    if (m) out[table].set(m[1]!, out[table].get(m[1]!) ?? 0);
    m = /^-A (SKIFF-\S+) /.exec(line);
    if (m) out[table].set(m[1]!, (out[table].get(m[1]!) ?? 0) + 1);
  }
  return out;
}

export class IptablesDataplane implements Dataplane {
  readonly name = 'iptables';
  private services = new Map<string, readonly ServicePort[]>();
  private written = new Map<Family, RestoreTables>();

  constructor(
    private readonly run: Runner,
    readonly families: readonly Family[],
  ) {}

  async full(services: ReadonlyMap<string, readonly ServicePort[]>, ctx: NodeContext, hooks: FullSyncHooks = {}): Promise<void> {
    this.services = new Map(services);
    hooks.whileApplying?.();
    await this.write(ctx);
  }

  async partial(changes: readonly ServiceChange[], ctx: NodeContext): Promise<void> {
    for (const c of changes) {
      if (c.ports.length) this.services.set(c.key, c.ports);
      else this.services.delete(c.key);
    }
    await this.write(ctx);
  }

  private async write(ctx: NodeContext): Promise<void> {
    for (const f of this.families) {
      const t = tools(f);
      const tables = renderIptables(f, [...this.services.values()].flat(), ctx);
      const existing = parseSave(await this.run(t.save, []));
      const stale = {
        nat: [...existing.nat.keys()].filter((c) => !tables.nat.has(c)),
        filter: [...existing.filter.keys()].filter((c) => !tables.filter.has(c)),
      };
      this.written.delete(f);
      await this.run(t.restore, ['--noflush'], restoreText(tables, stale));
      this.written.set(f, tables);
      for (const j of JUMPS) {
        const args = ['-t', j.table, '-C', j.chain, ...j.rule.split(' ')];
        try {
          await this.run(t.cmd, ['-w', ...args]);
        } catch {
          await this.run(t.cmd, ['-w', '-t', j.table, '-I', j.chain, ...j.rule.split(' ')]);
        }
      }
    }
  }

  async verify(): Promise<string[]> {
    const out: string[] = [];
    for (const f of this.families) {
      const want = this.written.get(f);
      if (!want) continue;
      const got = parseSave(await this.run(tools(f).save, []));
      for (const table of ['nat', 'filter'] as const) {
        for (const [name, rules] of want[table]) {
          const n = got[table].get(name);
          if (n !== rules.length) out.push(`${tools(f).cmd} ${table} ${name}: ${n ?? 'missing'} rules, want ${rules.length}`);
        }
        for (const name of got[table].keys()) if (!want[table].has(name)) out.push(`${tools(f).cmd} ${table}: unexpected chain ${name}`);
      }
      for (const j of JUMPS) {
        try {
          await this.run(tools(f).cmd, ['-w', '-t', j.table, '-C', j.chain, ...j.rule.split(' ')]);
        } catch {
          out.push(`${tools(f).cmd} ${j.table} ${j.chain}: jump "${j.rule}" missing`);
        }
      }
    }
    return out;
  }

  async cleanup(): Promise<void> {
    for (const f of [4, 6] as const) {
      const t = tools(f);
      let existing: ReturnType<typeof parseSave>;
      try {
        existing = parseSave(await this.run(t.save, []));
      } catch {
        continue; // no such tool or no tables: nothing of ours can be there
      }
      for (const j of JUMPS) {
        for (let i = 0; i < 10; i++) {
          try {
            await this.run(t.cmd, ['-w', '-t', j.table, '-D', j.chain, ...j.rule.split(' ')]);
          } catch {
            break;
          }
        }
      }
      const none = { nat: new Map<string, string[]>(), filter: new Map<string, string[]>() };
      if (existing.nat.size + existing.filter.size > 0) {
        await this.run(t.restore, ['--noflush'], restoreText(none, { nat: [...existing.nat.keys()], filter: [...existing.filter.keys()] }));
      }
      this.written.delete(f);
    }
    this.services.clear();
  }
}
