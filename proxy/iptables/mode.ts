// Which iptables to drive. iptables 1.8 ships two with the same commands: "legacy" (the kernel's
// x_tables) and "nft" (the same rules on nf_tables). The kernel applies both, but each tool sees
// only its own rules, so kube-proxy (through kubernetes-sigs/iptables-wrappers) follows the host:
// kubelet marks the mode it uses with a KUBE-IPTABLES-HINT chain in mangle; failing that, the
// mode holding more rules wins. skiff does the same. Where neither holds a rule it takes legacy:
// a host without nf_tables (what this backend is for) has nothing else, and
// iptables-legacy-restore loaded a 1,000-Service ruleset in 0.33 s against 2.6 s for
// iptables-nft-restore (Debian 12, iptables 1.8.9), which grows faster than linearly with chains.
import type { Family } from '../model.js';
import type { Runner } from '../exec.js';

export type IptablesMode = 'legacy' | 'nft';
export const IPTABLES_MODES: readonly IptablesMode[] = ['legacy', 'nft'];

export interface IptablesTools {
  readonly cmd: string;
  readonly save: string;
  readonly restore: string;
}

const TOOLS: Readonly<Record<IptablesMode, Readonly<Record<Family, IptablesTools>>>> = {
  legacy: {
    4: { cmd: 'iptables-legacy', save: 'iptables-legacy-save', restore: 'iptables-legacy-restore' },
    6: { cmd: 'ip6tables-legacy', save: 'ip6tables-legacy-save', restore: 'ip6tables-legacy-restore' },
  },
  nft: {
    4: { cmd: 'iptables-nft', save: 'iptables-nft-save', restore: 'iptables-nft-restore' },
    6: { cmd: 'ip6tables-nft', save: 'ip6tables-nft-save', restore: 'ip6tables-nft-restore' },
  },
};

export function toolsOf(mode: IptablesMode, family: Family): IptablesTools {
  return TOOLS[mode][family];
}

/** What one mode's iptables-save shows: undefined when the tool is missing or cannot talk to the kernel. */
export interface ModeProbe {
  /** kubelet's KUBE-IPTABLES-HINT chain exists in this mode. */
  readonly hint: boolean;
  /** Rules (`-A` lines) in all tables. */
  readonly rules: number;
}

export function chooseMode(probes: Readonly<Record<IptablesMode, ModeProbe | undefined>>): IptablesMode {
  const { legacy, nft } = probes;
  if (!legacy && nft) return 'nft';
  if (!nft) return 'legacy';
  if (legacy!.hint !== nft.hint) return nft.hint ? 'nft' : 'legacy';
  return nft.rules > legacy!.rules ? 'nft' : 'legacy';
}

export function probeOf(saveOutput: string): ModeProbe {
  return { hint: /^:KUBE-IPTABLES-HINT /m.test(saveOutput), rules: (saveOutput.match(/^-A /gm) ?? []).length };
}

/** Probes both modes for the families in use and picks one (see the top of this file). */
export async function detectMode(run: Runner, families: readonly Family[]): Promise<IptablesMode> {
  const probes = {} as Record<IptablesMode, ModeProbe | undefined>;
  for (const mode of IPTABLES_MODES) {
    let text = '';
    try {
      for (const f of families) text += await run(toolsOf(mode, f).save, []);
      probes[mode] = probeOf(text);
    } catch {
      probes[mode] = undefined;
    }
  }
  return chooseMode(probes);
}
