import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { ExecNft } from './backend.js';

const dir = mkdtempSync(join(tmpdir(), 'skiffpx-backend-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ExecNft transactions', () => {
  it('hands nft a complete file, never a pipe a dying agent could cut short, and removes it', async () => {
    const seen: { args: readonly string[]; text: string; input?: string }[] = [];
    const nft = new ExecNft(async (_cmd, args, input) => {
      seen.push({ args, text: readFileSync(args[1]!, 'utf8'), input });
      return '';
    }, { txnDir: dir });
    const text = 'add table ip skiff\nadd chain ip skiff services\n';
    await nft.apply(text);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.args[0]).toBe('-f');
    expect(seen[0]!.args[1]).not.toBe('-');
    expect(seen[0]!.input).toBeUndefined();
    expect(seen[0]!.text).toBe(text);
    expect(existsSync(seen[0]!.args[1]!)).toBe(false);
  });

  it('removes the file when nft fails too, and files a killed agent left behind', async () => {
    // pid 2^22+1 is above pid_max's ceiling: never a live process.
    writeFileSync(join(dir, `skiff-nft-${2 ** 22 + 1}-0.nft`), 'add table ip skiff\n');
    writeFileSync(join(dir, `skiff-nft-${process.ppid}-0.nft`), 'add table ip skiff\n'); // a live agent's
    const nft = new ExecNft(async () => {
      throw new Error('nft: exit 1');
    }, { txnDir: dir });
    await expect(nft.apply('add table ip skiff\n')).rejects.toThrow(/exit 1/);
    expect(readdirSync(dir)).toEqual([`skiff-nft-${process.ppid}-0.nft`]);
  });
});
