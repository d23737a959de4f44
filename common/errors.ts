// One error base class with stable codes, so callers branch on `code`, never on message text.
export class SkiffError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'SkiffError';
  }
}

export class ConfigError extends SkiffError {
  constructor(
    readonly field: string,
    reason: string,
  ) {
    super('ERR_CONFIG', `invalid config: ${field}: ${reason}`);
    this.name = 'ConfigError';
  }
}

export class UsageError extends SkiffError {
  constructor(message: string) {
    super('ERR_USAGE', message);
    this.name = 'UsageError';
  }
}
