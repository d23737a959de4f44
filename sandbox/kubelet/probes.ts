// Readiness probes as kubelet runs them: tcpSocket and httpGet from the node's network namespace to
// the pod IP (so they exercise the pod's real network), exec inside the pod's namespace.
import { spawn } from 'node:child_process';

export interface Probe {
  readonly exec?: { command?: string[] };
  readonly tcpSocket?: { port: number | string; host?: string };
  readonly httpGet?: { port: number | string; path?: string; host?: string; scheme?: string };
  readonly initialDelaySeconds?: number;
  readonly periodSeconds?: number;
  readonly timeoutSeconds?: number;
  readonly successThreshold?: number;
  readonly failureThreshold?: number;
}

export interface ProbeTarget {
  /** Where tcp/http probes start: the node's namespace. */
  readonly nodeNetns: string;
  /** Where exec probes run: the pod's namespace. */
  readonly podNetns: string;
  readonly podIP: string;
  /** Named ports of the container. */
  readonly ports: ReadonlyMap<string, number>;
}

function runQuiet(argv: string[], timeoutMs: number): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve) => {
    const child = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'pipe', 'ignore'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', () => resolve({ code: null, stdout }));
    child.on('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout });
    });
  });
}

function portOf(p: number | string, t: ProbeTarget): number | undefined {
  if (typeof p === 'number') return p;
  if (/^\d+$/.test(p)) return Number(p);
  return t.ports.get(p);
}

/** Runs one probe attempt; true on success. */
export async function runProbe(probe: Probe, t: ProbeTarget): Promise<boolean> {
  const timeoutMs = Math.max(1, probe.timeoutSeconds ?? 1) * 1000;
  if (probe.exec?.command?.length) {
    const r = await runQuiet(['ip', 'netns', 'exec', t.podNetns, ...probe.exec.command], timeoutMs + 500);
    return r.code === 0;
  }
  if (probe.tcpSocket) {
    const port = portOf(probe.tcpSocket.port, t);
    if (port === undefined) return false;
    const host = probe.tcpSocket.host || t.podIP;
    const r = await runQuiet(['ip', 'netns', 'exec', t.nodeNetns, 'socat', '-u', 'OPEN:/dev/null', `TCP:${host}:${port},connect-timeout=${timeoutMs / 1000}`], timeoutMs + 500);
    return r.code === 0;
  }
  if (probe.httpGet) {
    const port = portOf(probe.httpGet.port, t);
    if (port === undefined) return false;
    const scheme = (probe.httpGet.scheme ?? 'HTTP').toLowerCase();
    const url = `${scheme}://${probe.httpGet.host || t.podIP}:${port}${probe.httpGet.path ?? '/'}`;
    const r = await runQuiet(['ip', 'netns', 'exec', t.nodeNetns, 'curl', '-sk', '-o', '/dev/null', '-w', '%{http_code}', '--max-time', String(timeoutMs / 1000), url], timeoutMs + 500);
    const status = Number(r.stdout.trim());
    return status >= 200 && status < 400;
  }
  return true;
}

/** Success/failure thresholds: turns probe results into a ready flag, starting not ready. */
export class ReadinessTracker {
  private successes = 0;
  private failures = 0;
  ready = false;

  constructor(private readonly probe: Probe) {}

  record(ok: boolean): boolean {
    if (ok) {
      this.failures = 0;
      this.successes++;
      if (this.successes >= (this.probe.successThreshold ?? 1)) this.ready = true;
    } else {
      this.successes = 0;
      this.failures++;
      if (!this.ready || this.failures >= (this.probe.failureThreshold ?? 3)) this.ready = false;
    }
    return this.ready;
  }
}
