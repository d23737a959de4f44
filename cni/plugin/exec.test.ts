import { describe, expect, it } from 'vitest';
import { ipIn } from './exec.js';

describe('ipIn', () => {
  it('uses ip -n for pinned namespaces and nsenter for any other path', () => {
    expect(ipIn(undefined, ['-j', 'link'])).toEqual(['ip', '-j', 'link']);
    expect(ipIn('/var/run/netns/cni-1234', ['-batch', '-'])).toEqual(['ip', '-n', 'cni-1234', '-batch', '-']);
    expect(ipIn('/run/netns/cni-1234', ['link'])).toEqual(['ip', '-n', 'cni-1234', 'link']);
    expect(ipIn('/proc/42/ns/net', ['link'])).toEqual(['nsenter', '--net=/proc/42/ns/net', '--', 'ip', 'link']);
  });
});
