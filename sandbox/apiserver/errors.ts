// API errors carried as real metav1.Status objects, so clients branch on `code` and `reason`
// exactly as they would against a real API server.

export type StatusReason =
  | 'BadRequest'
  | 'NotFound'
  | 'AlreadyExists'
  | 'Conflict'
  | 'Gone'
  | 'Expired'
  | 'Invalid'
  | 'Forbidden'
  | 'MethodNotAllowed'
  | 'UnsupportedMediaType'
  | 'Timeout'
  | 'InternalError';

export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: StatusReason;
  details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[] };
  code: number;
}

export interface StatusCause {
  reason: string;
  message: string;
  field: string;
}

export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: StatusReason,
    message: string,
    readonly details?: { name?: string; group?: string; kind?: string; causes?: StatusCause[] },
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    const s: Status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: this.message, reason: this.reason, code: this.code };
    if (this.details) s.details = this.details;
    return s;
  }
}

export const notFound = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(404, 'NotFound', `${resource}${group ? `.${group}` : ''} "${name}" not found`, { name, group, kind: resource });

export const alreadyExists = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(409, 'AlreadyExists', `${resource}${group ? `.${group}` : ''} "${name}" already exists`, { name, group, kind: resource });

export const conflict = (resource: string, name: string, group = ''): ApiError =>
  new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${resource}${group ? `.${group}` : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group, kind: resource },
  );

export const invalid = (kind: string, name: string, field: string, why: string): ApiError =>
  new ApiError(422, 'Invalid', `${kind} "${name}" is invalid: ${field}: ${why}`, {
    name,
    kind,
    causes: [{ reason: why.startsWith('Required value') ? 'FieldValueRequired' : 'FieldValueInvalid', message: why, field }],
  });

export const gone = (requested: number, oldest: number): ApiError =>
  new ApiError(410, 'Gone', `too old resource version: ${requested} (${oldest})`);

/** One field error as kube-apiserver's field.Error renders it ("spec.x: Invalid value: 3: why"). */
export interface FieldError {
  readonly type: 'FieldValueInvalid' | 'FieldValueNotSupported' | 'FieldValueRequired' | 'FieldValueForbidden' | 'FieldValueTooMany' | 'FieldValueDuplicate';
  readonly field: string;
  /** Everything after "field: ", e.g. 'Invalid value: 70000: must be between 1 and 65535, inclusive'. */
  readonly detail: string;
}

/** A 422 carrying every field error, worded like the real server: one error plain, several in brackets. */
export function invalidFields(kind: string, group: string, name: string, errs: readonly FieldError[]): ApiError {
  const msgs = errs.map((e) => `${e.field}: ${e.detail}`);
  const what = group ? `${kind}.${group}` : kind;
  const causes = errs.map((e) => ({ reason: e.type, message: e.detail, field: e.field }));
  return new ApiError(422, 'Invalid', `${what} "${name}" is invalid: ${msgs.length === 1 ? msgs[0] : `[${msgs.join(', ')}]`}`, { name, group, kind, causes });
}
