// A throwaway self-signed certificate for the optional TLS listener, made with the openssl CLI
// (Node has no certificate builder). The certificate is its own CA, so the kubeconfig can pin it.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface TlsMaterial {
  readonly key: string;
  readonly cert: string;
}

export function selfSignedCert(host: string): TlsMaterial {
  const dir = mkdtempSync(join(tmpdir(), 'skiff-fakeapi-tls-'));
  try {
    const san = ['DNS:localhost', 'IP:127.0.0.1', isIP(host) ? `IP:${host}` : `DNS:${host}`].join(',');
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
      '-subj', '/CN=skiff-fake-apiserver', '-addext', `subjectAltName=${san}`, '-addext', 'basicConstraints=critical,CA:TRUE',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem'), 'utf8'), cert: readFileSync(join(dir, 'cert.pem'), 'utf8') };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
