import { pino, type Logger, type LevelWithSilent } from 'pino';

export type { Logger };

let root: Logger | undefined;

/** The process-wide logger: JSON lines on stderr (stdout belongs to the CNI result). */
export function createLogger(level: LevelWithSilent = 'info', base: Record<string, unknown> = {}): Logger {
  root = pino({ level, base: { ...base }, timestamp: pino.stdTimeFunctions.isoTime }, pino.destination(2));
  return root;
}

export function logger(): Logger {
  return root ?? createLogger((process.env.SKIFF_LOG_LEVEL as LevelWithSilent | undefined) ?? 'info');
}
