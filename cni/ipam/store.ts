// Allocations on disk, one file per address (named by the address, holding the attachment), as
// host-local does: the file system is the database, so a crash never loses or duplicates an
// allocation. A file is created with O_EXCL, which fails if another writer won the race, and every
// read-modify-write runs under a lock that also excludes other processes (the Node fallback plugin
// can run many at once without the agent). Nothing is fsynced, and nothing is replaced by rename or
// rewritten with truncation: on ext4 either one starts writeback of the file at once
// (auto_da_alloc), which made these writes the slowest part of an ADD. A crash can therefore leave
// a record empty or cut short: it still holds its address (never handed out twice) and, as an
// unreadable record, is released by reconcile/GC.
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { CniCode, CniError } from '../spec/errors.js';
import { mark } from '../trace.js';
import { nextFree } from './allocator.js';
import { formatIP, parseIP, parseRange, type IPRange } from './ipnet.js';

export interface AllocationMeta {
  readonly containerID: string;
  readonly ifname: string;
  readonly netns?: string;
  readonly podNamespace?: string;
  readonly podName?: string;
  readonly podUID?: string;
}

export interface Allocation extends AllocationMeta {
  readonly ip: string;
  readonly family: 4 | 6;
  /** When the file was written, ms since the epoch: young allocations are spared by reconcile. */
  readonly createdMs: number;
  /** Set by allocate() on addresses this call created (a failed ADD gives back only these). */
  readonly fresh?: boolean;
}

const LOCK_STALE_MS = 10_000;
/** The longest IPv6 text (45, with an embedded IPv4), so every address fits without truncating. */
const LAST_WIDTH = 45;

export class IpamStore {
  readonly dir: string;
  private readonly ranges: readonly IPRange[];
  /** In-process queue so concurrent requests in the agent never spin on the file lock. */
  private queue: Promise<unknown> = Promise.resolve();
  /**
   * Owners of the files this process has read or written, by address. The directory listing is
   * always read afresh; only the owner is remembered, which saves reading every file on every ADD.
   * Another process (the Node fallback) may rewrite a file behind it, so an owner that matters (the
   * attachment's own addresses, and what DEL removes) is read again before it is used.
   */
  private readonly owners = new Map<string, AllocationMeta>();

  constructor(stateDir: string, network: string, podCIDRs: readonly string[]) {
    this.dir = join(stateDir, 'ipam', network);
    this.ranges = podCIDRs.map(parseRange);
  }

  get rangesInUse(): readonly IPRange[] {
    return this.ranges;
  }

  /** Returns the attachment's addresses, allocating one per range when it has none yet. */
  allocate(meta: AllocationMeta): Promise<Allocation[]> {
    return this.locked(() => {
      const all = this.readAll(true);
      const mine = this.confirmed(all.filter((a) => a.containerID === meta.containerID && a.ifname === meta.ifname));
      const out: Allocation[] = [];
      for (const range of this.ranges) {
        const have = mine.find((a) => a.family === range.family && rangeHas(range, a.ip));
        if (have) {
          out.push(have);
          continue;
        }
        const used = new Set(all.filter((a) => a.family === range.family).map((a) => parseIP(a.ip).value));
        const last = this.readLast(range.family);
        for (;;) {
          const ip = nextFree(range, used, last);
          const text = formatIP(ip, range.family);
          if (this.create(text, meta)) {
            this.writeLast(range.family, text);
            out.push({ ...meta, ip: text, family: range.family, createdMs: Date.now(), fresh: true });
            break;
          }
          used.add(ip); // another process took it between our read and our link
        }
      }
      return out;
    });
  }

  /** Releases every address of the attachment; releasing nothing is not an error (DEL is idempotent). */
  release(containerID: string, ifname: string): Promise<Allocation[]> {
    return this.locked(() => {
      const gone = this.confirmed(this.readAll(true).filter((a) => a.containerID === containerID && a.ifname === ifname));
      for (const a of gone) this.remove(a.ip);
      return gone;
    });
  }

  releaseIPs(ips: readonly string[]): Promise<void> {
    return this.locked(() => {
      for (const ip of ips) this.remove(ip);
    });
  }

  find(containerID: string, ifname: string): Promise<Allocation[]> {
    return this.locked(() => this.confirmed(this.readAll(true).filter((a) => a.containerID === containerID && a.ifname === ifname)));
  }

  list(): Promise<Allocation[]> {
    return this.locked(() => this.readAll());
  }

  private create(ip: string, meta: AllocationMeta): boolean {
    let fd: number;
    try {
      fd = openSync(join(this.dir, ip), 'wx', 0o600);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw new CniError(CniCode.IOFailure, `cannot record allocation of ${ip}`, (e as Error).message);
    }
    try {
      writeSync(fd, JSON.stringify(meta));
    } catch (e) {
      rmSync(join(this.dir, ip), { force: true });
      throw new CniError(CniCode.IOFailure, `cannot record allocation of ${ip}`, (e as Error).message);
    } finally {
      closeSync(fd);
    }
    this.owners.set(ip, meta);
    return true;
  }

