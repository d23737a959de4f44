// Turns the CNI environment and stdin into one validated request. Pure: no I/O, so every malformed
// input's error code is unit-tested without root. Codes follow the spec: 4 for the environment,
// 6 for undecodable stdin, 7 for an invalid config, 1 for a version we do not speak.
import { isIP } from 'node:net';
import { isCidr } from '../../common/config.js';
import { CniCode, CniError } from './errors.js';
import { atLeast, isSupported, SUPPORTED_VERSIONS } from './version.js';
import { parsePrevResult, type Result } from './result.js';

export type Command = 'ADD' | 'DEL' | 'CHECK' | 'VERSION' | 'STATUS' | 'GC';
const COMMANDS: readonly Command[] = ['ADD', 'DEL', 'CHECK', 'VERSION', 'STATUS', 'GC'];

export interface Attachment {
  readonly containerID: string;
  readonly ifname: string;
}

export interface NetConf {
  readonly cniVersion: string;
  readonly name: string;
  readonly type: string;
  /** One range per family, from the Node's spec.podCIDRs. */
  readonly podCIDRs: readonly string[];
  readonly mtu: number;
  readonly bridge: string;
  readonly stateDir: string;
  readonly agentSocket?: string;
  readonly prevResult?: Result;
  /** GC only: attachments the runtime still considers valid. */
  readonly validAttachments?: readonly Attachment[];
}

export interface CniRequest {
  readonly command: Command;
  readonly containerID: string;
  readonly ifname: string;
  readonly netns: string;
  readonly path: string;
  readonly args: Readonly<Record<string, string>>;
  /** Undefined only for VERSION, whose stdin may be anything with a cniVersion. */
  readonly conf?: NetConf;
  /** The version to answer in: the request's, or the newest for VERSION. */
  readonly cniVersion: string;
}

const CONTAINER_ID = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function parseCommand(env: Readonly<Record<string, string | undefined>>): Command {
  const cmd = env.CNI_COMMAND;
  if (!cmd) throw new CniError(CniCode.InvalidEnvironment, 'CNI_COMMAND is not set');
  if (!(COMMANDS as readonly string[]).includes(cmd)) throw new CniError(CniCode.InvalidEnvironment, `unknown CNI_COMMAND ${JSON.stringify(cmd)}`);
  return cmd as Command;
}

export function validIfname(n: string): boolean {
  return n.length > 0 && n.length <= 15 && n !== '.' && n !== '..' && !/[/:\s]/.test(n);
}

export function parseCniArgs(s: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (!s) return out;
  for (const part of s.split(';')) {
    if (!part) continue;
    const eq = part.indexOf('=');
    if (eq <= 0) throw new CniError(CniCode.InvalidEnvironment, `CNI_ARGS entry ${JSON.stringify(part)} is not KEY=VALUE`);
    out[part.slice(0, eq)] = part.slice(eq + 1);
  }
  return out;
}

/** Reads the request; throws CniError with the spec's code for the first problem found. */
export function parseRequest(env: Readonly<Record<string, string | undefined>>, stdin: string): CniRequest {
  const command = parseCommand(env);
  let doc: unknown;
  try {
    doc = JSON.parse(stdin);
  } catch (e) {
    throw new CniError(CniCode.DecodeFailure, 'cannot decode network configuration on stdin', (e as Error).message);
  }
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new CniError(CniCode.DecodeFailure, 'network configuration must be a JSON object');
  const raw = doc as Record<string, unknown>;
  const requested = raw.cniVersion;
  if (command === 'VERSION') {
    const v = typeof requested === 'string' && isSupported(requested) ? requested : SUPPORTED_VERSIONS.at(-1)!;
    return { command, containerID: '', ifname: '', netns: '', path: env.CNI_PATH ?? '', args: {}, cniVersion: v };
  }
  if (typeof requested !== 'string' || requested === '') throw new CniError(CniCode.InvalidConfig, 'cniVersion is required');
  if (!isSupported(requested))
    throw new CniError(CniCode.IncompatibleVersion, `incompatible CNI version ${requested}`, `supported versions: ${SUPPORTED_VERSIONS.join(', ')}`);
  if (command === 'CHECK' && !atLeast(requested, '0.4.0')) throw new CniError(CniCode.IncompatibleVersion, `CHECK needs cniVersion 0.4.0 or later, got ${requested}`);
  if ((command === 'STATUS' || command === 'GC') && !atLeast(requested, '1.1.0'))
    throw new CniError(CniCode.IncompatibleVersion, `${command} needs cniVersion 1.1.0 or later, got ${requested}`);

  const perAttachment = command === 'ADD' || command === 'DEL' || command === 'CHECK';
  const containerID = env.CNI_CONTAINERID ?? '';
  const ifname = env.CNI_IFNAME ?? '';
  const netns = env.CNI_NETNS ?? '';
  if (perAttachment) {
    if (!containerID) throw new CniError(CniCode.InvalidEnvironment, 'CNI_CONTAINERID is not set');
    if (!CONTAINER_ID.test(containerID) || containerID.includes('..'))
      throw new CniError(CniCode.InvalidEnvironment, `invalid CNI_CONTAINERID ${JSON.stringify(containerID)}`, 'must be alphanumeric with _ . - and no ".."');
    if (!ifname) throw new CniError(CniCode.InvalidEnvironment, 'CNI_IFNAME is not set');
    if (!validIfname(ifname)) throw new CniError(CniCode.InvalidEnvironment, `invalid CNI_IFNAME ${JSON.stringify(ifname)}`, 'at most 15 characters, no "/", ":" or spaces');
    if (command !== 'DEL' && !netns) throw new CniError(CniCode.InvalidEnvironment, 'CNI_NETNS is not set');
    if (netns && !netns.startsWith('/')) throw new CniError(CniCode.InvalidEnvironment, `CNI_NETNS must be an absolute path, got ${JSON.stringify(netns)}`);
  }
  const args = parseCniArgs(env.CNI_ARGS);
  const conf = parseNetConf(raw, requested, command);
  return { command, containerID, ifname, netns, path: env.CNI_PATH ?? '', args, conf, cniVersion: requested };
}

