// One `skiff agent` per node, started in the node's namespace the way a DaemonSet pod with
// hostNetwork would run, and restarted with back-off when it exits (the agent may not exist yet,
// or may crash; the sandbox keeps going either way).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, writeFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from '../common/log.js';
import { CPU_SPLIT_ENV } from '../common/cpu-split.js';
import { agentCommand, projectRoot } from '../common/self.js';
import type { Layout, NodeLayout } from './names.js';
import { stopProcessGroup } from './kubelet/containers.js';

export function agentArgv(l: Layout, n: NodeLayout): string[] {
  return [
    'ip', 'netns', 'exec', n.name,
    ...agentCommand(),
    '--kubeconfig', l.kubeconfig,
    '--node-name', n.name,
    '--state-dir', join(n.dir, 'var', 'lib', 'skiff'),
    '--run-dir', join(n.dir, 'run', 'skiff'),
    '--set', `cni.confDir=${n.cniConfDir}`,
    '--set', `cni.binDir=${n.cniBinDir}`,
  ];
}

export class AgentProcess {
  private proc: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private stopping = false;
  private backoffMs = 1000;
  private timer: NodeJS.Timeout | undefined;
  restarts = 0;

  constructor(
    private readonly l: Layout,
    private readonly n: NodeLayout,
    private readonly log: Logger,
  ) {}

  start(): void {
    if (this.stopping || this.proc) return;
    mkdirSync(this.n.dir, { recursive: true });
    const fd = openSync(this.n.agentLog, 'a');
    const [cmd, ...args] = agentArgv(this.l, this.n);
    const started = Date.now();
    let proc: ChildProcess;
    try {
      proc = spawn(cmd!, args, { cwd: projectRoot, env: { ...process.env, NODE_NAME: this.n.name, [CPU_SPLIT_ENV]: 'off' }, stdio: ['ignore', fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    this.proc = proc;
    if (proc.pid) writeFileSync(join(this.n.dir, 'agent.pid'), `${proc.pid}\n`);
    this.exited = new Promise((resolve) => {
      proc.on('error', (err) => this.log.warn({ err, node: this.n.name }, 'agent failed to start'));
      proc.on('exit', (code, signal) => {
        this.proc = undefined;
        resolve();
        if (this.stopping) return;
        // A run that lasted a while resets the back-off, like kubelet's CrashLoopBackOff.
        if (Date.now() - started > 60_000) this.backoffMs = 1000;
        this.log.warn({ node: this.n.name, code, signal, retryInMs: this.backoffMs, log: this.n.agentLog }, 'agent exited; restarting');
        this.restarts++;
        this.timer = setTimeout(() => this.start(), this.backoffMs);
        this.backoffMs = Math.min(this.backoffMs * 2, 30_000);
      });
    });
    this.log.info({ node: this.n.name, pid: proc.pid }, 'agent started');
  }

  get pid(): number | undefined {
    return this.proc?.pid;
  }

  async stop(): Promise<void> {
    this.stopping = true;
    clearTimeout(this.timer);
    if (this.proc?.pid) await stopProcessGroup(this.proc.pid, 10_000, this.exited);
    rmSync(join(this.n.dir, 'agent.pid'), { force: true });
  }
}