  private remove(ip: string): void {
    try {
      unlinkSync(join(this.dir, ip));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    this.owners.delete(ip);
  }

  /**
   * Every allocation in the directory. `cached` takes owners from memory where known and leaves
   * createdMs at 0 for those (only reconcile needs it, and it reads everything afresh).
   */
  private readAll(cached = false): Allocation[] {
    const out: Allocation[] = [];
    const seen = new Set<string>();
    for (const name of readdirSync(this.dir)) {
      if (name.startsWith('.') || name.startsWith('last_reserved_ip') || name === 'lock') continue;
      let fam: 4 | 6;
      try {
        fam = parseIP(name).family;
      } catch {
        continue;
      }
      seen.add(name);
      const known = cached ? this.owners.get(name) : undefined;
      if (known) {
        out.push({ ...known, ip: name, family: fam, createdMs: 0 });
        continue;
      }
      const a = this.readOne(name, fam);
      if (a.containerID) this.owners.set(name, ownerOf(a));
      out.push(a);
    }
    for (const ip of this.owners.keys()) if (!seen.has(ip)) this.owners.delete(ip);
    return out;
  }

  private readOne(name: string, fam: 4 | 6): Allocation {
    const path = join(this.dir, name);
    try {
      const meta = JSON.parse(readFileSync(path, 'utf8')) as AllocationMeta;
      return { ...meta, ip: name, family: fam, createdMs: statSync(path).mtimeMs };
    } catch {
      // A file we cannot read still holds its address: an unknown owner, which GC may release.
      return { containerID: '', ifname: '', ip: name, family: fam, createdMs: 0 };
    }
  }

  /** The matches whose files still say so (another process may have reused an address). */
  private confirmed(matches: readonly Allocation[]): Allocation[] {
    return matches
      .map((a) => {
        const now = this.readOne(a.ip, a.family);
        if (now.containerID) this.owners.set(a.ip, ownerOf(now));
        else this.owners.delete(a.ip);
        return now;
      })
      .filter((now, i) => now.containerID === matches[i]!.containerID && now.ifname === matches[i]!.ifname);
  }

  private readLast(family: 4 | 6): bigint | undefined {
    try {
      return parseIP(readFileSync(join(this.dir, `last_reserved_ip.${family === 4 ? 0 : 1}`), 'utf8').trim()).value;
    } catch {
      return undefined;
    }
  }

  /**
   * Overwritten in place and padded to a fixed width, so it is never truncated (see the top). A
   * torn write only moves where the round-robin resumes: readLast ignores what it cannot parse.
   */
  private writeLast(family: 4 | 6, ip: string): void {
    const path = join(this.dir, `last_reserved_ip.${family === 4 ? 0 : 1}`);
    let fd: number;
    try {
      fd = openSync(path, 'r+');
    } catch {
      fd = openSync(path, 'w', 0o600);
    }
    try {
      writeSync(fd, ip.padEnd(LAST_WIDTH, ' ') + '\n', 0);
    } finally {
      closeSync(fd);
    }
  }

  private locked<T>(fn: () => T): Promise<T> {
    const run = this.queue.then(async () => {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
      mark('ipam-queue');
      const release = await acquireFileLock(join(this.dir, 'lock'));
      mark('ipam-lock');
      try {
        return fn();
      } finally {
        mark('ipam-work');
        release();
      }
    });
    this.queue = run.catch(() => undefined);
    return run;
  }
}

function ownerOf(a: Allocation): AllocationMeta {
  const { ip: _ip, family: _f, createdMs: _c, fresh: _fr, ...meta } = a;
  return meta;
}

function rangeHas(r: IPRange, ip: string): boolean {
  const v = parseIP(ip).value;
  return v >= r.first && v <= r.last;
}

/** An exclusive lock file holding the owner's pid; a dead owner's or very old lock is broken. */
async function acquireFileLock(path: string): Promise<() => void> {
  for (let attempt = 0; ; attempt++) {
    try {
      const fd = openSync(path, 'wx');
      writeFileSync(fd, String(process.pid));
      closeSync(fd);
      return () => rmSync(path, { force: true });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw new CniError(CniCode.IOFailure, `cannot lock ${path}`, (e as Error).message);
    }
    if (lockIsStale(path)) {
      try {
        unlinkSync(path);
      } catch {
        /* someone else broke it first */
      }
      continue;
    }
    if (attempt > 3000) throw new CniError(CniCode.TryAgainLater, `IPAM lock ${path} is busy`);
    await new Promise((r) => setTimeout(r, 1 + Math.min(attempt, 10)));
  }
}

function lockIsStale(path: string): boolean {
  try {
    const pid = Number(readFileSync(path, 'utf8'));
    if (pid > 0) {
      try {
        process.kill(pid, 0);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code === 'ESRCH') return true;
      }
    }
    return Date.now() - statSync(path).mtimeMs > LOCK_STALE_MS;
  } catch {
    return false;
  }
}