function invalid(msg: string, details = ''): CniError {
  return new CniError(CniCode.InvalidConfig, msg, details);
}

export function parseNetConf(raw: Record<string, unknown>, cniVersion: string, command: Command): NetConf {
  const name = raw.name;
  if (typeof name !== 'string' || !/^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/.test(name)) throw invalid('network name is missing or invalid');
  if (typeof raw.type !== 'string' || raw.type === '') throw invalid('type is required');
  const podCIDRs = raw.podCIDRs;
  if (!Array.isArray(podCIDRs) || podCIDRs.length === 0 || podCIDRs.length > 2)
    throw invalid('podCIDRs must list one or two CIDRs', 'the node has no spec.podCIDRs yet, or the conflist is stale');
  const fams = new Set<number>();
  for (const c of podCIDRs) {
    if (typeof c !== 'string' || !isCidr(c)) throw invalid(`podCIDRs entry ${JSON.stringify(c)} is not a CIDR`);
    const fam = isIP(c.split('/')[0]!);
    const bits = Number(c.split('/')[1]);
    if ((fam === 4 && bits > 30) || (fam === 6 && bits > 126)) throw invalid(`podCIDR ${c} is too small`);
    if (fams.has(fam)) throw invalid('podCIDRs must hold at most one CIDR per family');
    fams.add(fam);
  }
  const mtu = raw.mtu ?? 1450;
  if (typeof mtu !== 'number' || !Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw invalid('mtu must be an integer between 576 and 65535');
  const bridge = raw.bridge ?? 'skiff0';
  if (typeof bridge !== 'string' || bridge.length === 0 || bridge.length > 15) throw invalid('bridge must be an interface name');
  const stateDir = raw.stateDir ?? '/var/lib/skiff';
  if (typeof stateDir !== 'string' || !stateDir.startsWith('/')) throw invalid('stateDir must be an absolute path');
  const agentSocket = raw.agentSocket;
  if (agentSocket !== undefined && typeof agentSocket !== 'string') throw invalid('agentSocket must be a path');
  let prevResult: Result | undefined;
  if (raw.prevResult !== undefined) {
    try {
      prevResult = parsePrevResult(raw.prevResult);
    } catch (e) {
      throw invalid('prevResult is malformed', (e as Error).message);
    }
  }
  let validAttachments: Attachment[] | undefined;
  if (command === 'GC') {
    const list = raw['cni.dev/valid-attachments'] ?? raw['cni.dev/attachments'];
    if (list === undefined) throw invalid('GC needs cni.dev/valid-attachments');
    if (!Array.isArray(list)) throw invalid('cni.dev/valid-attachments must be a list');
    validAttachments = list.map((a: unknown) => {
      const o = a as Record<string, unknown> | null;
      if (!o || typeof o.containerID !== 'string' || typeof o.ifname !== 'string') throw invalid('each valid attachment needs containerID and ifname');
      return { containerID: o.containerID, ifname: o.ifname };
    });
  }
  return {
    cniVersion,
    name,
    type: raw.type,
    podCIDRs: podCIDRs as string[],
    mtu,
    bridge,
    stateDir,
    ...(agentSocket ? { agentSocket } : {}),
    ...(prevResult ? { prevResult } : {}),
    ...(validAttachments ? { validAttachments } : {}),
  };
}
