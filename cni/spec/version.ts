// Spec versions the plugin speaks. Result shapes differ between 0.3.x/0.4.0 (ips carry "version")
// and 1.x; CHECK appeared in 0.4.0, STATUS and GC in 1.1.0.
export const SUPPORTED_VERSIONS = ['0.3.0', '0.3.1', '0.4.0', '1.0.0', '1.1.0'] as const;
export type CniVersion = (typeof SUPPORTED_VERSIONS)[number];

export function isSupported(v: string): v is CniVersion {
  return (SUPPORTED_VERSIONS as readonly string[]).includes(v);
}

/** Semver-ish comparison of "a.b.c" strings; missing parts count as 0. */
export function compareVersions(a: string, b: string): number {
  const pa = a.split('.').map(Number);
  const pb = b.split('.').map(Number);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d !== 0) return d;
  }
  return 0;
}

export function atLeast(v: string, min: string): boolean {
  return compareVersions(v, min) >= 0;
}

/** The highest version every plugin in a chain supports, for the conflist's cniVersion. */
export function highestCommon(lists: readonly (readonly string[])[]): string | undefined {
  const common = SUPPORTED_VERSIONS.filter((v) => lists.every((l) => l.includes(v)));
  return common.at(-1);
}
