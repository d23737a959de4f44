import { describe, expect, it } from 'vitest';
import { chooseMode, probeOf } from './mode.js';

const save = (chains: string[], rules: number): string =>
  ['*mangle', ...chains.map((c) => `:${c} - [0:0]`), ...Array.from({ length: rules }, (_, i) => `-A INPUT -p tcp --dport ${i} -j ACCEPT`), 'COMMIT', ''].join('\n');

describe('iptables flavour', () => {
  it('reads the hint chain and counts rules from iptables-save output', () => {
    expect(probeOf(save(['KUBE-IPTABLES-HINT'], 2))).toEqual({ hint: true, rules: 2 });
    expect(probeOf(save(['KUBE-IPTABLES-HINTS'], 0))).toEqual({ hint: false, rules: 0 });
    expect(probeOf('')).toEqual({ hint: false, rules: 0 });
  });

  it("picks kubelet's hint first, then the flavour with more rules, then legacy", () => {
    const p = (hint: boolean, rules: number) => ({ hint, rules });
    expect(chooseMode({ legacy: p(false, 50), nft: p(true, 0) })).toBe('nft');
    expect(chooseMode({ legacy: p(true, 0), nft: p(false, 50) })).toBe('legacy');
    expect(chooseMode({ legacy: p(false, 3), nft: p(false, 4) })).toBe('nft');
    expect(chooseMode({ legacy: p(false, 4), nft: p(false, 4) })).toBe('legacy');
    expect(chooseMode({ legacy: p(false, 0), nft: p(false, 0) })).toBe('legacy');
    // A flavour whose tools fail (no nf_tables in the kernel, or not installed) is never chosen.
    expect(chooseMode({ legacy: p(false, 0), nft: undefined })).toBe('legacy');
    expect(chooseMode({ legacy: undefined, nft: p(false, 0) })).toBe('nft');
  });
});
