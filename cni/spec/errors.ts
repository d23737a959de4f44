// CNI error codes (spec section "Error"): the runtime branches on the number, so each failure in
// the plugin maps to exactly one of these and carries a human message plus optional details.
import { SkiffError } from '../../common/errors.js';

export const CniCode = {
  IncompatibleVersion: 1,
  UnsupportedField: 2,
  UnknownContainer: 3,
  InvalidEnvironment: 4,
  IOFailure: 5,
  DecodeFailure: 6,
  InvalidConfig: 7,
  TryAgainLater: 11,
  PluginNotAvailable: 50,
  LimitedConnectivity: 51,
  /** 100+ is plugin-specific: internal failure of the kernel work. */
  Internal: 100,
  IPAMExhausted: 101,
} as const;

export class CniError extends SkiffError {
  constructor(
    readonly cniCode: number,
    message: string,
    readonly details = '',
    options?: { cause?: unknown },
  ) {
    super(`ERR_CNI_${cniCode}`, message, options);
    this.name = 'CniError';
  }
}

/** The error object printed on stdout; `cniVersion` is the request's when it was readable. */
export function errorJson(err: unknown, cniVersion: string): string {
  const e = err instanceof CniError ? err : new CniError(CniCode.Internal, (err as Error)?.message ?? String(err));
  const out: Record<string, unknown> = { cniVersion, code: e.cniCode, msg: e.message };
  if (e.details) out.details = e.details;
  return JSON.stringify(out);
}
