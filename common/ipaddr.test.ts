import { describe, expect, it } from 'vitest';
import { bigintToBytes, bytesToIp, ipToBigint } from './ipaddr.js';

describe('bytesToIp', () => {
  it('reads addresses in network byte order, IPv6 compressed as RFC 5952 writes them', () => {
    expect(bytesToIp(Uint8Array.from([10, 244, 1, 12]))).toBe('10.244.1.12');
    expect(bytesToIp(Buffer.from('fd000000000000000000000000000012', 'hex'))).toBe('fd00::12');
    // A view inside a larger buffer (a packet's source address).
    const packet = Buffer.concat([Buffer.alloc(8, 0xff), Buffer.from('20010db8000000010000000000000001', 'hex'), Buffer.alloc(4, 0xff)]);
    expect(bytesToIp(packet.subarray(8, 24))).toBe('2001:db8:0:1::1');
    for (const ip of ['192.0.2.1', '2001:db8::ff00:42:8329']) expect(bytesToIp(bigintToBytes(ipToBigint(ip), ip.includes(':') ? 6 : 4))).toBe(ip);
    expect(() => bytesToIp(new Uint8Array(5))).toThrow(/4 or 16 bytes/);
  });
});
