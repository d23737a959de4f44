// Reading the install manifests and the runtime sources they must agree with.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { parseAllDocuments, type Document } from 'yaml';
import { projectRoot } from '../../common/self.js';

export const root = projectRoot;
export const manifestsDir = join(root, 'manifests');
export const baseDir = join(manifestsDir, 'base');

// The YAML as plain objects; tests index into it, so a loose record type is the honest one.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export function yamlDocuments(path: string): Document.Parsed[] {
  const docs = parseAllDocuments(readFileSync(path, 'utf8'));
  if (!Array.isArray(docs)) throw new Error(`${path}: empty YAML stream`);
  for (const d of docs) if (d.errors.length) throw new Error(`${path}: ${d.errors[0]!.message}`);
  return docs.filter((d) => d.contents !== null);
}

export function objects(path: string): Obj[] {
  return yamlDocuments(path).map((d) => d.toJS() as Obj);
}

/** Every object of the base install, with the file it came from. */
export function baseObjects(): { file: string; obj: Obj }[] {
  return readdirSync(baseDir)
    .filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml')
    .flatMap((file) => objects(join(baseDir, file)).map((obj) => ({ file, obj })));
}

export function find(kind: string, name: string): Obj {
  const hit = baseObjects().find((o) => o.obj.kind === kind && o.obj.metadata?.name === name);
  if (!hit) throw new Error(`no ${kind} ${name} in manifests/base`);
  return hit.obj;
}

/** The text of every runtime source file (what ships in the image), tests excluded. */
export function runtimeSources(): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (/\.(ts|c)$/.test(name) && !name.endsWith('.test.ts')) out.set(relative(root, p), readFileSync(p, 'utf8'));
    }
  };
  for (const dir of ['bin', 'common', 'cni', 'proxy', 'dns']) {
    try {
      walk(join(root, dir));
    } catch {
      /* a component not written yet has no sources to search */
    }
  }
  return out;
}

/** The runtime files whose text matches, so a failing assertion can say where (or that nowhere). */
export function sourcesMatching(sources: Map<string, string>, re: RegExp): string[] {
  return [...sources].filter(([, text]) => re.test(text)).map(([file]) => file);
}
