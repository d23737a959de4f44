// Named health and readiness checks that components register, served by common/http.ts.
// kube-proxy semantics for /healthz: healthy while syncs keep happening; a component reports
// unhealthy itself when its last successful sync is older than it allows.

export interface CheckResult {
  readonly ok: boolean;
  readonly detail?: Record<string, unknown>;
}

export type Check = () => CheckResult;

export class Health {
  private readonly live = new Map<string, Check>();
  private readonly ready = new Map<string, Check>();
  /** Set on shutdown so /readyz fails while connections drain. */
  draining = false;

  addLiveness(name: string, check: Check): void {
    this.live.set(name, check);
  }
  addReadiness(name: string, check: Check): void {
    this.ready.set(name, check);
  }

  liveness(): { ok: boolean; checks: Record<string, CheckResult> } {
    return evaluate(this.live);
  }

  readiness(): { ok: boolean; checks: Record<string, CheckResult> } {
    const r = evaluate(this.ready);
    return this.draining ? { ok: false, checks: { ...r.checks, shutdown: { ok: false } } } : r;
  }
}

function evaluate(checks: Map<string, Check>): { ok: boolean; checks: Record<string, CheckResult> } {
  const out: Record<string, CheckResult> = {};
  let ok = true;
  for (const [name, check] of checks) {
    let r: CheckResult;
    try {
      r = check();
    } catch (e) {
      r = { ok: false, detail: { error: (e as Error).message } };
    }
    out[name] = r;
    ok &&= r.ok;
  }
  return { ok, checks: out };
}
