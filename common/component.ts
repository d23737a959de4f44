// Every feature of the agent has this shape (kindnet's NewXAgent + Run + CleanRules): run until the
// signal aborts, and cleanup() removes whatever an earlier run left behind, so a disabled feature
// actively undoes itself.
export interface Component {
  readonly name: string;
  run(signal: AbortSignal): Promise<void>;
  cleanup(): Promise<void>;
}
